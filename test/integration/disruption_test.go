package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/controllers/disruption"
	"tower.dev/tower/test/framework"
)

// TestStalePodDisruption: the disruption controller resets a
// DisruptionTarget=True condition that no deletion followed within its
// timeout (shortened here) to False, through pods/status, as upstream's
// does; it leaves the condition on pods being deleted, on terminal pods,
// and when the kubelet set it.
func TestStalePodDisruption(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	pods := controlPlane.Clientset().CoreV1().Pods(ns)

	mgr := framework.NewNamespacedManager(t, controlPlane.Config, ns)
	if err := disruption.SetupWithManager(mgr, disruption.Options{StalePodDisruptionTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	framework.RunManager(t, mgr)

	// disrupted creates a pod bound to a node that does not exist (so
	// nothing runs or deletes it) and marks it as an eviction would.
	disrupted := func(name, reason string, phase corev1.PodPhase) *corev1.Pod {
		t.Helper()
		pod, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{
				NodeName:   "node-1",
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s: %v", name, err)
		}
		pod.Status.Phase = phase
		pod.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			Reason: reason, Message: "marked by the test", LastTransitionTime: metav1.Now(),
		}}
		pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("set status of pod %s: %v", name, err)
		}
		return pod
	}
	// The pods that keep their condition are marked first: by the time
	// the stale one is reset, theirs are as old.
	disrupted("deleting", "EvictionByEvictionAPI", corev1.PodRunning)
	if err := pods.Delete(ctx, "deleting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	disrupted("failed", "EvictionByEvictionAPI", corev1.PodFailed)
	disrupted("by-kubelet", corev1.PodReasonTerminationByKubelet, corev1.PodRunning)
	disrupted("stale", "EvictionByEvictionAPI", corev1.PodRunning)

	eventually(t, 60*time.Second, "the stale condition reset", func(ctx context.Context) (bool, error) {
		pod, err := pods.Get(ctx, "stale", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cond := disruptionTarget(pod)
		return cond != nil && cond.Status == corev1.ConditionFalse, nil
	})
	pod, err := pods.Get(ctx, "stale", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cond := disruptionTarget(pod); cond.Reason != "" || cond.Message != "" {
		t.Errorf("reset condition = %+v, want no reason or message, as upstream", cond)
	}
	for _, name := range []string{"deleting", "failed", "by-kubelet"} {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cond := disruptionTarget(pod); cond == nil || cond.Status != corev1.ConditionTrue {
			t.Errorf("pod %s: DisruptionTarget = %+v, want it left True", name, cond)
		}
	}
}

func disruptionTarget(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.DisruptionTarget {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
