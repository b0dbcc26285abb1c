package node_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/images/imagebuild"
)

// echoReadiness makes the echo server's pod ready once it answers.
func echoReadiness() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready
}

// containersOf lists the pod's containers in containerd, by ID.
func (n *node) containersOf(t *testing.T, uid string) map[string]bool {
	t.Helper()
	list, err := n.runtime.List(t.Context(), "tower.dev/pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, c := range list {
		if c.Labels["tower.dev/pod-uid"] == uid {
			found[c.ID] = c.Running
		}
	}
	return found
}

func (n *node) netnsCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.rootDir, "network", "netns"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

func TestHostPort(t *testing.T) {
	n := startNode(t)
	namespace := createNamespace(t, n.client, "hostport")
	n.createPod(t, namespace, "published", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
		p.Spec.Containers[0].ReadinessProbe = echoReadiness()
	})
	pod := n.waitPod(t, namespace, "published", 60*time.Second, "Running", runningAndReady)
	// The node's address, in the namespace that stands for its host
	// network.
	addr := net.JoinHostPort(pod.Status.HostIP, "18080")
	if body := n.httpGetInHostNetwork(t, addr); body != "published" {
		t.Errorf("GET %s answered %q, want the pod name", addr, body)
	}
}

// TestAgentRestart stops the agent, changes the world behind its back and
// starts it again: running containers are adopted untouched, and what
// belongs to a pod deleted meanwhile is removed with its network.
func TestAgentRestart(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	namespace := createNamespace(t, n.client, "restart")
	ready := func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = echoReadiness() }
	n.createPod(t, namespace, "steady", imagebuild.EchoImage, ready)
	n.createPod(t, namespace, "doomed", imagebuild.EchoImage, ready)
	steady := n.waitPod(t, namespace, "steady", 60*time.Second, "Running", runningAndReady)
	doomed := n.waitPod(t, namespace, "doomed", 60*time.Second, "Running", runningAndReady)
	before := steady.Status.ContainerStatuses[0]
	if got := n.netnsCount(t); got != 2 {
		t.Fatalf("%d network namespaces for 2 pods", got)
	}

	n.stopAgent(t)
	// Deleted while the agent is down: only a forced deletion removes a
	// pod whose node does not answer.
	if err := n.client.CoreV1().Pods(namespace).Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if running := n.containersOf(t, string(doomed.UID)); len(running) != 1 {
		t.Fatalf("containers of the deleted pod while the agent is down: %v", running)
	}
	n.startAgent()

	waitFor(t, 30*time.Second, "the deleted pod's containers removed", func() (bool, error) {
		return len(n.containersOf(t, string(doomed.UID))) == 0, nil
	})
	waitFor(t, 10*time.Second, "the deleted pod's network namespace removed", func() (bool, error) {
		return n.netnsCount(t) == 1, nil
	})

	// A few status rounds of the new agent.
	time.Sleep(3 * time.Second)
	after, err := n.client.CoreV1().Pods(namespace).Get(ctx, "steady", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := after.Status.ContainerStatuses[0]
	if cs.ContainerID != before.ContainerID || cs.RestartCount != 0 || cs.State.Running == nil ||
		!cs.State.Running.StartedAt.Equal(&before.State.Running.StartedAt) || !runningAndReady(after) {
		t.Errorf("after the agent restarted: %+v, want the same running, ready container as before: %+v", cs, before)
	}
	if running := n.containersOf(t, string(steady.UID)); len(running) != 1 || !running[before.ContainerID[len("containerd://"):]] {
		t.Errorf("containers of the steady pod: %v, want only %s, running", running, before.ContainerID)
	}
	if body := n.httpGetInHostNetwork(t, net.JoinHostPort(after.Status.PodIP, "8080")); body != "steady" {
		t.Errorf("the adopted pod answers %q", body)
	}
}
