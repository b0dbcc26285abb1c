package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEligible(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "ns", UID: "uid"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}},
		}},
	}
	pod := podTemplate(ds, "h1")
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	ssd := map[string]string{"disk": "ssd"}
	cases := []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"matching node", node(ssd), true},
		{"selector mismatch", node(map[string]string{"disk": "hdd"}), false},
		{"unreachable node keeps its daemon", node(ssd, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), true},
		{"cordoned node keeps its daemon", node(ssd, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true},
		{"foreign NoSchedule taint", node(ssd, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}), false},
		{"PreferNoSchedule taint is ignored", node(ssd, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectPreferNoSchedule}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Eligible(pod, c.node); got != c.want {
				t.Fatalf("Eligible = %v, want %v", got, c.want)
			}
		})
	}
}

func TestPinToNode(t *testing.T) {
	pod := &corev1.Pod{}
	pinToNode(pod, "node-7")
	if got := targetNode(pod); got != "node-7" {
		t.Fatalf("targetNode = %q, want node-7", got)
	}
	if pod.Labels[revisionHashLabel] != "" {
		t.Fatal("pinToNode must not touch labels")
	}
}
