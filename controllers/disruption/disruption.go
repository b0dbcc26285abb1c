// Package disruption keeps the status of PodDisruptionBudgets, as
// kube-controller-manager's disruption controller does: how many of the
// selected pods are expected (from the scale of their controllers), how
// many must stay healthy, how many are, and so how many disruptions the
// eviction subresource may allow. Evictions the API server recorded in
// status.disruptedPods count as gone until the pod is deleted or a timeout
// passes. A DisruptionTarget condition that no deletion followed is reset
// after a timeout.
package disruption

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/workload"
)

// Name is the controller's name in --controllers.
const Name = "disruption"

// DeletionTimeout is how long an eviction recorded in disruptedPods keeps
// its pod out of the healthy count while the pod is not yet being deleted.
const DeletionTimeout = 2 * time.Minute

// Reconciler computes the status of one PodDisruptionBudget.
type Reconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	Now      func() time.Time
}

// Options configure the controller.
type Options struct {
	// StalePodDisruptionTimeout is how long a DisruptionTarget=True
	// condition may stay on a pod that is not being deleted;
	// DefaultStalePodDisruptionTimeout when zero.
	StalePodDisruptionTimeout time.Duration
}

// SetupWithManager registers the controller with mgr: budgets are
// reconciled when they change, when pods they may select change, and when
// the workloads whose scale they count change; pods with a
// DisruptionTarget condition are watched until it goes stale.
func SetupWithManager(mgr manager.Manager, o Options) error {
	if o.StalePodDisruptionTimeout == 0 {
		o.StalePodDisruptionTimeout = DefaultStalePodDisruptionTimeout
	}
	if err := setUpStaleDisruption(mgr, o.StalePodDisruptionTimeout); err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("controllermanager"), Now: time.Now}
	budgetsOf := handler.EnqueueRequestsFromMapFunc(r.budgetsInNamespaceOf)
	return ctrl.NewControllerManagedBy(mgr).
		Named("disruption").
		For(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.budgetsSelecting)).
		Watches(&appsv1.ReplicaSet{}, budgetsOf).
		Watches(&appsv1.Deployment{}, budgetsOf).
		Watches(&appsv1.StatefulSet{}, budgetsOf).
		Complete(r)
}

// budgetsSelecting maps a pod to the budgets whose selector matches it.
func (r *Reconciler) budgetsSelecting(ctx context.Context, obj client.Object) []reconcile.Request {
	var budgets policyv1.PodDisruptionBudgetList
	if err := r.Client.List(ctx, &budgets, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, pdb := range budgets.Items {
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !selector.Matches(labels.Set(obj.GetLabels())) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pdb.Namespace, Name: pdb.Name}})
	}
	return reqs
}

// budgetsInNamespaceOf maps a workload to every budget of its namespace:
// its scale feeds the expected count of budgets selecting its pods.
func (r *Reconciler) budgetsInNamespaceOf(ctx context.Context, obj client.Object) []reconcile.Request {
	var budgets policyv1.PodDisruptionBudgetList
	if err := r.Client.List(ctx, &budgets, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(budgets.Items))
	for _, pdb := range budgets.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pdb.Namespace, Name: pdb.Name}})
	}
	return reqs
}

// Reconcile recomputes one budget's status and writes it when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pdb := &policyv1.PodDisruptionBudget{}
	if err := r.Client.Get(ctx, req.NamespacedName, pdb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	pods, err := r.podsOf(ctx, pdb)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(pods) == 0 {
		r.Recorder.Eventf(pdb, nil, corev1.EventTypeNormal, "NoPods", "Sync", "No matching pods found")
	}
	expected, desiredHealthy, unmanaged, err := r.expectedPods(ctx, pdb, pods)
	if err != nil {
		r.Recorder.Eventf(pdb, nil, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Sync", "Failed to calculate the number of expected pods: %v", err)
		return reconcile.Result{}, errors.Join(err, r.failSafe(ctx, pdb, err))
	}
	if len(unmanaged) > 0 {
		r.Recorder.Eventf(pdb, nil, corev1.EventTypeWarning, "UnmanagedPods", "Sync", "Pods selected by this PodDisruptionBudget (selector: %v) were found "+
			"to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. "+
			"To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.", pdb.Spec.Selector)
	}
	now := r.Now()
	disrupted, recheck := pendingDisruptions(pods, pdb.Status.DisruptedPods, now)
	status := Status(pdb, expected, desiredHealthy, countHealthy(pods, disrupted), disrupted)
	if statusUpToDate(pdb, status) {
		return requeueAt(recheck, now), nil
	}
	updated := pdb.DeepCopy()
	updated.Status = status
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return reconcile.Result{}, fmt.Errorf("updating status of poddisruptionbudget %s: %w", req.NamespacedName, err)
	}
	return requeueAt(recheck, now), nil
}

