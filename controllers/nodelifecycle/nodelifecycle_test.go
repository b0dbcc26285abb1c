package nodelifecycle

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestDesiredTaints(t *testing.T) {
	cases := []struct {
		status corev1.ConditionStatus
		key    string
	}{
		{corev1.ConditionTrue, ""},
		{corev1.ConditionFalse, corev1.TaintNodeNotReady},
		{corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
	}
	for _, c := range cases {
		got := DesiredTaints(&corev1.NodeCondition{Type: corev1.NodeReady, Status: c.status})
		if c.key == "" {
			if len(got) != 0 {
				t.Errorf("%s: got taints %v, want none", c.status, got)
			}
			continue
		}
		if len(got) != 2 || got[0].Key != c.key || got[0].Effect != corev1.TaintEffectNoSchedule || got[1].Key != c.key || got[1].Effect != corev1.TaintEffectNoExecute {
			t.Errorf("%s: got taints %v, want %s NoSchedule and NoExecute", c.status, got, c.key)
		}
	}
	if got := DesiredTaints(nil); len(got) != 0 {
		t.Errorf("node without Ready condition: got %v, want no taints", got)
	}
}

func TestReconcileTaintsKeepsForeignTaintsAndTimeAdded(t *testing.T) {
	now := time.Unix(1000, 0)
	earlier := metav1.NewTime(now.Add(-time.Minute))
	current := []corev1.Taint{
		{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: &earlier},
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &earlier},
	}
	want := DesiredTaints(&corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown})
	got, changed := ReconcileTaints(current, want, now)
	if !changed {
		t.Fatal("changed = false, want true")
	}
	if len(got) != 3 || got[0].Key != "dedicated" || got[1].Key != corev1.TaintNodeUnreachable || !got[1].TimeAdded.Equal(&earlier) || got[2].Effect != corev1.TaintEffectNoSchedule {
		t.Fatalf("got %+v", got)
	}
	if _, changed := ReconcileTaints(got, want, now); changed {
		t.Fatal("second pass changed taints")
	}
}

func TestReconcileMarksSilentNodeUnknownAndTaintsIt(t *testing.T) {
	ctx := context.Background()
	start := time.Unix(10000, 0)
	renew := metav1.NewMicroTime(start)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
		}},
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{RenewTime: &renew},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(node, lease, pod).
		WithStatusSubresource(&corev1.Node{}, &corev1.Pod{}).
		WithIndex(&corev1.Pod{}, podNodeNameIndex, func(obj client.Object) []string { return []string{obj.(*corev1.Pod).Spec.NodeName} }).
		Build()
	now := start
	r := &Reconciler{Client: c, GracePeriod: 3 * time.Second, now: func() time.Time { return now }, observed: map[string]heartbeat{}}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "n1"}}

	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != 3*time.Second {
		t.Fatalf("RequeueAfter = %v, want the grace period", res.RequeueAfter)
	}
	now = start.Add(4 * time.Second)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Node{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	ready := readyCondition(got)
	if ready.Status != corev1.ConditionUnknown || ready.Reason != reasonNodeStatusUnknown || ready.Message != messageNodeStatusUnknown {
		t.Fatalf("Ready condition = %+v", ready)
	}
	if len(got.Spec.Taints) != 2 || got.Spec.Taints[1].Key != corev1.TaintNodeUnreachable || got.Spec.Taints[1].TimeAdded == nil {
		t.Fatalf("taints = %+v", got.Spec.Taints)
	}
	gotPod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), gotPod); err != nil {
		t.Fatal(err)
	}
	if c := gotPod.Status.Conditions[0]; c.Status != corev1.ConditionFalse || c.Reason != "NodeNotReady" {
		t.Fatalf("pod Ready condition = %+v, want False with reason NodeNotReady", c)
	}
}
