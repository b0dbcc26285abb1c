// Package statefulset runs StatefulSets as kube-controller-manager's
// statefulset controller does: pods with stable names <set>-<ordinal>,
// hostnames and subdomains; with OrderedReady management they are
// created one at a time in ordinal order, each after the previous is
// Running and has been Ready for minReadySeconds, and removed from the
// highest ordinal down; with Parallel management all at once. Each distinct template is kept as a
// ControllerRevision; RollingUpdate replaces pods from the highest ordinal
// down to the partition, up to maxUnavailable at a time, and pods below
// the partition are recreated from the current revision; OnDelete leaves
// replacing pods to the user. currentRevision moves to updateRevision once a rolling update
// has reached every replica.
package statefulset

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/history"
	"tower.dev/tower/controllers/internal/workload"
	"tower.dev/tower/controllers/replicaset"
)

// Name is the controller's name in --controllers.
const Name = "statefulset"

// Labels upstream puts on every StatefulSet pod.
const (
	podNameLabel  = appsv1.StatefulSetPodNameLabel
	podIndexLabel = appsv1.PodIndexLabel
	revisionLabel = appsv1.ControllerRevisionHashLabelKey
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Reconciler is the StatefulSet controller.
type Reconciler struct {
	Client    client.Client
	Recorder  recorder.EventRecorder
	revisions history.Store
	now       func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("statefulset-controller"),
		revisions: history.Store{Client: mgr.GetClient(), Kind: controllerKind, APIReader: mgr.GetAPIReader(), NewOwner: func() client.Object { return &appsv1.StatefulSet{} }},
		now:       time.Now,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("statefulset").
		For(&appsv1.StatefulSet{}).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1.StatefulSet{}, handler.OnlyControllerOwner())).
		Watches(&corev1.Pod{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.StatefulSetList{}, selectorOf)).
		Watches(&appsv1.ControllerRevision{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.StatefulSetList{}, selectorOf)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

func selectorOf(sts *appsv1.StatefulSet) *metav1.LabelSelector { return sts.Spec.Selector }

// revisions is what one pass knows about the set's templates: the
// revision its pods are being moved to, the one they are moving from, and
// the template of each.
type revisions struct {
	current, update                 *appsv1.ControllerRevision
	currentTemplate, updateTemplate *corev1.PodTemplateSpec
	collisionCount                  int32
}

// Reconcile syncs one StatefulSet. Pod names are fixed, so a pod the
// cache does not show yet is never created twice: the API server answers
// AlreadyExists and the pass stops.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	sts := &appsv1.StatefulSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, sts); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if sts.DeletionTimestamp != nil {
		// The garbage collector removes its pods and revisions.
		return reconcile.Result{}, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return reconcile.Result{}, reconcile.TerminalError(fmt.Errorf("statefulset %s has an invalid selector: %w", req, err))
	}
	pods, err := r.ownedPods(ctx, sts)
	if err != nil {
		return reconcile.Result{}, err
	}
	claimed, err := r.revisions.Claim(ctx, sts, selector)
	if err != nil {
		return reconcile.Result{}, err
	}
	revs, err := r.syncRevisions(ctx, sts, claimed)
	if err != nil {
		return reconcile.Result{}, err
	}
	manageErr := r.manage(ctx, sts, pods, revs)
	status := calculateStatus(sts, pods, revs, r.now())
	if !apiequality.Semantic.DeepEqual(status, sts.Status) {
		updated := sts.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating statefulset status: %w", err)
		}
	}
	if manageErr != nil {
		return reconcile.Result{}, manageErr
	}
	if err := r.truncateHistory(ctx, sts, pods, claimed, revs); err != nil {
		return reconcile.Result{}, err
	}
	// Pods that are ready but not yet available count as unavailable, in
	// status and for maxUnavailable, until minReadySeconds have passed.
	var wait time.Duration
	for _, pod := range pods {
		if d := workload.AvailableIn(pod, sts.Spec.MinReadySeconds, r.now()); d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// syncRevisions makes the set's template the newest revision and finds
// the current one, named by status.currentRevision (the update revision
// for a new set).
func (r *Reconciler) syncRevisions(ctx context.Context, sts *appsv1.StatefulSet, claimed []*appsv1.ControllerRevision) (*revisions, error) {
	revs := &revisions{updateTemplate: &sts.Spec.Template}
	if sts.Status.CollisionCount != nil {
		revs.collisionCount = *sts.Status.CollisionCount
	}
	data, err := history.Patch(sts)
	if err != nil {
		return nil, err
	}
	revs.update, err = r.revisions.Sync(ctx, sts, sts.Spec.Template.Labels, data, claimed, &revs.collisionCount)
	if err != nil {
		return nil, fmt.Errorf("syncing revisions of statefulset %s/%s: %w", sts.Namespace, sts.Name, err)
	}
	revs.current, revs.currentTemplate = revs.update, revs.updateTemplate
	for _, cr := range claimed {
		if cr.Name == sts.Status.CurrentRevision && cr.Name != revs.update.Name {
			template, err := history.Template(sts, cr)
			if err != nil {
				return nil, err
			}
			revs.current, revs.currentTemplate = cr, template
		}
	}
	return revs, nil
}

// truncateHistory deletes the oldest revisions beyond
// revisionHistoryLimit that no pod and neither status revision uses.
func (r *Reconciler) truncateHistory(ctx context.Context, sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, claimed []*appsv1.ControllerRevision, revs *revisions) error {
	live := map[string]bool{revs.current.Name: true, revs.update.Name: true}
	for _, pod := range pods {
		live[pod.Labels[revisionLabel]] = true
	}
	limit := history.DefaultHistoryLimit
	if sts.Spec.RevisionHistoryLimit != nil {
		limit = int(*sts.Spec.RevisionHistoryLimit)
	}
	return r.revisions.Truncate(ctx, claimed, live, limit)
}

// manage takes the next steps towards the desired pods: at most one step
// that must wait for a pod under OrderedReady, all of them under Parallel.
func (r *Reconciler) manage(ctx context.Context, sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, revs *revisions) error {
	ordered := sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	first, replicas := startOrdinal(sts), replicasOf(sts)

	// Pods that ended are replaced under the same name.
	for ordinal, pod := range pods {
		if pod.DeletionTimestamp == nil && workload.IsPodTerminal(pod) {
			if err := r.deletePod(ctx, sts, pod); err != nil {
				return err
			}
			delete(pods, ordinal)
			if ordered {
				return nil
			}
		}
	}

	for ordinal := first; ordinal < first+replicas; ordinal++ {
		pod, ok := pods[ordinal]
		if !ok {
			if err := r.createPod(ctx, sts, ordinal, revs); err != nil {
				return err
			}
			if ordered {
				return nil
			}
			continue
		}
		if ordered && !available(pod, sts.Spec.MinReadySeconds, r.now()) {
			// The next ordinal waits for this one.
			return nil
		}
	}

	// Condemned pods, highest ordinal first.
	var condemned []int
	for ordinal := range pods {
		if ordinal < first || ordinal >= first+replicas {
			condemned = append(condemned, ordinal)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(condemned)))
	for _, ordinal := range condemned {
		pod := pods[ordinal]
		if pod.DeletionTimestamp != nil {
			if ordered {
				return nil
			}
			continue
		}
		if err := r.deletePod(ctx, sts, pod); err != nil {
			return err
		}
		if ordered {
			return nil
		}
	}
	if len(condemned) > 0 {
		return nil
	}

	return r.rollingUpdate(ctx, sts, pods, revs.update.Name)
}

// rollingUpdate deletes the pods updateVictims picks; each is recreated
// from the new template on a later pass.
func (r *Reconciler) rollingUpdate(ctx context.Context, sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, updateRevision string) error {
	if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	for _, pod := range updateVictims(sts, pods, updateRevision, r.now()) {
		if err := r.deletePod(ctx, sts, pod); err != nil {
			return err
		}
	}
	return nil
}

// updateVictims picks the pods at or above the partition that are not at
// updateRevision and may be deleted now, highest ordinal first, as
// upstream's controller does with MaxUnavailableStatefulSet (on by
// default since 1.35): while fewer than maxUnavailable of the set's
// ordinals are unavailable (missing, terminating, or not Running and
// available), as many more as the difference. Under Parallel management
// outdated pods that are unavailable anyway go first and do not wait for
// the budget, so that a set whose old template never becomes ready still
// moves on; under OrderedReady the caller only gets here with every pod
// available.
func updateVictims(sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, updateRevision string, now time.Time) []*corev1.Pod {
	first, replicas := startOrdinal(sts), replicasOf(sts)
	lowest := first + partitionOf(sts)
	budget := maxUnavailableOf(sts, replicas)
	parallel := sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	outdated := func(pod *corev1.Pod) bool {
		return pod.DeletionTimestamp == nil && pod.Labels[revisionLabel] != updateRevision
	}
	unavailable, unavailableOutdated := 0, 0
	for ordinal := first; ordinal < first+replicas; ordinal++ {
		pod, ok := pods[ordinal]
		if ok && available(pod, sts.Spec.MinReadySeconds, now) {
			continue
		}
		unavailable++
		if parallel && ok && outdated(pod) {
			unavailableOutdated++
		}
	}
	if unavailable >= budget && unavailableOutdated == 0 {
		return nil
	}
	budget -= unavailable

	var victims []*corev1.Pod
	if parallel {
		for ordinal := first + replicas - 1; ordinal >= lowest; ordinal-- {
			if pod, ok := pods[ordinal]; ok && outdated(pod) && !available(pod, sts.Spec.MinReadySeconds, now) {
				victims = append(victims, pod)
			}
		}
	}
	for ordinal := first + replicas - 1; ordinal >= lowest && budget > 0; ordinal-- {
		pod, ok := pods[ordinal]
		if !ok || !outdated(pod) || (parallel && !available(pod, sts.Spec.MinReadySeconds, now)) {
			continue
		}
		victims = append(victims, pod)
		budget--
	}
	return victims
}

// maxUnavailableOf is how many of replicas a rolling update may have
// unavailable: spec.updateStrategy.rollingUpdate.maxUnavailable, a
// percentage rounded down, at least 1.
func maxUnavailableOf(sts *appsv1.StatefulSet, replicas int) int {
	ru := sts.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, replicas, false)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// partitionOf is the RollingUpdate partition: ordinals below it stay at
// the current revision.
func partitionOf(sts *appsv1.StatefulSet) int {
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return int(*ru.Partition)
	}
	return 0
}

