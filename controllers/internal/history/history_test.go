package history

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	apitypes "k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"tower.dev/tower/controllers/internal/workload"
)

func daemonSet(image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "ns", UID: "ds-uid"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: image}}},
			},
		},
	}
}

func newStore(objs ...client.Object) Store {
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
	return Store{
		Client:    c,
		Kind:      appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
		APIReader: c,
		NewOwner:  func() client.Object { return &appsv1.DaemonSet{} },
	}
}

func TestPatchRestoresTemplate(t *testing.T) {
	v1, v2 := daemonSet("agent:1"), daemonSet("agent:2")
	data, err := Patch(v1)
	if err != nil {
		t.Fatal(err)
	}
	var patch map[string]map[string]map[string]any
	if err := json.Unmarshal(data, &patch); err != nil {
		t.Fatal(err)
	}
	if len(patch) != 1 || len(patch["spec"]) != 1 || patch["spec"]["template"]["$patch"] != "replace" {
		t.Fatalf("patch = %s, want only spec.template with $patch: replace", data)
	}
	again, _ := Patch(daemonSet("agent:1"))
	if !bytes.Equal(data, again) {
		t.Fatal("equal templates give different patches")
	}
	template, err := Template(v2, &appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: data}})
	if err != nil {
		t.Fatal(err)
	}
	if got := template.Spec.Containers[0].Image; got != "agent:1" {
		t.Fatalf("restored image = %q, want agent:1", got)
	}
}

func TestHashChangesWithCollisionCount(t *testing.T) {
	one := int32(1)
	if Hash([]byte("x"), nil) == Hash([]byte("x"), &one) || Hash([]byte("x"), nil) == Hash([]byte("y"), nil) {
		t.Fatal("hash ignores its inputs")
	}
	if got := Name(string(bytes.Repeat([]byte("a"), 300)), "h"); len(got) != maxPrefixLen+2 {
		t.Fatalf("name length %d, want %d", len(got), maxPrefixLen+2)
	}
}

// TestSync walks a template through change and rollback: each new
// template is the next revision, an old template comes back renumbered
// rather than duplicated.
func TestSync(t *testing.T) {
	ctx := context.Background()
	store := newStore()
	var collisions int32
	steps := []struct {
		image        string
		wantRevision int64
		wantCount    int
	}{
		{"agent:1", 1, 1},
		{"agent:1", 1, 1},
		{"agent:2", 2, 2},
		{"agent:1", 3, 2},
		{"agent:3", 4, 3},
	}
	names := map[string]string{}
	for _, step := range steps {
		ds := daemonSet(step.image)
		claimed, err := store.Claim(ctx, ds, labels.SelectorFromSet(ds.Spec.Template.Labels))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := Patch(ds)
		cr, err := store.Sync(ctx, ds, ds.Spec.Template.Labels, data, claimed, &collisions)
		if err != nil {
			t.Fatalf("%s: %v", step.image, err)
		}
		if cr.Revision != step.wantRevision {
			t.Errorf("%s: revision %d, want %d", step.image, cr.Revision, step.wantRevision)
		}
		if prev, ok := names[step.image]; ok && prev != cr.Name {
			t.Errorf("%s: revision renamed from %s to %s", step.image, prev, cr.Name)
		}
		names[step.image] = cr.Name
		if cr.Name != Name("agent", cr.Labels[HashLabel]) || cr.Labels["app"] != "agent" {
			t.Errorf("%s: name %s labels %v", step.image, cr.Name, cr.Labels)
		}
		if ref := workload.ControllerRef(cr); ref == nil || ref.UID != ds.UID || ref.Kind != "DaemonSet" {
			t.Errorf("%s: controller ref %+v", step.image, ref)
		}
		var list appsv1.ControllerRevisionList
		if err := store.Client.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != step.wantCount {
			t.Errorf("%s: %d revisions stored, want %d", step.image, len(list.Items), step.wantCount)
		}
	}
	if collisions != 0 {
		t.Errorf("collisionCount = %d without a collision", collisions)
	}
}

