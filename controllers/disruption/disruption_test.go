package disruption

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

type discardRecorder struct{ recorder.EventRecorder }

func (discardRecorder) Eventf(_, _ runtime.Object, _, _, _, _ string, _ ...any) {}

var (
	now       = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	webLabels = map[string]string{"app": "web"}
)

// world is a namespace with a Deployment of 4 replicas whose pods are
// split over two ReplicaSets (a rollout in progress), a StatefulSet of 2
// and a bare pod.
func world() []client.Object {
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "deploy"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4)}}
	var objs []client.Object
	objs = append(objs, deploy)
	for _, rs := range []string{"web-a", "web-b"} {
		objs = append(objs, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: rs, Namespace: "ns", UID: types.UID(rs),
				OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", "Deployment", "web", "deploy")}},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2)},
		})
	}
	objs = append(objs, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2)}})
	for i, owner := range []metav1.OwnerReference{
		controllerRef("apps/v1", "ReplicaSet", "web-a", "web-a"), controllerRef("apps/v1", "ReplicaSet", "web-a", "web-a"),
		controllerRef("apps/v1", "ReplicaSet", "web-b", "web-b"), controllerRef("apps/v1", "ReplicaSet", "web-b", "web-b"),
	} {
		objs = append(objs, pod(fmt.Sprintf("web-%d", i), webLabels, true, owner))
	}
	objs = append(objs, pod("db-0", map[string]string{"app": "db"}, true, controllerRef("apps/v1", "StatefulSet", "db", "db")))
	objs = append(objs, pod("db-1", map[string]string{"app": "db"}, false, controllerRef("apps/v1", "StatefulSet", "db", "db")))
	objs = append(objs, pod("bare", map[string]string{"app": "bare"}, true))
	return objs
}

func controllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true)}
}

func pod(name string, labels map[string]string, ready bool, owners ...metav1.OwnerReference) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels, OwnerReferences: owners},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func TestReconcileStatus(t *testing.T) {
	minAvailable := func(v intstr.IntOrString) policyv1.PodDisruptionBudgetSpec {
		return policyv1.PodDisruptionBudgetSpec{MinAvailable: &v}
	}
	maxUnavailable := func(v intstr.IntOrString) policyv1.PodDisruptionBudgetSpec {
		return policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &v}
	}
	cases := []struct {
		name          string
		app           string
		spec          policyv1.PodDisruptionBudgetSpec
		disrupted     map[string]metav1.Time
		wantExpected  int32
		wantDesired   int32
		wantHealthy   int32
		wantAllowed   int32
		wantDisrupted int
		wantReason    string
	}{
		{"integer minAvailable counts pods", "web", minAvailable(intstr.FromInt32(3)), nil, 4, 3, 4, 1, 0, policyv1.SufficientPodsReason},
		{"maxUnavailable counts the deployment once", "web", maxUnavailable(intstr.FromInt32(1)), nil, 4, 3, 4, 1, 0, policyv1.SufficientPodsReason},
		{"percent rounds up", "web", minAvailable(intstr.FromString("60%")), nil, 4, 3, 4, 1, 0, policyv1.SufficientPodsReason},
		{"statefulset scale and readiness", "db", maxUnavailable(intstr.FromInt32(1)), nil, 2, 1, 1, 0, 0, policyv1.InsufficientPodsReason},
		{"recent eviction is not healthy", "web", minAvailable(intstr.FromInt32(3)),
			map[string]metav1.Time{"web-0": metav1.NewTime(now.Add(-time.Minute))}, 4, 3, 3, 0, 1, policyv1.InsufficientPodsReason},
		{"timed-out eviction is forgotten", "web", minAvailable(intstr.FromInt32(3)),
			map[string]metav1.Time{"web-0": metav1.NewTime(now.Add(-3 * time.Minute))}, 4, 3, 4, 1, 0, policyv1.SufficientPodsReason},
		{"bare pod with integer minAvailable", "bare", minAvailable(intstr.FromInt32(0)), nil, 1, 0, 1, 1, 0, policyv1.SufficientPodsReason},
		{"no pods allows nothing", "none", maxUnavailable(intstr.FromInt32(1)), nil, 0, 0, 0, 0, 0, policyv1.InsufficientPodsReason},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": c.app}}
			pdb := &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Name: "budget", Namespace: "ns", Generation: 3},
				Spec:       spec,
				Status:     policyv1.PodDisruptionBudgetStatus{DisruptedPods: c.disrupted},
			}
			got := reconcileOnce(t, append(world(), pdb), pdb)
			st := got.Status
			if st.ExpectedPods != c.wantExpected || st.DesiredHealthy != c.wantDesired || st.CurrentHealthy != c.wantHealthy ||
				st.DisruptionsAllowed != c.wantAllowed || len(st.DisruptedPods) != c.wantDisrupted || st.ObservedGeneration != 3 {
				t.Errorf("status = expected %d desired %d healthy %d allowed %d disrupted %v observedGeneration %d",
					st.ExpectedPods, st.DesiredHealthy, st.CurrentHealthy, st.DisruptionsAllowed, st.DisruptedPods, st.ObservedGeneration)
			}
			cond := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
			if cond == nil || cond.Reason != c.wantReason || cond.ObservedGeneration != 3 {
				t.Errorf("DisruptionAllowed condition = %+v, want reason %s", cond, c.wantReason)
			}
		})
	}
}

// TestReconcileFailSafe: a budget counting the scale of pods whose
// controller cannot be found allows nothing and says why.
func TestReconcileFailSafe(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "budget", Namespace: "ns", Generation: 1},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "lost"}},
		},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2},
	}
	lost := pod("lost-0", map[string]string{"app": "lost"}, true, controllerRef("apps/v1", "ReplicaSet", "gone", "gone"))
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(pdb, lost).WithStatusSubresource(&policyv1.PodDisruptionBudget{}).Build()
	r := &Reconciler{Client: c, Recorder: discardRecorder{}, Now: func() time.Time { return now }}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pdb)}); err == nil {
		t.Fatal("reconcile without the pods' controller succeeded")
	}
	got := &policyv1.PodDisruptionBudget{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(pdb), got); err != nil {
		t.Fatal(err)
	}
	cond := apimeta.FindStatusCondition(got.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if got.Status.DisruptionsAllowed != 0 || cond == nil || cond.Reason != policyv1.SyncFailedReason || cond.Message != `found no controllers for pod "lost-0"` {
		t.Errorf("status = %+v", got.Status)
	}
}

func reconcileOnce(t *testing.T, objs []client.Object, pdb *policyv1.PodDisruptionBudget) *policyv1.PodDisruptionBudget {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).WithStatusSubresource(&policyv1.PodDisruptionBudget{}).Build()
	r := &Reconciler{Client: c, Recorder: discardRecorder{}, Now: func() time.Time { return now }}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pdb)}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	got := &policyv1.PodDisruptionBudget{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(pdb), got); err != nil {
		t.Fatal(err)
	}
	return got
}
