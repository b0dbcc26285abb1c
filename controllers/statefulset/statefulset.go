// Package statefulset runs StatefulSets as kube-controller-manager's
// statefulset controller does: pods with stable names <set>-<ordinal>,
// hostnames and subdomains; with OrderedReady management they are
// created one at a time in ordinal order, each after the previous is
// Running and Ready, and removed from the highest ordinal down; with
// Parallel management all at once. RollingUpdate replaces pods from the
// highest ordinal down to the partition, one at a time.
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/deployment"
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
	Client   client.Client
	Recorder recorder.EventRecorder
	now      func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("statefulset-controller"), now: time.Now}
	return ctrl.NewControllerManagedBy(mgr).
		Named("statefulset").
		For(&appsv1.StatefulSet{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1.StatefulSet{}, handler.OnlyControllerOwner())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// Reconcile syncs one StatefulSet. Pod names are fixed, so a pod the
// cache does not show yet is never created twice: the API server answers
// AlreadyExists and the pass stops.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	sts := &appsv1.StatefulSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, sts); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	pods, err := r.ownedPods(ctx, sts)
	if err != nil {
		return reconcile.Result{}, err
	}
	updateRevision := sts.Name + "-" + deployment.ComputeHash(&sts.Spec.Template, sts.Status.CollisionCount)
	var manageErr error
	if sts.DeletionTimestamp == nil {
		manageErr = r.manage(ctx, sts, pods, updateRevision)
	}
	status := calculateStatus(sts, pods, updateRevision, r.now())
	if !apiequality.Semantic.DeepEqual(status, sts.Status) {
		updated := sts.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating statefulset status: %w", err)
		}
	}
	return reconcile.Result{}, manageErr
}

// manage takes the next steps towards the desired pods: at most one step
// that must wait for a pod under OrderedReady, all of them under Parallel.
func (r *Reconciler) manage(ctx context.Context, sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, updateRevision string) error {
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
			if err := r.createPod(ctx, sts, ordinal, updateRevision); err != nil {
				return err
			}
			if ordered {
				return nil
			}
			continue
		}
		if ordered && !healthy(pod) {
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

	return r.rollingUpdate(ctx, sts, pods, updateRevision)
}

// rollingUpdate deletes the highest-ordinal pod above the partition that
// is not at updateRevision, once every pod is healthy; it is recreated
// from the new template on the next pass.
func (r *Reconciler) rollingUpdate(ctx context.Context, sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, updateRevision string) error {
	if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	first, replicas := startOrdinal(sts), replicasOf(sts)
	partition := int32(0)
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = *ru.Partition
	}
	for _, pod := range pods {
		if !healthy(pod) {
			return nil
		}
	}
	for ordinal := first + replicas - 1; ordinal >= first+int(partition); ordinal-- {
		pod, ok := pods[ordinal]
		if ok && pod.Labels[revisionLabel] != updateRevision {
			return r.deletePod(ctx, sts, pod)
		}
	}
	return nil
}

func (r *Reconciler) createPod(ctx context.Context, sts *appsv1.StatefulSet, ordinal int, revision string) error {
	pod := newPod(sts, ordinal, revision)
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
func newPod(sts *appsv1.StatefulSet, ordinal int, revision string) *corev1.Pod {
	pod := replicaset.PodFromTemplate(&sts.Spec.Template, sts, workload.NewControllerRef(sts, controllerKind.GroupVersion().String(), controllerKind.Kind))
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

// healthy is upstream's bar for moving on to the next ordinal: Running
// and Ready, and not on its way out.
func healthy(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && workload.IsPodReady(pod)
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

// ownedPods maps ordinal to pod for the pods the StatefulSet controls.
func (r *Reconciler) ownedPods(ctx context.Context, sts *appsv1.StatefulSet) (map[int]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(sts.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	pods := map[int]*corev1.Pod{}
	for i := range list.Items {
		pod := &list.Items[i]
		ref := workload.ControllerRef(pod)
		if ref == nil || ref.UID != sts.UID {
			continue
		}
		if ordinal := ordinalOf(sts.Name, pod.Name); ordinal >= 0 {
			pods[ordinal] = pod
		}
	}
	return pods, nil
}

func calculateStatus(sts *appsv1.StatefulSet, pods map[int]*corev1.Pod, updateRevision string, now time.Time) appsv1.StatefulSetStatus {
	status := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation,
		CollisionCount:     sts.Status.CollisionCount,
		Conditions:         sts.Status.Conditions,
		CurrentRevision:    sts.Status.CurrentRevision,
		UpdateRevision:     updateRevision,
	}
	if status.CurrentRevision == "" {
		status.CurrentRevision = updateRevision
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
		switch pod.Labels[revisionLabel] {
		case updateRevision:
			status.UpdatedReplicas++
		case status.CurrentRevision:
			status.CurrentReplicas++
		}
	}
	// The update is done once every replica runs the new template.
	if status.UpdatedReplicas == int32(replicasOf(sts)) && status.Replicas == status.UpdatedReplicas {
		status.CurrentRevision = updateRevision
		status.CurrentReplicas = status.UpdatedReplicas
	}
	return status
}
