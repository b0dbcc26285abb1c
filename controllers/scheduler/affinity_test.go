package scheduler

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

const zoneKey = corev1.LabelTopologyZone

func inZone(zone string) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Labels[zoneKey] = zone }
}

func labelled(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func inNamespace(ns string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Namespace = ns }
}

func term(key string, selector map[string]string, mutate ...func(*corev1.PodAffinityTerm)) corev1.PodAffinityTerm {
	t := corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: selector}}
	for _, m := range mutate {
		m(&t)
	}
	return t
}

func antiAffinity(terms ...corev1.PodAffinityTerm) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
	}
}

func affinity(terms ...corev1.PodAffinityTerm) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
	}
}

func spread(key string, maxSkew int32, when corev1.UnsatisfiableConstraintAction, selector map[string]string, mutate ...func(*corev1.TopologySpreadConstraint)) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		c := corev1.TopologySpreadConstraint{MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: &metav1.LabelSelector{MatchLabels: selector}}
		for _, m := range mutate {
			m(&c)
		}
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	}
}

// bound is an existing pod on a node.
type bound struct {
	node string
	pod  *corev1.Pod
}

func on(node string, name string, mutate ...func(*corev1.Pod)) bound {
	return bound{node: node, pod: testPod(name, "", mutate...)}
}

func newTestCache(nodes []*corev1.Node, pods []bound, namespaces ...*corev1.Namespace) *Cache {
	c := NewCache()
	for _, n := range nodes {
		c.SetNode(n)
	}
	for _, ns := range namespaces {
		c.SetNamespace(ns)
	}
	for _, b := range pods {
		b.pod.Spec.NodeName = b.node
		c.SetPod(b.pod)
	}
	return c
}

func nodes(names ...string) []*corev1.Node {
	var out []*corev1.Node
	for _, n := range names {
		out = append(out, testNode(n, "8", "16Gi"))
	}
	return out
}

func zonedNodes(zoneOf map[string]string) []*corev1.Node {
	var out []*corev1.Node
	for name, zone := range zoneOf {
		out = append(out, testNode(name, "8", "16Gi", inZone(zone)))
	}
	return out
}

const noVictims = "No preemption victims found for incoming pod"

