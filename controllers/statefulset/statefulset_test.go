package statefulset

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/history"
)

func TestOrdinalOf(t *testing.T) {
	cases := []struct {
		pod  string
		want int
	}{
		{"web-0", 0},
		{"web-12", 12},
		{"web-01", -1},
		{"web-x", -1},
		{"web", -1},
		{"webby-1", -1},
		{"web--1", -1},
	}
	for _, c := range cases {
		if got := ordinalOf("web", c.pod); got != c.want {
			t.Errorf("ordinalOf(web, %q) = %d, want %d", c.pod, got, c.want)
		}
	}
}

func TestNewPodIdentity(t *testing.T) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "nginx",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			},
		},
	}
	pod := newPod(sts, &sts.Spec.Template, 2, "web-abc")
	if pod.Name != "web-2" || pod.GenerateName != "" || pod.Spec.Hostname != "web-2" || pod.Spec.Subdomain != "nginx" {
		t.Fatalf("identity = name %q generateName %q hostname %q subdomain %q", pod.Name, pod.GenerateName, pod.Spec.Hostname, pod.Spec.Subdomain)
	}
	want := map[string]string{"app": "web", podNameLabel: "web-2", podIndexLabel: "2", revisionLabel: "web-abc"}
	for k, v := range want {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if sts.Spec.Template.Labels[podNameLabel] != "" {
		t.Error("newPod changed the template's labels")
	}
}

type discardRecorder struct{ recorder.EventRecorder }

func (discardRecorder) Eventf(_, _ runtime.Object, _, _, _, _ string, _ ...any) {}

// TestPartitionKeepsCurrentRevision runs the reconciler against a fake
// API: the first template becomes revision 1; after a template change
// with partition 2, a pod recreated below the partition comes back at the
// current revision and one above it at the update revision, and the
// status counts both.
func TestPartitionKeepsCurrentRevision(t *testing.T) {
	ctx := context.Background()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "sts-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](3),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(sts).WithStatusSubresource(&appsv1.StatefulSet{}).Build()
	r := &Reconciler{
		Client:    c,
		Recorder:  discardRecorder{},
		revisions: history.Store{Client: c, Kind: controllerKind, APIReader: c, NewOwner: func() client.Object { return &appsv1.StatefulSet{} }},
		now:       time.Now,
	}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(sts)}
	// The first pass creates the pods, the second counts them.
	sync := func() {
		t.Helper()
		for range 2 {
			if _, err := r.Reconcile(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Get(ctx, req.NamespacedName, sts); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	rev1 := sts.Status.CurrentRevision
	if rev1 == "" || rev1 != sts.Status.UpdateRevision || sts.Status.UpdatedReplicas != 3 {
		t.Fatalf("after create: status %+v", sts.Status)
	}

	sts.Spec.Template.Spec.Containers[0].Image = "web:2"
	sts.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](2)
	if err := c.Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-0", "web-2"} {
		if err := c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	rev2 := sts.Status.UpdateRevision
	if sts.Status.CurrentRevision != rev1 || rev2 == rev1 || sts.Status.CurrentReplicas != 2 || sts.Status.UpdatedReplicas != 1 {
		t.Fatalf("after update: status %+v, want current %s with 2 replicas and 1 updated", sts.Status, rev1)
	}
	cases := []struct {
		pod, image, revision string
	}{
		{"web-0", "web:1", rev1},
		{"web-1", "web:1", rev1},
		{"web-2", "web:2", rev2},
	}
	for _, want := range cases {
		pod := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: want.pod}, pod); err != nil {
			t.Fatal(err)
		}
		if pod.Spec.Containers[0].Image != want.image || pod.Labels[revisionLabel] != want.revision {
			t.Errorf("%s: image %s revision %s, want %s at %s", want.pod, pod.Spec.Containers[0].Image, pod.Labels[revisionLabel], want.image, want.revision)
		}
	}
	var revisions appsv1.ControllerRevisionList
	if err := c.List(ctx, &revisions); err != nil {
		t.Fatal(err)
	}
	numbers := map[string]int64{}
	for _, cr := range revisions.Items {
		numbers[cr.Name] = cr.Revision
	}
	if len(numbers) != 2 || numbers[rev1] != 1 || numbers[rev2] != 2 {
		t.Fatalf("revisions %v, want %s=1 and %s=2", numbers, rev1, rev2)
	}
}

