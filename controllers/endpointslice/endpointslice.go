// Package endpointslice keeps the EndpointSlices of every Service with a
// selector in step with the pods it selects, as kube-controller-manager's
// endpointslice controller does: one endpoint per pod with an IP, with
// ready/serving/terminating conditions from the pod, at most 100
// endpoints per slice, slices owned by their Service.
package endpointslice

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/controllers/internal/servicepods"
	"tower.dev/tower/controllers/internal/workload"
)

// Name is the controller's name in --controllers.
const Name = "endpointslice"

// ManagedBy marks the slices this controller owns.
const ManagedBy = "endpointslice-controller.k8s.io"

// maxEndpointsPerSlice is upstream's default --max-endpoints-per-slice.
const maxEndpointsPerSlice = 100

// Reconciler is the EndpointSlice controller.
type Reconciler struct {
	Client client.Client
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{Client: mgr.GetClient()}
	return ctrl.NewControllerManagedBy(mgr).
		Named("endpointslice").
		For(&corev1.Service{}).
		Owns(&discoveryv1.EndpointSlice{}).
		Watches(&corev1.Pod{}, servicepods.ServicesForPod(mgr.GetClient())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile syncs the slices of one Service.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		// Deleted services take their slices with them through the
		// garbage collector.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if len(svc.Spec.Selector) == 0 || svc.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	pods, err := servicepods.Selected(ctx, r.Client, svc)
	if err != nil {
		return reconcile.Result{}, err
	}
	desired := desiredSlices(svc, pods)

	var existing discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &existing, client.InNamespace(svc.Namespace), client.MatchingLabels{
		discoveryv1.LabelServiceName: svc.Name,
		discoveryv1.LabelManagedBy:   ManagedBy,
	}); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing endpointslices: %w", err)
	}
	sort.Slice(existing.Items, func(i, j int) bool { return existing.Items[i].Name < existing.Items[j].Name })
	for i, want := range desired {
		if i < len(existing.Items) {
			have := &existing.Items[i]
			if sameContent(have, want) {
				continue
			}
			updated := have.DeepCopy()
			updated.Labels, updated.AddressType, updated.Endpoints, updated.Ports = want.Labels, want.AddressType, want.Endpoints, want.Ports
			updated.OwnerReferences = want.OwnerReferences
			if err := r.Client.Update(ctx, updated); err != nil {
				return reconcile.Result{}, fmt.Errorf("updating endpointslice %s: %w", have.Name, err)
			}
			continue
		}
		if err := r.Client.Create(ctx, want); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating endpointslice for %s: %w", svc.Name, err)
		}
	}
	for i := len(desired); i < len(existing.Items); i++ {
		if err := r.Client.Delete(ctx, &existing.Items[i]); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("deleting endpointslice %s: %w", existing.Items[i].Name, err)
		}
	}
	return reconcile.Result{}, nil
}

func sameContent(have, want *discoveryv1.EndpointSlice) bool {
	return have.AddressType == want.AddressType &&
		apiequality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) &&
		apiequality.Semantic.DeepEqual(have.Ports, want.Ports) &&
		apiequality.Semantic.DeepEqual(have.Labels, want.Labels) &&
		len(have.OwnerReferences) == 1 && have.OwnerReferences[0].UID == want.OwnerReferences[0].UID
}

// desiredSlices groups the pods' endpoints by their resolved ports and
// cuts each group into slices of at most maxEndpointsPerSlice.
func desiredSlices(svc *corev1.Service, pods []*corev1.Pod) []*discoveryv1.EndpointSlice {
	addressType := discoveryv1.AddressTypeIPv4
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		addressType = discoveryv1.AddressTypeIPv6
	}
	type group struct {
		ports     []discoveryv1.EndpointPort
		endpoints []discoveryv1.Endpoint
	}
	groups := map[string]*group{}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, pod := range pods {
		ip := podIP(pod, addressType)
		if ip == "" {
			continue
		}
		ports, key := resolvePorts(svc, pod)
		g, ok := groups[key]
		if !ok {
			g = &group{ports: ports}
			groups[key] = g
		}
		g.endpoints = append(g.endpoints, endpointFor(svc, pod, ip))
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		// An empty slice still tells consumers the service has no
		// endpoints, and carries its ports.
		ports, key := resolvePorts(svc, nil)
		groups[key] = &group{ports: ports}
		keys = []string{key}
	}
	owner := workload.NewControllerRef(svc, "v1", "Service")
	var out []*discoveryv1.EndpointSlice
	for _, k := range keys {
		g := groups[k]
		for start := 0; start == 0 || start < len(g.endpoints); start += maxEndpointsPerSlice {
			end := min(start+maxEndpointsPerSlice, len(g.endpoints))
			labels := map[string]string{}
			for k, v := range svc.Labels {
				labels[k] = v
			}
			labels[discoveryv1.LabelServiceName] = svc.Name
			labels[discoveryv1.LabelManagedBy] = ManagedBy
			out = append(out, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					GenerateName:    svc.Name + "-",
					Namespace:       svc.Namespace,
					Labels:          labels,
					OwnerReferences: []metav1.OwnerReference{*owner},
				},
				AddressType: addressType,
				Endpoints:   append([]discoveryv1.Endpoint(nil), g.endpoints[start:end]...),
				Ports:       g.ports,
			})
		}
	}
	return out
}

func podIP(pod *corev1.Pod, family discoveryv1.AddressType) string {
	ips := []string{pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (family == discoveryv1.AddressTypeIPv4) {
			return s
		}
	}
	return ""
}

// resolvePorts returns the slice ports for pod (nil: unresolved names are
// dropped, as upstream) and a key that groups pods with the same ports.
func resolvePorts(svc *corev1.Service, pod *corev1.Pod) ([]discoveryv1.EndpointPort, string) {
	var ports []discoveryv1.EndpointPort
	var key strings.Builder
	for _, sp := range svc.Spec.Ports {
		var number int32
		if pod != nil {
			n, ok := servicepods.TargetPort(pod, sp)
			if !ok {
				continue
			}
			number = n
		}
		name, protocol := sp.Name, sp.Protocol
		port := discoveryv1.EndpointPort{Name: &name, Protocol: &protocol, AppProtocol: sp.AppProtocol}
		if pod != nil {
			port.Port = &number
		}
		ports = append(ports, port)
		fmt.Fprintf(&key, "%s/%s/%d;", name, protocol, number)
	}
	return ports, key.String()
}

func endpointFor(svc *corev1.Service, pod *corev1.Pod, ip string) discoveryv1.Endpoint {
	terminating := pod.DeletionTimestamp != nil
	serving := servicepods.Ready(pod) || svc.Spec.PublishNotReadyAddresses
	ready := serving && !terminating
	if svc.Spec.PublishNotReadyAddresses {
		ready = true
	}
	ep := discoveryv1.Endpoint{
		Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{
			Ready:       &ready,
			Serving:     &serving,
			Terminating: &terminating,
		},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		node := pod.Spec.NodeName
		ep.NodeName = &node
	}
	return ep
}