// createPod creates the pod with ordinal from the update revision, or from
// the current one when a RollingUpdate has not reached its ordinal (it is
// below the partition), as upstream does.
func (r *Reconciler) createPod(ctx context.Context, sts *appsv1.StatefulSet, ordinal int, revs *revisions) error {
	template, revision := revs.updateTemplate, revs.update.Name
	if sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType && ordinal < startOrdinal(sts)+partitionOf(sts) {
		template, revision = revs.currentTemplate, revs.current.Name
	}
	pod := newPod(sts, template, ordinal, revision)
	if err := r.Client.Create(ctx, pod); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "create Pod %s in StatefulSet %s failed error: %v", pod.Name, sts.Name, err)
		return fmt.Errorf("creating pod %s: %w", pod.Name, err)
	}
	r.Recorder.Eventf(sts, pod, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "create Pod %s in StatefulSet %s successful", pod.Name, sts.Name)
	return nil
}

func (r *Reconciler) deletePod(ctx context.Context, sts *appsv1.StatefulSet, pod *corev1.Pod) error {
	uid := pod.UID
	if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("deleting pod %s: %w", pod.Name, err)
	}
	r.Recorder.Eventf(sts, pod, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "delete Pod %s in StatefulSet %s successful", pod.Name, sts.Name)
	return nil
}

