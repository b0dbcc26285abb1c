// Package nodelifecycle watches node heartbeats as kube-controller-manager's
// node lifecycle controller does: a node whose Lease in kube-node-lease
// has not been renewed for the grace period gets its Ready (and pressure)
// conditions set to Unknown, and every node carries the not-ready or
// unreachable NoSchedule and NoExecute taints that match its Ready
// condition, so the scheduler avoids it and the taint eviction controller
// moves its pods away.
package nodelifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Name is the controller's name in --controllers.
const Name = "nodelifecycle"

// DefaultGracePeriod is kube-controller-manager's
// --node-monitor-grace-period.
const DefaultGracePeriod = 40 * time.Second

// Reason and message upstream writes on conditions of a silent node.
const (
	reasonNodeStatusUnknown  = "NodeStatusUnknown"
	messageNodeStatusUnknown = "Kubelet stopped posting node status."
)

// Options tune the controller.
type Options struct {
	// GracePeriod is how long a node may go without renewing its Lease
	// before it is considered unreachable.
	GracePeriod time.Duration
}

// podNodeNameIndex indexes pods by spec.nodeName.
const podNodeNameIndex = "nodelifecycle.spec.nodeName"

// Reconciler is the node lifecycle controller.
type Reconciler struct {
	Client      client.Client
	GracePeriod time.Duration
	now         func() time.Time

	mu sync.Mutex
	// observed holds, per node, the last Lease renew time seen and when
	// this controller saw it change: health is judged by the local clock
	// only, so a node whose clock is skewed is neither killed nor kept
	// alive by it.
	observed map[string]heartbeat
}

type heartbeat struct {
	renewTime time.Time
	seenAt    time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	grace := o.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, podNodeNameIndex, func(obj client.Object) []string {
		if name := obj.(*corev1.Pod).Spec.NodeName; name != "" {
			return []string{name}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	r := &Reconciler{Client: mgr.GetClient(), GracePeriod: grace, now: time.Now, observed: map[string]heartbeat{}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("nodelifecycle").
		For(&corev1.Node{}).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(nodeOfLease)).
		Complete(r)
}

// nodeOfLease maps a node Lease to its Node, which has the same name.
func nodeOfLease(_ context.Context, obj client.Object) []reconcile.Request {
	if obj.GetNamespace() != corev1.NamespaceNodeLease {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: obj.GetName()}}}
}

// Reconcile checks one node's heartbeat and brings its conditions and
// taints in line with it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, req.NamespacedName, node); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting node: %w", err)
	}
	lease := &coordinationv1.Lease{}
	var renewTime time.Time
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: node.Name}, lease)
	switch {
	case err == nil && lease.Spec.RenewTime != nil:
		renewTime = lease.Spec.RenewTime.Time
	case err != nil && !apierrors.IsNotFound(err):
		return reconcile.Result{}, fmt.Errorf("getting lease of node %s: %w", node.Name, err)
	}
	if ready := readyCondition(node); ready != nil && ready.LastHeartbeatTime.After(renewTime) {
		renewTime = ready.LastHeartbeatTime.Time
	}

	now := r.now()
	silentFor := now.Sub(r.observe(node.Name, renewTime, now))
	if silentFor >= r.GracePeriod {
		if err := r.markUnknown(ctx, node, now); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.syncTaints(ctx, node, now); err != nil {
		return reconcile.Result{}, err
	}
	if silentFor < r.GracePeriod {
		return reconcile.Result{RequeueAfter: r.GracePeriod - silentFor}, nil
	}
	// A silent node is checked again in case it comes back without a
	// Lease event reaching us (the cache may be re-listing).
	return reconcile.Result{RequeueAfter: r.GracePeriod}, nil
}

// observe records renewTime for node and returns when, by the local
// clock, the node last showed a sign of life.
func (r *Reconciler) observe(node string, renewTime, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	hb, ok := r.observed[node]
	if !ok || !hb.renewTime.Equal(renewTime) {
		hb = heartbeat{renewTime: renewTime, seenAt: now}
		r.observed[node] = hb
	}
	return hb.seenAt
}

func (r *Reconciler) forget(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.observed, node)
}

