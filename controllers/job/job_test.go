package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestWantActive(t *testing.T) {
	cases := []struct {
		name                     string
		completions, parallelism *int32
		suspend                  bool
		succeeded                int32
		want                     int32
	}{
		{"defaults run one pod", nil, nil, false, 0, 1},
		{"work queue runs parallelism until a success", nil, ptr.To[int32](3), false, 0, 3},
		{"work queue stops after a success", nil, ptr.To[int32](3), false, 1, 0},
		{"completions cap parallelism", ptr.To[int32](5), ptr.To[int32](2), false, 0, 2},
		{"only the remaining completions run", ptr.To[int32](5), ptr.To[int32](3), false, 4, 1},
		{"done", ptr.To[int32](5), ptr.To[int32](3), false, 5, 0},
		{"suspended", ptr.To[int32](5), ptr.To[int32](3), true, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: c.completions, Parallelism: c.parallelism, Suspend: &c.suspend}}
			if got := WantActive(job, c.succeeded); got != c.want {
				t.Fatalf("WantActive = %d, want %d", got, c.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	now := time.Unix(1000, 0)
	start := metav1.NewTime(now.Add(-time.Minute))
	cases := []struct {
		name              string
		spec              batchv1.JobSpec
		succeeded, failed int32
		want              batchv1.JobConditionType
	}{
		{"running", batchv1.JobSpec{Completions: ptr.To[int32](2)}, 1, 0, ""},
		{"completions reached", batchv1.JobSpec{Completions: ptr.To[int32](2)}, 2, 0, batchv1.JobComplete},
		{"work queue success", batchv1.JobSpec{}, 1, 0, batchv1.JobComplete},
		{"within backoff limit", batchv1.JobSpec{BackoffLimit: ptr.To[int32](1)}, 0, 1, ""},
		{"backoff limit exceeded", batchv1.JobSpec{BackoffLimit: ptr.To[int32](1)}, 0, 2, batchv1.JobFailed},
		{"default backoff limit is six", batchv1.JobSpec{}, 0, 7, batchv1.JobFailed},
		{"deadline exceeded", batchv1.JobSpec{ActiveDeadlineSeconds: ptr.To[int64](30)}, 0, 0, batchv1.JobFailed},
		{"deadline not reached", batchv1.JobSpec{ActiveDeadlineSeconds: ptr.To[int64](90)}, 0, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := judge(&batchv1.Job{Spec: c.spec}, &start, c.succeeded, c.failed, now)
			var gotType batchv1.JobConditionType
			if got != nil {
				gotType = got.final.Type
			}
			if gotType != c.want {
				t.Fatalf("judge = %q, want %q", gotType, c.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(10000, 0)
	finished := func(phase corev1.PodPhase, ago time.Duration) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Phase: phase,
			ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				FinishedAt: metav1.NewTime(now.Add(-ago)),
			}}}},
		}}
	}
	cases := []struct {
		name string
		pods []*corev1.Pod
		want time.Duration
	}{
		{"no failures", []*corev1.Pod{finished(corev1.PodSucceeded, time.Second)}, 0},
		{"one failure waits the base", []*corev1.Pod{finished(corev1.PodFailed, 4*time.Second)}, 6 * time.Second},
		{"two failures double it", []*corev1.Pod{finished(corev1.PodFailed, 30*time.Second), finished(corev1.PodFailed, 5*time.Second)}, 15 * time.Second},
		{"a later success resets the count", []*corev1.Pod{finished(corev1.PodFailed, 30*time.Second), finished(corev1.PodSucceeded, 20*time.Second), finished(corev1.PodFailed, 5*time.Second)}, 5 * time.Second},
		{"back-off over", []*corev1.Pod{finished(corev1.PodFailed, time.Minute)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := RetryAfter(c.pods, now); got != c.want {
				t.Fatalf("RetryAfter = %v, want %v", got, c.want)
			}
		})
	}
}
