// Package nodeipam assigns each Node a pod subnet (spec.podCIDR and
// spec.podCIDRs) from the cluster CIDR, as kube-controller-manager's node
// IPAM controller does with --allocate-node-cidrs: subnets already on
// Nodes are kept and marked taken (so a restarted controller rebuilds its
// state from the Nodes), new Nodes get the next free one, and a deleted
// Node's subnet becomes free again.
package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Name is the controller's name in --controllers.
const Name = "nodeipam"

// Defaults of the controller manager's flags. The cluster CIDR holds the
// node agent's historical default pod subnet, 10.244.0.0/24.
const (
	DefaultClusterCIDR = "10.128.0.0/9"
	DefaultMaskSize    = 24
)

// Options are the controller manager's --cluster-cidr and
// --node-cidr-mask-size.
type Options struct {
	ClusterCIDR string
	MaskSize    int
}

// Reconciler assigns pod subnets to Nodes.
type Reconciler struct {
	Client    client.Client
	Recorder  recorder.EventRecorder
	Allocator *Allocator

	// loadOnce takes the subnets of the existing Nodes before the first
	// assignment, so that no new Node gets one of them.
	loadOnce sync.Once
	loadErr  error
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr manager.Manager, o Options) error {
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = DefaultClusterCIDR
	}
	if o.MaskSize == 0 {
		o.MaskSize = DefaultMaskSize
	}
	alloc, err := NewAllocator(o.ClusterCIDR, o.MaskSize)
	if err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("cidrAllocator"), Allocator: alloc}
	return ctrl.NewControllerManagedBy(mgr).Named("nodeipam").For(&corev1.Node{}).Complete(r)
}

// load takes the subnets every existing Node holds. It runs before the
// first assignment; the cache is synced by then.
func (r *Reconciler) load(ctx context.Context) error {
	r.loadOnce.Do(func() {
		var nodes corev1.NodeList
		if err := r.Client.List(ctx, &nodes); err != nil {
			r.loadErr = fmt.Errorf("listing nodes: %w", err)
			return
		}
		for i := range nodes.Items {
			if err := r.occupy(&nodes.Items[i]); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "Node holds a pod CIDR another node has", "node", nodes.Items[i].Name)
			}
		}
	})
	return r.loadErr
}

func (r *Reconciler) occupy(node *corev1.Node) error {
	var errs []error
	for _, cidr := range podCIDRs(node) {
		if _, err := r.Allocator.Occupy(node.Name, cidr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func podCIDRs(node *corev1.Node) []string {
	if len(node.Spec.PodCIDRs) > 0 {
		return node.Spec.PodCIDRs
	}
	if node.Spec.PodCIDR != "" {
		return []string{node.Spec.PodCIDR}
	}
	return nil
}

// Reconcile gives a Node without a pod subnet the next free one, and
// frees the subnet of a Node that is gone.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := r.load(ctx); err != nil {
		return reconcile.Result{}, err
	}
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, req.NamespacedName, node); err != nil {
		if apierrors.IsNotFound(err) {
			r.Allocator.Release(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if len(podCIDRs(node)) > 0 {
		return reconcile.Result{}, r.occupy(node)
	}
	cidr, err := r.Allocator.Allocate(node.Name)
	if errors.Is(err, ErrFull) {
		r.Recorder.Eventf(node, nil, corev1.EventTypeNormal, "CIDRNotAvailable", "AllocateCIDR", "Node %s status is now: CIDRNotAvailable", node.Name)
		return reconcile.Result{}, fmt.Errorf("node %s: %w", node.Name, err)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	patch := client.MergeFrom(node.DeepCopy())
	node.Spec.PodCIDR = cidr
	node.Spec.PodCIDRs = []string{cidr}
	if err := r.Client.Patch(ctx, node, patch); err != nil {
		if apierrors.IsNotFound(err) {
			r.Allocator.Release(node.Name)
			return reconcile.Result{}, nil
		}
		// The Node keeps its claim on the subnet: the next attempt for it
		// patches the same one.
		return reconcile.Result{}, fmt.Errorf("assigning pod CIDR %s to node %s: %w", cidr, node.Name, err)
	}
	return reconcile.Result{}, nil
}
