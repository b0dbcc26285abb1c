package daemonset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestEligible(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "ns", UID: "uid"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}},
		}},
	}
	pod := podTemplate(ds, "h1")
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	ssd := map[string]string{"disk": "ssd"}
	cases := []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"matching node", node(ssd), true},
		{"selector mismatch", node(map[string]string{"disk": "hdd"}), false},
		{"unreachable node keeps its daemon", node(ssd, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), true},
		{"cordoned node keeps its daemon", node(ssd, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true},
		{"foreign NoSchedule taint", node(ssd, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}), false},
		{"PreferNoSchedule taint is ignored", node(ssd, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectPreferNoSchedule}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Eligible(pod, c.node); got != c.want {
				t.Fatalf("Eligible = %v, want %v", got, c.want)
			}
		})
	}
}

func TestPinToNode(t *testing.T) {
	pod := &corev1.Pod{}
	pinToNode(pod, "node-7")
	if got := targetNode(pod); got != "node-7" {
		t.Fatalf("targetNode = %q, want node-7", got)
	}
	if pod.Labels[revisionHashLabel] != "" {
		t.Fatal("pinToNode must not touch labels")
	}
}

// daemonPod is a pod at revision hash, available (ready long enough) or not.
func daemonPod(name, hash string, available bool) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{revisionHashLabel: hash}}}
	if available {
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return pod
}

func TestRollingUpdate(t *testing.T) {
	strategy := func(unavailable, surge int) appsv1.DaemonSetUpdateStrategy {
		u, s := intstr.FromInt(unavailable), intstr.FromInt(surge)
		return appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &u, MaxSurge: &s}}
	}
	old := func(node string) *corev1.Pod { return daemonPod("old-"+node, "h1", true) }
	cases := []struct {
		name        string
		strategy    appsv1.DaemonSetUpdateStrategy
		kept        map[string][]*corev1.Pod
		wantCreate  []string
		wantVictims []string
	}{
		{
			name:        "maxUnavailable 1 replaces one node at a time",
			strategy:    strategy(1, 0),
			kept:        map[string][]*corev1.Pod{"a": {old("a")}, "b": {old("b")}, "c": {old("c")}},
			wantVictims: []string{"old-a"},
		},
		{
			name:        "maxUnavailable 2",
			strategy:    strategy(2, 0),
			kept:        map[string][]*corev1.Pod{"a": {old("a")}, "b": {old("b")}, "c": {old("c")}},
			wantVictims: []string{"old-a", "old-b"},
		},
		{
			name:     "a new pod not yet available uses the budget",
			strategy: strategy(1, 0),
			kept:     map[string][]*corev1.Pod{"a": {daemonPod("new-a", "h2", false)}, "b": {old("b")}},
		},
		{
			name:        "an unavailable old pod is replaced regardless of the budget",
			strategy:    strategy(1, 0),
			kept:        map[string][]*corev1.Pod{"a": {daemonPod("new-a", "h2", false)}, "b": {daemonPod("old-b", "h1", false)}, "c": {old("c")}},
			wantVictims: []string{"old-b"},
		},
		{
			name:       "maxSurge 1 starts one new pod beside the old",
			strategy:   strategy(0, 1),
			kept:       map[string][]*corev1.Pod{"a": {old("a")}, "b": {old("b")}},
			wantCreate: []string{"a"},
		},
		{
			name:     "surge waits while the new pod is not available",
			strategy: strategy(0, 1),
			kept:     map[string][]*corev1.Pod{"a": {old("a"), daemonPod("new-a", "h2", false)}, "b": {old("b")}},
		},
		{
			name:        "surge deletes the old pod once the new one is available",
			strategy:    strategy(0, 1),
			kept:        map[string][]*corev1.Pod{"a": {old("a"), daemonPod("new-a", "h2", true)}, "b": {old("b")}},
			wantCreate:  []string{"b"},
			wantVictims: []string{"old-a"},
		},
		{
			name:       "surge replaces an unavailable old pod at once",
			strategy:   strategy(0, 1),
			kept:       map[string][]*corev1.Pod{"a": {old("a"), daemonPod("new-a", "h2", false)}, "b": {daemonPod("old-b", "h1", false)}},
			wantCreate: []string{"b"},
		},
		{
			name:        "both zero falls back to one unavailable",
			strategy:    strategy(0, 0),
			kept:        map[string][]*corev1.Pod{"a": {old("a")}, "b": {old("b")}},
			wantVictims: []string{"old-a"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: c.strategy}}
			create, victims := rollingUpdate(ds, len(c.kept), c.kept, "h2", time.Now())
			var victimNames []string
			for _, pod := range victims {
				victimNames = append(victimNames, pod.Name)
			}
			if !slices.Equal(create, c.wantCreate) || !slices.Equal(victimNames, c.wantVictims) {
				t.Fatalf("create %v delete %v, want create %v delete %v", create, victimNames, c.wantCreate, c.wantVictims)
			}
		})
	}
}

func TestDedupe(t *testing.T) {
	cases := []struct {
		name      string
		surge     bool
		live      []*corev1.Pod
		wantKeep  []string
		wantExtra []string
	}{
		{"without surge the oldest stays", false, []*corev1.Pod{daemonPod("p1", "h1", true), daemonPod("p2", "h2", false)}, []string{"p1"}, []string{"p2"}},
		{"surge keeps a ready old pod beside an unready new one", true, []*corev1.Pod{daemonPod("old", "h1", true), daemonPod("new", "h2", false)}, []string{"old", "new"}, nil},
		{"surge drops the old pod once the new one is ready", true, []*corev1.Pod{daemonPod("old", "h1", true), daemonPod("new", "h2", true)}, []string{"new"}, []string{"old"}},
		{"surge drops an unready old pod", true, []*corev1.Pod{daemonPod("old", "h1", false), daemonPod("new", "h2", false)}, []string{"new"}, []string{"old"}},
		{"surge drops a second new pod", true, []*corev1.Pod{daemonPod("new1", "h2", false), daemonPod("new2", "h2", false)}, []string{"new1"}, []string{"new2"}},
	}
	names := func(pods []*corev1.Pod) []string {
		var out []string
		for _, pod := range pods {
			out = append(out, pod.Name)
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keep, extra := dedupe(c.live, "h2", c.surge)
			if !slices.Equal(names(keep), c.wantKeep) || !slices.Equal(names(extra), c.wantExtra) {
				t.Fatalf("keep %v extra %v, want keep %v extra %v", names(keep), names(extra), c.wantKeep, c.wantExtra)
			}
		})
	}
}