// markUnknown sets the conditions the kubelet owns to Unknown, as
// upstream does once a node stops posting its status.
func (r *Reconciler) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) error {
	updated := node.DeepCopy()
	changed := false
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		i := conditionIndex(updated, t)
		if i < 0 {
			updated.Status.Conditions = append(updated.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
				Message: "Kubelet never posted node status.", LastHeartbeatTime: metav1.NewTime(node.CreationTimestamp.Time), LastTransitionTime: metav1.NewTime(now),
			})
			changed = true
			continue
		}
		c := &updated.Status.Conditions[i]
		if c.Status == corev1.ConditionUnknown {
			continue
		}
		c.Status = corev1.ConditionUnknown
		c.Reason = reasonNodeStatusUnknown
		c.Message = messageNodeStatusUnknown
		c.LastTransitionTime = metav1.NewTime(now)
		changed = true
	}
	if !changed {
		return nil
	}
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("marking node %s unknown: %w", node.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Node stopped posting status", "node", node.Name)
	*node = *updated
	return r.markPodsNotReady(ctx, node.Name, now)
}

// markPodsNotReady sets the Ready condition of the node's pods to False,
// as upstream does, so that Services stop sending traffic to a node
// nobody hears from.
func (r *Reconciler) markPodsNotReady(ctx context.Context, nodeName string, now time.Time) error {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{podNodeNameIndex: nodeName}); err != nil {
		return fmt.Errorf("listing pods of node %s: %w", nodeName, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		updated := pod.DeepCopy()
		changed := false
		for j := range updated.Status.Conditions {
			c := &updated.Status.Conditions[j]
			if c.Type == corev1.PodReady && c.Status != corev1.ConditionFalse {
				c.Status = corev1.ConditionFalse
				c.Reason = "NodeNotReady"
				c.Message = ""
				c.LastTransitionTime = metav1.NewTime(now)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("marking pod %s/%s not ready: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// syncTaints makes node carry exactly the condition taints its Ready
// condition calls for.
func (r *Reconciler) syncTaints(ctx context.Context, node *corev1.Node, now time.Time) error {
	want := DesiredTaints(readyCondition(node))
	taints, changed := ReconcileTaints(node.Spec.Taints, want, now)
	if !changed {
		return nil
	}
	updated := node.DeepCopy()
	updated.Spec.Taints = taints
	if err := r.Client.Update(ctx, updated); err != nil {
		return fmt.Errorf("updating taints of node %s: %w", node.Name, err)
	}
	*node = *updated
	return nil
}

// managedTaintKeys are the taints this controller owns.
var managedTaintKeys = map[string]bool{corev1.TaintNodeNotReady: true, corev1.TaintNodeUnreachable: true}

// DesiredTaints is the set of condition taints a node with the given
// Ready condition carries: unreachable when Unknown, not-ready when False,
// none when True or not reported yet (a registering node is marked
// Unknown, and so tainted, once the grace period has passed).
func DesiredTaints(ready *corev1.NodeCondition) []corev1.Taint {
	key := ""
	switch {
	case ready == nil:
		return nil
	case ready.Status == corev1.ConditionUnknown:
		key = corev1.TaintNodeUnreachable
	case ready.Status == corev1.ConditionFalse:
		key = corev1.TaintNodeNotReady
	default:
		return nil
	}
	return []corev1.Taint{
		{Key: key, Effect: corev1.TaintEffectNoSchedule},
		{Key: key, Effect: corev1.TaintEffectNoExecute},
	}
}

// ReconcileTaints returns current with the managed taints replaced by
// want (keeping the TimeAdded of those already present, stamping new
// NoExecute ones with now) and whether that changed anything.
func ReconcileTaints(current, want []corev1.Taint, now time.Time) ([]corev1.Taint, bool) {
	has := func(list []corev1.Taint, t corev1.Taint) bool {
		for _, c := range list {
			if c.Key == t.Key && c.Effect == t.Effect {
				return true
			}
		}
		return false
	}
	var out []corev1.Taint
	changed := false
	for _, t := range current {
		if managedTaintKeys[t.Key] && !has(want, t) {
			changed = true
			continue
		}
		out = append(out, t)
	}
	for _, t := range want {
		if has(current, t) {
			continue
		}
		if t.Effect == corev1.TaintEffectNoExecute {
			added := metav1.NewTime(now)
			t.TimeAdded = &added
		}
		out = append(out, t)
		changed = true
	}
	return out, changed
}

func conditionIndex(node *corev1.Node, t corev1.NodeConditionType) int {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return i
		}
	}
	return -1
}

func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	if i := conditionIndex(node, corev1.NodeReady); i >= 0 {
		return &node.Status.Conditions[i]
	}
	return nil
}
