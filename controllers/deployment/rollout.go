package deployment

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/controllers/internal/workload"
)

// settleRecheck is how soon a rollout waiting for its ReplicaSets to catch
// up looks again even if no event arrives.
const settleRecheck = 2 * time.Second

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func rsReplicas(rs *appsv1.ReplicaSet) int32 {
	if rs == nil || rs.Spec.Replicas == nil {
		return 0
	}
	return *rs.Spec.Replicas
}

// surgeAndUnavailable resolves maxSurge (rounded up) and maxUnavailable
// (rounded down) against spec.replicas; when both come to zero,
// maxUnavailable is one so the rollout can make progress.
func surgeAndUnavailable(d *appsv1.Deployment) (int32, int32) {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return 0, 0
	}
	replicas := int(replicasOf(d))
	def := intstr.FromString("25%")
	surgeVal, unavailVal := &def, &def
	if d.Spec.Strategy.RollingUpdate.MaxSurge != nil {
		surgeVal = d.Spec.Strategy.RollingUpdate.MaxSurge
	}
	if d.Spec.Strategy.RollingUpdate.MaxUnavailable != nil {
		unavailVal = d.Spec.Strategy.RollingUpdate.MaxUnavailable
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(surgeVal, replicas, true)
	if err != nil {
		surge = 0
	}
	unavailable, err := intstr.GetScaledValueFromIntOrPercent(unavailVal, replicas, false)
	if err != nil {
		unavailable = 0
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return int32(surge), int32(min(unavailable, replicas))
}

func maxSurge(d *appsv1.Deployment) int32 {
	s, _ := surgeAndUnavailable(d)
	return s
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	_, u := surgeAndUnavailable(d)
	return u
}

func sumSpecReplicas(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		n += rsReplicas(rs)
	}
	return n
}

func activeReplicaSets(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs != nil && rsReplicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// settled is true when the ReplicaSet controller has acted on rs's current
// spec and its pods match it. Rolling updates only count on a ReplicaSet's
// status once it has settled, so that a status that still shows pods
// already deleted (or not yet created) can never push the rollout past
// maxUnavailable or maxSurge.
func settled(rs *appsv1.ReplicaSet) bool {
	return rs.Status.ObservedGeneration >= rs.Generation && rs.Status.Replicas == rsReplicas(rs)
}

func allSettled(rss []*appsv1.ReplicaSet) bool {
	for _, rs := range rss {
		if rs != nil && !settled(rs) {
			return false
		}
	}
	return true
}

func (r *Reconciler) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (reconcile.Result, error) {
	newRS, oldRSs, err := r.replicaSets(ctx, d, rsList, true)
	if err != nil {
		return reconcile.Result{}, err
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)

	if !allSettled(oldRSs) {
		return r.syncRolloutStatus(ctx, d, allRSs, newRS, settleRecheck)
	}
	scaledUp, err := r.reconcileNewReplicaSet(ctx, d, allRSs, newRS)
	if err != nil {
		return reconcile.Result{}, err
	}
	if scaledUp {
		return r.syncRolloutStatus(ctx, d, allRSs, newRS, 0)
	}
	scaledDown, err := r.reconcileOldReplicaSets(ctx, d, allRSs, oldRSs, newRS)
	if err != nil {
		return reconcile.Result{}, err
	}
	if scaledDown {
		return r.syncRolloutStatus(ctx, d, allRSs, newRS, 0)
	}
	if deploymentComplete(d, &d.Status) {
		if err := r.cleanup(ctx, d, oldRSs); err != nil {
			return reconcile.Result{}, err
		}
	}
	return r.syncRolloutStatus(ctx, d, allRSs, newRS, 0)
}

// reconcileNewReplicaSet grows the new ReplicaSet as far as maxSurge allows
// (or shrinks it to spec.replicas).
func (r *Reconciler) reconcileNewReplicaSet(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := replicasOf(d)
	switch current := rsReplicas(newRS); {
	case current == want:
		return false, nil
	case current > want:
		return r.scaleReplicaSet(ctx, d, newRS, want)
	}
	return r.scaleReplicaSet(ctx, d, newRS, newReplicasForRollout(d, allRSs, newRS))
}

// newReplicasForRollout is how many replicas the new ReplicaSet may have
// now: as many as keep all ReplicaSets within spec.replicas + maxSurge.
func newReplicasForRollout(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicasOf(d)
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return want
	}
	maxTotal := want + maxSurge(d)
	current := sumSpecReplicas(allRSs)
	if current >= maxTotal {
		return rsReplicas(newRS)
	}
	return rsReplicas(newRS) + min(maxTotal-current, want-rsReplicas(newRS))
}

