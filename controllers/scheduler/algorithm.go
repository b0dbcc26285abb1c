package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Filter failure reasons, worded as upstream's plugins word them; they
// end up in FailedScheduling messages users and tools grep for.
const (
	reasonUnschedulable  = "node(s) were unschedulable"
	reasonNodeName       = "node(s) didn't match the requested node name"
	reasonNodeAffinity   = "node(s) didn't match Pod's node affinity/selector"
	reasonNodePorts      = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods    = "Too many pods"
	reasonUntoleratedFmt = "node(s) had untolerated taint {%s: %s}"
)

// Preemption summaries per node, as the default preemption plugin words
// them when it finds nothing to preempt.
const (
	preemptionNoVictims  = "No preemption victims found for incoming pod"
	preemptionNotHelpful = "Preemption is not helpful for scheduling"
)

// minFeasibleNodesToFind and the adaptive percentage follow upstream's
// percentageOfNodesToScore: big clusters stop looking once enough nodes
// fit, which is what keeps per-pod cost flat as nodes grow.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// podSpec is what filtering needs from a pod, computed once per attempt.
type podSpec struct {
	pod      *corev1.Pod
	usage    *podUsage
	affinity nodeaffinity.RequiredNodeAffinity
	// preferred scores preferred node affinity terms, nil when none.
	preferred *nodeaffinity.PreferredSchedulingTerms
}

func newPodSpec(pod *corev1.Pod) *podSpec {
	s := &podSpec{pod: pod, usage: usageOf(pod, ""), affinity: nodeaffinity.GetRequiredNodeAffinity(pod)}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		if terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution); err == nil {
			s.preferred = terms
		}
	}
	return s
}

// failure is why one node does not fit: reasons for the message, and
// whether preempting pods could ever help.
type failure struct {
	reasons    []string
	resolvable bool
}

// filter runs the filter plugins in upstream's order and returns nil when
// the pod fits on info.
func filter(p *podSpec, info *nodeInfo) *failure {
	node := info.node
	if node.Spec.Unschedulable && !tolerates(p.pod, &corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}) {
		return &failure{reasons: []string{reasonUnschedulable}}
	}
	if p.pod.Spec.NodeName != "" && p.pod.Spec.NodeName != node.Name {
		return &failure{reasons: []string{reasonNodeName}}
	}
	taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, p.pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, true)
	if untolerated {
		return &failure{reasons: []string{fmt.Sprintf(reasonUntoleratedFmt, taint.Key, taint.Value)}}
	}
	if ok, err := p.affinity.Match(node); err != nil || !ok {
		return &failure{reasons: []string{reasonNodeAffinity}}
	}
	for _, port := range p.usage.ports {
		if portInUse(info.ports, port) {
			return &failure{reasons: []string{reasonNodePorts}, resolvable: true}
		}
	}
	if reasons := insufficient(p.usage, info); len(reasons) > 0 {
		return &failure{reasons: reasons, resolvable: true}
	}
	return nil
}

func tolerates(pod *corev1.Pod, taint *corev1.Taint) bool {
	return corev1helpers.TolerationsTolerateTaint(logr.Discard(), pod.Spec.Tolerations, taint, true)
}

// portInUse is true when want conflicts with a port already bound on the
// node: same protocol and port, and the same IP or either one a wildcard.
func portInUse(used map[hostPort]int, want hostPort) bool {
	for p := range used {
		if p.port != want.port || p.protocol != want.protocol {
			continue
		}
		if p.ip == want.ip || isWildcard(p.ip) || isWildcard(want.ip) {
			return true
		}
	}
	return false
}

func isWildcard(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// insufficient lists "Insufficient <resource>" for every request the node
// cannot meet, and "Too many pods" when it is full.
func insufficient(u *podUsage, info *nodeInfo) []string {
	var reasons []string
	allocatable := info.node.Status.Allocatable
	if maxPods, ok := allocatable[corev1.ResourcePods]; ok && int64(info.pods+1) > maxPods.Value() {
		reasons = append(reasons, reasonTooManyPods)
	}
	names := make([]corev1.ResourceName, 0, len(u.requests))
	for name := range u.requests {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return resourceOrder(names[i]) < resourceOrder(names[j]) })
	for _, name := range names {
		want := quantityValue(name, u.requests[name])
		if want == 0 {
			continue
		}
		capacity, ok := allocatable[name]
		have := int64(0)
		if ok {
			have = quantityValue(name, capacity)
		}
		if want > have-info.requested[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	return reasons
}

func resourceOrder(name corev1.ResourceName) string {
	switch name {
	case corev1.ResourceCPU:
		return "0"
	case corev1.ResourceMemory:
		return "1"
	case corev1.ResourceEphemeralStorage:
		return "2"
	}
	return "3" + string(name)
}

// score rates a fitting node from 0 to 200: LeastAllocated plus
// BalancedAllocation over cpu and memory (with the non-zero defaults),
// plus preferred node affinity, as upstream's default weights have them.
func score(p *podSpec, info *nodeInfo) int64 {
	allocCPU := info.node.Status.Allocatable.Cpu().MilliValue()
	allocMem := info.node.Status.Allocatable.Memory().Value()
	cpu := info.nonZeroCPU + p.usage.nonZeroCPU
	mem := info.nonZeroMemory + p.usage.nonZeroMemory

	least := (leastAllocated(cpu, allocCPU) + leastAllocated(mem, allocMem)) / 2
	balanced := int64(0)
	if allocCPU > 0 && allocMem > 0 {
		fc := min(float64(cpu)/float64(allocCPU), 1)
		fm := min(float64(mem)/float64(allocMem), 1)
		// The standard deviation of two fractions is half their
		// difference.
		diff := fc - fm
		if diff < 0 {
			diff = -diff
		}
		balanced = int64((1 - diff/2) * 100)
	}
	total := least + balanced
	if p.preferred != nil {
		// Raw weights are summed here; upstream normalises across nodes,
		// which keeps the same order.
		total += p.preferred.Score(info.node)
	}
	return total
}

func leastAllocated(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * 100 / capacity
}

// numFeasibleNodesToFind is how many fitting nodes are enough to pick from
// in a cluster of n nodes.
func numFeasibleNodesToFind(n int) int {
	if n < minFeasibleNodesToFind {
		return n
	}
	pct := max(50-n/125, minFeasibleNodesPercentageToFind)
	return max(n*pct/100, minFeasibleNodesToFind)
}

// FitError describes a pod that fits no node, in upstream's words.
type FitError struct {
	NumAllNodes int
	// reasons counts nodes per failure reason.
	reasons map[string]int
	// notHelpful counts nodes where preemption could not help.
	notHelpful int
}

// Error renders upstream's FailedScheduling message, for example
// "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are
// available: 3 No preemption victims found for incoming pod.".
func (e *FitError) Error() string {
	if e.NumAllNodes == 0 {
		return "no nodes available to schedule pods"
	}
	msg := fmt.Sprintf("0/%d nodes are available: %s.", e.NumAllNodes, histogram(e.reasons))
	preemption := map[string]int{}
	if e.notHelpful > 0 {
		preemption[preemptionNotHelpful] = e.notHelpful
	}
	if rest := e.NumAllNodes - e.notHelpful; rest > 0 {
		preemption[preemptionNoVictims] = rest
	}
	return msg + fmt.Sprintf(" preemption: 0/%d nodes are available: %s.", e.NumAllNodes, histogram(preemption))
}

func histogram(counts map[string]int) string {
	var parts []string
	for reason, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
