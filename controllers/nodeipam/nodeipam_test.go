package nodeipam

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

func TestAllocator(t *testing.T) {
	a, err := NewAllocator("10.128.0.0/22", 24)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Occupy("old", "10.128.1.0/24"); !ok || err != nil {
		t.Fatalf("occupy: %v %v", ok, err)
	}
	if ok, _ := a.Occupy("foreign", "192.168.0.0/24"); ok {
		t.Error("a subnet outside the cluster CIDR was tracked")
	}
	if _, err := a.Occupy("thief", "10.128.1.0/24"); err == nil {
		t.Error("a subnet held by another node was occupied twice")
	}
	got := map[string]string{}
	for _, node := range []string{"a", "b", "c"} {
		cidr, err := a.Allocate(node)
		if err != nil {
			t.Fatalf("allocate %s: %v", node, err)
		}
		got[node] = cidr
	}
	want := map[string]string{"a": "10.128.0.0/24", "b": "10.128.2.0/24", "c": "10.128.3.0/24"}
	for node, cidr := range want {
		if got[node] != cidr {
			t.Errorf("node %s got %s, want %s", node, got[node], cidr)
		}
	}
	if again, _ := a.Allocate("b"); again != "10.128.2.0/24" {
		t.Errorf("a second allocation for b gave %s", again)
	}
	if _, err := a.Allocate("d"); !errors.Is(err, ErrFull) {
		t.Errorf("allocation beyond the range: %v, want ErrFull", err)
	}
	a.Release("old")
	if cidr, err := a.Allocate("d"); err != nil || cidr != "10.128.1.0/24" {
		t.Errorf("after release d got %s, %v", cidr, err)
	}

	v6, err := NewAllocator("fd00:10::/56", 64)
	if err != nil {
		t.Fatal(err)
	}
	v6.Allocate("a")
	if cidr, _ := v6.Allocate("b"); cidr != "fd00:10:0:1::/64" {
		t.Errorf("second IPv6 subnet = %s", cidr)
	}
	for _, bad := range []struct {
		cidr string
		mask int
	}{{"10.0.0.0/16", 8}, {"10.0.0.0/16", 33}, {"nonsense", 24}} {
		if _, err := NewAllocator(bad.cidr, bad.mask); err == nil {
			t.Errorf("NewAllocator(%s, %d) accepted", bad.cidr, bad.mask)
		}
	}
}

type discardRecorder struct{ recorder.EventRecorder }

func (discardRecorder) Eventf(_, _ runtime.Object, _, _, _, _ string, _ ...any) {}

// TestReconcileRebuildsFromNodes: a controller that starts over (a new
// Reconciler and Allocator) keeps the subnets Nodes hold, gives new Nodes
// free ones, and reuses the subnet of a deleted Node only once it is free.
func TestReconcileRebuildsFromNodes(t *testing.T) {
	ctx := context.Background()
	assigned := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "assigned"}, Spec: corev1.NodeSpec{PodCIDR: "10.128.0.0/24", PodCIDRs: []string{"10.128.0.0/24"}}}
	fresh := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(assigned, fresh).Build()
	newReconciler := func() *Reconciler {
		alloc, err := NewAllocator("10.128.0.0/23", 24)
		if err != nil {
			t.Fatal(err)
		}
		return &Reconciler{Client: c, Recorder: discardRecorder{}, Allocator: alloc}
	}
	reconcileNode := func(r *Reconciler, name string) error {
		_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
		return err
	}
	podCIDROf := func(name string) string {
		n := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			t.Fatal(err)
		}
		if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
			t.Errorf("node %s: podCIDR %q, podCIDRs %v", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
		}
		return n.Spec.PodCIDR
	}

	r := newReconciler()
	if err := reconcileNode(r, "fresh"); err != nil {
		t.Fatal(err)
	}
	if got := podCIDROf("fresh"); got != "10.128.1.0/24" {
		t.Errorf("fresh node got %s, want the one subnet the assigned node does not hold", got)
	}

	r = newReconciler()
	late := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "late"}}
	if err := c.Create(ctx, late); err != nil {
		t.Fatal(err)
	}
	if err := reconcileNode(r, "late"); err == nil {
		t.Error("a third node got a subnet of a full /23 after a restart")
	}
	if err := c.Delete(ctx, assigned); err != nil {
		t.Fatal(err)
	}
	if err := reconcileNode(r, "assigned"); err != nil {
		t.Fatal(err)
	}
	if err := reconcileNode(r, "late"); err != nil {
		t.Fatal(err)
	}
	if got := podCIDROf("late"); got != "10.128.0.0/24" {
		t.Errorf("late node got %s, want the deleted node's subnet", got)
	}
}