// reconcileOldReplicaSets shrinks old ReplicaSets as far as maxUnavailable
// allows: unhealthy replicas first, then the oldest ReplicaSets first.
func (r *Reconciler) reconcileOldReplicaSets(ctx context.Context, d *appsv1.Deployment, allRSs, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if sumSpecReplicas(oldRSs) == 0 {
		return false, nil
	}
	minAvailable := replicasOf(d) - maxUnavailable(d)
	newUnavailable := rsReplicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sumSpecReplicas(allRSs) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	sorted := append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderFirst(sorted[i], sorted[j]) })

	// Replicas that are not available cost nothing to remove.
	var cleaned int32
	for _, rs := range sorted {
		if cleaned >= maxScaledDown {
			break
		}
		unhealthy := rsReplicas(rs) - rs.Status.AvailableReplicas
		if rsReplicas(rs) == 0 || unhealthy <= 0 {
			continue
		}
		down := min(unhealthy, maxScaledDown-cleaned)
		if _, err := r.scaleReplicaSet(ctx, d, rs, rsReplicas(rs)-down); err != nil {
			return false, err
		}
		cleaned += down
	}
	if cleaned > 0 {
		return true, nil
	}

	var available int32
	for _, rs := range allRSs {
		available += rs.Status.AvailableReplicas
	}
	budget := available - minAvailable
	if budget <= 0 {
		return false, nil
	}
	var scaled int32
	for _, rs := range sorted {
		if scaled >= budget {
			break
		}
		if rsReplicas(rs) == 0 {
			continue
		}
		down := min(rsReplicas(rs), budget-scaled)
		if _, err := r.scaleReplicaSet(ctx, d, rs, rsReplicas(rs)-down); err != nil {
			return false, err
		}
		scaled += down
	}
	return scaled > 0, nil
}

func (r *Reconciler) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (reconcile.Result, error) {
	newRS, oldRSs, err := r.replicaSets(ctx, d, rsList, false)
	if err != nil {
		return reconcile.Result{}, err
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)

	scaledDown := false
	for _, rs := range activeReplicaSets(oldRSs) {
		if _, err := r.scaleReplicaSet(ctx, d, rs, 0); err != nil {
			return reconcile.Result{}, err
		}
		scaledDown = true
	}
	if scaledDown {
		return r.syncRolloutStatus(ctx, d, allRSs, newRS, 0)
	}
	running, err := r.oldPodsRunning(ctx, d, oldRSs)
	if err != nil {
		return reconcile.Result{}, err
	}
	if running {
		return r.syncRolloutStatus(ctx, d, allRSs, newRS, settleRecheck)
	}
	if newRS == nil {
		newRS, oldRSs, err = r.replicaSets(ctx, d, rsList, true)
		if err != nil {
			return reconcile.Result{}, err
		}
		allRSs = append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	}
	if _, err := r.scaleReplicaSet(ctx, d, newRS, replicasOf(d)); err != nil {
		return reconcile.Result{}, err
	}
	if deploymentComplete(d, &d.Status) {
		if err := r.cleanup(ctx, d, oldRSs); err != nil {
			return reconcile.Result{}, err
		}
	}
	return r.syncRolloutStatus(ctx, d, allRSs, newRS, 0)
}

// oldPodsRunning is true while any pod of an old ReplicaSet has not
// finished, terminating ones included: Recreate never overlaps templates.
func (r *Reconciler) oldPodsRunning(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) (bool, error) {
	old := map[types.UID]bool{}
	for _, rs := range oldRSs {
		if rs.Status.Replicas > 0 || (rs.Status.TerminatingReplicas != nil && *rs.Status.TerminatingReplicas > 0) {
			return true, nil
		}
		old[rs.UID] = true
	}
	if len(old) == 0 {
		return false, nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(d.Namespace)); err != nil {
		return false, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		ref := workload.ControllerRef(&pods.Items[i])
		if ref != nil && old[ref.UID] && !workload.IsPodTerminal(&pods.Items[i]) {
			return true, nil
		}
	}
	return false, nil
}

// isScalingEvent is true when spec.replicas changed since the active
// ReplicaSets were last sized, as opposed to a template change.
func (r *Reconciler) isScalingEvent(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) bool {
	newRS := findNewReplicaSet(d, rsList)
	if newRS == nil {
		return false
	}
	want := fmt.Sprint(replicasOf(d))
	for _, rs := range activeReplicaSets(rsList) {
		if v, ok := rs.Annotations[DesiredReplicasAnnotation]; ok && v != want {
			return true
		}
	}
	return false
}

