// Package cronjob creates Jobs on a cron schedule, as
// kube-controller-manager's cronjob controller does: one Job per
// scheduled time (named <cronjob>-<minutes since the epoch>), at most the
// latest missed time within startingDeadlineSeconds, concurrencyPolicy
// Allow, Forbid or Replace, suspend, status.active, lastScheduleTime and
// lastSuccessfulTime, and pruning of finished Jobs beyond the history
// limits.
package cronjob

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/workload"
)

// Name is the controller's name in --controllers.
const Name = "cronjob"

// scheduledTimestampAnnotation records on each Job the time it was
// scheduled for.
const scheduledTimestampAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Reconciler is the CronJob controller.
type Reconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	now      func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("cronjob-controller"), now: time.Now}
	return ctrl.NewControllerManagedBy(mgr).
		Named("cronjob").
		For(&batchv1.CronJob{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &batchv1.CronJob{}, handler.OnlyControllerOwner())).
		Complete(r)
}

// Reconcile syncs one CronJob and comes back at its next scheduled time.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cj := &batchv1.CronJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, cj); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if cj.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	var list batchv1.JobList
	if err := r.Client.List(ctx, &list, client.InNamespace(cj.Namespace)); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing jobs: %w", err)
	}
	var active, succeeded, failed []*batchv1.Job
	status := cj.Status.DeepCopy()
	for i := range list.Items {
		job := &list.Items[i]
		if ref := workload.ControllerRef(job); ref == nil || ref.UID != cj.UID {
			continue
		}
		switch finishedType(job) {
		case batchv1.JobComplete:
			succeeded = append(succeeded, job)
			if t := job.Status.CompletionTime; t != nil && (status.LastSuccessfulTime == nil || status.LastSuccessfulTime.Before(t)) {
				status.LastSuccessfulTime = t.DeepCopy()
			}
		case batchv1.JobFailed:
			failed = append(failed, job)
		default:
			if job.DeletionTimestamp == nil {
				active = append(active, job)
			}
		}
	}

	schedule, err := r.location(cj)
	if err != nil {
		r.Recorder.Eventf(cj, nil, corev1.EventTypeWarning, "UnparseableSchedule", "Schedule", "unparseable schedule: %v", err)
		return reconcile.Result{}, nil
	}
	now := r.now()
	loc := schedule.loc
	var requeue time.Duration
	if !ptrTrue(cj.Spec.Suspend) {
		scheduled, next := MostRecent(schedule.Schedule, earliest(cj), now.In(loc))
		if !next.IsZero() {
			requeue = next.Sub(now)
		}
		if !scheduled.IsZero() && withinDeadline(cj, scheduled, now) && !alreadyRan(cj, scheduled) {
			created, err := r.run(ctx, cj, scheduled, active)
			if err != nil {
				return reconcile.Result{}, err
			}
			if created != nil {
				active = append(active, created)
			}
			if created != nil || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
				t := metav1.NewTime(scheduled)
				status.LastScheduleTime = &t
			}
		}
	}

	status.Active = nil
	for _, job := range active {
		if job.DeletionTimestamp != nil {
			continue
		}
		status.Active = append(status.Active, corev1.ObjectReference{
			Kind: "Job", Namespace: job.Namespace, Name: job.Name, UID: job.UID,
			APIVersion: batchv1.SchemeGroupVersion.String(), ResourceVersion: job.ResourceVersion,
		})
	}
	sort.Slice(status.Active, func(i, j int) bool { return status.Active[i].Name < status.Active[j].Name })
	if !apiequality.Semantic.DeepEqual(*status, cj.Status) {
		updated := cj.DeepCopy()
		updated.Status = *status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating cronjob status: %w", err)
		}
	}
	if err := r.prune(ctx, succeeded, limitOr(cj.Spec.SuccessfulJobsHistoryLimit, 3)); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.prune(ctx, failed, limitOr(cj.Spec.FailedJobsHistoryLimit, 1)); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

type located struct {
	*Schedule
	loc *time.Location
}

