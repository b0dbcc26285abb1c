package simulated

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// deployment is a Deployment of replicas pods labelled app=name, with
// mutate applied to its pod template.
func deployment(name string, replicas int32, mutate func(*corev1.PodSpec)) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: name}}},
			},
		},
	}
	mutate(&d.Spec.Template.Spec)
	return d
}

// podsPerNode waits until want pods of ns run and returns how many run
// on each node.
func podsPerNode(t *testing.T, ns string, want int) map[string]int {
	t.Helper()
	perNode := map[string]int{}
	eventually(t, rolloutTimeout, fmt.Sprintf("%d running pods", want), func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, ns)
		if err != nil {
			return false, err
		}
		clear(perNode)
		for _, p := range pods {
			perNode[p.Spec.NodeName]++
		}
		return len(pods) == want, nil
	})
	return perNode
}

// TestPodAntiAffinity runs one replica per node through required
// anti-affinity on the hostname, then asks for one replica more than
// there are nodes: it stays Pending with upstream's message.
func TestPodAntiAffinity(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	d := deployment("spread", nodeCount, func(spec *corev1.PodSpec) {
		spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey:   corev1.LabelHostname,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
			}},
		}}
	})
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	perNode := podsPerNode(t, ns, nodeCount)
	if len(perNode) != nodeCount {
		t.Fatalf("%d replicas on %d nodes, want one per node: %v", nodeCount, len(perNode), perNode)
	}

	kubectl(t, "scale", "deployment", "spread", fmt.Sprintf("--replicas=%d", nodeCount+1), "-n", ns)
	var pending string
	eventually(t, rolloutTimeout, "a pending replica", func(ctx context.Context) (bool, error) {
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				pending = p.Name
				return true, nil
			}
		}
		return false, nil
	})
	want := fmt.Sprintf("0/%d nodes are available: %d node(s) didn't match pod anti-affinity rules. preemption: 0/%d nodes are available: %d No preemption victims found for incoming pod.", nodeCount, nodeCount, nodeCount, nodeCount)
	expectFailedScheduling(t, ns, pending, want)
}

// TestTopologySpreadOverZones puts the nodes into zones (two in a, one
// each in b and c) and expects a DoNotSchedule zone constraint to place
// replicas evenly over the zones, not the nodes.
func TestTopologySpreadOverZones(t *testing.T) {
	names := cluster.sim.NodeNames()
	zones := []string{"a", "a", "b", "c"}
	zoneOf := map[string]string{}
	for i, zone := range zones {
		zoneOf[names[i]] = zone
		kubectl(t, "label", "node", names[i], corev1.LabelTopologyZone+"="+zone)
	}
	t.Cleanup(func() {
		for node := range zoneOf {
			if out, err := runKubectl("label", "node", node, corev1.LabelTopologyZone+"-"); err != nil {
				t.Errorf("removing zone label from %s: %v\n%s", node, err, out)
			}
		}
	})
	ns := cluster.cp.CreateNamespace(t)
	// The scheduler sees node updates in order: once a pod that needs
	// the last label is bound, it has seen every label.
	last := len(zones) - 1
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{corev1.LabelTopologyZone: zones[last], corev1.LabelHostname: names[last]},
			Containers:   []corev1.Container{{Name: "c", Image: "probe"}},
		},
	}
	if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, rolloutTimeout, "the probe pod bound", func(ctx context.Context) (bool, error) {
		p, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, "probe", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", err
	})

	d := deployment("zonal", 6, func(spec *corev1.PodSpec) {
		spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelTopologyZone,
			WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "zonal"}},
		}}
	})
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	perZone := map[string]int{}
	// Six replicas and the probe.
	for node, n := range podsPerNode(t, ns, 7) {
		perZone[zoneOf[node]] += n
	}
	perZone[zones[last]]--
	for _, zone := range []string{"a", "b", "c"} {
		if perZone[zone] != 2 {
			t.Errorf("zones hold %v, want 2 replicas in each", perZone)
			break
		}
	}
}
