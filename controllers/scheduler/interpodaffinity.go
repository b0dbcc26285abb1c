package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Inter-pod affinity filter reasons, as upstream's InterPodAffinity
// plugin words them.
const (
	reasonAffinityRules         = "node(s) didn't match pod affinity rules"
	reasonAntiAffinityRules     = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinity  = "node(s) didn't satisfy existing pods anti-affinity rules"
	hardPodAffinityWeight       = 1
	interPodAffinityScoreWeight = 2
)

// affinityTerm is one parsed pod (anti-)affinity term: which pods it
// selects and over which topology.
type affinityTerm struct {
	selector labels.Selector
	// namespaces lists the namespaces named outright (or the pod's own
	// when neither namespaces nor a namespace selector are given);
	// namespaceSelector selects more by their labels.
	namespaces        sets.Set[string]
	namespaceSelector labels.Selector
	topologyKey       string
	// weight is set for preferred terms.
	weight int64
}

// matches reports whether the term selects a pod in namespace ns with
// podLabels; nsLabels are that namespace's labels.
func (t *affinityTerm) matches(ns string, podLabels, nsLabels labels.Set) bool {
	if !t.namespaces.Has(ns) && !t.namespaceSelector.Matches(nsLabels) {
		return false
	}
	return t.selector.Matches(podLabels)
}

// podAffinity is a pod's inter-pod affinity and anti-affinity, parsed.
type podAffinity struct {
	required, requiredAnti   []affinityTerm
	preferred, preferredAnti []affinityTerm
}

