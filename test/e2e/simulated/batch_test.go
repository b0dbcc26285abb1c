package simulated

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"tower.dev/tower/nodeagent/simulator"
)

// TestJobCompletes runs a Job of three completions, two at a time, whose
// simulated pods exit 0 shortly after they start.
func TestJobCompletes(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](3),
			Parallelism: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{simulator.ExitAfterAnnotation: "500ms"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "pi", Image: "perl"}},
				},
			},
		},
	}
	if _, err := cluster.clientset.BatchV1().Jobs(ns).Create(t.Context(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "wait", "--for=condition=Complete", "job/pi", "-n", ns, "--timeout=60s")
	got, err := cluster.clientset.BatchV1().Jobs(ns).Get(t.Context(), "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Succeeded != 3 || got.Status.Active != 0 || got.Status.Failed != 0 || got.Status.CompletionTime == nil || got.Status.StartTime == nil {
		t.Fatalf("job status = %+v, want 3 succeeded, none active or failed, start and completion times", got.Status)
	}
}

// TestJobFailsAfterBackoffLimit runs pods that exit 1: with backoffLimit
// 1 the second failure fails the Job.
func TestJobFailsAfterBackoffLimit(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "flaky", Namespace: ns},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](1),
			TTLSecondsAfterFinished: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
					simulator.ExitAfterAnnotation: "200ms",
					simulator.ExitCodeAnnotation:  "1",
				}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "flaky", Image: "busybox"}},
				},
			},
		},
	}
	if _, err := cluster.clientset.BatchV1().Jobs(ns).Create(t.Context(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "wait", "--for=condition=Failed", "job/flaky", "-n", ns, "--timeout=60s")
	got, err := cluster.clientset.BatchV1().Jobs(ns).Get(t.Context(), "flaky", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Failed != 2 {
		t.Errorf("failed = %d, want 2", got.Status.Failed)
	}
	for _, c := range got.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Reason != "BackoffLimitExceeded" {
			t.Errorf("Failed condition reason = %q, want BackoffLimitExceeded", c.Reason)
		}
	}
	eventually(t, 30*time.Second, "finished job deleted after its TTL", func(ctx context.Context) (bool, error) {
		_, err := cluster.clientset.BatchV1().Jobs(ns).Get(ctx, "flaky", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// TestPodGCDeletesPodsOfDeletedNodes binds a pod to a node that does not
// exist: no kubelet will ever run it, and pod GC deletes it.
func TestPodGCDeletesPodsOfDeletedNodes(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stranded", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:   "node-that-was-deleted",
			Containers: []corev1.Container{{Name: "c", Image: "c"}},
		},
	}
	if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "orphaned pod collected", func(ctx context.Context) (bool, error) {
		_, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, "stranded", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// TestIndexedJob runs an Indexed Job: each index 0..2 gets its own pod
// with the completion-index annotation, and completedIndexes reports them.
func TestIndexedJob(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	mode := batchv1.IndexedCompletion
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "shards", Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions:    ptr.To[int32](3),
			Parallelism:    ptr.To[int32](3),
			CompletionMode: &mode,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{simulator.ExitAfterAnnotation: "300ms"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "shard", Image: "shard"}},
				},
			},
		},
	}
	if _, err := cluster.clientset.BatchV1().Jobs(ns).Create(t.Context(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "wait", "--for=condition=Complete", "job/shards", "-n", ns, "--timeout=60s")
	got, err := cluster.clientset.BatchV1().Jobs(ns).Get(t.Context(), "shards", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.CompletedIndexes != "0-2" || got.Status.Succeeded != 3 {
		t.Fatalf("completedIndexes = %q, succeeded = %d; want 0-2 and 3", got.Status.CompletedIndexes, got.Status.Succeeded)
	}
	pods, err := cluster.clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		seen[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = true
	}
	if len(pods.Items) != 3 || !seen["0"] || !seen["1"] || !seen["2"] {
		t.Fatalf("pods' completion indexes = %v over %d pods, want 0, 1 and 2", seen, len(pods.Items))
	}
}
