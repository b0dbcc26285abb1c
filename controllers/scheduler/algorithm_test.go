package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func testNode(name, cpu, memory string, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse(memory),
			corev1.ResourcePods:   resource.MustParse("110"),
		}},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func testPod(name, cpu string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
	}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func TestPlaceMessages(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*corev1.Node
		pod   *corev1.Pod
		want  string
	}{
		{
			name:  "insufficient cpu everywhere",
			nodes: []*corev1.Node{testNode("a", "1", "1Gi"), testNode("b", "1", "1Gi"), testNode("c", "1", "1Gi")},
			pod:   testPod("big", "2"),
			want:  "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
		},
		{
			name: "selector and taint",
			nodes: []*corev1.Node{
				testNode("a", "4", "1Gi"),
				testNode("b", "4", "1Gi", func(n *corev1.Node) {
					n.Labels["disk"] = "ssd"
					n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
				}),
			},
			pod:  testPod("p", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			want: "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: db}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
		},
		{
			name:  "cordoned",
			nodes: []*corev1.Node{testNode("a", "4", "1Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true })},
			pod:   testPod("p", ""),
			want:  "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name: "no nodes",
			pod:  testPod("p", ""),
			want: "no nodes available to schedule pods",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := NewCache()
			for _, n := range c.nodes {
				cache.SetNode(n)
			}
			node, fitErr := cache.place(newPodSpec(c.pod))
			if fitErr == nil {
				t.Fatalf("pod placed on %s, want failure", node)
			}
			if got := fitErr.Error(); got != c.want {
				t.Errorf("message:\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestPlaceSpreadsAndCountsAssumedPods(t *testing.T) {
	cache := NewCache()
	for i := range 3 {
		cache.SetNode(testNode(fmt.Sprintf("n%d", i), "1", "4Gi"))
	}
	perNode := map[string]int{}
	for i := range 9 {
		node, fitErr := cache.place(newPodSpec(testPod(fmt.Sprintf("p%d", i), "300m")))
		if fitErr != nil {
			t.Fatalf("pod %d: %v", i, fitErr)
		}
		perNode[node]++
	}
	for node, n := range perNode {
		if n != 3 {
			t.Errorf("node %s got %d pods, want 3 (spread: %v)", node, n, perNode)
		}
	}
	// Every node now has 100m left: the assumed pods must count.
	if _, fitErr := cache.place(newPodSpec(testPod("late", "300m"))); fitErr == nil {
		t.Fatal("pod fit although assumed pods fill every node")
	}
	cache.RemovePod("p0")
	if _, fitErr := cache.place(newPodSpec(testPod("late", "300m"))); fitErr != nil {
		t.Fatalf("pod does not fit after a pod left: %v", fitErr)
	}
}

func TestHostPortsConflict(t *testing.T) {
	withPort := func(ip string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, HostIP: ip}}
		}
	}
	cache := NewCache()
	cache.SetNode(testNode("a", "4", "4Gi"))
	if _, err := cache.place(newPodSpec(testPod("first", "", withPort("")))); err != nil {
		t.Fatal(err)
	}
	_, fitErr := cache.place(newPodSpec(testPod("second", "", withPort("10.0.0.1"))))
	if fitErr == nil || fitErr.reasons[reasonNodePorts] != 1 {
		t.Fatalf("second pod on a taken host port: %v", fitErr)
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for _, c := range []struct{ nodes, want int }{{10, 10}, {100, 100}, {1000, 420}, {5000, 500}, {10000, 500}} {
		if got := numFeasibleNodesToFind(c.nodes); got != c.want {
			t.Errorf("numFeasibleNodesToFind(%d) = %d, want %d", c.nodes, got, c.want)
		}
	}
}
