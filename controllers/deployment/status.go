package deployment

import (
	"context"
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Condition reasons, as kubectl and users read them.
const (
	newRSCreatedReason      = "NewReplicaSetCreated"
	foundNewRSReason        = "FoundNewReplicaSet"
	rsUpdatedReason         = "ReplicaSetUpdated"
	newRSAvailableReason    = "NewReplicaSetAvailable"
	timedOutReason          = "ProgressDeadlineExceeded"
	pausedReason            = "DeploymentPaused"
	resumedReason           = "DeploymentResumed"
	failedRSCreateReason    = "FailedCreate"
	minimumAvailableReason  = "MinimumReplicasAvailable"
	minimumUnavailableReaon = "MinimumReplicasUnavailable"
)

func hasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

func getCondition(status appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return &status.Conditions[i]
		}
	}
	return nil
}

func newCondition(t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) appsv1.DeploymentCondition {
	ts := metav1.NewTime(now)
	return appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: message, LastUpdateTime: ts, LastTransitionTime: ts}
}

// setCondition replaces the condition of c's type; an unchanged status
// keeps its transition time, and an unchanged status and reason keep the
// condition as it was.
func setCondition(status *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	current := getCondition(*status, c.Type)
	if current != nil && current.Status == c.Status && current.Reason == c.Reason {
		return
	}
	if current != nil && current.Status == c.Status {
		c.LastTransitionTime = current.LastTransitionTime
	}
	var out []appsv1.DeploymentCondition
	for _, existing := range status.Conditions {
		if existing.Type != c.Type {
			out = append(out, existing)
		}
	}
	status.Conditions = append(out, c)
}

func removeCondition(status *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var out []appsv1.DeploymentCondition
	for _, existing := range status.Conditions {
		if existing.Type != t {
			out = append(out, existing)
		}
	}
	status.Conditions = out
}

// calculateStatus sums the ReplicaSets' status into the deployment's.
func (r *Reconciler) calculateStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) appsv1.DeploymentStatus {
	status := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		CollisionCount:     d.Status.CollisionCount,
		Conditions:         append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...),
	}
	var terminating int32
	var specTotal int32
	for _, rs := range allRSs {
		if rs == nil {
			continue
		}
		status.Replicas += rs.Status.Replicas
		status.ReadyReplicas += rs.Status.ReadyReplicas
		status.AvailableReplicas += rs.Status.AvailableReplicas
		specTotal += rsReplicas(rs)
		if rs.Status.TerminatingReplicas != nil {
			terminating += *rs.Status.TerminatingReplicas
		}
	}
	status.TerminatingReplicas = &terminating
	if newRS != nil {
		status.UpdatedReplicas = newRS.Status.Replicas
	}
	status.UnavailableReplicas = max(specTotal-status.AvailableReplicas, 0)

	if status.AvailableReplicas >= replicasOf(d)-maxUnavailable(d) {
		setCondition(&status, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, minimumAvailableReason, "Deployment has minimum availability.", r.now()))
	} else {
		setCondition(&status, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, minimumUnavailableReaon, "Deployment does not have minimum availability.", r.now()))
	}
	return status
}

// deploymentComplete is true when every replica runs the current template
// and is available, and no old replica is left.
func deploymentComplete(d *appsv1.Deployment, status *appsv1.DeploymentStatus) bool {
	want := replicasOf(d)
	return status.UpdatedReplicas == want &&
		status.Replicas == want &&
		status.AvailableReplicas == want &&
		status.ObservedGeneration >= d.Generation
}

// deploymentProgressing is true when the new status moved the rollout
// forward compared with d's current one.
func deploymentProgressing(d *appsv1.Deployment, status *appsv1.DeploymentStatus) bool {
	old := d.Status
	oldStale := old.Replicas - old.UpdatedReplicas
	newStale := status.Replicas - status.UpdatedReplicas
	return status.UpdatedReplicas > old.UpdatedReplicas ||
		newStale < oldStale ||
		status.ReadyReplicas > old.ReadyReplicas ||
		status.AvailableReplicas > old.AvailableReplicas
}

// syncRolloutStatus writes the status of a rollout in progress, with the
// Progressing condition and its deadline, and asks to be called again at
// the deadline (or after requeue, when a step is waiting).
func (r *Reconciler) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, requeue time.Duration) (reconcile.Result, error) {
	status := r.calculateStatus(d, allRSs, newRS)
	now := r.now()
	var deadlineIn time.Duration
	if !hasProgressDeadline(d) {
		removeCondition(&status, appsv1.DeploymentProgressing)
	} else {
		current := getCondition(d.Status, appsv1.DeploymentProgressing)
		rsName := ""
		if newRS != nil {
			rsName = newRS.Name
		}
		alreadyComplete := status.Replicas == status.UpdatedReplicas && current != nil && current.Reason == newRSAvailableReason
		paused := current != nil && current.Reason == pausedReason
		switch {
		case alreadyComplete || paused:
		case deploymentComplete(d, &status):
			setCondition(&status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, newRSAvailableReason,
				fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName), now))
		case deploymentProgressing(d, &status):
			c := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, rsUpdatedReason,
				fmt.Sprintf("ReplicaSet %q is progressing.", rsName), now)
			// Progress refreshes the deadline even when reason and
			// status stay the same.
			removeCondition(&status, appsv1.DeploymentProgressing)
			if current != nil && current.Status == corev1.ConditionTrue {
				c.LastTransitionTime = current.LastTransitionTime
			}
			status.Conditions = append(status.Conditions, c)
		case current != nil && current.Reason != timedOutReason:
			deadline := current.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
			if !now.Before(deadline) {
				setCondition(&status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, timedOutReason,
					fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName), now))
			} else {
				deadlineIn = deadline.Sub(now)
			}
		}
	}
	if err := r.writeStatus(ctx, d, status); err != nil {
		return reconcile.Result{}, err
	}
	wait := requeue
	if deadlineIn > 0 && (wait == 0 || deadlineIn < wait) {
		wait = deadlineIn
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// syncStatusOnly writes status without judging progress, for paused
// deployments and scaling events.
func (r *Reconciler) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	return r.writeStatus(ctx, d, r.calculateStatus(d, allRSs, newRS))
}

func (r *Reconciler) writeStatus(ctx context.Context, d *appsv1.Deployment, status appsv1.DeploymentStatus) error {
	if apiequality.Semantic.DeepEqual(status, d.Status) {
		return nil
	}
	updated := d.DeepCopy()
	updated.Status = status
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("updating deployment status: %w", err)
	}
	*d = *updated
	return nil
}

// checkPausedConditions records a pause or resume in the Progressing
// condition, so the progress deadline does not run while paused.
func (r *Reconciler) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	current := getCondition(d.Status, appsv1.DeploymentProgressing)
	if current != nil && current.Reason == timedOutReason {
		return nil
	}
	paused := current != nil && current.Reason == pausedReason
	status := *d.Status.DeepCopy()
	switch {
	case d.Spec.Paused && !paused:
		setCondition(&status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, pausedReason, "Deployment is paused", r.now()))
	case !d.Spec.Paused && paused:
		setCondition(&status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, resumedReason, "Deployment is resumed", r.now()))
	default:
		return nil
	}
	return r.writeStatus(ctx, d, status)
}