// newPodAffinity parses pod's inter-pod terms; nil when it has none.
func newPodAffinity(pod *corev1.Pod) *podAffinity {
	a := pod.Spec.Affinity
	if a == nil || (a.PodAffinity == nil && a.PodAntiAffinity == nil) {
		return nil
	}
	pa := &podAffinity{}
	if a.PodAffinity != nil {
		pa.required = parseTerms(pod, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		pa.preferred = parseWeightedTerms(pod, a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	if a.PodAntiAffinity != nil {
		pa.requiredAnti = parseTerms(pod, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		pa.preferredAnti = parseWeightedTerms(pod, a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	if len(pa.required)+len(pa.requiredAnti)+len(pa.preferred)+len(pa.preferredAnti) == 0 {
		return nil
	}
	return pa
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) []affinityTerm {
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, parseTerm(pod, &terms[i], 0))
	}
	return out
}

func parseWeightedTerms(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) []affinityTerm {
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, parseTerm(pod, &terms[i].PodAffinityTerm, int64(terms[i].Weight)))
	}
	return out
}

// parseTerm turns an API term into a matcher. matchLabelKeys and
// mismatchLabelKeys add "key in (the pod's value)" and "key notin (the
// pod's value)", as the API server merges them on create; adding them
// again to an already merged selector changes nothing. A selector the API
// server should have rejected selects nothing.
func parseTerm(pod *corev1.Pod, term *corev1.PodAffinityTerm, weight int64) affinityTerm {
	t := affinityTerm{
		selector:          labelSelector(term.LabelSelector),
		namespaces:        sets.New(term.Namespaces...),
		namespaceSelector: labelSelector(term.NamespaceSelector),
		topologyKey:       term.TopologyKey,
		weight:            weight,
	}
	if len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
		t.namespaces.Insert(pod.Namespace)
	}
	if term.LabelSelector != nil {
		t.selector = withLabelKeys(t.selector, pod.Labels, term.MatchLabelKeys, selection.In)
		t.selector = withLabelKeys(t.selector, pod.Labels, term.MismatchLabelKeys, selection.NotIn)
	}
	return t
}

// labelSelector parses s; nil and invalid selectors select nothing.
func labelSelector(s *metav1.LabelSelector) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// withLabelKeys narrows sel to pods whose value of each key relates by op
// to podLabels' value; keys the pod lacks are skipped.
func withLabelKeys(sel labels.Selector, podLabels map[string]string, keys []string, op selection.Operator) labels.Selector {
	for _, key := range keys {
		value, ok := podLabels[key]
		if !ok {
			continue
		}
		req, err := labels.NewRequirement(key, op, []string{value})
		if err != nil {
			continue
		}
		sel = sel.Add(*req)
	}
	return sel
}

// topologyPair is one topology domain: a node label and its value.
type topologyPair struct{ key, value string }

// topologyCounts counts matching pods or terms per domain.
type topologyCounts map[topologyPair]int

func (m topologyCounts) add(node *corev1.Node, key string, n int) {
	if value, ok := node.Labels[key]; ok {
		m[topologyPair{key, value}] += n
	}
}

// affinityState is what the InterPodAffinity filter needs for one pod,
// computed once over the whole cluster before nodes are filtered.
type affinityState struct {
	// existingAnti counts, per domain, existing pods' required
	// anti-affinity terms that select the incoming pod.
	existingAnti topologyCounts
	// affinity counts existing pods matching all the incoming pod's
	// required affinity terms, per each term's domain; anti counts those
	// matching one of its required anti-affinity terms.
	affinity, anti topologyCounts
}

// affinityState computes p's InterPodAffinity pre-filter state; the
// caller holds c.mu.
func (c *Cache) affinityState(p *podSpec) *affinityState {
	st := &affinityState{existingAnti: topologyCounts{}, affinity: topologyCounts{}, anti: topologyCounts{}}
	own := c.namespaces[p.pod.Namespace]
	for _, e := range c.withAffinity {
		node := c.nodeOf(e)
		if node == nil {
			continue
		}
		for i := range e.affinity.requiredAnti {
			t := &e.affinity.requiredAnti[i]
			if t.matches(p.pod.Namespace, p.pod.Labels, own) {
				st.existingAnti.add(node, t.topologyKey, 1)
			}
		}
	}
	terms := p.usage.affinity
	if terms == nil || len(terms.required)+len(terms.requiredAnti) == 0 {
		return st
	}
	c.eachPod(func(node *corev1.Node, e *podUsage) {
		nsLabels := c.namespaces[e.namespace]
		if len(terms.required) > 0 && matchesAll(terms.required, e.namespace, e.labels, nsLabels) {
			for i := range terms.required {
				st.affinity.add(node, terms.required[i].topologyKey, 1)
			}
		}
		for i := range terms.requiredAnti {
			if terms.requiredAnti[i].matches(e.namespace, e.labels, nsLabels) {
				st.anti.add(node, terms.requiredAnti[i].topologyKey, 1)
			}
		}
	})
	return st
}

func matchesAll(terms []affinityTerm, ns string, podLabels, nsLabels labels.Set) bool {
	for i := range terms {
		if !terms[i].matches(ns, podLabels, nsLabels) {
			return false
		}
	}
	return true
}

// filterInterPodAffinity is upstream's InterPodAffinity filter.
func (c *Cache) filterInterPodAffinity(p *podSpec, st *affinityState, node *corev1.Node) *failure {
	if !c.satisfiesAffinity(p, st, node) {
		return &failure{reasons: []string{reasonAffinityRules}}
	}
	if terms := p.usage.affinity; terms != nil {
		for i := range terms.requiredAnti {
			key := terms.requiredAnti[i].topologyKey
			if value, ok := node.Labels[key]; ok && st.anti[topologyPair{key, value}] > 0 {
				return &failure{reasons: []string{reasonAntiAffinityRules}, resolvable: true}
			}
		}
	}
	if len(st.existingAnti) == 0 {
		return nil
	}
	for pair, n := range st.existingAnti {
		if value, ok := node.Labels[pair.key]; ok && value == pair.value && n > 0 {
			return &failure{reasons: []string{reasonExistingAntiAffinity}, resolvable: true}
		}
	}
	return nil
}

// satisfiesAffinity requires every required affinity term's domain on
// node to hold a matching pod. The first pod of a group that is affine
// to itself may go anywhere with the topology labels, or it could never
// start.
func (c *Cache) satisfiesAffinity(p *podSpec, st *affinityState, node *corev1.Node) bool {
	terms := p.usage.affinity
	if terms == nil || len(terms.required) == 0 {
		return true
	}
	found := true
	for i := range terms.required {
		key := terms.required[i].topologyKey
		value, ok := node.Labels[key]
		if !ok {
			return false
		}
		if st.affinity[topologyPair{key, value}] <= 0 {
			found = false
		}
	}
	if found {
		return true
	}
	return len(st.affinity) == 0 && matchesAll(terms.required, p.pod.Namespace, p.pod.Labels, c.namespaces[p.pod.Namespace])
}

// interPodAffinityScores sums, per domain, the incoming pod's preferred
// terms over the pods they select, and existing pods' required (at
// hardPodAffinityWeight) and preferred terms that select the incoming
// pod; anti-affinity counts negative. The caller holds c.mu.
func (c *Cache) interPodAffinityScores(p *podSpec) topologyCounts {
	scores := topologyCounts{}
	terms := p.usage.affinity
	own := c.namespaces[p.pod.Namespace]
	score := func(node *corev1.Node, e *podUsage) {
		if terms != nil {
			nsLabels := c.namespaces[e.namespace]
			for i := range terms.preferred {
				if t := &terms.preferred[i]; t.matches(e.namespace, e.labels, nsLabels) {
					scores.add(node, t.topologyKey, int(t.weight))
				}
			}
			for i := range terms.preferredAnti {
				if t := &terms.preferredAnti[i]; t.matches(e.namespace, e.labels, nsLabels) {
					scores.add(node, t.topologyKey, -int(t.weight))
				}
			}
		}
		if e.affinity == nil {
			return
		}
		for i := range e.affinity.required {
			if t := &e.affinity.required[i]; t.matches(p.pod.Namespace, p.pod.Labels, own) {
				scores.add(node, t.topologyKey, hardPodAffinityWeight)
			}
		}
		for i := range e.affinity.preferred {
			if t := &e.affinity.preferred[i]; t.matches(p.pod.Namespace, p.pod.Labels, own) {
				scores.add(node, t.topologyKey, int(t.weight))
			}
		}
		for i := range e.affinity.preferredAnti {
			if t := &e.affinity.preferredAnti[i]; t.matches(p.pod.Namespace, p.pod.Labels, own) {
				scores.add(node, t.topologyKey, -int(t.weight))
			}
		}
	}
	if terms != nil && len(terms.preferred)+len(terms.preferredAnti) > 0 {
		c.eachPod(score)
		return scores
	}
	// Only pods with terms of their own can score the incoming pod.
	for _, e := range c.withAffinity {
		if node := c.nodeOf(e); node != nil {
			score(node, e)
		}
	}
	return scores
}

// interPodAffinityScore is a node's raw score: the sum over its domains.
func interPodAffinityScore(scores topologyCounts, node *corev1.Node) int64 {
	var total int64
	for pair, n := range scores {
		if value, ok := node.Labels[pair.key]; ok && value == pair.value {
			total += int64(n)
		}
	}
	return total
}
