// Package endpoints keeps the v1 Endpoints object of every Service with a
// selector in step with its pods, as kube-controller-manager's endpoints
// controller does: ready pods in addresses, unready ones in
// notReadyAddresses, terminating ones left out.
package endpoints

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/controllers/internal/servicepods"
)

// Name is the controller's name in --controllers.
const Name = "endpoint"

// skipMirrorLabel keeps the endpointslice mirroring controller away from
// Endpoints this controller writes.
const skipMirrorLabel = "endpointslice.kubernetes.io/skip-mirror"

// Reconciler is the Endpoints controller.
type Reconciler struct {
	Client client.Client
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{Client: mgr.GetClient()}
	return ctrl.NewControllerManagedBy(mgr).
		Named("endpoints").
		For(&corev1.Service{}).
		Watches(&corev1.Pod{}, servicepods.ServicesForPod(mgr.GetClient())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile syncs the Endpoints of one Service.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	svc := &corev1.Service{}
	err := r.Client.Get(ctx, req.NamespacedName, svc)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
		if err := r.Client.Delete(ctx, ep); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("deleting endpoints of removed service: %w", err)
		}
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(svc.Spec.Selector) == 0 {
		return reconcile.Result{}, nil
	}
	pods, err := servicepods.Selected(ctx, r.Client, svc)
	if err != nil {
		return reconcile.Result{}, err
	}
	subsets := desiredSubsets(svc, pods)
	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	labels[skipMirrorLabel] = "true"

	current := &corev1.Endpoints{}
	err = r.Client.Get(ctx, req.NamespacedName, current)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name, Labels: labels}, Subsets: subsets}
		if err := r.Client.Create(ctx, ep); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// The cache has not caught up with an earlier create; its
				// subsets may be stale, so look again rather than drop
				// this change.
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, fmt.Errorf("creating endpoints: %w", err)
		}
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if apiequality.Semantic.DeepEqual(current.Subsets, subsets) && apiequality.Semantic.DeepEqual(current.Labels, labels) {
		return reconcile.Result{}, nil
	}
	updated := current.DeepCopy()
	updated.Subsets, updated.Labels = subsets, labels
	if err := r.Client.Update(ctx, updated); err != nil {
		return reconcile.Result{}, fmt.Errorf("updating endpoints: %w", err)
	}
	return reconcile.Result{}, nil
}

// desiredSubsets puts pods with the same resolved ports in one subset.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	bySignature := map[string]*corev1.EndpointSubset{}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, pod := range pods {
		terminating := pod.DeletionTimestamp != nil
		if terminating && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		var ports []corev1.EndpointPort
		var sig strings.Builder
		for _, sp := range svc.Spec.Ports {
			n, ok := servicepods.TargetPort(pod, sp)
			if !ok {
				continue
			}
			ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
			fmt.Fprintf(&sig, "%s/%s/%d;", sp.Name, sp.Protocol, n)
		}
		if len(svc.Spec.Ports) > 0 && len(ports) == 0 {
			continue
		}
		subset, ok := bySignature[sig.String()]
		if !ok {
			subset = &corev1.EndpointSubset{Ports: ports}
			bySignature[sig.String()] = subset
		}
		addr := corev1.EndpointAddress{
			IP:        pod.Status.PodIP,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}
		if pod.Spec.NodeName != "" {
			node := pod.Spec.NodeName
			addr.NodeName = &node
		}
		if servicepods.Ready(pod) || svc.Spec.PublishNotReadyAddresses {
			subset.Addresses = append(subset.Addresses, addr)
		} else {
			subset.NotReadyAddresses = append(subset.NotReadyAddresses, addr)
		}
	}
	keys := make([]string, 0, len(bySignature))
	for k := range bySignature {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		out = append(out, *bySignature[k])
	}
	return out
}
