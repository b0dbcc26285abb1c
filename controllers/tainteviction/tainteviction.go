// Package tainteviction evicts pods from nodes with NoExecute taints, as
// kube-controller-manager's taint eviction controller does: a pod that
// does not tolerate such a taint is deleted at once; one that tolerates it
// for tolerationSeconds is deleted that long after the taint was added;
// one that tolerates it without a limit stays.
package tainteviction

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Name is the controller's name in --controllers.
const Name = "taint-eviction-controller"

// nodeNameIndex indexes pods by spec.nodeName, so a node's taint change
// finds the node's pods without a full list.
const nodeNameIndex = "tainteviction.spec.nodeName"

// Reconciler is the taint eviction controller; it reconciles pods.
type Reconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	now      func() time.Time

	mu sync.Mutex
	// firstSeen stands in for the TimeAdded of NoExecute taints that were
	// written without one.
	firstSeen map[string]time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, nodeNameIndex, func(obj client.Object) []string {
		if name := obj.(*corev1.Pod).Spec.NodeName; name != "" {
			return []string{name}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	r := &Reconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("taint-eviction-controller"),
		now:       time.Now,
		firstSeen: map[string]time.Time{},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("tainteviction").
		For(&corev1.Pod{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.podsOfNode)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(r)
}

func (r *Reconciler) podsOfNode(ctx context.Context, obj client.Object) []reconcile.Request {
	node := obj.(*corev1.Node)
	if len(noExecuteTaints(node)) == 0 {
		return nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{nodeNameIndex: node.Name}); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "Listing pods of tainted node", "node", node.Name)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(pods.Items))
	for _, pod := range pods.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}})
	}
	return reqs
}

// Reconcile evicts one pod when its node's NoExecute taints say so, or
// comes back when its tolerations run out.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	taints := noExecuteTaints(node)
	if len(taints) == 0 {
		return reconcile.Result{}, nil
	}
	now := r.now()
	evictAt, ok := EvictionTime(pod.Spec.Tolerations, taints, func(t corev1.Taint) time.Time { return r.taintAdded(node.Name, t, now) })
	if !ok {
		return reconcile.Result{}, nil
	}
	if wait := evictAt.Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	return reconcile.Result{}, r.evict(ctx, pod)
}

// EvictionTime is when a pod with tolerations must leave a node with the
// given NoExecute taints, and false when it may stay for good. added
// tells when each taint was put on the node.
func EvictionTime(tolerations []corev1.Toleration, taints []corev1.Taint, added func(corev1.Taint) time.Time) (time.Time, bool) {
	var evictAt time.Time
	found := false
	for _, taint := range taints {
		tolerated := false
		var limit *time.Duration
		for i := range tolerations {
			if !tolerations[i].ToleratesTaint(logr.Discard(), &taint, true) {
				continue
			}
			tolerated = true
			if s := tolerations[i].TolerationSeconds; s != nil {
				d := time.Duration(max(*s, 0)) * time.Second
				if limit == nil || d < *limit {
					limit = &d
				}
			}
		}
		var at time.Time
		switch {
		case !tolerated:
			// Not tolerated at all: evict now; the taint's age does not
			// matter.
			at = time.Time{}
		case limit == nil:
			continue
		default:
			at = added(taint).Add(*limit)
		}
		if !found || at.Before(evictAt) {
			evictAt, found = at, true
		}
	}
	return evictAt, found
}

// taintAdded is the taint's TimeAdded, or when this controller first saw
// it if the writer left it out.
func (r *Reconciler) taintAdded(node string, taint corev1.Taint, now time.Time) time.Time {
	if taint.TimeAdded != nil {
		return taint.TimeAdded.Time
	}
	key := node + "/" + taint.Key + "=" + taint.Value
	r.mu.Lock()
	defer r.mu.Unlock()
	if seen, ok := r.firstSeen[key]; ok {
		return seen
	}
	r.firstSeen[key] = now
	return now
}

// evict marks the pod as disrupted and deletes it.
func (r *Reconciler) evict(ctx context.Context, pod *corev1.Pod) error {
	log := logr.FromContextOrDiscard(ctx)
	updated := pod.DeepCopy()
	setCondition(updated, corev1.PodCondition{
		Type:               corev1.DisruptionTarget,
		Status:             corev1.ConditionTrue,
		Reason:             "DeletionByTaintManager",
		Message:            "Taint manager: deleting due to NoExecute taint",
		LastTransitionTime: metav1.NewTime(r.now()),
	})
	if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
		// The condition is informative; failing to write it must not
		// keep the pod on a dead node.
		log.Error(err, "Marking pod as disruption target", "pod", client.ObjectKeyFromObject(pod))
	}
	uid := pod.UID
	if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "TaintManagerEviction", "Delete", "Marking for deletion Pod %s/%s", pod.Namespace, pod.Name)
	log.Info("Evicted pod from tainted node", "pod", client.ObjectKeyFromObject(pod), "node", pod.Spec.NodeName)
	return nil
}

func setCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

func noExecuteTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}
