package simulated

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// TestSilentNodeIsTaintedAndEvicted stops one node's heartbeats: the node
// lifecycle controller marks it Unknown and taints it unreachable, the
// taint eviction controller evicts its pods once their (shortened)
// tolerationSeconds pass, and the Deployment recreates them elsewhere.
func TestSilentNodeIsTaintedAndEvicted(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	replicas := int32(4)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "svc"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "svc"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "svc", Image: "svc:1"}},
					Tolerations: []corev1.Toleration{{
						Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
						Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](2),
					}},
				},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "deployment/svc", "-n", ns, "--timeout=60s")
	pods, err := runningPods(t.Context(), ns)
	if err != nil || len(pods) == 0 {
		t.Fatalf("listing running pods: %v (%d pods)", err, len(pods))
	}
	silent := pods[0].Spec.NodeName
	// A pod that tolerates unreachable nodes for good stays, NotReady,
	// and is Ready again once its node is back.
	pinned := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pinned", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:   silent,
			Containers: []corev1.Container{{Name: "c", Image: "c"}},
			Tolerations: []corev1.Toleration{{
				Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
			}},
		},
	}
	if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), pinned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pinned pod ready", podReadyIs(ns, "pinned", true))

	cluster.sim.StopHeartbeats(silent)
	t.Cleanup(func() {
		cluster.sim.ResumeHeartbeats(silent)
		// Later tests need every node schedulable again; t.Context() is
		// already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			node, err := cluster.clientset.CoreV1().Nodes().Get(ctx, silent, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return nodeReadyStatus(node) == corev1.ConditionTrue && !hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule), nil
		})
		if err != nil {
			t.Errorf("waiting for node %s to be ready and untainted again: %v", silent, err)
		}
	})

	eventually(t, 30*time.Second, "node "+silent+" Unknown and tainted", func(ctx context.Context) (bool, error) {
		node, err := cluster.clientset.CoreV1().Nodes().Get(ctx, silent, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReadyStatus(node) == corev1.ConditionUnknown &&
			hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) &&
			hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute), nil
	})
	node, err := cluster.clientset.CoreV1().Nodes().Get(t.Context(), silent, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Reason != "NodeStatusUnknown" || c.Message != "Kubelet stopped posting node status.") {
			t.Errorf("Ready condition = %+v, want upstream's NodeStatusUnknown reason and message", c)
		}
	}

	eventually(t, 60*time.Second, "pods recreated away from "+silent, func(ctx context.Context) (bool, error) {
		running, err := runningPods(ctx, ns)
		if err != nil {
			return false, err
		}
		for _, p := range running {
			if p.Spec.NodeName == silent {
				return false, nil
			}
		}
		return len(running) == int(replicas), nil
	})
	eventually(t, 10*time.Second, "pinned pod NotReady on the silent node", podReadyIs(ns, "pinned", false))

	cluster.sim.ResumeHeartbeats(silent)
	eventually(t, 30*time.Second, "pinned pod Ready again", podReadyIs(ns, "pinned", true))
}

func podReadyIs(ns, name string, ready bool) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		pod, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return isReady(pod) == ready, nil
	}
}

func nodeReadyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func hasTaint(node *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, taint := range node.Spec.Taints {
		if taint.Key == key && taint.Effect == effect {
			return true
		}
	}
	return false
}
