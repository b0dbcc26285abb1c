package simulated

import (
	"net"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"tower.dev/tower/controllers/nodeipam"
	"tower.dev/tower/nodeagent/simulator"
)

// TestNodePodCIDRs: node IPAM gives every simulated node its own subnet of
// the cluster CIDR, and the pods on a node get addresses from its subnet.
func TestNodePodCIDRs(t *testing.T) {
	ctx := t.Context()
	_, cluster4, err := net.ParseCIDR(nodeipam.DefaultClusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cluster.clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: simulator.TypeLabel})
	if err != nil {
		t.Fatal(err)
	}
	subnets := map[string]*net.IPNet{}
	holders := map[string]string{}
	for _, n := range nodes.Items {
		ip, subnet, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil || !cluster4.Contains(ip) || len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
			t.Fatalf("node %s: podCIDR %q podCIDRs %v, want one subnet of %s", n.Name, n.Spec.PodCIDR, n.Spec.PodCIDRs, cluster4)
		}
		if other, taken := holders[subnet.String()]; taken {
			t.Errorf("nodes %s and %s share pod CIDR %s", other, n.Name, subnet)
		}
		holders[subnet.String()] = n.Name
		subnets[n.Name] = subnet
	}
	if len(subnets) != nodeCount {
		t.Fatalf("%d simulated nodes, want %d", len(subnets), nodeCount)
	}

	ns := cluster.cp.CreateNamespace(t)
	labels := map[string]string{"app": "ipam"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ipam", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2 * nodeCount),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "deployment/ipam", "-n", ns, "--timeout=90s")
	running, err := runningPods(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, p := range running {
		subnet := subnets[p.Spec.NodeName]
		if subnet == nil || !subnet.Contains(net.ParseIP(p.Status.PodIP)) {
			t.Errorf("pod %s on %s has IP %q outside the node's pod CIDR %v", p.Name, p.Spec.NodeName, p.Status.PodIP, subnet)
		}
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share IP %s", other, p.Name, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = p.Name
	}
}
