package scheduler

import (
	"math"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// PodTopologySpread filter reasons, as upstream words them.
const (
	reasonSpreadConstraints  = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel = "node(s) didn't match pod topology spread constraints (missing required label)"
	topologySpreadWeight     = 2
)

// spreadConstraint is one parsed topology spread constraint.
type spreadConstraint struct {
	maxSkew     int
	minDomains  int
	topologyKey string
	selector    labels.Selector
	// honorNodeAffinity and honorTaints are nodeAffinityPolicy and
	// nodeTaintsPolicy: whether nodes the pod could not go to for those
	// reasons count as domains (Honor: they do not).
	honorNodeAffinity bool
	honorTaints       bool
}

// spreadConstraints parses pod's constraints with the given
// whenUnsatisfiable. matchLabelKeys add "key in (the pod's value)" to the
// selector.
func spreadConstraints(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sc := spreadConstraint{
			maxSkew:           int(c.MaxSkew),
			minDomains:        1,
			topologyKey:       c.TopologyKey,
			selector:          labelSelector(c.LabelSelector),
			honorNodeAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:       c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil {
			sc.minDomains = int(*c.MinDomains)
		}
		if c.LabelSelector != nil {
			sc.selector = withLabelKeys(sc.selector, pod.Labels, c.MatchLabelKeys, selection.In)
		}
		out = append(out, sc)
	}
	return out
}

// hasTopologyKeys reports whether node carries every constraint's key.
func hasTopologyKeys(node *corev1.Node, constraints []spreadConstraint) bool {
	for i := range constraints {
		if _, ok := node.Labels[constraints[i].topologyKey]; !ok {
			return false
		}
	}
	return true
}

// eligible reports whether node's domain counts for constraint sc of p.
func (sc *spreadConstraint) eligible(p *podSpec, node *corev1.Node) bool {
	if sc.honorNodeAffinity {
		if ok, err := p.affinity.Match(node); err != nil || !ok {
			return false
		}
	}
	if sc.honorTaints {
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, p.pod.Spec.Tolerations, doNotScheduleTaint, true); untolerated {
			return false
		}
	}
	return true
}

