package cronjob

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

type discardRecorder struct{ recorder.EventRecorder }

func (discardRecorder) Eventf(_, _ runtime.Object, _, _, _, _ string, _ ...any) {}

func TestReconcileCreatesDueJobOnceAndForbidsOverlap(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 11, 24, 7, 0, 30, 0, time.UTC)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "tick", Namespace: "ns", UID: "cj-uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{
			Schedule:          "* * * * *",
			TimeZone:          ptr.To("UTC"),
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "c"}}},
			}}},
		},
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(cj).WithStatusSubresource(&batchv1.CronJob{}).Build()
	now := created.Add(45 * time.Second)
	r := &Reconciler{Client: c, Recorder: discardRecorder{}, now: func() time.Time { return now }}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(cj)}

	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != 45*time.Second {
		t.Errorf("RequeueAfter = %v, want the 45s to 07:02", res.RequeueAfter)
	}
	jobs := func() []batchv1.Job {
		var list batchv1.JobList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	if got := jobs(); len(got) != 1 || got[0].Name != "tick-29925061" {
		t.Fatalf("jobs = %v, want tick-29925061 for 07:01", got)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := jobs(); len(got) != 1 {
		t.Fatalf("second pass created another job: %d jobs", len(got))
	}
	// At 07:02 the first Job still runs: Forbid skips the run.
	now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := jobs(); len(got) != 1 {
		t.Fatalf("Forbid created an overlapping job: %d jobs", len(got))
	}
	got := &batchv1.CronJob{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Active) != 1 || got.Status.LastScheduleTime == nil || !got.Status.LastScheduleTime.Time.Equal(time.Date(2026, 11, 24, 7, 1, 0, 0, time.UTC)) {
		t.Fatalf("status = %+v", got.Status)
	}
}
