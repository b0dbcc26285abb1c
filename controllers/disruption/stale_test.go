package disruption

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/controllers/internal/workload"
)

func TestStaleDisruptionTarget(t *testing.T) {
	const timeout = 2 * time.Minute
	disrupted := func(age time.Duration, reason string, mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := pod("p", nil, true)
		p.Generation = 4
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reason,
			Message: "Eviction API: evicting", LastTransitionTime: metav1.NewTime(now.Add(-age)),
		})
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	deleting := func(p *corev1.Pod) {
		p.DeletionTimestamp = &metav1.Time{Time: now}
		p.Finalizers = []string{"example.com/hold"}
	}
	failed := func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }
	notTrue := func(p *corev1.Pod) {
		workload.PodCondition(p, corev1.DisruptionTarget).Status = corev1.ConditionFalse
	}
	cases := []struct {
		name        string
		pod         *corev1.Pod
		wantReset   bool
		wantRequeue time.Duration
	}{
		{name: "stale condition is reset", pod: disrupted(3*time.Minute, "EvictionByEvictionAPI"), wantReset: true},
		{name: "condition exactly at the timeout is reset", pod: disrupted(timeout, "PreemptionByScheduler"), wantReset: true},
		{name: "recent condition is looked at again when it goes stale", pod: disrupted(30*time.Second, "EvictionByEvictionAPI"), wantRequeue: 90 * time.Second},
		{name: "pod being deleted keeps it", pod: disrupted(3*time.Minute, "EvictionByEvictionAPI", deleting)},
		{name: "terminal pod keeps it", pod: disrupted(3*time.Minute, "EvictionByEvictionAPI", failed)},
		{name: "kubelet's condition is never stale", pod: disrupted(3*time.Minute, corev1.PodReasonTerminationByKubelet)},
		{name: "a False condition stays as it is", pod: disrupted(3*time.Minute, "EvictionByEvictionAPI", notTrue)},
		{name: "pod without the condition", pod: pod("p", nil, true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(c.pod).WithStatusSubresource(&corev1.Pod{}).Build()
			r := &staleDisruptionReconciler{client: cl, timeout: timeout, now: func() time.Time { return now }}
			res, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c.pod)})
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if res.RequeueAfter != c.wantRequeue {
				t.Errorf("requeue after %v, want %v", res.RequeueAfter, c.wantRequeue)
			}
			got := &corev1.Pod{}
			if err := cl.Get(t.Context(), client.ObjectKeyFromObject(c.pod), got); err != nil {
				t.Fatal(err)
			}
			before := workload.PodCondition(c.pod, corev1.DisruptionTarget)
			after := workload.PodCondition(got, corev1.DisruptionTarget)
			if !c.wantReset {
				if !apiequality.Semantic.DeepEqual(before, after) {
					t.Errorf("condition changed from %+v to %+v", before, after)
				}
				return
			}
			want := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now), ObservedGeneration: 4}
			if after == nil || after.Type != want.Type || after.Status != want.Status || after.Reason != "" || after.Message != "" ||
				!after.LastTransitionTime.Equal(&want.LastTransitionTime) || after.ObservedGeneration != want.ObservedGeneration {
				t.Errorf("condition = %+v, want %+v", after, want)
			}
			if ready := workload.PodCondition(got, corev1.PodReady); ready == nil || ready.Status != corev1.ConditionTrue {
				t.Errorf("Ready condition = %+v, want it kept", ready)
			}
		})
	}
}