// newPod is the pod with the given ordinal: its stable name, hostname and
// subdomain, and the identity labels.
func newPod(sts *appsv1.StatefulSet, template *corev1.PodTemplateSpec, ordinal int, revision string) *corev1.Pod {
	pod := replicaset.PodFromTemplate(template, sts, workload.NewControllerRef(sts, controllerKind.GroupVersion().String(), controllerKind.Kind))
	pod.GenerateName = ""
	pod.Name = PodName(sts.Name, ordinal)
	labels := maps.Clone(pod.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[podNameLabel] = pod.Name
	labels[podIndexLabel] = strconv.Itoa(ordinal)
	labels[revisionLabel] = revision
	pod.Labels = labels
	pod.Spec.Hostname = pod.Name
	pod.Spec.Subdomain = sts.Spec.ServiceName
	return pod
}

// PodName is the name of a StatefulSet's pod with the given ordinal.
func PodName(set string, ordinal int) string {
	return set + "-" + strconv.Itoa(ordinal)
}

// ordinalOf parses the ordinal out of a pod name of set, or -1.
func ordinalOf(set, pod string) int {
	suffix, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(suffix)
	if err != nil || n < 0 || strconv.Itoa(n) != suffix {
		return -1
	}
	return n
}

// available is upstream's bar for moving on to the next ordinal under
// OrderedReady and for counting a pod as up during a rolling update:
// Running, Ready for minReadySeconds, and not on its way out.
func available(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && workload.IsPodAvailable(pod, minReadySeconds, now)
}

func startOrdinal(sts *appsv1.StatefulSet) int {
	if sts.Spec.Ordinals != nil {
		return int(sts.Spec.Ordinals.Start)
	}
	return 0
}

func replicasOf(sts *appsv1.StatefulSet) int {
	if sts.Spec.Replicas != nil {
		return int(*sts.Spec.Replicas)
	}
	return 1
}

// ownedPods maps ordinal to pod for the pods the StatefulSet controls,
// after adopting orphans that match its selector and carry one of its
// ordinal names, and releasing pods it no longer selects, as upstream's
// StatefulSet controller claims them.
func (r *Reconciler) ownedPods(ctx context.Context, sts *appsv1.StatefulSet) (map[int]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset selector: %w", err)
	}
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(sts.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	isMember := func(pod *corev1.Pod) bool { return ordinalOf(sts.Name, pod.Name) >= 0 }
	owned, err := workload.ClaimPods(ctx, r.Client, r.revisions.APIReader, sts, controllerKind, selector, list.Items, isMember)
	if err != nil {
		return nil, err
	}
	pods := map[int]*corev1.Pod{}
	for _, pod := range owned {
		if ordinal := ordinalOf(sts.Name, pod.Name); ordinal >= 0 {
			pods[ordinal] = pod
		}
	}
	return pods, nil
}

func calculateStatus(sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, revs *revisions, now time.Time) appsv1.StatefulSetStatus {
	status := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation,
		CollisionCount:     &revs.collisionCount,
		Conditions:         sts.Status.Conditions,
		CurrentRevision:    revs.current.Name,
		UpdateRevision:     revs.update.Name,
	}
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		status.Replicas++
		if workload.IsPodReady(pod) {
			status.ReadyReplicas++
			if workload.IsPodAvailable(pod, sts.Spec.MinReadySeconds, now) {
				status.AvailableReplicas++
			}
		}
		if pod.Labels[revisionLabel] == status.CurrentRevision {
			status.CurrentReplicas++
		}
		if pod.Labels[revisionLabel] == status.UpdateRevision {
			status.UpdatedReplicas++
		}
	}
	// A rolling update is complete once every replica runs the new
	// template and is ready; OnDelete never completes one, as upstream.
	if sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType &&
		status.UpdatedReplicas == status.Replicas && status.ReadyReplicas == status.Replicas {
		status.CurrentRevision = status.UpdateRevision
		status.CurrentReplicas = status.UpdatedReplicas
	}
	return status
}
