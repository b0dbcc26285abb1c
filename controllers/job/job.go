// Package job runs Jobs to completion as kube-controller-manager's job
// controller does: it keeps up to parallelism pods running until
// completions pods have succeeded (or, without completions, until one has
// and the rest are done), fails the Job after more than backoffLimit pod
// failures or past activeDeadlineSeconds, reports active, ready,
// succeeded and failed counts with upstream's conditions, and deletes
// finished Jobs after ttlSecondsAfterFinished.
package job

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/workload"
	"tower.dev/tower/controllers/replicaset"
)

// Name is the controller's name in --controllers.
const Name = "job"

// defaultBackoffLimit applies when spec.backoffLimit is unset.
const defaultBackoffLimit = 6

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Reconciler is the Job controller.
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache, to recheck a Job before it adopts
	// a pod.
	APIReader    client.Reader
	Recorder     recorder.EventRecorder
	expectations *workload.Expectations
	now          func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("job-controller"),
		expectations: workload.NewExpectations(),
		now:          time.Now,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("job").
		For(&batchv1.Job{}).
		Watches(&corev1.Pod{}, workload.OwnedPodHandler(controllerKind, r.expectations)).
		Watches(&corev1.Pod{}, workload.EnqueueAdopters(mgr.GetClient(), &batchv1.JobList{}, func(job *batchv1.Job) *metav1.LabelSelector { return job.Spec.Selector })).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile syncs one Job.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.String()
	job := &batchv1.Job{}
	if err := r.Client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.expectations.Forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting job: %w", err)
	}
	now := r.now()
	if finishedAt, done := finished(job); done {
		return r.cleanUpFinished(ctx, job, finishedAt, now)
	}
	satisfied := r.expectations.Satisfied(key)
	pods, err := r.ownedPods(ctx, job)
	if err != nil {
		return reconcile.Result{}, err
	}
	var active []*corev1.Pod
	var terminating, ready, succeeded, failed int32
	var succeededIndexes map[int]bool
	if indexed(job) {
		succeededIndexes = parseIndexes(job.Status.CompletedIndexes, int(completionsOf(job)))
	}
	for _, pod := range pods {
		switch {
		case pod.Status.Phase == corev1.PodSucceeded:
			succeeded++
			if i := podIndex(pod); succeededIndexes != nil && i >= 0 && i < int(completionsOf(job)) {
				succeededIndexes[i] = true
			}
		case pod.Status.Phase == corev1.PodFailed:
			failed++
		case pod.DeletionTimestamp != nil:
			terminating++
		default:
			active = append(active, pod)
			if workload.IsPodReady(pod) {
				ready++
			}
		}
	}
	// Pods may be removed after they count (pod GC, a user); the counts
	// never go down.
	succeeded = max(succeeded, job.Status.Succeeded)
	failed = max(failed, job.Status.Failed)
	if succeededIndexes != nil {
		// An Indexed Job counts each index once, however many of its
		// pods succeeded.
		succeeded = int32(len(succeededIndexes))
	}

	status := job.Status.DeepCopy()
	if status.StartTime == nil && !suspended(job) {
		start := metav1.NewTime(now)
		status.StartTime = &start
	}
	outcome := judge(job, status.StartTime, succeeded, failed, now)
	var manageErr error
	var backoffWait time.Duration
	switch {
	case outcome != nil:
		// Once the outcome is known no pod may keep running.
		manageErr = r.deletePods(ctx, job, key, active)
		if manageErr == nil {
			terminating += int32(len(active))
			active = nil
		}
	case satisfied && job.DeletionTimestamp == nil:
		// After failures, replacements wait out an exponential back-off,
		// as upstream's do.
		if backoffWait = RetryAfter(pods, now); backoffWait == 0 {
			manageErr = r.manage(ctx, job, key, active, succeeded, succeededIndexes)
		}
	}

	status.Active = int32(len(active))
	status.Ready = &ready
	status.Terminating = &terminating
	status.Succeeded = succeeded
	if succeededIndexes != nil {
		status.CompletedIndexes = formatIndexes(succeededIndexes)
	}
	status.Failed = failed
	if outcome != nil {
		setCondition(status, outcome.interim, now)
		if len(active) == 0 && terminating == 0 {
			setCondition(status, outcome.final, now)
			if outcome.final.Type == batchv1.JobComplete {
				completed := metav1.NewTime(now)
				status.CompletionTime = &completed
			}
			r.Recorder.Eventf(job, nil, eventType(outcome.final), outcome.final.Reason, "Finish", "%s", eventMessage(outcome.final))
		}
	}
	if !apiequality.Semantic.DeepEqual(*status, job.Status) {
		updated := job.DeepCopy()
		updated.Status = *status
		if err := r.Client.Status().Update(ctx, updated); err != nil {
			if apierrors.IsNotFound(err) {
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, fmt.Errorf("updating job status: %w", err)
		}
	}
	if manageErr != nil {
		return reconcile.Result{}, manageErr
	}
	requeue := backoffWait
	if outcome == nil && job.Spec.ActiveDeadlineSeconds != nil && status.StartTime != nil {
		deadline := status.StartTime.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds) * time.Second)
		if untilDeadline := max(deadline.Sub(now), time.Millisecond); requeue == 0 || untilDeadline < requeue {
			requeue = untilDeadline
		}
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// Back-off of pod re-creation after failures: the base doubles with each
// failure since the last success, up to the cap.
const (
	backoffBase = 10 * time.Second
	backoffCap  = 6 * time.Minute
)

