package simulated

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDaemonSetCoversEveryNode checks one running pod per simulated node,
// bound through the scheduler, and a rolling update of the image.
func TestDaemonSetCoversEveryNode(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().DaemonSets(ns).Create(t.Context(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	assertOnePodPerNode(t, ns, "agent:1")

	kubectl(t, "set", "image", "daemonset/agent", "agent=agent:2", "-n", ns)
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	eventually(t, 30*time.Second, "old daemon pods gone", func(ctx context.Context) (bool, error) {
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == nodeCount, err
	})
	assertOnePodPerNode(t, ns, "agent:2")
	got, err := cluster.clientset.AppsV1().DaemonSets(ns).Get(t.Context(), "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Status; s.DesiredNumberScheduled != nodeCount || s.NumberReady != nodeCount || s.UpdatedNumberScheduled != nodeCount || s.NumberMisscheduled != 0 {
		t.Fatalf("daemonset status = %+v, want %d desired, ready and updated", s, nodeCount)
	}
}

func assertOnePodPerNode(t *testing.T, ns, image string) {
	t.Helper()
	running, err := runningPods(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, p := range running {
		if p.Spec.Containers[0].Image == image {
			perNode[p.Spec.NodeName]++
		}
	}
	for _, node := range cluster.sim.NodeNames() {
		if perNode[node] != 1 {
			t.Errorf("node %s runs %d %s daemon pods, want 1 (all: %v)", node, perNode[node], image, perNode)
		}
	}
}
