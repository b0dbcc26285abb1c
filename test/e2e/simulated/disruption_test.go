package simulated

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestDrainHonoursDisruptionBudget drains the node that runs the most
// pods of a Deployment guarded by a PodDisruptionBudget (maxUnavailable 1)
// with `kubectl drain --ignore-daemonsets`: evictions beyond the budget
// are refused with 429 and retried by kubectl until replacements on other
// nodes are Ready, a watcher sees the ready count never drop below the
// budget, and a DaemonSet's pod stays on the node.
func TestDrainHonoursDisruptionBudget(t *testing.T) {
	const replicas = 8
	ns := cluster.cp.CreateNamespace(t)
	daemonNS := cluster.cp.CreateNamespace(t)
	app := "drain-" + ns[len(ns)-5:]
	webLabels := map[string]string{"app": app, "role": "web"}
	agentLabels := map[string]string{"app": app, "role": "agent"}
	ctx := t.Context()

	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: webLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: daemonNS},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: agentLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: agentLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().DaemonSets(daemonNS).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: webLabels},
		},
	}
	if _, err := cluster.clientset.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", daemonNS, "--timeout=90s")
	eventually(t, 30*time.Second, "the budget to allow one disruption", func(ctx context.Context) (bool, error) {
		got, err := cluster.clientset.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && got.Status.DisruptionsAllowed == 1 && got.Status.CurrentHealthy == replicas &&
			got.Status.DesiredHealthy == replicas-1 && got.Status.ExpectedPods == replicas, err
	})
	out := kubectl(t, "get", "pdb", "web", "-n", ns)
	if header := strings.Fields(strings.SplitN(out, "\n", 2)[0]); strings.Join(header, " ") != "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE" {
		t.Errorf("kubectl get pdb header = %q", header)
	}
	if row := strings.Fields(strings.Split(out, "\n")[1]); len(row) < 4 || row[1] != "N/A" || row[2] != "1" || row[3] != "1" {
		t.Errorf("kubectl get pdb row = %q, want N/A 1 1", row)
	}

	running, err := runningPods(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	target := ""
	for _, p := range running {
		perNode[p.Spec.NodeName]++
		if target == "" || perNode[p.Spec.NodeName] > perNode[target] {
			target = p.Spec.NodeName
		}
	}
	if perNode[target] < 2 {
		t.Fatalf("no node runs two web pods (%v): the drain would not meet the budget", perNode)
	}
	t.Cleanup(func() {
		if out, err := runKubectl("uncordon", target); err != nil {
			t.Errorf("uncordon %s: %v\n%s", target, err, out)
		}
	})

	watcher, stop := watchRollout(t, ns, replicas, 0, 1)
	out = kubectl(t, "drain", target, "--ignore-daemonsets", "--pod-selector=app="+app, "--timeout=3m")
	stop()
	if len(watcher.violations) > 0 {
		t.Errorf("budget or replica count violated during the drain: %v", watcher.violations)
	}
	for _, want := range []string{
		"node/" + target + " cordoned",
		"ignoring DaemonSet-managed Pods: " + daemonNS + "/agent-",
		"Cannot evict pod as it would violate the pod's disruption budget.",
		"node/" + target + " drained",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl drain output lacks %q:\n%s", want, out)
		}
	}

	eventually(t, 60*time.Second, fmt.Sprintf("%d web pods Ready off %s", replicas, target), func(ctx context.Context) (bool, error) {
		running, err := runningPods(ctx, ns)
		if err != nil {
			return false, err
		}
		for _, p := range running {
			if p.Spec.NodeName == target {
				return false, nil
			}
		}
		return len(running) == replicas, nil
	})
	agents, err := cluster.clientset.CoreV1().Pods(daemonNS).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + target})
	if err != nil || len(agents.Items) != 1 || agents.Items[0].DeletionTimestamp != nil {
		t.Errorf("daemon pod on the drained node: %v %+v", err, agents)
	}
	eventually(t, 30*time.Second, "the budget to settle", func(ctx context.Context) (bool, error) {
		got, err := cluster.clientset.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && got.Status.DisruptionsAllowed == 1 && len(got.Status.DisruptedPods) == 0, err
	})
}