func TestCalculateStatus(t *testing.T) {
	current := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}}
	update := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-2"}}
	pod := func(revision string, ready bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{revisionLabel: revision}}}
		if ready {
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	cases := []struct {
		name                string
		strategy            appsv1.StatefulSetUpdateStrategyType
		pods                []*corev1.Pod
		wantCurrent         string
		wantCurrentReplicas int32
		wantUpdatedReplicas int32
	}{
		{"rolling update in progress", appsv1.RollingUpdateStatefulSetStrategyType, []*corev1.Pod{pod("web-1", true), pod("web-2", true)}, "web-1", 1, 1},
		{"rolling update waits for readiness", appsv1.RollingUpdateStatefulSetStrategyType, []*corev1.Pod{pod("web-2", true), pod("web-2", false)}, "web-1", 0, 2},
		{"rolling update complete", appsv1.RollingUpdateStatefulSetStrategyType, []*corev1.Pod{pod("web-2", true), pod("web-2", true)}, "web-2", 2, 2},
		{"OnDelete never completes", appsv1.OnDeleteStatefulSetStrategyType, []*corev1.Pod{pod("web-2", true), pod("web-2", true)}, "web-1", 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: c.strategy}}}
			pods := map[int]*corev1.Pod{}
			for i, p := range c.pods {
				pods[i] = p
			}
			status := calculateStatus(sts, pods, &revisions{current: current, update: update}, time.Now())
			if status.CurrentRevision != c.wantCurrent || status.UpdateRevision != "web-2" || status.CurrentReplicas != c.wantCurrentReplicas || status.UpdatedReplicas != c.wantUpdatedReplicas {
				t.Fatalf("status %+v, want current %s, %d current and %d updated replicas", status, c.wantCurrent, c.wantCurrentReplicas, c.wantUpdatedReplicas)
			}
		})
	}
}