func TestInterPodAffinityAndSpreadFilters(t *testing.T) {
	web := map[string]string{"app": "web"}
	cases := []struct {
		name       string
		nodes      []*corev1.Node
		namespaces []*corev1.Namespace
		existing   []bound
		pod        *corev1.Pod
		// want lists the nodes the pod may land on; empty means it
		// fits nowhere and wantMsg is the FailedScheduling message.
		want    []string
		wantMsg string
	}{
		{
			name:     "anti-affinity avoids nodes with matching pods",
			nodes:    nodes("a", "b", "c"),
			existing: []bound{on("a", "w1", labelled("app", "web")), on("b", "w2", labelled("app", "web"))},
			pod:      testPod("w3", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web))),
			want:     []string{"c"},
		},
		{
			name:     "anti-affinity unsatisfiable",
			nodes:    nodes("a", "b"),
			existing: []bound{on("a", "w1", labelled("app", "web")), on("b", "w2", labelled("app", "web"))},
			pod:      testPod("w3", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web))),
			wantMsg:  "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are available: 2 " + noVictims + ".",
		},
		{
			name:     "existing pod's anti-affinity rejects the incoming pod",
			nodes:    nodes("a"),
			existing: []bound{on("a", "loner", antiAffinity(term(corev1.LabelHostname, map[string]string{"app": "db"})))},
			pod:      testPod("db", "", labelled("app", "db")),
			wantMsg:  "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/1 nodes are available: 1 " + noVictims + ".",
		},
		{
			name:     "existing pod's anti-affinity leaves other nodes",
			nodes:    nodes("a", "b"),
			existing: []bound{on("a", "loner", antiAffinity(term(corev1.LabelHostname, map[string]string{"app": "db"})))},
			pod:      testPod("db", "", labelled("app", "db")),
			want:     []string{"b"},
		},
		{
			name:     "anti-affinity over zones",
			nodes:    zonedNodes(map[string]string{"a1": "a", "a2": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web"))},
			pod:      testPod("w2", "", labelled("app", "web"), antiAffinity(term(zoneKey, web))),
			want:     []string{"b1"},
		},
		{
			name:     "affinity follows the zone of matching pods",
			nodes:    zonedNodes(map[string]string{"a1": "a", "a2": "a", "b1": "b"}),
			existing: []bound{on("a1", "cache", labelled("app", "cache"))},
			pod:      testPod("web", "", affinity(term(zoneKey, map[string]string{"app": "cache"}))),
			want:     []string{"a1", "a2"},
		},
		{
			name:     "affinity without matching pods",
			nodes:    append(zonedNodes(map[string]string{"a1": "a"}), testNode("plain", "8", "16Gi")),
			existing: []bound{on("a1", "other", labelled("app", "other"))},
			pod:      testPod("web", "", affinity(term(zoneKey, map[string]string{"app": "cache"}))),
			wantMsg:  "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
		},
		{
			name:  "first pod of a self-affine group goes where the topology exists",
			nodes: append(zonedNodes(map[string]string{"a1": "a"}), testNode("plain", "8", "16Gi")),
			pod:   testPod("web", "", labelled("app", "web"), affinity(term(zoneKey, web))),
			want:  []string{"a1"},
		},
		{
			name:     "terms see only their own namespace by default",
			nodes:    nodes("a"),
			existing: []bound{on("a", "w1", labelled("app", "web"), inNamespace("other"))},
			pod:      testPod("w2", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web))),
			want:     []string{"a"},
		},
		{
			name:       "namespace selector widens a term",
			nodes:      nodes("a"),
			namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "x"}}}},
			existing:   []bound{on("a", "w1", labelled("app", "web"), inNamespace("other"))},
			pod: testPod("w2", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web, func(t *corev1.PodAffinityTerm) {
				t.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
			}))),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. preemption: 0/1 nodes are available: 1 " + noVictims + ".",
		},
		{
			name:     "listed namespaces",
			nodes:    nodes("a", "b"),
			existing: []bound{on("a", "w1", labelled("app", "web"), inNamespace("other"))},
			pod: testPod("w2", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web, func(t *corev1.PodAffinityTerm) {
				t.Namespaces = []string{"other"}
			}))),
			want: []string{"b"},
		},
		{
			name:     "matchLabelKeys narrows anti-affinity to the same revision",
			nodes:    nodes("a", "b"),
			existing: []bound{on("a", "old", labelled("app", "web", "rev", "1")), on("b", "new", labelled("app", "web", "rev", "2"))},
			pod: testPod("w", "", labelled("app", "web", "rev", "2"), antiAffinity(term(corev1.LabelHostname, web, func(t *corev1.PodAffinityTerm) {
				t.MatchLabelKeys = []string{"rev"}
			}))),
			want: []string{"a"},
		},
		{
			name:     "spread fills the emptier zone",
			nodes:    zonedNodes(map[string]string{"a1": "a", "a2": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web")), on("a2", "w2", labelled("app", "web"))},
			pod:      testPod("w3", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web)),
			want:     []string{"b1"},
		},
		{
			name:     "spread within maxSkew",
			nodes:    zonedNodes(map[string]string{"a1": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web"))},
			pod:      testPod("w2", "", labelled("app", "web"), spread(zoneKey, 2, corev1.DoNotSchedule, web)),
			want:     []string{"a1", "b1"},
		},
		{
			name:  "spread with a zone full",
			nodes: zonedNodes(map[string]string{"a1": "a", "b1": "b"}),
			existing: []bound{
				on("a1", "w1", labelled("app", "web")), on("a1", "w2", labelled("app", "web")),
				on("b1", "w3", labelled("app", "web")), on("b1", "big", func(p *corev1.Pod) {
					p.Spec.Containers[0].Resources.Requests = testPod("", "8").Spec.Containers[0].Resources.Requests
				}),
			},
			pod:     testPod("w4", "100m", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web)),
			wantMsg: "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints. preemption: 0/2 nodes are available: 2 " + noVictims + ".",
		},
		{
			name:     "minDomains counts missing domains as empty",
			nodes:    zonedNodes(map[string]string{"a1": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web")), on("b1", "w2", labelled("app", "web"))},
			pod: testPod("w3", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
				c.MinDomains = ptr.To[int32](3)
			})),
			wantMsg: "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints. preemption: 0/2 nodes are available: 2 " + noVictims + ".",
		},
		{
			name:    "spread needs the topology label",
			nodes:   nodes("a"),
			pod:     testPod("w", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web)),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label). preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name: "nodeAffinityPolicy Honor ignores domains the pod cannot use",
			nodes: []*corev1.Node{
				testNode("a1", "8", "16Gi", inZone("a"), func(n *corev1.Node) { n.Labels["pool"] = "web" }),
				testNode("b1", "8", "16Gi", inZone("b"), func(n *corev1.Node) { n.Labels["pool"] = "web" }),
				testNode("c1", "8", "16Gi", inZone("c")),
			},
			existing: []bound{on("a1", "w1", labelled("app", "web")), on("b1", "w2", labelled("app", "web"))},
			pod: testPod("w3", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web), func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"pool": "web"}
			}),
			want: []string{"a1", "b1"},
		},
		{
			name: "nodeAffinityPolicy Ignore counts them",
			nodes: []*corev1.Node{
				testNode("a1", "8", "16Gi", inZone("a"), func(n *corev1.Node) { n.Labels["pool"] = "web" }),
				testNode("c1", "8", "16Gi", inZone("c")),
			},
			existing: []bound{on("a1", "w1", labelled("app", "web"))},
			pod: testPod("w2", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
				c.NodeAffinityPolicy = ptr.To(corev1.NodeInclusionPolicyIgnore)
			}), func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"pool": "web"}
			}),
			wantMsg: "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't match pod topology spread constraints. preemption: 0/2 nodes are available: 1 " + noVictims + ", 1 Preemption is not helpful for scheduling.",
		},
		{
			name: "nodeTaintsPolicy Honor ignores tainted domains",
			nodes: []*corev1.Node{
				testNode("a1", "8", "16Gi", inZone("a")),
				testNode("b1", "8", "16Gi", inZone("b"), func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}
				}),
			},
			existing: []bound{on("a1", "w1", labelled("app", "web"))},
			pod: testPod("w2", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
				c.NodeTaintsPolicy = ptr.To(corev1.NodeInclusionPolicyHonor)
			})),
			want: []string{"a1"},
		},
		{
			name:     "matchLabelKeys spreads each revision on its own",
			nodes:    zonedNodes(map[string]string{"a1": "a", "b1": "b"}),
			existing: []bound{on("a1", "old1", labelled("app", "web", "rev", "1")), on("a1", "old2", labelled("app", "web", "rev", "1"))},
			pod: testPod("new", "", labelled("app", "web", "rev", "2"), spread(zoneKey, 1, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
				c.MatchLabelKeys = []string{"rev"}
			})),
			want: []string{"a1", "b1"},
		},
		{
			name:     "pods being deleted do not count for spreading",
			nodes:    zonedNodes(map[string]string{"a1": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web")), on("b1", "going", labelled("app", "web"), func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} })},
			pod:      testPod("w2", "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web)),
			want:     []string{"b1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := newTestCache(c.nodes, c.existing, c.namespaces...)
			// Ties are broken at random: place a few times.
			for i := range 10 {
				pod := c.pod.DeepCopy()
				pod.UID = types.UID(fmt.Sprintf("%s-%d", pod.UID, i))
				node, fitErr := cache.place(newPodSpec(pod))
				if len(c.want) == 0 {
					if fitErr == nil {
						t.Fatalf("pod placed on %s, want failure", node)
					}
					if got := fitErr.Error(); got != c.wantMsg {
						t.Fatalf("message:\n got %s\nwant %s", got, c.wantMsg)
					}
					return
				}
				if fitErr != nil {
					t.Fatalf("pod fits nowhere: %v", fitErr)
				}
				if !slices.Contains(c.want, node) {
					t.Fatalf("pod placed on %s, want one of %v", node, c.want)
				}
				cache.RemovePod(pod.UID)
			}
		})
	}
}

// TestAssumedPodsCountForAffinity places replicas with anti-affinity to
// each other without any informer update: the cache's assumed pods must
// carry their labels, so each lands on its own node and the one too many
// fits nowhere.
func TestAssumedPodsCountForAffinity(t *testing.T) {
	cache := newTestCache(nodes("a", "b", "c", "d"), nil)
	web := map[string]string{"app": "web"}
	used := map[string]bool{}
	for i := range 4 {
		node, fitErr := cache.place(newPodSpec(testPod(fmt.Sprintf("w%d", i), "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web)))))
		if fitErr != nil {
			t.Fatalf("replica %d: %v", i, fitErr)
		}
		if used[node] {
			t.Fatalf("replica %d placed on %s, which already has one", i, node)
		}
		used[node] = true
	}
	if node, fitErr := cache.place(newPodSpec(testPod("w4", "", labelled("app", "web"), antiAffinity(term(corev1.LabelHostname, web))))); fitErr == nil {
		t.Fatalf("fifth replica placed on %s", node)
	}
}

// TestSpreadDoNotScheduleKeepsZonesEven places pods one after another
// with a zone constraint and checks the zones never differ by more than
// maxSkew.
func TestSpreadDoNotScheduleKeepsZonesEven(t *testing.T) {
	cache := newTestCache(zonedNodes(map[string]string{"a1": "a", "a2": "a", "a3": "a", "b1": "b", "c1": "c"}), nil)
	web := map[string]string{"app": "web"}
	zoneOf := map[string]string{"a1": "a", "a2": "a", "a3": "a", "b1": "b", "c1": "c"}
	perZone := map[string]int{}
	for i := range 12 {
		node, fitErr := cache.place(newPodSpec(testPod(fmt.Sprintf("w%d", i), "", labelled("app", "web"), spread(zoneKey, 1, corev1.DoNotSchedule, web))))
		if fitErr != nil {
			t.Fatalf("pod %d: %v", i, fitErr)
		}
		perZone[zoneOf[node]]++
		least, most := 1<<30, 0
		for _, z := range []string{"a", "b", "c"} {
			least, most = min(least, perZone[z]), max(most, perZone[z])
		}
		if most-least > 1 {
			t.Fatalf("after %d pods zones are %v", i+1, perZone)
		}
	}
}

func TestScores(t *testing.T) {
	web := map[string]string{"app": "web"}
	cases := []struct {
		name     string
		nodes    []*corev1.Node
		existing []bound
		pod      *corev1.Pod
		want     string
	}{
		{
			name:     "ScheduleAnyway prefers the emptier zone",
			nodes:    zonedNodes(map[string]string{"a1": "a", "a2": "a", "b1": "b"}),
			existing: []bound{on("a1", "w1", labelled("app", "web")), on("a2", "w2", labelled("app", "web"))},
			pod:      testPod("w3", "", labelled("app", "web"), spread(zoneKey, 1, corev1.ScheduleAnyway, web)),
			want:     "b1",
		},
		{
			name:     "preferred affinity",
			nodes:    nodes("a", "b", "c"),
			existing: []bound{on("b", "cache", labelled("app", "cache"))},
			pod: testPod("web", "", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
					{Weight: 100, PodAffinityTerm: term(corev1.LabelHostname, map[string]string{"app": "cache"})},
				}}}
			}),
			want: "b",
		},
		{
			name:     "preferred anti-affinity",
			nodes:    nodes("a", "b"),
			existing: []bound{on("a", "w1", labelled("app", "web"))},
			pod: testPod("w2", "", labelled("app", "web"), func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
					{Weight: 100, PodAffinityTerm: term(corev1.LabelHostname, web)},
				}}}
			}),
			want: "b",
		},
		{
			name:     "existing pod's required affinity draws the pods it selects",
			nodes:    nodes("a", "b", "c"),
			existing: []bound{on("c", "fan", affinity(term(corev1.LabelHostname, web)))},
			pod:      testPod("w", "", labelled("app", "web")),
			want:     "c",
		},
		{
			name: "untolerated PreferNoSchedule taints repel",
			nodes: []*corev1.Node{
				testNode("a", "8", "16Gi", func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}}
				}),
				testNode("b", "8", "16Gi"),
			},
			pod:  testPod("p", ""),
			want: "b",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := newTestCache(c.nodes, c.existing)
			for i := range 10 {
				pod := c.pod.DeepCopy()
				pod.UID = types.UID(fmt.Sprintf("%s-%d", pod.UID, i))
				node, fitErr := cache.place(newPodSpec(pod))
				if fitErr != nil {
					t.Fatal(fitErr)
				}
				if node != c.want {
					t.Fatalf("attempt %d placed on %s, want %s", i, node, c.want)
				}
				cache.RemovePod(pod.UID)
			}
		})
	}
}