// RetryAfter is how long the Job must wait before it creates pods again:
// backoffBase·2^(n-1) after its latest failure, where n counts failures
// since its latest success; zero when it may create now.
func RetryAfter(pods []*corev1.Pod, now time.Time) time.Duration {
	var lastSuccess, lastFailure time.Time
	for _, pod := range pods {
		switch pod.Status.Phase {
		case corev1.PodSucceeded:
			if t := finishTime(pod); t.After(lastSuccess) {
				lastSuccess = t
			}
		case corev1.PodFailed:
			if t := finishTime(pod); t.After(lastFailure) {
				lastFailure = t
			}
		}
	}
	failures := 0
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodFailed && finishTime(pod).After(lastSuccess) {
			failures++
		}
	}
	if failures == 0 {
		return 0
	}
	delay := backoffCap
	if failures <= 16 {
		delay = min(backoffBase<<(failures-1), backoffCap)
	}
	return max(lastFailure.Add(delay).Sub(now), 0)
}

// finishTime is when a pod's last container finished, or when it was
// created if it reports none.
func finishTime(pod *corev1.Pod) time.Time {
	finished := pod.CreationTimestamp.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.FinishedAt.After(finished) {
			finished = t.FinishedAt.Time
		}
	}
	return finished
}

// outcome is how a Job ends: the interim condition upstream sets as soon
// as it is decided (SuccessCriteriaMet, FailureTarget) and the final one
// set once no pod of the Job is left running (Complete, Failed).
type outcome struct {
	interim, final batchv1.JobCondition
}

// judge decides whether the Job has succeeded or failed.
func judge(job *batchv1.Job, start *metav1.Time, succeeded, failed int32, now time.Time) *outcome {
	if c := condition(job.Status.Conditions, batchv1.JobFailureTarget); c != nil && c.Status == corev1.ConditionTrue {
		return failure(c.Reason, c.Message)
	}
	if c := condition(job.Status.Conditions, batchv1.JobSuccessCriteriaMet); c != nil && c.Status == corev1.ConditionTrue {
		return success()
	}
	backoffLimit := int32(defaultBackoffLimit)
	if job.Spec.BackoffLimit != nil {
		backoffLimit = *job.Spec.BackoffLimit
	}
	if failed > backoffLimit {
		return failure("BackoffLimitExceeded", "Job has reached the specified backoff limit")
	}
	if job.Spec.ActiveDeadlineSeconds != nil && start != nil &&
		!now.Before(start.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second)) {
		return failure("DeadlineExceeded", "Job was active longer than specified deadline")
	}
	if job.Spec.Completions != nil {
		if succeeded >= *job.Spec.Completions {
			return success()
		}
		return nil
	}
	// Without completions any success means the work is done; the Job
	// completes once the other pods have finished.
	if succeeded > 0 {
		return success()
	}
	return nil
}

func success() *outcome {
	return &outcome{
		interim: batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods"},
		final:   batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods"},
	}
}

func failure(reason, message string) *outcome {
	return &outcome{
		interim: batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: message},
		final:   batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: message},
	}
}

