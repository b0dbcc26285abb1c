package node_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/test/images/imagebuild"
)

// requestingCPU makes the pod's container request millis of cpu.
func requestingCPU(millis int64) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
			corev1.ResourceCPU: *resource.NewMilliQuantity(millis, resource.DecimalSI),
		}
	}
}

func (n *node) allocatableMilliCPU(t *testing.T) int64 {
	t.Helper()
	node, err := n.client.CoreV1().Nodes().Get(t.Context(), nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node.Status.Allocatable.Cpu().MilliValue()
}

// expectRejected waits for the agent to fail pod at admission with reason
// and message, and checks it posted the warning event and ran nothing.
func (n *node) expectRejected(t *testing.T, namespace, pod, reason, message string) {
	t.Helper()
	got := n.waitPod(t, namespace, pod, 60*time.Second, "rejected", podFinished)
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != reason || got.Status.Message != "Pod was rejected: "+message {
		t.Fatalf("pod %s: phase %s, reason %q, message %q; want Failed, %q, %q",
			pod, got.Status.Phase, got.Status.Reason, got.Status.Message, reason, "Pod was rejected: "+message)
	}
	waitFor(t, 30*time.Second, "the "+reason+" warning event of "+pod, func() (bool, error) {
		return hasEvent(t, n, namespace, pod, reason), nil
	})
	if containers := n.containersOf(t, string(got.UID)); len(containers) != 0 {
		t.Fatalf("rejected pod %s has containers %v", pod, containers)
	}
}

// TestAdmissionRejectsPodsThatCannotRun binds pods straight to the node
// (no scheduler): one that fits runs, one asking for more cpu than the
// node has left and one whose nodeSelector the node does not match are
// failed as kubelet fails them, and a rejected pod can be deleted.
func TestAdmissionRejectsPodsThatCannotRun(t *testing.T) {
	n := startNode(t)
	namespace := n.createNamespace(t, "admission")
	capacity := n.allocatableMilliCPU(t)

	n.createPod(t, namespace, "fits", imagebuild.EchoImage, requestingCPU(100))
	n.waitPod(t, namespace, "fits", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	n.createPod(t, namespace, "too-big", imagebuild.EchoImage, requestingCPU(capacity))
	n.expectRejected(t, namespace, "too-big", "OutOfcpu",
		fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: 100, capacity: %d", capacity, capacity))

	n.createPod(t, namespace, "elsewhere", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	})
	n.expectRejected(t, namespace, "elsewhere", "NodeAffinity",
		"Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")

	fits, err := n.client.CoreV1().Pods(namespace).Get(t.Context(), "fits", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fits.Status.Phase != corev1.PodRunning {
		t.Fatalf("the fitting pod is %s after the rejections", fits.Status.Phase)
	}
	if err := n.client.CoreV1().Pods(namespace).Delete(t.Context(), "too-big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.waitGone(t, namespace, "too-big", 30*time.Second)
}

// TestAdmissionFollowsCreationOrder creates two pods that cannot both fit
// while the agent is down, the older one last by name: the restarted agent
// admits the older one, whatever order its watch lists them in.
func TestAdmissionFollowsCreationOrder(t *testing.T) {
	n := startNode(t)
	namespace := n.createNamespace(t, "admission-order")
	half := n.allocatableMilliCPU(t)/2 + 1

	n.stopAgent(t)
	older := n.createPod(t, namespace, "zz-older", imagebuild.EchoImage, requestingCPU(half))
	// Creation times have whole seconds: wait for the next one, so that
	// the two pods are ordered by it and not by name.
	var younger *corev1.Pod
	for younger == nil {
		time.Sleep(200 * time.Millisecond)
		if metav1.Now().Truncate(time.Second).After(older.CreationTimestamp.Time) {
			younger = n.createPod(t, namespace, "aa-younger", imagebuild.EchoImage, requestingCPU(half))
		}
	}
	if !older.CreationTimestamp.Before(&younger.CreationTimestamp) {
		t.Fatalf("creation times %s and %s are not ordered", older.CreationTimestamp, younger.CreationTimestamp)
	}
	n.startAgent()

	n.waitPod(t, namespace, "zz-older", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	n.expectRejected(t, namespace, "aa-younger", "OutOfcpu",
		fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", half, half, n.allocatableMilliCPU(t)))
}
