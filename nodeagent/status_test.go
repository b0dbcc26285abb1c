package nodeagent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPodPhase(t *testing.T) {
	running := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	exited := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	creating := corev1.ContainerStatus{State: waiting("ContainerCreating", "")}
	backingOff := corev1.ContainerStatus{
		State:                waiting("CrashLoopBackOff", ""),
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}},
	}
	cases := []struct {
		name        string
		policy      corev1.RestartPolicy
		initialized bool
		statuses    []corev1.ContainerStatus
		want        corev1.PodPhase
	}{
		{"init not done", corev1.RestartPolicyAlways, false, []corev1.ContainerStatus{creating}, corev1.PodPending},
		{"still creating", corev1.RestartPolicyAlways, true, []corev1.ContainerStatus{running, creating}, corev1.PodPending},
		{"all running", corev1.RestartPolicyAlways, true, []corev1.ContainerStatus{running, running}, corev1.PodRunning},
		{"crash looping", corev1.RestartPolicyAlways, true, []corev1.ContainerStatus{backingOff}, corev1.PodRunning},
		{"always, exited", corev1.RestartPolicyAlways, true, []corev1.ContainerStatus{exited(0)}, corev1.PodRunning},
		{"never, succeeded", corev1.RestartPolicyNever, true, []corev1.ContainerStatus{exited(0), exited(0)}, corev1.PodSucceeded},
		{"never, one failed", corev1.RestartPolicyNever, true, []corev1.ContainerStatus{exited(0), exited(2)}, corev1.PodFailed},
		{"on failure, succeeded", corev1.RestartPolicyOnFailure, true, []corev1.ContainerStatus{exited(0)}, corev1.PodSucceeded},
		{"on failure, failed restarts", corev1.RestartPolicyOnFailure, true, []corev1.ContainerStatus{exited(1)}, corev1.PodRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := podPhase(c.policy, c.initialized, c.statuses); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "1"},
		{"x-$(A)-$(B)-y", "x-1-two-y"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"cost $5", "cost $5"},
		{"open $(A", "open $(A"},
		{"end$", "end$"},
	}
	for _, c := range cases {
		if got := expand(c.in, lookup); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestProbeThresholds(t *testing.T) {
	probe := &corev1.Probe{SuccessThreshold: 2, FailureThreshold: 3}
	var s probeState
	steps := []struct {
		success    bool
		wantFailed bool
		wantOK     bool
	}{
		{true, false, false},
		{true, false, true},
		{false, false, true},
		{false, false, true},
		{false, true, false},
		{true, false, false},
	}
	for i, step := range steps {
		failed := s.observe(probe, step.success)
		if failed != step.wantFailed || s.ok != step.wantOK {
			t.Errorf("step %d: failed=%v ok=%v, want %v %v", i, failed, s.ok, step.wantFailed, step.wantOK)
		}
	}
}