func eventType(c batchv1.JobCondition) string {
	if c.Type == batchv1.JobFailed {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

func eventMessage(c batchv1.JobCondition) string {
	if c.Type == batchv1.JobComplete {
		return "Job completed"
	}
	return c.Message
}

// manage creates or deletes pods so that the Job runs as many as it
// still needs, at most parallelism.
func (r *Reconciler) manage(ctx context.Context, job *batchv1.Job, key string, active []*corev1.Pod, succeeded int32, succeededIndexes map[int]bool) error {
	want := WantActive(job, succeeded)
	diff := int(want) - len(active)
	switch {
	case diff > 0:
		var indexes []int
		if succeededIndexes != nil {
			indexes = pendingIndexes(int(completionsOf(job)), succeededIndexes, active, diff)
			diff = len(indexes)
		}
		r.expectations.ExpectCreations(key, diff)
		ref := workload.NewControllerRef(job, controllerKind.GroupVersion().String(), controllerKind.Kind)
		for n := range diff {
			pod := replicaset.PodFromTemplate(&job.Spec.Template, job, ref)
			if indexes != nil {
				withIndex(pod, job.Name, indexes[n])
			}
			if err := r.Client.Create(ctx, pod); err != nil {
				for range diff - n {
					r.expectations.CreationObserved(key)
				}
				r.Recorder.Eventf(job, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "Error creating: %v", err)
				return fmt.Errorf("creating pod for job %s: %w", key, err)
			}
			r.Recorder.Eventf(job, pod, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "Created pod: %v", pod.Name)
		}
	case diff < 0:
		return r.deletePods(ctx, job, key, active[:-diff])
	}
	return nil
}

// WantActive is how many pods the Job should have running.
func WantActive(job *batchv1.Job, succeeded int32) int32 {
	if suspended(job) {
		return 0
	}
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	if job.Spec.Completions == nil {
		if succeeded > 0 {
			return 0
		}
		return parallelism
	}
	return max(min(parallelism, *job.Spec.Completions-succeeded), 0)
}

func (r *Reconciler) deletePods(ctx context.Context, job *batchv1.Job, key string, pods []*corev1.Pod) error {
	names := make([]string, len(pods))
	for i, pod := range pods {
		names[i] = pod.Name
	}
	r.expectations.ExpectDeletions(key, names)
	for _, pod := range pods {
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
			r.expectations.DeletionObserved(key, pod.Name)
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("deleting pod %s of job %s: %w", pod.Name, key, err)
			}
			continue
		}
		r.Recorder.Eventf(job, pod, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "Deleted pod: %v", pod.Name)
	}
	return nil
}

// cleanUpFinished deletes a finished Job once ttlSecondsAfterFinished
// has passed.
func (r *Reconciler) cleanUpFinished(ctx context.Context, job *batchv1.Job, finishedAt, now time.Time) (reconcile.Result, error) {
	if job.Spec.TTLSecondsAfterFinished == nil || job.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	expiry := finishedAt.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second)
	if wait := expiry.Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	uid := job.UID
	err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationForeground), client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return reconcile.Result{}, fmt.Errorf("deleting finished job %s/%s: %w", job.Namespace, job.Name, err)
	}
	return reconcile.Result{}, nil
}

// ownedPods lists the pods the Job controls, after adopting orphans its
// selector matches and releasing pods it no longer does, as upstream's
// Job controller claims them.
func (r *Reconciler) ownedPods(ctx context.Context, job *batchv1.Job) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return nil, reconcile.TerminalError(fmt.Errorf("job %s/%s has an invalid selector: %w", job.Namespace, job.Name, err))
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(job.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	return workload.ClaimPods(ctx, r.Client, r.APIReader, job, controllerKind, selector, pods.Items, nil)
}

// finished reports whether the Job has its Complete or Failed condition,
// and since when.
func finished(job *batchv1.Job) (time.Time, bool) {
	for _, t := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed} {
		if c := condition(job.Status.Conditions, t); c != nil && c.Status == corev1.ConditionTrue {
			if t == batchv1.JobComplete && job.Status.CompletionTime != nil {
				return job.Status.CompletionTime.Time, true
			}
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// completionsOf is spec.completions; Indexed Jobs always have it.
func completionsOf(job *batchv1.Job) int32 {
	if job.Spec.Completions == nil {
		return 0
	}
	return *job.Spec.Completions
}

func suspended(job *batchv1.Job) bool {
	return job.Spec.Suspend != nil && *job.Spec.Suspend
}

func condition(conditions []batchv1.JobCondition, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range conditions {
		if conditions[i].Type == t {
			return &conditions[i]
		}
	}
	return nil
}

// setCondition adds c, or updates the condition of its type, keeping the
// transition time when the status does not change.
func setCondition(status *batchv1.JobStatus, c batchv1.JobCondition, now time.Time) {
	c.LastProbeTime = metav1.NewTime(now)
	c.LastTransitionTime = metav1.NewTime(now)
	if existing := condition(status.Conditions, c.Type); existing != nil {
		if existing.Status == c.Status {
			c.LastTransitionTime = existing.LastTransitionTime
			c.LastProbeTime = existing.LastProbeTime
		}
		*existing = c
		return
	}
	status.Conditions = append(status.Conditions, c)
}
