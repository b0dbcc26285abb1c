package simulated

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestUnschedulablePod creates a pod that fits nowhere and expects
// upstream's FailedScheduling reason, message and event.
func TestUnschedulablePod(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "huge",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100")}},
		}}},
	}
	if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0/%d nodes are available: %d Insufficient cpu. preemption: 0/%d nodes are available: %d No preemption victims found for incoming pod.", nodeCount, nodeCount, nodeCount, nodeCount)
	expectFailedScheduling(t, ns, "huge", want)
	out := kubectl(t, "describe", "pod", "huge", "-n", ns)
	t.Logf("kubectl describe pod:\n%s", out)
}

// expectFailedScheduling waits for pod to be marked unschedulable with
// upstream's reason and message want, and for the FailedScheduling event
// saying the same.
func expectFailedScheduling(t *testing.T, ns, pod, want string) {
	t.Helper()
	var condition corev1.PodCondition
	defer func() {
		if t.Failed() {
			t.Logf("last PodScheduled condition of %s: %+v", pod, condition)
		}
	}()
	eventually(t, 30*time.Second, "PodScheduled=False", func(ctx context.Context) (bool, error) {
		got, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				condition = c
				return c.Status == corev1.ConditionFalse && c.Message == want, nil
			}
		}
		return false, nil
	})
	if condition.Reason != corev1.PodReasonUnschedulable {
		t.Errorf("PodScheduled condition: reason %q, want %q", condition.Reason, corev1.PodReasonUnschedulable)
	}
	eventually(t, 30*time.Second, "FailedScheduling event", func(ctx context.Context) (bool, error) {
		events, err := cluster.clientset.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == "FailedScheduling" && e.Regarding.Name == pod && e.Note == want {
				return true, nil
			}
		}
		return false, nil
	})
}

// TestServiceEndpoints checks EndpointSlices and Endpoints follow the
// pods a Service selects.
func TestServiceEndpoints(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	kubectl(t, "create", "deployment", "api", "--image=api", "--replicas=3", "--port=8080", "-n", ns)
	kubectl(t, "expose", "deployment", "api", "--port=80", "--target-port=8080", "-n", ns)
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %s", last)
		}
	}()
	eventually(t, rolloutTimeout, "3 ready endpoints", func(ctx context.Context) (bool, error) {
		slices, err := cluster.clientset.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=api"})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && len(s.Ports) == 1 && *s.Ports[0].Port == 8080 {
					ready++
				}
			}
		}
		ep, err := cluster.clientset.CoreV1().Endpoints(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			last = fmt.Sprintf("%d ready in slices; endpoints: %v", ready, err)
			return false, nil
		}
		addrs := 0
		for _, s := range ep.Subsets {
			addrs += len(s.Addresses)
		}
		last = fmt.Sprintf("%d ready in slices; endpoints %+v", ready, ep.Subsets)
		return ready == 3 && addrs == 3, nil
	})
	kubectl(t, "scale", "deployment", "api", "--replicas=1", "-n", ns)
	eventually(t, rolloutTimeout, "1 endpoint", func(ctx context.Context) (bool, error) {
		ep, err := cluster.clientset.CoreV1().Endpoints(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		addrs := 0
		for _, s := range ep.Subsets {
			addrs += len(s.Addresses)
		}
		return addrs == 1, nil
	})
}

// TestLeaderElectionAndNodes checks both managers hold their Lease and
// the simulated nodes are Ready with renewed Leases.
func TestLeaderElectionAndNodes(t *testing.T) {
	eventually(t, 30*time.Second, "leader leases", func(ctx context.Context) (bool, error) {
		for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
			lease, err := cluster.clientset.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
				return false, nil
			}
		}
		return true, nil
	})
	for _, name := range cluster.sim.NodeNames() {
		node, err := cluster.clientset.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := false
		for _, c := range node.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			t.Errorf("node %s is not Ready: %+v", name, node.Status.Conditions)
		}
		var lease *coordinationv1.Lease
		lease, err = cluster.clientset.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil || lease.Spec.RenewTime == nil {
			t.Errorf("node %s has no renewed lease: %v", name, err)
		}
	}
}

// TestSimulatedNodeRejectsPodThatCannotFit binds a pod straight to a
// simulated node (no scheduler) that asks for more cpu than the node
// has: the node fails it as kubelet's admission does, with the reason,
// message and warning event of upstream.
func TestSimulatedNodeRejectsPodThatCannotFit(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	node := cluster.sim.NodeNames()[0]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bound-too-big", Namespace: ns},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "c", Image: "too-big",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100")}},
		}}},
	}
	if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	capacity := resource.MustParse(nodeCPU)
	prefix := "Pod was rejected: Node didn't have enough resource: cpu, requested: 100000, used: "
	suffix := fmt.Sprintf(", capacity: %d", capacity.MilliValue())
	eventually(t, 30*time.Second, "the pod rejected with OutOfcpu and its warning event", func(ctx context.Context) (bool, error) {
		got, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, "bound-too-big", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if got.Status.Phase != corev1.PodFailed {
			return false, nil
		}
		if got.Status.Reason != "OutOfcpu" || !strings.HasPrefix(got.Status.Message, prefix) || !strings.HasSuffix(got.Status.Message, suffix) {
			return false, fmt.Errorf("rejected with %q: %q, want OutOfcpu: %q...%q", got.Status.Reason, got.Status.Message, prefix, suffix)
		}
		events, err := cluster.clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "bound-too-big" && e.Reason == "OutOfcpu" && e.Type == corev1.EventTypeWarning && e.Source.Host == node {
				return true, nil
			}
		}
		return false, nil
	})
}
