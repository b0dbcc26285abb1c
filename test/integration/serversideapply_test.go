package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managers lists "manager/operation/subresource" for each managedFields
// entry.
func managers(entries []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Manager+"/"+string(e.Operation)+"/"+e.Subresource)
	}
	return out
}

// ownedBy returns the fieldsV1 JSON of manager's entry.
func ownedBy(entries []metav1.ManagedFieldsEntry, manager string) string {
	for _, e := range entries {
		if e.Manager == manager && e.FieldsV1 != nil {
			return string(e.FieldsV1.Raw)
		}
	}
	return ""
}

// TestManagedFieldsOnWrites: create, update and patch record the manager
// named by fieldManager, or else the User-Agent's product.
func TestManagedFieldsOnWrites(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	cm, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tracked"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if got := managers(cm.ManagedFields); !slices.Equal(got, []string{"creator/Update/"}) {
		t.Fatalf("managers after create = %v", got)
	}
	if owned := ownedBy(cm.ManagedFields, "creator"); !strings.Contains(owned, `"f:a"`) {
		t.Errorf("creator owns %s, want f:data.f:a", owned)
	}
	cm.Data["b"] = "2"
	if _, err = configMaps.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatalf("update: %v", err)
	}
	cm, err = configMaps.Patch(ctx, "tracked", types.MergePatchType, []byte(`{"data":{"c":"3"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	// client-go's default User-Agent is "<binary>/<version> ...", here
	// the test binary's name. Entries of one second sort by manager.
	got := managers(cm.ManagedFields)
	if want := []string{"creator/Update/", "integration.test/Update/", "kubectl-edit/Update/"}; !slices.Equal(got, want) {
		t.Fatalf("managers after update and patch = %v, want %v", got, want)
	}
	if owned := ownedBy(cm.ManagedFields, "kubectl-edit"); !strings.Contains(owned, `"f:b"`) || strings.Contains(owned, `"f:a"`) {
		t.Errorf("kubectl-edit owns %s, want only f:b", owned)
	}
}

// TestServerSideApply: apply creates, two managers conflict with a 409 that
// names the owner, force transfers ownership, and a partial apply leaves
// other managers' fields alone.
func TestServerSideApply(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)

	applied, err := configMaps.Apply(ctx, corev1ac.ConfigMap("shared", ns).WithData(map[string]string{"a": "1", "b": "1"}),
		metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply creating the object: %v", err)
	}
	if got := managers(applied.ManagedFields); !slices.Equal(got, []string{"alice/Apply/"}) {
		t.Fatalf("managers = %v, want alice/Apply", got)
	}

	_, err = configMaps.Apply(ctx, corev1ac.ConfigMap("shared", ns).WithData(map[string]string{"a": "2"}),
		metav1.ApplyOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: got %v, want 409 Conflict", err)
	}
	status := err.(apierrors.APIStatus).Status()
	if want := `Apply failed with 1 conflict: conflict with "alice": .data.a`; status.Message != want {
		t.Errorf("message = %q, want %q", status.Message, want)
	}
	if status.Details == nil || len(status.Details.Causes) != 1 || status.Details.Causes[0].Type != metav1.CauseTypeFieldManagerConflict {
		t.Errorf("details = %+v, want one FieldManagerConflict cause", status.Details)
	}

	forced, err := configMaps.Apply(ctx, corev1ac.ConfigMap("shared", ns).WithData(map[string]string{"a": "2"}),
		metav1.ApplyOptions{FieldManager: "bob", Force: true})
	if err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	if forced.Data["a"] != "2" || forced.Data["b"] != "1" {
		t.Errorf("data = %v, want a=2 from bob and b=1 still from alice", forced.Data)
	}
	if owned := ownedBy(forced.ManagedFields, "alice"); strings.Contains(owned, `"f:a"`) || !strings.Contains(owned, `"f:b"`) {
		t.Errorf("alice owns %s, want f:b only", owned)
	}
	if owned := ownedBy(forced.ManagedFields, "bob"); !strings.Contains(owned, `"f:a"`) {
		t.Errorf("bob owns %s, want f:a", owned)
	}

	// alice stops applying b: it is removed, as she was its only owner.
	shrunk, err := configMaps.Apply(ctx, corev1ac.ConfigMap("shared", ns).WithData(map[string]string{}),
		metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply without b: %v", err)
	}
	if _, ok := shrunk.Data["b"]; ok || shrunk.Data["a"] != "2" {
		t.Errorf("data = %v, want only a=2", shrunk.Data)
	}
}

// TestControllerRuntimeApply: client.Apply of a partial object through
// controller-runtime keeps the fields other managers set.
func TestControllerRuntimeApply(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	c, err := client.New(controlPlane.Config, client.Options{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "partial", Namespace: ns, Labels: map[string]string{"owner": "create"}},
		Data: map[string]string{"kept": "yes"}}
	if err := c.Create(ctx, cm, client.FieldOwner("creator")); err != nil {
		t.Fatalf("create: %v", err)
	}
	partial := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "partial", "namespace": ns},
		"data":     map[string]any{"applied": "yes"},
	}}
	//nolint:staticcheck // client.Apply as a patch type is what existing controllers call.
	if err := c.Patch(ctx, partial, client.Apply, client.FieldOwner("controller"), client.ForceOwnership); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Data["kept"] != "yes" || got.Data["applied"] != "yes" || got.Labels["owner"] != "create" {
		t.Errorf("object = %+v, want kept, applied and the label", got)
	}
}

// TestApplyErrors: apply requests kube-apiserver refuses.
func TestApplyErrors(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	rc := controlPlane.Clientset().CoreV1().RESTClient()
	cases := []struct {
		name       string
		body       string
		params     map[string]string
		wantCode   int32
		wantPrefix string
	}{
		{"no field manager", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, nil,
			http.StatusUnprocessableEntity, `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`},
		{"wrong apiVersion", `{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}`, map[string]string{"fieldManager": "m"},
			http.StatusBadRequest, ""},
		{"wrong kind", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, map[string]string{"fieldManager": "m"},
			http.StatusBadRequest, ""},
		{"malformed YAML", "metadata: [", map[string]string{"fieldManager": "m"}, http.StatusBadRequest, ""},
		{"managedFields set", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","managedFields":[{"manager":"m"}]}}`,
			map[string]string{"fieldManager": "m"}, http.StatusBadRequest, "metadata.managedFields must be nil"},
		{"duplicate field with Strict", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n  a: \"2\"\n",
			map[string]string{"fieldManager": "m", "fieldValidation": "Strict"}, http.StatusBadRequest, "error strict decoding patch"},
		{"force on a merge patch", "", map[string]string{"force": "true"}, http.StatusUnprocessableEntity, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patchType := types.ApplyYAMLPatchType
			body := tc.body
			if body == "" {
				patchType, body = types.MergePatchType, `{}`
			}
			req := rc.Patch(patchType).Namespace(ns).Resource("configmaps").Name("x").Body([]byte(body))
			for k, v := range tc.params {
				req = req.Param(k, v)
			}
			err := req.Do(t.Context()).Error()
			if code := statusCode(err); code != tc.wantCode {
				t.Fatalf("code = %d, want %d (error %v)", code, tc.wantCode, err)
			}
			if msg := err.(apierrors.APIStatus).Status().Message; !strings.HasPrefix(msg, tc.wantPrefix) {
				t.Errorf("message = %q, want prefix %q", msg, tc.wantPrefix)
			}
		})
	}
}