func doNotScheduleTaint(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// countMatching counts info's pods in ns that sc selects; pods being
// deleted do not count.
func (sc *spreadConstraint) countMatching(info *nodeInfo, ns string) int {
	n := 0
	for _, e := range info.podSet {
		if !e.terminating && e.namespace == ns && sc.selector.Matches(e.labels) {
			n++
		}
	}
	return n
}

// eachDomain calls f for every node that counts for constraint i of p,
// with the node's value of the constraint's key: nodes lacking any of the
// constraints' keys, or excluded by the constraint's node policies, do not
// count. The caller holds c.mu.
func (c *Cache) eachDomain(p *podSpec, constraints []spreadConstraint, f func(i int, value string, info *nodeInfo)) {
	for _, info := range c.ordered {
		if !hasTopologyKeys(info.node, constraints) {
			continue
		}
		for i := range constraints {
			if constraints[i].eligible(p, info.node) {
				f(i, info.node.Labels[constraints[i].topologyKey], info)
			}
		}
	}
}

// spreadState is the PodTopologySpread filter's view of the cluster for
// one pod: matching pods per domain and the least loaded domain, per
// DoNotSchedule constraint.
type spreadState struct {
	counts   []map[string]int
	minCount []int
}

// spreadState counts p's DoNotSchedule constraints over every node; the
// caller holds c.mu.
func (c *Cache) spreadState(p *podSpec) *spreadState {
	constraints := p.hardSpread
	st := &spreadState{counts: make([]map[string]int, len(constraints)), minCount: make([]int, len(constraints))}
	for i := range constraints {
		st.counts[i] = map[string]int{}
	}
	c.eachDomain(p, constraints, func(i int, value string, info *nodeInfo) {
		st.counts[i][value] += constraints[i].countMatching(info, p.pod.Namespace)
	})
	for i := range constraints {
		least := math.MaxInt32
		for _, n := range st.counts[i] {
			least = min(least, n)
		}
		if len(st.counts[i]) < constraints[i].minDomains {
			// Too few domains: the missing ones count as empty.
			least = 0
		}
		st.minCount[i] = least
	}
	return st
}

// filterTopologySpread is upstream's PodTopologySpread filter: placing
// the pod on node must keep every domain within maxSkew of the least
// loaded one.
func filterTopologySpread(p *podSpec, st *spreadState, node *corev1.Node) *failure {
	for i := range p.hardSpread {
		sc := &p.hardSpread[i]
		value, ok := node.Labels[sc.topologyKey]
		if !ok {
			return &failure{reasons: []string{reasonSpreadMissingLabel}}
		}
		self := 0
		if sc.selector.Matches(labels.Set(p.pod.Labels)) {
			self = 1
		}
		if st.counts[i][value]+self-st.minCount[i] > sc.maxSkew {
			return &failure{reasons: []string{reasonSpreadConstraints}, resolvable: true}
		}
	}
	return nil
}

// spreadScores rates candidates by p's ScheduleAnyway constraints, as
// upstream's PodTopologySpread score: fewer matching pods in a node's
// domains is better, weighted by the log of the number of domains. It
// returns raw scores (lower is better) and which candidates lack a
// topology key. The caller holds c.mu.
func (c *Cache) spreadScores(p *podSpec, candidates []candidate) (raw []int64, ignored []bool) {
	constraints := p.softSpread
	raw = make([]int64, len(candidates))
	ignored = make([]bool, len(candidates))
	// domains are the candidates' domains per constraint; only those
	// are counted.
	domains := make([]map[string]int, len(constraints))
	for i := range constraints {
		domains[i] = map[string]int{}
	}
	considered := 0
	for j := range candidates {
		node := candidates[j].info.node
		if !hasTopologyKeys(node, constraints) {
			ignored[j] = true
			continue
		}
		considered++
		for i := range constraints {
			domains[i][node.Labels[constraints[i].topologyKey]] = 0
		}
	}
	weights := make([]float64, len(constraints))
	for i := range constraints {
		size := len(domains[i])
		if constraints[i].topologyKey == corev1.LabelHostname {
			size = considered
		}
		weights[i] = math.Log(float64(size + 2))
	}
	c.eachDomain(p, constraints, func(i int, value string, info *nodeInfo) {
		if n, ok := domains[i][value]; ok && constraints[i].topologyKey != corev1.LabelHostname {
			domains[i][value] = n + constraints[i].countMatching(info, p.pod.Namespace)
		}
	})
	for j := range candidates {
		if ignored[j] {
			continue
		}
		info := candidates[j].info
		var score float64
		for i := range constraints {
			sc := &constraints[i]
			var n int
			if sc.topologyKey == corev1.LabelHostname {
				n = sc.countMatching(info, p.pod.Namespace)
			} else {
				n = domains[i][info.node.Labels[sc.topologyKey]]
			}
			score += float64(n)*weights[i] + float64(sc.maxSkew-1)
		}
		raw[j] = int64(math.Round(score))
	}
	return raw, ignored
}

// normalizeSpread maps raw spread scores to 0..100 with the fewest
// matching pods best; ignored candidates get 0.
func normalizeSpread(raw []int64, ignored []bool) {
	least, most := int64(math.MaxInt64), int64(0)
	for j, s := range raw {
		if ignored[j] {
			continue
		}
		least, most = min(least, s), max(most, s)
	}
	for j, s := range raw {
		switch {
		case ignored[j]:
			raw[j] = 0
		case most == 0:
			raw[j] = maxNodeScore
		default:
			raw[j] = maxNodeScore * (most + least - s) / most
		}
	}
}