func (r *Reconciler) location(cj *batchv1.CronJob) (located, error) {
	loc := time.Local
	if cj.Spec.TimeZone != nil {
		l, err := time.LoadLocation(*cj.Spec.TimeZone)
		if err != nil {
			return located{}, fmt.Errorf("time zone %q: %w", *cj.Spec.TimeZone, err)
		}
		loc = l
	}
	s, err := ParseSchedule(cj.Spec.Schedule)
	if err != nil {
		return located{}, err
	}
	return located{Schedule: s, loc: loc}, nil
}

// run applies the concurrency policy and creates the Job for scheduled;
// it returns nil when the policy skips this run.
func (r *Reconciler) run(ctx context.Context, cj *batchv1.CronJob, scheduled time.Time, active []*batchv1.Job) (*batchv1.Job, error) {
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(active) > 0 {
			return nil, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, job := range active {
			if err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("replacing job %s: %w", job.Name, err)
			}
			r.Recorder.Eventf(cj, job, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "Deleted job %v", job.Name)
		}
	}
	job := JobFor(cj, scheduled)
	if err := r.Client.Create(ctx, job); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil
		}
		r.Recorder.Eventf(cj, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "Error creating job: %v", err)
		return nil, fmt.Errorf("creating job %s: %w", job.Name, err)
	}
	r.Recorder.Eventf(cj, job, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "Created job %v", job.Name)
	return job, nil
}

// JobFor is the Job a CronJob runs for the scheduled time.
func JobFor(cj *batchv1.CronJob, scheduled time.Time) *batchv1.Job {
	t := cj.Spec.JobTemplate.DeepCopy()
	annotations := map[string]string{}
	for k, v := range t.Annotations {
		annotations[k] = v
	}
	annotations[scheduledTimestampAnnotation] = scheduled.Format(time.RFC3339)
	ref := workload.NewControllerRef(cj, controllerKind.GroupVersion().String(), controllerKind.Kind)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            cj.Name + "-" + strconv.FormatInt(scheduled.Unix()/60, 10),
			Namespace:       cj.Namespace,
			Labels:          t.Labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*ref},
		},
		Spec: t.Spec,
	}
}

// MostRecent is the latest scheduled time in (after, now] (zero if none)
// and the first one after now.
func MostRecent(s *Schedule, after, now time.Time) (time.Time, time.Time) {
	var last time.Time
	for t := s.Next(after.In(now.Location())); !t.IsZero(); t = s.Next(t) {
		if t.After(now) {
			return last, t
		}
		last = t
	}
	return last, time.Time{}
}

// earliest is where the search for missed times starts: the last
// scheduled run, or the CronJob's creation.
func earliest(cj *batchv1.CronJob) time.Time {
	if cj.Status.LastScheduleTime != nil {
		return cj.Status.LastScheduleTime.Time
	}
	return cj.CreationTimestamp.Time
}

func alreadyRan(cj *batchv1.CronJob, scheduled time.Time) bool {
	return cj.Status.LastScheduleTime != nil && !cj.Status.LastScheduleTime.Time.Before(scheduled)
}

func withinDeadline(cj *batchv1.CronJob, scheduled, now time.Time) bool {
	if cj.Spec.StartingDeadlineSeconds == nil {
		return true
	}
	return !now.After(scheduled.Add(time.Duration(*cj.Spec.StartingDeadlineSeconds) * time.Second))
}

// prune deletes the oldest finished Jobs beyond limit.
func (r *Reconciler) prune(ctx context.Context, jobs []*batchv1.Job, limit int) error {
	if len(jobs) <= limit {
		return nil
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].CreationTimestamp.Before(&jobs[j].CreationTimestamp) })
	for _, job := range jobs[:len(jobs)-limit] {
		if job.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pruning job %s: %w", job.Name, err)
		}
	}
	return nil
}

func finishedType(job *batchv1.Job) batchv1.JobConditionType {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

func limitOr(limit *int32, def int) int {
	if limit == nil {
		return def
	}
	return int(*limit)
}

func ptrTrue(b *bool) bool { return b != nil && *b }