func requeueAt(at *time.Time, now time.Time) reconcile.Result {
	if at == nil {
		return reconcile.Result{}
	}
	return reconcile.Result{RequeueAfter: at.Sub(now)}
}

// failSafe allows no disruption while the budget's status cannot be
// computed, saying why in the DisruptionAllowed condition.
func (r *Reconciler) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	updated := pdb.DeepCopy()
	updated.Status.DisruptionsAllowed = 0
	apimeta.SetStatusCondition(&updated.Status.Conditions, metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.SyncFailedReason,
		Message:            cause.Error(),
		ObservedGeneration: updated.Status.ObservedGeneration,
	})
	if equality.Semantic.DeepEqual(updated.Status, pdb.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("recording sync failure of poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	return nil
}

func (r *Reconciler) podsOf(ctx context.Context, pdb *policyv1.PodDisruptionBudget) ([]corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(pdb.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("listing pods of poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	return pods.Items, nil
}

// expectedPods returns how many pods the budget expects and how many of
// them must be healthy. An integer minAvailable counts the selected pods;
// maxUnavailable and a percentage minAvailable count the scale of the
// pods' controllers, and pods without a controller are returned as
// unmanaged.
func (r *Reconciler) expectedPods(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pods []corev1.Pod) (expected, desiredHealthy int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		expected, unmanaged, err = r.controllersScale(ctx, pods)
		if err != nil {
			return 0, 0, nil, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		return expected, max(expected-int32(maxUnavailable), 0), unmanaged, nil
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		return int32(len(pods)), pdb.Spec.MinAvailable.IntVal, nil, nil
	case pdb.Spec.MinAvailable != nil:
		expected, unmanaged, err = r.controllersScale(ctx, pods)
		if err != nil {
			return 0, 0, nil, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		return expected, int32(minAvailable), unmanaged, nil
	}
	return 0, 0, nil, nil
}

// controllersScale sums the desired replicas of the distinct controllers
// of pods: a Deployment for pods of its ReplicaSets, the ReplicaSet or
// StatefulSet itself, or anything else that serves the scale subresource.
func (r *Reconciler) controllersScale(ctx context.Context, pods []corev1.Pod) (int32, []string, error) {
	// scales is keyed by the controller that sets the scale; resolved maps
	// each pod's direct controller to it, so that each is looked up once.
	scales := map[types.UID]int32{}
	resolved := map[types.UID]bool{}
	var unmanaged []string
	for i := range pods {
		pod := &pods[i]
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			unmanaged = append(unmanaged, pod.Name)
			continue
		}
		if resolved[ref.UID] {
			continue
		}
		uid, scale, err := r.scaleOf(ctx, pod.Namespace, ref)
		if err != nil {
			return 0, nil, err
		}
		if uid == "" {
			return 0, nil, fmt.Errorf("found no controllers for pod %q", pod.Name)
		}
		resolved[ref.UID] = true
		scales[uid] = scale
	}
	var total int32
	for _, scale := range scales {
		total += scale
	}
	return total, unmanaged, nil
}

// scaleOf finds the controller behind ref and its desired scale; a
// ReplicaSet owned by a Deployment stands for the Deployment. It returns
// an empty UID when there is no such controller.
func (r *Reconciler) scaleOf(ctx context.Context, namespace string, ref *metav1.OwnerReference) (types.UID, int32, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, fmt.Errorf("controller of kind %s: %w", ref.Kind, err)
	}
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	switch {
	case gv.Group == appsv1.GroupName && ref.Kind == "ReplicaSet":
		rs := &appsv1.ReplicaSet{}
		if found, err := r.getOwned(ctx, key, ref.UID, rs); !found || err != nil {
			return "", 0, err
		}
		if owner := metav1.GetControllerOf(rs); owner != nil && owner.Kind == "Deployment" {
			d := &appsv1.Deployment{}
			if found, err := r.getOwned(ctx, types.NamespacedName{Namespace: namespace, Name: owner.Name}, owner.UID, d); !found || err != nil {
				return "", 0, err
			}
			return d.UID, replicas(d.Spec.Replicas), nil
		}
		return rs.UID, replicas(rs.Spec.Replicas), nil
	case gv.Group == appsv1.GroupName && ref.Kind == "StatefulSet":
		sts := &appsv1.StatefulSet{}
		if found, err := r.getOwned(ctx, key, ref.UID, sts); !found || err != nil {
			return "", 0, err
		}
		return sts.UID, replicas(sts.Spec.Replicas), nil
	}
	owner := &unstructured.Unstructured{}
	owner.SetGroupVersionKind(gv.WithKind(ref.Kind))
	owner.SetNamespace(namespace)
	owner.SetName(ref.Name)
	scale := &autoscalingv1.Scale{}
	if err := r.Client.SubResource("scale").Get(ctx, owner, scale); err != nil {
		if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
			return "", 0, nil
		}
		return "", 0, fmt.Errorf("scale of %s %s/%s: %w", ref.Kind, namespace, ref.Name, err)
	}
	if scale.UID != ref.UID {
		return "", 0, nil
	}
	return scale.UID, scale.Spec.Replicas, nil
}

// getOwned reads a controller and checks it is the one the reference
// names (not a namesake created after it).
func (r *Reconciler) getOwned(ctx context.Context, key types.NamespacedName, uid types.UID, obj client.Object) (bool, error) {
	if err := r.Client.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("getting controller %s: %w", key, err)
	}
	return obj.GetUID() == uid, nil
}