func TestUpdateVictims(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	type podState struct {
		revision string
		ready    bool
		// readyFor is how long the pod has been ready (an hour when 0).
		readyFor    time.Duration
		terminating bool
	}
	old := podState{revision: "old", ready: true}
	updated := podState{revision: "new", ready: true}
	starting := podState{revision: "new"}
	broken := podState{revision: "old"}
	leaving := podState{revision: "old", ready: true, terminating: true}
	justReady := podState{revision: "new", ready: true, readyFor: 5 * time.Second}
	set := func(policy appsv1.PodManagementPolicyType, maxUnavailable *intstr.IntOrString, partition int32, minReadySeconds int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.StatefulSetSpec{
				Replicas: ptr.To[int32](5), PodManagementPolicy: policy, MinReadySeconds: minReadySeconds,
				UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
					Type:          appsv1.RollingUpdateStatefulSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(partition), MaxUnavailable: maxUnavailable},
				},
			},
		}
	}
	ordered, parallel := appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement
	two, fifty, ten := ptr.To(intstr.FromInt32(2)), ptr.To(intstr.FromString("50%")), ptr.To(intstr.FromString("10%"))
	cases := []struct {
		name string
		sts  *appsv1.StatefulSet
		// pods by ordinal; a nil entry is a pod that does not exist.
		pods []*podState
		want []int
	}{
		{"one at a time by default", set(ordered, nil, 0, 0), []*podState{&old, &old, &old, &old, &old}, []int{4}},
		{"maxUnavailable 2 takes the two highest", set(ordered, two, 0, 0), []*podState{&old, &old, &old, &old, &old}, []int{4, 3}},
		{"the partition stops the update", set(ordered, ptr.To(intstr.FromInt32(3)), 3, 0), []*podState{&old, &old, &old, &old, &old}, []int{4, 3}},
		{"a percentage rounds down", set(ordered, fifty, 0, 0), []*podState{&old, &old, &old, &old, &old}, []int{4, 3}},
		{"a percentage is at least one pod", set(ordered, ten, 0, 0), []*podState{&old, &old, &old, &old, &old}, []int{4}},
		{"updated pods are skipped", set(ordered, two, 0, 0), []*podState{&old, &old, &old, &updated, &updated}, []int{2, 1}},
		{"a terminating pod uses the budget", set(ordered, two, 0, 0), []*podState{&old, &old, &old, &old, &leaving}, []int{3}},
		{"a terminating pod alone fills a budget of one", set(ordered, nil, 0, 0), []*podState{&old, &old, &old, &old, &leaving}, nil},
		{"a missing pod uses the budget", set(parallel, two, 0, 0), []*podState{&old, &old, &old, &old, nil}, []int{3}},
		{"a starting pod uses the budget", set(parallel, two, 0, 0), []*podState{&old, &old, &old, &old, &starting}, []int{3}},
		{"a pod ready for less than minReadySeconds is unavailable", set(parallel, two, 0, 10), []*podState{&old, &old, &old, &old, &justReady}, []int{3}},
		{"a full budget waits", set(parallel, nil, 0, 0), []*podState{&old, &old, &old, &old, &starting}, nil},
		{"Parallel replaces an outdated broken pod beyond the budget", set(parallel, nil, 0, 0), []*podState{&old, &broken, &old, &old, &old}, []int{1}},
		{"Parallel takes broken pods first, then what the budget leaves", set(parallel, ptr.To(intstr.FromInt32(3)), 0, 0), []*podState{&broken, &old, &old, &old, &old}, []int{0, 4, 3}},
		{"a broken pod below the partition stays", set(parallel, nil, 2, 0), []*podState{&old, &broken, &old, &old, &old}, nil},
		{"nothing left to update", set(parallel, two, 0, 0), []*podState{&updated, &updated, &updated, &updated, &updated}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pods := map[int]*corev1.Pod{}
			for ordinal, state := range c.pods {
				if state == nil {
					continue
				}
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: PodName("web", ordinal), Labels: map[string]string{revisionLabel: state.revision}}}
				pod.Status.Phase = corev1.PodRunning
				if state.ready {
					readyFor := state.readyFor
					if readyFor == 0 {
						readyFor = time.Hour
					}
					pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
				}
				if state.terminating {
					pod.DeletionTimestamp = &metav1.Time{Time: now}
				}
				pods[ordinal] = pod
			}
			var got []int
			for _, pod := range updateVictims(c.sts, pods, "new", now) {
				got = append(got, ordinalOf("web", pod.Name))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("victims %v, want %v", got, c.want)
			}
		})
	}
}

// TestOrderedReadyWaitsForMinReadySeconds: under OrderedReady the next
// ordinal is created only once the previous pod has been ready for
// minReadySeconds, and the set is looked at again at that moment.
func TestOrderedReadyWaitsForMinReadySeconds(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "sts-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](2),
			MinReadySeconds:     10,
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(sts).WithStatusSubresource(&appsv1.StatefulSet{}, &corev1.Pod{}).Build()
	r := &Reconciler{
		Client:    c,
		Recorder:  discardRecorder{},
		revisions: history.Store{Client: c, Kind: controllerKind, APIReader: c, NewOwner: func() client.Object { return &appsv1.StatefulSet{} }},
		now:       func() time.Time { return now },
	}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(sts)}
	reconcileOnce := func() reconcile.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	exists := func(name string) bool {
		t.Helper()
		err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, &corev1.Pod{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	reconcileOnce()
	if !exists("web-0") || exists("web-1") {
		t.Fatal("the first pass must create web-0 alone")
	}
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "web-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-4 * time.Second))}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if res := reconcileOnce(); exists("web-1") || res.RequeueAfter != 6*time.Second {
		t.Fatalf("web-0 ready for 4s of 10: web-1 exists %v, requeue after %v, want no web-1 and a look in 6s", exists("web-1"), res.RequeueAfter)
	}
	now = now.Add(6 * time.Second)
	reconcileOnce()
	if !exists("web-1") {
		t.Fatal("web-1 not created once web-0 was available")
	}
}
