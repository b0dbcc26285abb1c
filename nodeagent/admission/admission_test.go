package admission

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func testNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"disk": "ssd", corev1.LabelOSStable: "linux"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("2"),
			corev1.ResourceMemory:           resource.MustParse("1Gi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("10Gi"),
			corev1.ResourcePods:             resource.MustParse("3"),
			"example.com/gpu":               resource.MustParse("1"),
		}},
	}
}

// podRequesting builds a pod on node-1 whose one container requests the
// given name=quantity pairs.
func podRequesting(name string, requests ...string) *corev1.Pod {
	list := corev1.ResourceList{}
	for i := 0; i+1 < len(requests); i += 2 {
		list[corev1.ResourceName(requests[i])] = resource.MustParse(requests[i+1])
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: list}}},
		},
	}
}

func with(pod *corev1.Pod, change func(*corev1.Pod)) *corev1.Pod {
	change(pod)
	return pod
}

func TestAdmit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		node     func(*corev1.Node)
		pod      *corev1.Pod
		admitted []*corev1.Pod
		static   bool
		want     Result
	}{{
		name:     "fits beside the admitted pods",
		pod:      podRequesting("new", "cpu", "500m", "memory", "256Mi"),
		admitted: []*corev1.Pod{podRequesting("old", "cpu", "1500m", "memory", "768Mi")},
		want:     Result{Admit: true},
	}, {
		name:     "cpu in millicores",
		pod:      podRequesting("new", "cpu", "600m"),
		admitted: []*corev1.Pod{podRequesting("old", "cpu", "1500m")},
		want:     Result{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"},
	}, {
		name:     "memory in bytes",
		pod:      podRequesting("new", "memory", "512Mi"),
		admitted: []*corev1.Pod{podRequesting("old", "memory", "768Mi")},
		want:     Result{Reason: "OutOfmemory", Message: "Node didn't have enough resource: memory, requested: 536870912, used: 805306368, capacity: 1073741824"},
	}, {
		name: "ephemeral storage",
		pod:  podRequesting("new", "ephemeral-storage", "11Gi"),
		want: Result{Reason: "OutOfephemeral-storage", Message: "Node didn't have enough resource: ephemeral-storage, requested: 11811160064, used: 0, capacity: 10737418240"},
	}, {
		name:     "pod count comes first",
		pod:      podRequesting("new", "cpu", "3"),
		admitted: []*corev1.Pod{podRequesting("a"), podRequesting("b"), podRequesting("c")},
		want:     Result{Reason: "OutOfpods", Message: "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"},
	}, {
		name: "cpu before memory",
		pod:  podRequesting("new", "memory", "2Gi", "cpu", "3"),
		want: Result{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000"},
	}, {
		name:     "an extended resource the node has",
		pod:      podRequesting("new", "example.com/gpu", "1"),
		admitted: []*corev1.Pod{podRequesting("old", "example.com/gpu", "1")},
		want:     Result{Reason: "OutOfexample.com/gpu", Message: "Node didn't have enough resource: example.com/gpu, requested: 1, used: 1, capacity: 1"},
	}, {
		name: "an extended resource the node lacks is left to others",
		pod:  podRequesting("new", "other.example.com/fpga", "1"),
		want: Result{Admit: true},
	}, {
		name: "hugepages the node lacks",
		pod:  podRequesting("new", "hugepages-2Mi", "2Mi", "memory", "2Mi"),
		want: Result{Reason: "OutOfhugepages-2Mi", Message: "Node didn't have enough resource: hugepages-2Mi, requested: 2097152, used: 0, capacity: 0"},
	}, {
		name: "init containers count at their largest, as the scheduler",
		pod: with(podRequesting("new", "cpu", "500m"), func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2500m")}}}}
		}),
		want: Result{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 2500, used: 0, capacity: 2000"},
	}, {
		name: "nodeSelector",
		pod:  with(podRequesting("new"), func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "hdd"} }),
		want: Result{Reason: "NodeAffinity", Message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
	}, {
		name: "required node affinity",
		pod: with(podRequesting("new"), func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}},
				}}},
			}}
		}),
		want: Result{Reason: "NodeAffinity", Message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
	}, {
		name: "matching nodeSelector",
		pod:  with(podRequesting("new"), func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
		want: Result{Admit: true},
	}, {
		name: "resources before affinity",
		pod: with(podRequesting("new", "cpu", "3"), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"disk": "hdd"}
		}),
		want: Result{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000"},
	}, {
		name: "bound to another node",
		pod:  with(podRequesting("new"), func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }),
		want: Result{Reason: "NodeName", Message: "Predicate NodeName failed: node(s) didn't match the requested node name"},
	}, {
		name:     "a host port another pod holds",
		pod:      with(podRequesting("new"), withHostPort("", 8080)),
		admitted: []*corev1.Pod{with(podRequesting("old"), withHostPort("10.0.0.1", 8080))},
		want:     Result{Reason: "NodePorts", Message: "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"},
	}, {
		name:     "the same host port on another address",
		pod:      with(podRequesting("new"), withHostPort("10.0.0.2", 8080)),
		admitted: []*corev1.Pod{with(podRequesting("old"), withHostPort("10.0.0.1", 8080))},
		want:     Result{Admit: true},
	}, {
		name: "an untolerated NoExecute taint",
		node: taint(corev1.TaintEffectNoExecute),
		pod:  podRequesting("new"),
		want: Result{Reason: "TaintToleration", Message: "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"},
	}, {
		name: "a NoSchedule taint is the scheduler's business",
		node: taint(corev1.TaintEffectNoSchedule),
		pod:  podRequesting("new"),
		want: Result{Admit: true},
	}, {
		name: "a tolerated NoExecute taint",
		node: taint(corev1.TaintEffectNoExecute),
		pod: with(podRequesting("new"), func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		}),
		want: Result{Admit: true},
	}, {
		name:   "static pods ignore taints",
		node:   taint(corev1.TaintEffectNoExecute),
		pod:    podRequesting("new"),
		static: true,
		want:   Result{Admit: true},
	}, {
		name: "an OS label of another OS",
		pod:  with(podRequesting("new"), func(p *corev1.Pod) { p.Labels = map[string]string{corev1.LabelOSStable: "windows"} }),
		want: Result{Reason: "PodOSSelectorNodeLabelDoesNotMatch", Message: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"},
	}, {
		name: "spec.os of another OS",
		pod:  with(podRequesting("new"), func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }),
		want: Result{Reason: "PodOSNotSupported", Message: "Failed to admit pod as the OS field doesn't match node OS"},
	}, {
		name: "strict supplemental groups on a node without them",
		pod: with(podRequesting("new"), func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SupplementalGroupsPolicy: ptr.To(corev1.SupplementalGroupsPolicyStrict)}
		}),
		want: Result{Reason: "SupplementalGroupsPolicyNotSupported", Message: "SupplementalGroupsPolicy=Strict is not supported in this node"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			node := testNode()
			if tc.node != nil {
				tc.node(node)
			}
			if got := Admit(node, tc.pod, tc.admitted, tc.static); got != tc.want {
				t.Fatalf("Admit = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func withHostPort(ip string, port int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: port, HostIP: ip}}
	}
}

func taint(effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: effect}}
	}
}

func TestRejectedStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	pod := podRequesting("new", "cpu", "3")
	pod.Status.QOSClass = corev1.PodQOSBurstable
	got := RejectedStatus(pod, Admit(testNode(), pod, nil, false), now)
	want := corev1.PodStatus{
		Phase: corev1.PodFailed, Reason: "OutOfcpu", QOSClass: corev1.PodQOSBurstable, StartTime: &now,
		Message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000",
	}
	if got.Phase != want.Phase || got.Reason != want.Reason || got.Message != want.Message || got.QOSClass != want.QOSClass || !got.StartTime.Equal(want.StartTime) {
		t.Fatalf("RejectedStatus = %+v, want %+v", got, want)
	}
}

func TestByCreation(t *testing.T) {
	at := func(name string, second int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, second, 0, time.UTC))}}
	}
	pods := []*corev1.Pod{at("c", 2), at("b", 1), at("z", 0), at("a", 1)}
	slices.SortFunc(pods, ByCreation)
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	if want := []string{"z", "a", "b", "c"}; !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}
