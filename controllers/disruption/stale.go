package disruption

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/controllers/internal/workload"
)

// DefaultStalePodDisruptionTimeout is how long a pod may carry
// DisruptionTarget=True without being deleted before the condition is
// reset, as upstream's stalePodDisruptionTimeout: the eviction or
// preemption that set it did not go through.
const DefaultStalePodDisruptionTimeout = 2 * time.Minute

// staleDisruptionReconciler sets a pod's DisruptionTarget condition to
// False once it has been True for the timeout and the pod is still not
// being deleted, as upstream's disruption controller does in its own
// stale-pod-disruption queue.
type staleDisruptionReconciler struct {
	client  client.Client
	timeout time.Duration
	now     func() time.Time
}

func setUpStaleDisruption(mgr manager.Manager, timeout time.Duration) error {
	r := &staleDisruptionReconciler{client: mgr.GetClient(), timeout: timeout, now: time.Now}
	return ctrl.NewControllerManagedBy(mgr).
		Named("stale-pod-disruption").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
			pod, ok := obj.(*corev1.Pod)
			return ok && staleCandidate(pod) != nil
		}))).
		Complete(r)
}

// Reconcile resets one pod's condition, or comes back when it will be
// stale.
func (r *staleDisruptionReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := r.client.Get(ctx, req.NamespacedName, pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	cond := staleCandidate(pod)
	if cond == nil {
		return reconcile.Result{}, nil
	}
	now := r.now()
	if wait := cond.LastTransitionTime.Add(r.timeout).Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	updated := pod.DeepCopy()
	// Upstream replaces the condition whole: no reason or message, a new
	// transition time.
	*workload.PodCondition(updated, corev1.DisruptionTarget) = corev1.PodCondition{
		Type:               corev1.DisruptionTarget,
		Status:             corev1.ConditionFalse,
		LastTransitionTime: metav1.NewTime(now),
		ObservedGeneration: pod.Generation,
	}
	if err := r.client.Status().Update(ctx, updated); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("resetting the DisruptionTarget condition of pod %s: %w", req.NamespacedName, err)
	}
	logf.FromContext(ctx).V(2).Info("Reset stale DisruptionTarget condition to False", "pod", req.NamespacedName)
	return reconcile.Result{}, nil
}

// staleCandidate is the pod's DisruptionTarget condition when it may go
// stale: True on a pod that is neither being deleted nor terminal, and not
// set by the kubelet, whose terminations may take arbitrarily long to
// start.
func staleCandidate(pod *corev1.Pod) *corev1.PodCondition {
	if pod.DeletionTimestamp != nil || workload.IsPodTerminal(pod) {
		return nil
	}
	cond := workload.PodCondition(pod, corev1.DisruptionTarget)
	if cond == nil || cond.Status != corev1.ConditionTrue || cond.Reason == corev1.PodReasonTerminationByKubelet {
		return nil
	}
	return cond
}
