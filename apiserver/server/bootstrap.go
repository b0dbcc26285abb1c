package server

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// systemNamespaces exist on every cluster from the first start.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// bootstrap creates what kube-apiserver guarantees at start: the system
// namespaces, the default/kubernetes service, the system priority classes
// and the RBAC bootstrap policy.
func (a *api) bootstrap(ctx context.Context) error {
	namespaces := a.byGVR[corev1.SchemeGroupVersion.WithResource("namespaces")]
	for _, name := range systemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := a.ensure(ctx, namespaces, ns); err != nil {
			return err
		}
	}
	services := a.byGVR[corev1.SchemeGroupVersion.WithResource("services")]
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "kubernetes",
			Namespace: metav1.NamespaceDefault,
			Labels:    map[string]string{"component": "apiserver", "provider": "kubernetes"},
		},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: a.services.KubernetesServiceIP().String(),
			Ports: []corev1.ServicePort{{
				Name: "https", Protocol: corev1.ProtocolTCP, Port: 443,
				TargetPort: intstr.FromInt32(int32(a.options.SecurePort)),
			}},
		},
	}
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	if err := a.ensure(ctx, services, svc); err != nil {
		return err
	}
	priorityClasses := a.byGVR[schedulingv1.SchemeGroupVersion.WithResource("priorityclasses")]
	for _, pc := range registry.SystemPriorityClasses() {
		if err := a.ensure(ctx, priorityClasses, pc); err != nil {
			return err
		}
	}
	return a.bootstrapPolicy(ctx)
}

// ensure creates obj through the resource's strategy unless it exists.
func (a *api) ensure(ctx context.Context, e *endpoints.Endpoint, obj runtime.Object) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	e.Resource.Strategy.Default(obj)
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.Now())
	e.Resource.Strategy.PrepareForCreate(ctx, obj)
	key := e.KeyPrefix + "/" + m.GetName()
	if ns := m.GetNamespace(); ns != "" {
		key = e.KeyPrefix + "/" + ns + "/" + m.GetName()
	}
	err = e.Store.Create(ctx, key, obj, e.Resource.New())
	if err != nil && !storage.IsExists(err) {
		return fmt.Errorf("create %s %s: %w", e.Resource.Resource, m.GetName(), err)
	}
	return nil
}

// admission is the admission chain in kube-apiserver's order (its
// AllOrderedPlugins), narrowed by --enable-admission-plugins and
// --disable-admission-plugins.
func (a *api) admission(log logr.Logger) (admission.Interface, error) {
	podSecurity, err := admission.NewPodSecurity(a.objects(corev1.SchemeGroupVersion.WithResource("namespaces")), a.objects(corev1.SchemeGroupVersion.WithResource("pods")))
	if err != nil {
		return nil, err
	}
	chain := admission.Chain{
		{Name: "NamespaceLifecycle", Impl: &admission.NamespaceLifecycle{Namespaces: a.objects(corev1.SchemeGroupVersion.WithResource("namespaces"))}},
		{Name: "LimitRanger", Impl: &admission.LimitRanger{LimitRanges: a.objects(corev1.SchemeGroupVersion.WithResource("limitranges"))}},
		{Name: "ServiceAccount", Impl: &admission.ServiceAccount{ServiceAccounts: a.objects(corev1.SchemeGroupVersion.WithResource("serviceaccounts"))}},
		{Name: "NodeRestriction", Impl: &admission.NodeRestriction{Pods: a.storedPod, Nodes: a.storedNode}},
		{Name: "TaintNodesByCondition", Impl: admission.TaintNodesByCondition{}},
		{Name: "PodSecurity", Impl: podSecurity},
		{Name: "Priority", Impl: &admission.Priority{PriorityClasses: a.objects(schedulingv1.SchemeGroupVersion.WithResource("priorityclasses"))}},
		{Name: "DefaultTolerationSeconds", Impl: admission.DefaultTolerationSeconds{}},
		{Name: "RBACEscalation", Builtin: true, Impl: &admission.RBACEscalation{Authorizer: a.security.authorizer, Rules: a.security.rules, Policy: a.security.policy}},
		{Name: "MutatingAdmissionWebhook", Impl: a.webhooks.Mutating},
		{Name: "ValidatingAdmissionPolicy", Impl: a.policies},
		{Name: "ValidatingAdmissionWebhook", Impl: a.webhooks.Validating},
		// Service IP allocation is part of storing a Service upstream, after
		// every admission plugin.
		{Name: "ServiceIPAllocation", Builtin: true, Impl: a.services},
		{Name: "ResourceQuota", Impl: &admission.ResourceQuota{Quotas: a.objects(corev1.SchemeGroupVersion.WithResource("resourcequotas")), List: a.listStored}},
	}
	selected, unknown, err := chain.Select(a.options.EnableAdmissionPlugins, a.options.DisableAdmissionPlugins)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		log.Info("admission plugins Tower does not implement are ignored", "plugins", unknown)
	}
	return selected, nil
}

// objects gives a plugin read access to a served resource.
func (a *api) objects(gvr schema.GroupVersionResource) admission.Objects {
	e := a.byGVR[gvr]
	return admission.Objects{Store: e.Store, KeyPrefix: e.KeyPrefix, Resource: gvr.GroupResource()}
}

// listStored lists a namespace's objects of a served built-in resource
// with a consistent read; resources Tower does not serve have none.
func (a *api) listStored(ctx context.Context, gr schema.GroupResource, namespace string) ([]runtime.Object, error) {
	for _, e := range a.endpoints {
		if e.Resource.GroupResource() != gr || e.Resource.NotStored || e.Resource.StoredAs != nil {
			continue
		}
		list := e.Resource.NewList()
		if err := e.Store.GetList(ctx, e.KeyPrefix+"/"+namespace+"/", storage.ListOptions{Recursive: true}, list); err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", gr, namespace, err)
		}
		return meta.ExtractList(list)
	}
	return nil, nil
}

func newServiceAllocator(o *Options, services *endpoints.Endpoint) (*admission.ServiceAllocator, error) {
	cidr, err := netip.ParsePrefix(o.ServiceClusterIPRange)
	if err != nil {
		return nil, fmt.Errorf("--service-cluster-ip-range %q: %w", o.ServiceClusterIPRange, err)
	}
	return &admission.ServiceAllocator{Services: services.Store, KeyPrefix: services.KeyPrefix, Range: cidr.Masked()}, nil
}
