package printers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientprinters "k8s.io/cli-runtime/pkg/printers"
)

// kubectlGet renders obj the way `kubectl get` does against the server: the
// Table travels as JSON and kubectl's own table printer lays it out.
func kubectlGet(t *testing.T, obj runtime.Object, wide bool) []string {
	t.Helper()
	encoded, err := json.Marshal(convert(t, obj))
	if err != nil {
		t.Fatalf("encoding table: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(encoded, &table); err != nil {
		t.Fatalf("decoding table: %v", err)
	}
	var out bytes.Buffer
	if err := clientprinters.NewTablePrinter(clientprinters.PrintOptions{Wide: wide}).PrintObj(&table, &out); err != nil {
		t.Fatalf("kubectl table printer: %v", err)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		lines = append(lines, strings.Join(strings.Fields(line), " "))
	}
	return lines
}

func TestKubectlRendersPods(t *testing.T) {
	restarted := running("sidecar")
	restarted.Ready = false
	restarted.RestartCount = 3
	restarted.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: ago(5 * time.Minute)}
	list := &corev1.PodList{Items: []corev1.Pod{{
		ObjectMeta: objectMeta("web", 20*time.Minute),
		Spec:       corev1.PodSpec{NodeName: "gate-1", Containers: containers("app", "sidecar")},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			ContainerStatuses: []corev1.ContainerStatus{running("app"), restarted},
		},
	}}}

	tests := []struct {
		wide bool
		want []string
	}{
		{false, []string{"NAME READY STATUS RESTARTS AGE", "web 1/2 Running 3 (5m ago) 20m"}},
		{true, []string{
			"NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
			"web 1/2 Running 3 (5m ago) 20m 10.0.0.7 gate-1 <none> <none>",
		}},
	}
	for _, tt := range tests {
		if got := kubectlGet(t, list, tt.wide); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("wide=%v output:\n%s\nwant:\n%s", tt.wide, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}
