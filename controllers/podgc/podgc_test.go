package podgc

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func pod(name string, age time.Duration, phase corev1.PodPhase, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(time.Unix(10000, 0).Add(-age))},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func TestTerminatedBeyondThreshold(t *testing.T) {
	pods := []corev1.Pod{
		*pod("running", 4*time.Hour, corev1.PodRunning, "n"),
		*pod("new-done", time.Hour, corev1.PodSucceeded, "n"),
		*pod("old-failed", 3*time.Hour, corev1.PodFailed, "n"),
		*pod("mid-done", 2*time.Hour, corev1.PodSucceeded, "n"),
	}
	cases := []struct {
		threshold int
		want      []string
	}{
		{0, nil},
		{3, nil},
		{2, []string{"old-failed"}},
		{1, []string{"old-failed", "mid-done"}},
	}
	for _, c := range cases {
		got := TerminatedBeyondThreshold(pods, c.threshold)
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		if len(names) != len(c.want) || (len(names) > 0 && names[0] != c.want[0]) || (len(names) > 1 && names[1] != c.want[1]) {
			t.Errorf("threshold %d: got %v, want %v", c.threshold, names, c.want)
		}
	}
}

func TestCollectDeletesPodsOfDeletedNodes(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "alive"}}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).
		WithObjects(node, pod("kept", time.Minute, corev1.PodRunning, "alive"), pod("orphan", time.Minute, corev1.PodRunning, "gone")).
		WithStatusSubresource(&corev1.Pod{}).Build()
	gc := &Collector{Client: c, APIReader: c, Options: Options{TerminatedPodThreshold: DefaultTerminatedPodThreshold}}
	if err := gc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, p := range pods.Items {
		left[p.Name] = true
	}
	if !left["kept"] || left["orphan"] {
		t.Fatalf("pods left = %v, want kept and not orphan", left)
	}
}