// sync handles a paused deployment or a scaling event: it resizes the
// existing ReplicaSets without starting a rollout.
func (r *Reconciler) sync(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (reconcile.Result, error) {
	newRS, oldRSs, err := r.replicaSets(ctx, d, rsList, false)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.scale(ctx, d, newRS, oldRSs); err != nil {
		return reconcile.Result{}, err
	}
	if d.Spec.Paused {
		if err := r.cleanup(ctx, d, oldRSs); err != nil {
			return reconcile.Result{}, err
		}
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	return reconcile.Result{}, r.syncStatusOnly(ctx, d, allRSs, newRS)
}

// scale spreads a change of spec.replicas over the active ReplicaSets in
// proportion to their sizes, bigger ones first.
func (r *Reconciler) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	want := replicasOf(d)
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	active := activeReplicaSets(allRSs)
	if len(active) <= 1 {
		target := newRS
		if len(active) == 1 {
			target = active[0]
		}
		if target == nil {
			return nil
		}
		_, err := r.scaleReplicaSet(ctx, d, target, want)
		return err
	}
	if newRS != nil && rsReplicas(newRS) == want && newRS.Status.AvailableReplicas == want {
		for _, rs := range activeReplicaSets(oldRSs) {
			if _, err := r.scaleReplicaSet(ctx, d, rs, 0); err != nil {
				return err
			}
		}
		return nil
	}
	allowed := want + maxSurge(d)
	current := sumSpecReplicas(active)
	toAdd := allowed - current
	if toAdd == 0 {
		return nil
	}
	sort.SliceStable(active, func(i, j int) bool {
		if rsReplicas(active[i]) != rsReplicas(active[j]) {
			return rsReplicas(active[i]) > rsReplicas(active[j])
		}
		return olderFirst(active[j], active[i])
	})
	sizes := make([]int32, len(active))
	var added int32
	for i, rs := range active {
		share := toAdd * rsReplicas(rs) / current
		sizes[i] = rsReplicas(rs) + share
		added += share
	}
	// What rounding left over goes to the biggest ReplicaSet.
	sizes[0] += toAdd - added
	for i, rs := range active {
		if _, err := r.scaleReplicaSet(ctx, d, rs, max(sizes[i], 0)); err != nil {
			return err
		}
	}
	return nil
}

// scaleReplicaSet sets rs to size and records the deployment size it was
// sized for; it reports whether spec.replicas changed.
func (r *Reconciler) scaleReplicaSet(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, size int32) (bool, error) {
	if rs == nil {
		return false, nil
	}
	from := rsReplicas(rs)
	updated := rs.DeepCopy()
	annotationsChanged := setReplicasAnnotations(updated, replicasOf(d), replicasOf(d)+maxSurge(d))
	if from == size && !annotationsChanged {
		return false, nil
	}
	updated.Spec.Replicas = &size
	if err := r.Client.Update(ctx, updated); err != nil {
		return false, fmt.Errorf("scaling replicaset %s to %d: %w", rs.Name, size, err)
	}
	*rs = *updated
	if from != size {
		direction := "up"
		if size < from {
			direction = "down"
		}
		r.Recorder.Eventf(d, rs, corev1.EventTypeNormal, "ScalingReplicaSet", "Scale", "Scaled %s replica set %s from %d to %d", direction, rs.Name, from, size)
	}
	return from != size, nil
}

// cleanup deletes the oldest empty ReplicaSets beyond revisionHistoryLimit.
func (r *Reconciler) cleanup(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) error {
	limit := int32(10)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = *d.Spec.RevisionHistoryLimit
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	excess := int32(len(alive)) - limit
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(alive, func(i, j int) bool {
		if Revision(alive[i]) != Revision(alive[j]) {
			return Revision(alive[i]) < Revision(alive[j])
		}
		return olderFirst(alive[i], alive[j])
	})
	for _, rs := range alive {
		if excess <= 0 {
			break
		}
		if rsReplicas(rs) != 0 || rs.Status.Replicas != 0 || rs.Status.ObservedGeneration < rs.Generation {
			continue
		}
		uid := rs.UID
		if err := r.Client.Delete(ctx, rs, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting old replicaset %s: %w", rs.Name, err)
		}
		excess--
	}
	return nil
}