func replicas(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

// pendingDisruptions keeps the evictions of disruptedPods whose pods
// exist, are not yet being deleted and are within DeletionTimeout; it
// returns when the earliest of them times out.
func pendingDisruptions(pods []corev1.Pod, disruptedPods map[string]metav1.Time, now time.Time) (map[string]metav1.Time, *time.Time) {
	pending := map[string]metav1.Time{}
	var recheck *time.Time
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		at, ok := disruptedPods[pod.Name]
		if !ok {
			continue
		}
		expires := at.Add(DeletionTimeout)
		if expires.Before(now) {
			continue
		}
		pending[pod.Name] = at
		if recheck == nil || expires.Before(*recheck) {
			recheck = &expires
		}
	}
	return pending, recheck
}

// countHealthy counts ready pods that are neither being deleted nor about
// to be evicted.
func countHealthy(pods []corev1.Pod, pending map[string]metav1.Time) int32 {
	var healthy int32
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		if _, ok := pending[pod.Name]; ok {
			continue
		}
		if workload.IsPodReady(pod) {
			healthy++
		}
	}
	return healthy
}

// Status is the budget's new status. No disruption is allowed while no pod
// is expected, so that a budget whose first pods just appeared is safe
// before this controller has counted them.
func Status(pdb *policyv1.PodDisruptionBudget, expected, desiredHealthy, currentHealthy int32, disrupted map[string]metav1.Time) policyv1.PodDisruptionBudgetStatus {
	allowed := currentHealthy - desiredHealthy
	if expected <= 0 || allowed < 0 {
		allowed = 0
	}
	status := policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     currentHealthy,
		DesiredHealthy:     desiredHealthy,
		ExpectedPods:       expected,
		Conditions:         append([]metav1.Condition(nil), pdb.Status.Conditions...),
	}
	cond := metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.InsufficientPodsReason,
		ObservedGeneration: status.ObservedGeneration,
	}
	if allowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	apimeta.SetStatusCondition(&status.Conditions, cond)
	return status
}

// statusUpToDate: the stored status says what status says, conditions
// apart from their transition times.
func statusUpToDate(pdb *policyv1.PodDisruptionBudget, status policyv1.PodDisruptionBudgetStatus) bool {
	old := pdb.Status
	if old.ObservedGeneration != status.ObservedGeneration || old.DisruptionsAllowed != status.DisruptionsAllowed ||
		old.CurrentHealthy != status.CurrentHealthy || old.DesiredHealthy != status.DesiredHealthy || old.ExpectedPods != status.ExpectedPods {
		return false
	}
	if len(old.DisruptedPods) != len(status.DisruptedPods) {
		return false
	}
	for name, at := range status.DisruptedPods {
		if oldAt, ok := old.DisruptedPods[name]; !ok || !oldAt.Equal(&at) {
			return false
		}
	}
	return equality.Semantic.DeepEqual(old.Conditions, status.Conditions)
}
