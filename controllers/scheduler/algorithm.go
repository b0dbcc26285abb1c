package scheduler

import (
	"fmt"
	"math"
	"slices"
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
	// hardSpread and softSpread are the DoNotSchedule and ScheduleAnyway
	// topology spread constraints.
	hardSpread, softSpread []spreadConstraint
	// toleratesUnschedulable is whether the pod tolerates the taint a
	// cordoned node implies.
	toleratesUnschedulable bool
}

func newPodSpec(pod *corev1.Pod) *podSpec {
	s := &podSpec{
		pod:                    pod,
		usage:                  usageOf(pod, ""),
		affinity:               nodeaffinity.GetRequiredNodeAffinity(pod),
		hardSpread:             spreadConstraints(pod, corev1.DoNotSchedule),
		softSpread:             spreadConstraints(pod, corev1.ScheduleAnyway),
		toleratesUnschedulable: tolerates(pod, &corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}),
	}
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

// filterState is what filters need computed over the whole cluster
// before any node is looked at, as upstream's PreFilter.
type filterState struct {
	affinity *affinityState
	// spread is nil when the pod has no DoNotSchedule constraints.
	spread *spreadState
}

// preFilter computes p's filterState; the caller holds c.mu.
func (c *Cache) preFilter(p *podSpec) *filterState {
	st := &filterState{affinity: c.affinityState(p)}
	if len(p.hardSpread) > 0 {
		st.spread = c.spreadState(p)
	}
	return st
}

// filter runs the filter plugins in upstream's order and returns nil when
// the pod fits on info. The caller holds c.mu.
func (c *Cache) filter(p *podSpec, st *filterState, info *nodeInfo) *failure {
	node := info.node
	if info.unschedulable && !p.toleratesUnschedulable {
		return &failure{reasons: []string{reasonUnschedulable}}
	}
	if p.pod.Spec.NodeName != "" && p.pod.Spec.NodeName != info.name {
		return &failure{reasons: []string{reasonNodeName}}
	}
	if len(info.taints) > 0 {
		taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), info.taints, p.pod.Spec.Tolerations, doNotScheduleTaint, true)
		if untolerated {
			return &failure{reasons: []string{fmt.Sprintf(reasonUntoleratedFmt, taint.Key, taint.Value)}}
		}
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
	if st.spread != nil {
		if f := filterTopologySpread(p, st.spread, node); f != nil {
			return f
		}
	}
	return c.filterInterPodAffinity(p, st.affinity, node)
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
// cannot meet, and "Too many pods" when it is full; nil when it fits.
func insufficient(u *podUsage, info *nodeInfo) []string {
	var reasons []string
	if info.maxPods >= 0 && int64(info.pods+1) > info.maxPods {
		reasons = append(reasons, reasonTooManyPods)
	}
	for _, a := range u.requests {
		if a.value > available(info, a.name) {
			reasons = append(reasons, "Insufficient "+string(a.name))
		}
	}
	return reasons
}

// available is how much of a resource the node has left; cpu and memory,
// which nearly every pod requests, without a map lookup.
func available(info *nodeInfo, name corev1.ResourceName) int64 {
	switch name {
	case corev1.ResourceCPU:
		return info.allocCPU - info.requestedCPU
	case corev1.ResourceMemory:
		return info.allocMem - info.requestedMem
	}
	return info.allocatable[name] - info.requested[name]
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

// maxNodeScore is what one score plugin gives the best node.
const maxNodeScore = 100

// Weights of the normalised score plugins in upstream's default profile;
// NodeResourcesFit and BalancedAllocation weigh 1.
const (
	nodeAffinityWeight    = 2
	taintTolerationWeight = 3
)

// candidate is a node the pod fits on, and its total score.
type candidate struct {
	name  string
	info  *nodeInfo
	score int64
}

// score totals each candidate's score as upstream's default profile
// does: LeastAllocated and BalancedAllocation, plus the normalised
// scores of preferred node affinity, PreferNoSchedule taints, inter-pod
// affinity and ScheduleAnyway topology spread, each times its weight. The
// caller holds c.mu.
func (c *Cache) score(p *podSpec, candidates []candidate) {
	raw := slices.Grow(c.rawScores[:0], len(candidates))[:len(candidates)]
	c.rawScores = raw
	for j := range candidates {
		candidates[j].score = resourceScore(p, candidates[j].info)
	}
	if p.preferred != nil {
		for j := range candidates {
			raw[j] = p.preferred.Score(candidates[j].info.node)
		}
		addNormalized(candidates, raw, nodeAffinityWeight, false)
	}
	for j := range candidates {
		raw[j] = intolerablePreferNoSchedule(p.pod, candidates[j].info.taints)
	}
	addNormalized(candidates, raw, taintTolerationWeight, true)
	if scores := c.interPodAffinityScores(p); len(scores) > 0 {
		for j := range candidates {
			raw[j] = interPodAffinityScore(scores, candidates[j].info.node)
		}
		normalizeMinMax(raw)
		addWeighted(candidates, raw, interPodAffinityScoreWeight)
	}
	if len(p.softSpread) > 0 {
		spread, ignored := c.spreadScores(p, candidates)
		normalizeSpread(spread, ignored)
		addWeighted(candidates, spread, topologySpreadWeight)
	}
}

// resourceScore is LeastAllocated plus BalancedAllocation over cpu and
// memory, with the non-zero defaults for containers without requests.
func resourceScore(p *podSpec, info *nodeInfo) int64 {
	allocCPU, allocMem := info.allocCPU, info.allocMem
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
	return least + balanced
}

// intolerablePreferNoSchedule counts a node's PreferNoSchedule taints the
// pod does not tolerate.
func intolerablePreferNoSchedule(pod *corev1.Pod, taints []corev1.Taint) int64 {
	var n int64
	for i := range taints {
		t := &taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerates(pod, t) {
			n++
		}
	}
	return n
}

// addNormalized scales raw to 0..maxNodeScore by its maximum (reversed:
// the lowest is best), as upstream's DefaultNormalizeScore, and adds it
// times weight.
func addNormalized(candidates []candidate, raw []int64, weight int64, reverse bool) {
	var most int64
	for _, s := range raw {
		most = max(most, s)
	}
	for j, s := range raw {
		switch {
		case most == 0 && reverse:
			s = maxNodeScore
		case most == 0:
			s = 0
		default:
			s = maxNodeScore * s / most
			if reverse {
				s = maxNodeScore - s
			}
		}
		candidates[j].score += weight * s
	}
}

// normalizeMinMax scales raw to 0..maxNodeScore between its minimum and
// maximum, as the InterPodAffinity plugin normalises.
func normalizeMinMax(raw []int64) {
	least, most := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range raw {
		least, most = min(least, s), max(most, s)
	}
	for j, s := range raw {
		if most > least {
			raw[j] = int64(float64(maxNodeScore) * float64(s-least) / float64(most-least))
		} else {
			raw[j] = 0
		}
	}
}

func addWeighted(candidates []candidate, scores []int64, weight int64) {
	for j := range candidates {
		candidates[j].score += weight * scores[j]
	}
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
