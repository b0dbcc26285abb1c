// Package addresspool keeps the status of network.tower.dev AddressPools:
// how many addresses each holds and whether its blocks are usable (Ready).
// The load-balancer controller that hands the addresses out to Services
// reads that status.
package addresspool

import (
	"context"
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkv1alpha1 "tower.dev/tower/apis/network/v1alpha1"
)

// ConditionReady is the condition the reconciler maintains.
const ConditionReady = "Ready"

// Reconciler counts each pool's addresses into its status.
type Reconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=network.tower.dev,resources=addresspools,verbs=get;list;watch
// +kubebuilder:rbac:groups=network.tower.dev,resources=addresspools/status,verbs=get;update;patch

// Reconcile sets status.addresses and the Ready condition of one pool.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pool networkv1alpha1.AddressPool
	if err := r.Get(ctx, req.NamespacedName, &pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	status := pool.Status.DeepCopy()
	ready := metav1.Condition{Type: ConditionReady, ObservedGeneration: pool.Generation}
	total, problems := count(pool.Spec.Addresses)
	if len(problems) > 0 {
		status.Addresses = 0
		ready.Status, ready.Reason = metav1.ConditionFalse, "InvalidAddresses"
		ready.Message = strings.Join(problems, "; ")
	} else {
		status.Addresses = total
		ready.Status, ready.Reason = metav1.ConditionTrue, "AddressesAvailable"
		ready.Message = fmt.Sprintf("%d addresses", total)
	}
	apimeta.SetStatusCondition(&status.Conditions, ready)
	if equality.Semantic.DeepEqual(status, &pool.Status) {
		return ctrl.Result{}, nil
	}
	pool.Status = *status
	if err := r.Status().Update(ctx, &pool); err != nil {
		return ctrl.Result{}, fmt.Errorf("update status of AddressPool %s: %w", pool.Name, err)
	}
	return ctrl.Result{}, nil
}

// count sums the blocks' sizes (saturating) and lists the blocks that do
// not parse.
func count(ranges []networkv1alpha1.AddressRange) (int64, []string) {
	var total int64
	var problems []string
	for _, r := range ranges {
		bounds, err := r.Bounds()
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if size := bounds.Size(); total > math.MaxInt64-size {
			total = math.MaxInt64
		} else {
			total += size
		}
	}
	return total, problems
}

// SetupWithManager runs the reconciler for every AddressPool.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&networkv1alpha1.AddressPool{}).
		Named("addresspool").
		Complete(r)
}
