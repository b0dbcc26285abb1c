// Package replicaset keeps the number of pods a ReplicaSet selects equal
// to its spec.replicas, as kube-controller-manager's replicaset controller
// does: it adopts orphans that match its selector, releases pods that no
// longer match, creates in slow-start batches, deletes the least valuable
// pods first, and waits for its cache to show its own writes (expectations)
// before it computes the next difference.
package replicaset

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/workload"
)

// Name is the controller's name in --controllers.
const Name = "replicaset"

// burstReplicas caps the pods created or deleted in one sync, so one huge
// ReplicaSet cannot starve the others.
const burstReplicas = 500

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Reconciler is the ReplicaSet controller.
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache, to recheck a ReplicaSet before it
	// adopts a pod.
	APIReader    client.Reader
	Recorder     recorder.EventRecorder
	expectations *workload.Expectations
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("replicaset-controller"),
		expectations: workload.NewExpectations(),
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("replicaset").
		For(&appsv1.ReplicaSet{}).
		Watches(&corev1.Pod{}, r.podHandler()).
		Watches(&corev1.Pod{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.ReplicaSetList{}, selectorOf)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile syncs one ReplicaSet.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.String()
	rs := &appsv1.ReplicaSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		if apierrors.IsNotFound(err) {
			r.expectations.Forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting replicaset: %w", err)
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || selector.Empty() {
		// Validation forbids this; there is nothing sensible to manage.
		return reconcile.Result{}, nil
	}
	// Read expectations before the pod list, so a pod that shows up in
	// between is counted rather than created again.
	satisfied := r.expectations.Satisfied(key)

	owned, err := r.claimPods(ctx, rs, selector)
	if err != nil {
		return reconcile.Result{}, err
	}
	var active []*corev1.Pod
	for _, pod := range owned {
		if workload.IsPodActive(pod) {
			active = append(active, pod)
		}
	}

	var manageErr error
	if satisfied && rs.DeletionTimestamp == nil {
		manageErr = r.manageReplicas(ctx, rs, key, active)
	}

	now := time.Now()
	status := calculateStatus(rs, owned, active, now)
	if !apiequality.Semantic.DeepEqual(status, rs.Status) {
		updated := rs.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating replicaset status: %w", err)
		}
	}
	if manageErr != nil {
		return reconcile.Result{}, manageErr
	}
	// Pods that are ready but not yet available need another look once
	// minReadySeconds have passed.
	var wait time.Duration
	for _, pod := range active {
		if d := workload.AvailableIn(pod, rs.Spec.MinReadySeconds, now); d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// claimPods returns the pods rs controls after adopting matching active
// orphans and releasing owned pods that no longer match its selector.
func (r *Reconciler) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector) ([]*corev1.Pod, error) {
	var pods corev1.PodList
	// Every pod event syncs a ReplicaSet, and copying each of its
	// namespace's pods every time made syncs quadratic: the list is read
	// only (ClaimPods patches copies).
	if err := r.Client.List(ctx, &pods, client.InNamespace(rs.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	return workload.ClaimPods(ctx, r.Client, r.APIReader, rs, controllerKind, selector, pods.Items, workload.IsPodActive)
}

// manageReplicas creates or deletes pods to close the gap between active
// pods and spec.replicas.
func (r *Reconciler) manageReplicas(ctx context.Context, rs *appsv1.ReplicaSet, key string, active []*corev1.Pod) error {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	diff := len(active) - int(want)
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		r.expectations.ExpectCreations(key, n)
		created, err := slowStartBatch(n, func() error { return r.createPod(ctx, rs) })
		// Creations that failed or were never attempted will never show
		// up in the cache.
		for range n - created {
			r.expectations.CreationObserved(key)
		}
		if err != nil {
			return fmt.Errorf("creating pods for replicaset %s: %w", key, err)
		}
	case diff > 0:
		victims := podsToDelete(active, min(diff, burstReplicas))
		names := make([]string, len(victims))
		for i, pod := range victims {
			names[i] = pod.Name
		}
		r.expectations.ExpectDeletions(key, names)
		var wg sync.WaitGroup
		errs := make(chan error, len(victims))
		for _, pod := range victims {
			wg.Go(func() {
				err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
				if err != nil {
					r.expectations.DeletionObserved(key, pod.Name)
					if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
						errs <- fmt.Errorf("deleting pod %s: %w", pod.Name, err)
					}
					return
				}
				r.Recorder.Eventf(rs, pod, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "Deleted pod: %v", pod.Name)
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := PodFromTemplate(&rs.Spec.Template, rs, workload.NewControllerRef(rs, controllerKind.GroupVersion().String(), controllerKind.Kind))
	if err := r.Client.Create(ctx, pod); err != nil {
		r.Recorder.Eventf(rs, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "Error creating: %v", err)
		return err
	}
	r.Recorder.Eventf(rs, pod, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "Created pod: %v", pod.Name)
	return nil
}

// PodFromTemplate builds the pod a controller creates from its template.
func PodFromTemplate(template *corev1.PodTemplateSpec, owner metav1.Object, ref *metav1.OwnerReference) *corev1.Pod {
	t := template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: owner.GetName() + "-",
			Namespace:    owner.GetNamespace(),
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			Finalizers:   t.Finalizers,
		},
		Spec: t.Spec,
	}
	if ref != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return pod
}

// slowStartBatch calls fn count times in batches of 1, 2, 4, ... running
// each batch in parallel, and stops after the first batch with a failure,
// so that a quota or admission error costs one request, not count. It
// returns how many calls succeeded.
func slowStartBatch(count int, fn func() error) (int, error) {
	remaining := count
	succeeded := 0
	for batch := min(remaining, 1); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		failed := len(errs)
		succeeded += batch - failed
		if failed > 0 {
			return succeeded, <-errs
		}
		remaining -= batch
	}
	return succeeded, nil
}

// podsToDelete picks the n pods whose loss hurts least: unscheduled before
// scheduled, pending before running, unready before ready, cheaper
// pod-deletion-cost first, ready for less time first, more restarts first,
// newer first.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	sorted := append([]*corev1.Pod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool { return lessValuable(sorted[i], sorted[j]) })
	return sorted[:n]
}

func lessValuable(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseRank(a.Status.Phase), phaseRank(b.Status.Phase); pa != pb {
		return pa < pb
	}
	ra, rb := workload.IsPodReady(a), workload.IsPodReady(b)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if ra {
		ta := workload.PodCondition(a, corev1.PodReady).LastTransitionTime
		tb := workload.PodCondition(b, corev1.PodReady).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta)
		}
	}
	if ka, kb := restarts(a), restarts(b); ka != kb {
		return ka > kb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

func phaseRank(phase corev1.PodPhase) int {
	switch phase {
	case corev1.PodPending:
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 3
}

const podDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

func deletionCost(pod *corev1.Pod) int64 {
	var cost int64
	if v, ok := pod.Annotations[podDeletionCostAnnotation]; ok {
		if _, err := fmt.Sscan(v, &cost); err != nil {
			return 0
		}
	}
	return cost
}

func restarts(pod *corev1.Pod) int32 {
	var n int32
	for _, s := range pod.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// calculateStatus derives status from the pods rs controls.
func calculateStatus(rs *appsv1.ReplicaSet, owned, active []*corev1.Pod, now time.Time) appsv1.ReplicaSetStatus {
	status := appsv1.ReplicaSetStatus{
		Replicas:           int32(len(active)),
		ObservedGeneration: rs.Generation,
		Conditions:         rs.Status.Conditions,
	}
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	for _, pod := range active {
		if templateLabels.Matches(labels.Set(pod.Labels)) {
			status.FullyLabeledReplicas++
		}
		if workload.IsPodReady(pod) {
			status.ReadyReplicas++
			if workload.IsPodAvailable(pod, rs.Spec.MinReadySeconds, now) {
				status.AvailableReplicas++
			}
		}
	}
	var terminating int32
	for _, pod := range owned {
		if pod.DeletionTimestamp != nil && !workload.IsPodTerminal(pod) {
			terminating++
		}
	}
	status.TerminatingReplicas = &terminating
	return status
}

// podHandler enqueues the ReplicaSet that controls a pod and feeds
// expectations; orphans reach the ReplicaSets that could adopt them
// through workload.EnqueueAdopters.
func (r *Reconciler) podHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pod := e.Object.(*corev1.Pod)
			if ref := ownerRef(pod); ref != nil {
				key := requestFor(pod.Namespace, ref.Name)
				r.expectations.CreationObserved(key.String())
				if pod.DeletionTimestamp != nil {
					r.expectations.DeletionObserved(key.String(), pod.Name)
				}
				q.Add(key)
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			oldPod, newPod := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			if oldPod.ResourceVersion == newPod.ResourceVersion {
				return
			}
			newRef, oldRef := ownerRef(newPod), ownerRef(oldPod)
			if newRef != nil && newPod.DeletionTimestamp != nil {
				r.expectations.DeletionObserved(requestFor(newPod.Namespace, newRef.Name).String(), newPod.Name)
			}
			if oldRef != nil && (newRef == nil || oldRef.UID != newRef.UID) {
				q.Add(requestFor(oldPod.Namespace, oldRef.Name))
			}
			if newRef != nil {
				q.Add(requestFor(newPod.Namespace, newRef.Name))
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pod, ok := e.Object.(*corev1.Pod)
			if !ok {
				return
			}
			if ref := ownerRef(pod); ref != nil {
				key := requestFor(pod.Namespace, ref.Name)
				r.expectations.DeletionObserved(key.String(), pod.Name)
				q.Add(key)
			}
		},
	}
}

func selectorOf(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector }

// ownerRef is the pod's controller reference when a ReplicaSet holds it.
func ownerRef(pod *corev1.Pod) *metav1.OwnerReference {
	ref := workload.ControllerRef(pod)
	if ref == nil || ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return nil
	}
	return ref
}

func requestFor(namespace, name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}}
}