// TestCreateBumpsCollisionCount stores a revision under the name the new
// one would take, with other data: the new one must get another name and
// the count must go up.
func TestCreateBumpsCollisionCount(t *testing.T) {
	ctx := context.Background()
	ds := daemonSet("agent:1")
	data, _ := Patch(ds)
	var collisions int32
	squatter := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: Name("agent", Hash(data, &collisions)), Namespace: "ns"},
		Data:       runtime.RawExtension{Raw: []byte(`{"other":true}`)},
	}
	store := newStore(squatter)
	cr, err := store.Create(ctx, ds, store.New(ds, nil, data, 1, &collisions), &collisions)
	if err != nil {
		t.Fatal(err)
	}
	if collisions != 1 || cr.Name == squatter.Name || cr.Name != Name("agent", Hash(data, &collisions)) {
		t.Fatalf("collisionCount %d name %s (squatter %s)", collisions, cr.Name, squatter.Name)
	}
}

func TestClaimAdoptsAndReleases(t *testing.T) {
	ctx := context.Background()
	ds := daemonSet("agent:1")
	ref := workload.NewControllerRef(ds, "apps/v1", "DaemonSet")
	other := *ref
	other.UID = "someone-else"
	revision := func(name string, lbls map[string]string, refs ...metav1.OwnerReference) *appsv1.ControllerRevision {
		return &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: lbls, OwnerReferences: refs, UID: apitypes.UID("uid-" + name)},
			Data:       runtime.RawExtension{Raw: []byte(`{}`)},
		}
	}
	match, mismatch := map[string]string{"app": "agent"}, map[string]string{"app": "other"}
	store := newStore(ds,
		revision("owned", match, *ref),
		revision("orphan", match),
		revision("strayed", mismatch, *ref),
		revision("foreign", match, other),
		revision("unrelated-orphan", mismatch),
	)
	claimed, err := store.Claim(ctx, ds, labels.SelectorFromSet(match))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, cr := range claimed {
		got[cr.Name] = true
	}
	if len(got) != 2 || !got["owned"] || !got["orphan"] {
		t.Fatalf("claimed %v, want owned and orphan", got)
	}
	cases := []struct {
		name      string
		wantOwner bool
	}{
		{"orphan", true},
		{"strayed", false},
		{"unrelated-orphan", false},
	}
	for _, c := range cases {
		cr := &appsv1.ControllerRevision{}
		if err := store.Client.Get(ctx, client.ObjectKey{Namespace: "ns", Name: c.name}, cr); err != nil {
			t.Fatal(err)
		}
		ref := workload.ControllerRef(cr)
		if owned := ref != nil && ref.UID == ds.UID; owned != c.wantOwner {
			t.Errorf("%s: owned by the daemonset = %v, want %v", c.name, owned, c.wantOwner)
		}
	}
}

func TestTruncate(t *testing.T) {
	ctx := context.Background()
	var objs []client.Object
	var revisions []*appsv1.ControllerRevision
	for i, name := range []string{"r1", "r2", "r3", "r4", "r5"} {
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Data:       runtime.RawExtension{Raw: []byte(`{}`)},
			Revision:   int64(i + 1),
		}
		objs = append(objs, cr)
		revisions = append(revisions, cr)
	}
	cases := []struct {
		name  string
		live  map[string]bool
		limit int
		want  []string
	}{
		{"under the limit", map[string]bool{"r5": true}, 10, []string{"r1", "r2", "r3", "r4", "r5"}},
		{"oldest go first", map[string]bool{"r5": true}, 2, []string{"r3", "r4", "r5"}},
		{"live ones stay", map[string]bool{"r1": true, "r5": true}, 1, []string{"r1", "r4", "r5"}},
		{"limit zero keeps only live", map[string]bool{"r2": true}, 0, []string{"r2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newStore(objs...)
			// The fake client sets UIDs on create; read them back for the preconditions.
			fresh := make([]*appsv1.ControllerRevision, len(revisions))
			for i, cr := range revisions {
				fresh[i] = &appsv1.ControllerRevision{}
				if err := store.Client.Get(ctx, client.ObjectKeyFromObject(cr), fresh[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.Truncate(ctx, fresh, c.live, c.limit); err != nil {
				t.Fatal(err)
			}
			var list appsv1.ControllerRevisionList
			if err := store.Client.List(ctx, &list); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, cr := range list.Items {
				got = append(got, cr.Name)
			}
			if len(got) != len(c.want) {
				t.Fatalf("kept %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("kept %v, want %v", got, c.want)
				}
			}
		})
	}
}
