package scheduler

import (
	"slices"
	"testing"
)

func TestOrderedNodesFollowAddsAndRemoves(t *testing.T) {
	names := func(c *Cache) []string {
		var out []string
		for _, info := range c.ordered {
			out = append(out, info.name)
		}
		return out
	}
	cache := NewCache()
	for _, name := range []string{"c", "a", "e", "b", "d"} {
		cache.SetNode(testNode(name, "1", "1Gi"))
	}
	// A refresh of a known node keeps one entry.
	cache.SetNode(testNode("c", "2", "1Gi"))
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"added out of order", func() {}, []string{"a", "b", "c", "d", "e"}},
		{"first removed", func() { cache.RemoveNode("a") }, []string{"b", "c", "d", "e"}},
		{"middle removed", func() { cache.RemoveNode("c") }, []string{"b", "d", "e"}},
		{"unknown removed", func() { cache.RemoveNode("zz") }, []string{"b", "d", "e"}},
		{"re-added", func() { cache.SetNode(testNode("c", "1", "1Gi")) }, []string{"b", "c", "d", "e"}},
		{"last removed", func() { cache.RemoveNode("e") }, []string{"b", "c", "d"}},
	}
	for _, s := range steps {
		s.do()
		if got := names(cache); !slices.Equal(got, s.want) {
			t.Errorf("%s: ordered = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestNodeWithPodsStaysCountedAfterRemoval(t *testing.T) {
	cache := NewCache()
	cache.SetNode(testNode("a", "1", "1Gi"))
	if _, fitErr := cache.place(newPodSpec(testPod("p", "600m"))); fitErr != nil {
		t.Fatal(fitErr)
	}
	cache.RemoveNode("a")
	if len(cache.ordered) != 0 {
		t.Fatalf("removed node still offered: %d nodes", len(cache.ordered))
	}
	// Back again, it still carries the pod it had.
	cache.SetNode(testNode("a", "1", "1Gi"))
	if _, fitErr := cache.place(newPodSpec(testPod("q", "600m"))); fitErr == nil {
		t.Fatal("second pod fit although the first one's usage should still count")
	}
}

func TestSelectHostPicksAmongBestTies(t *testing.T) {
	candidates := []candidate{{name: "a", score: 5}, {name: "b", score: 9}, {name: "c", score: 9}, {name: "d", score: 3}, {name: "e", score: 9}}
	seen := map[string]int{}
	// 300 draws miss one of three equal nodes with probability 3·(2/3)^300.
	for range 300 {
		seen[selectHost(candidates)]++
	}
	for name := range seen {
		if name != "b" && name != "c" && name != "e" {
			t.Errorf("selectHost chose %q, which is not among the best", name)
		}
	}
	for _, name := range []string{"b", "c", "e"} {
		if seen[name] == 0 {
			t.Errorf("selectHost never chose %q among equal best nodes: %v", name, seen)
		}
	}
	if got := selectHost(candidates[:1]); got != "a" {
		t.Errorf("selectHost of one candidate = %q, want a", got)
	}
}
