package admission

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/authentication/user"
	k8sauthorizer "k8s.io/apiserver/pkg/authorization/authorizer"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/apiserver/pkg/util/proxy"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/featuregate"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/registry"
)

// Webhooks calls the admission webhooks that MutatingWebhookConfigurations
// and ValidatingWebhookConfigurations register. The matching (rules,
// selectors, matchConditions), the AdmissionReview exchange over TLS, the
// JSON patches, failure policies, timeouts, dryRun checks and error texts
// are k8s.io/apiserver's webhook plugins, the ones kube-apiserver runs;
// Tower adapts its attributes and objects to them.
type Webhooks struct {
	// Mutating is the MutatingAdmissionWebhook plugin, Validating the
	// ValidatingAdmissionWebhook plugin.
	Mutating   *MutatingWebhooks
	Validating *ValidatingWebhooks
}

// MutatingWebhooks calls the mutating webhooks.
type MutatingWebhooks struct {
	plugin *mutating.Plugin
	adapter
	configurations
}

// ValidatingWebhooks calls the validating webhooks.
type ValidatingWebhooks struct {
	plugin *validating.Plugin
	adapter
	configurations
}

// configurations watches the webhook configurations of one kind. With
// none registered the plugin could change nothing, yet it would still pay
// for a readiness check, a timer and the translated attributes on every
// write; the common cluster has none, so that cost is skipped.
type configurations struct{ informer cache.SharedIndexInformer }

// none reports that the informer has synced and holds no configuration.
func (c configurations) none() bool {
	return c.informer.HasSynced() && len(c.informer.GetStore().ListKeys()) == 0
}

// UpstreamConfig is what k8s.io/apiserver's webhook and policy plugins
// need from the server.
type UpstreamConfig struct {
	// Client and Informers talk to this API server (its loopback client):
	// the plugins watch webhook configurations, admission policies and
	// bindings, namespaces (for namespaceSelector), services and endpoint
	// slices (to resolve webhook services) through them.
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	// Dynamic and RESTMapper reach the policies' parameter objects, of any
	// kind.
	Dynamic    dynamic.Interface
	RESTMapper meta.RESTMapper
	// Authorizer answers the `authorizer` variable of CEL expressions.
	Authorizer authorization.Authorizer
	// Scheme knows every built-in type.
	Scheme *runtime.Scheme
	// Resources maps resources to their kinds and equivalents.
	Resources *EquivalentResources
	// ServiceResolver finds the endpoint of a webhook given as a Service.
	ServiceResolver webhookutil.ServiceResolver
	// Stop ends the plugins' background work.
	Stop <-chan struct{}
}

// webhookPlugin is how both upstream webhook plugins are initialized.
type webhookPlugin interface {
	SetExternalKubeClientSet(kubernetes.Interface)
	SetExternalKubeInformerFactory(informers.SharedInformerFactory)
	SetDrainedNotification(<-chan struct{})
	SetServiceResolver(webhookutil.ServiceResolver)
	SetUnconditionalAuthorizer(k8sauthorizer.UnconditionalAuthorizer)
	InspectFeatureGates(featuregate.FeatureGate)
	ValidateInitialization() error
}

// NewWebhooks builds the mutating and validating webhook plugins. The
// informers must be started afterwards.
func NewWebhooks(c UpstreamConfig) (*Webhooks, error) {
	m, err := mutating.NewMutatingWebhook(nil)
	if err != nil {
		return nil, fmt.Errorf("mutating webhook plugin: %w", err)
	}
	v, err := validating.NewValidatingAdmissionWebhook(nil)
	if err != nil {
		return nil, fmt.Errorf("validating webhook plugin: %w", err)
	}
	for _, p := range []webhookPlugin{m, v} {
		p.SetExternalKubeClientSet(c.Client)
		p.SetExternalKubeInformerFactory(c.Informers)
		p.SetDrainedNotification(c.Stop)
		p.SetServiceResolver(c.ServiceResolver)
		p.SetUnconditionalAuthorizer(upstreamAuthorizer{c.Authorizer})
		p.InspectFeatureGates(utilfeature.DefaultFeatureGate)
		if err := p.ValidateInitialization(); err != nil {
			return nil, fmt.Errorf("webhook plugin: %w", err)
		}
	}
	a := adapter{scheme: c.Scheme, resources: c.Resources}
	registrations := c.Informers.Admissionregistration().V1()
	return &Webhooks{
		Mutating: &MutatingWebhooks{plugin: m, adapter: a,
			configurations: configurations{registrations.MutatingWebhookConfigurations().Informer()}},
		Validating: &ValidatingWebhooks{plugin: v, adapter: a,
			configurations: configurations{registrations.ValidatingWebhookConfigurations().Informer()}},
	}, nil
}

// Admit runs the mutating webhooks, and once more those with
// reinvocationPolicy IfNeeded when a later webhook changed the object, as
// kube-apiserver's admission chain does.
func (w *MutatingWebhooks) Admit(ctx context.Context, a *Attributes) error {
	if w.none() {
		return nil
	}
	ctx, attrs, o := w.attributes(ctx, a)
	if err := w.plugin.Admit(ctx, attrs, o); err != nil {
		return err
	}
	if rc := attrs.GetReinvocationContext(); rc.ShouldReinvoke() {
		rc.SetIsReinvoke()
		return w.plugin.Admit(ctx, attrs, o)
	}
	return nil
}

// Validate runs the validating webhooks.
func (w *ValidatingWebhooks) Validate(ctx context.Context, a *Attributes) error {
	if w.none() {
		return nil
	}
	ctx, attrs, o := w.attributes(ctx, a)
	return w.plugin.Validate(ctx, attrs, o)
}

// adapter translates Tower's attributes and objects for the plugins.
type adapter struct {
	scheme    *runtime.Scheme
	resources *EquivalentResources
}

// attributes translates Tower's attributes into k8s.io/apiserver's; the
// warnings and audit annotations the plugins add land in a.
func (d adapter) attributes(ctx context.Context, a *Attributes) (context.Context, k8sadmission.Attributes, k8sadmission.ObjectInterfaces) {
	gvk := a.Resource.GroupVersionKind()
	obj := withKind(a.Object, gvk, false)
	old := withKind(a.OldObject, gvk, true)
	var info user.Info
	if u, ok := authentication.UserFrom(ctx); ok {
		info = &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
	}
	record := k8sadmission.NewAttributesRecord(obj, old, gvk, a.Namespace, a.Name, a.Resource.GroupVersionResource,
		a.Subresource, k8sadmission.Operation(a.Operation), operationOptions(a), a.DryRun, info)
	sink := &reportSink{attrs: a}
	ctx = warning.WithWarningRecorder(ctx, sink)
	return ctx, &reportingAttributes{Attributes: record, sink: sink}, &objectInterfaces{scheme: d.scheme, resources: d.resources, resource: a.Resource}
}

// reportSink passes warnings and audit annotations to Tower's attributes;
// validating webhooks run in parallel, hence the lock.
type reportSink struct {
	mu    sync.Mutex
	attrs *Attributes
}

// AddWarning implements k8s.io/apiserver's warning.Recorder.
func (s *reportSink) AddWarning(_, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs.AddWarning(text)
}

func (s *reportSink) addAnnotation(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs.AddAnnotation(key, value)
}

// reportingAttributes are the plugins' attributes with audit annotations
// sent to Tower's attributes.
type reportingAttributes struct {
	k8sadmission.Attributes
	sink *reportSink
}

func (r *reportingAttributes) AddAnnotation(key, value string) error {
	r.sink.addAnnotation(key, value)
	return nil
}

func (r *reportingAttributes) AddAnnotationWithLevel(key, value string, _ auditinternal.Level) error {
	r.sink.addAnnotation(key, value)
	return nil
}

// withKind makes sure obj carries its apiVersion and kind, which the
// plugins compare to decide whether to convert. A shared object (the
// stored state may come from the watch cache) is copied first.
func withKind(obj runtime.Object, gvk schema.GroupVersionKind, shared bool) runtime.Object {
	if obj == nil || reflect.ValueOf(obj).IsNil() || obj.GetObjectKind().GroupVersionKind() == gvk {
		return obj
	}
	if shared {
		obj = obj.DeepCopyObject()
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}

// operationOptions are the options object AdmissionReview carries.
func operationOptions(a *Attributes) runtime.Object {
	var dryRun []string
	if a.DryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	var opts runtime.Object
	switch a.Operation {
	case Create:
		opts = &metav1.CreateOptions{DryRun: dryRun}
	case Update:
		opts = &metav1.UpdateOptions{DryRun: dryRun}
	case Delete:
		opts = &metav1.DeleteOptions{DryRun: dryRun}
	default:
		return nil
	}
	kind := map[Operation]string{Create: "CreateOptions", Update: "UpdateOptions", Delete: "DeleteOptions"}[a.Operation]
	opts.GetObjectKind().SetGroupVersionKind(metav1.SchemeGroupVersion.WithKind(kind))
	return opts
}

// objectInterfaces creates, converts and defaults the objects of one
// request for the plugins.
type objectInterfaces struct {
	scheme    *runtime.Scheme
	resources *EquivalentResources
	resource  *registry.Resource
}

func (o *objectInterfaces) GetObjectCreater() runtime.ObjectCreater { return o }
func (o *objectInterfaces) GetObjectTyper() runtime.ObjectTyper     { return o.scheme }
func (o *objectInterfaces) GetObjectDefaulter() runtime.ObjectDefaulter {
	return o
}
func (o *objectInterfaces) GetObjectConvertor() runtime.ObjectConvertor { return o }
func (o *objectInterfaces) GetEquivalentResourceMapper() runtime.EquivalentResourceMapper {
	return o.resources
}

// New creates built-in types from the scheme and custom resources as
// unstructured objects.
func (o *objectInterfaces) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	if o.scheme.Recognizes(gvk) {
		return o.scheme.New(gvk)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// Default applies the resource's defaults to an object a webhook patched.
func (o *objectInterfaces) Default(obj runtime.Object) {
	if obj.GetObjectKind().GroupVersionKind() == o.resource.GroupVersionKind() {
		o.resource.Strategy.Default(obj)
	}
}

// Convert copies between objects of the same Go type (Tower serves each
// built-in kind in one version) and defers to the scheme otherwise.
func (o *objectInterfaces) Convert(in, out, context any) error {
	inV, outV := reflect.ValueOf(in), reflect.ValueOf(out)
	if _, unstructuredIn := in.(*unstructured.Unstructured); !unstructuredIn && inV.Type() == outV.Type() && inV.Kind() == reflect.Pointer {
		outV.Elem().Set(inV.Elem())
		return nil
	}
	return o.scheme.Convert(in, out, context)
}

func (o *objectInterfaces) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	return o.scheme.ConvertToVersion(in, gv)
}

func (o *objectInterfaces) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return o.scheme.ConvertFieldLabel(gvk, label, value)
}

// EquivalentResources knows the kind of every served resource and
// subresource and which resources are the same objects in another version
// (a custom resource's versions), for matchPolicy Equivalent.
type EquivalentResources struct {
	mu        sync.RWMutex
	resources map[schema.GroupVersionResource]*registry.Resource
	byGroup   map[schema.GroupResource][]schema.GroupVersionResource
}

// NewEquivalentResources indexes the served resources.
func NewEquivalentResources(resources []*registry.Resource) *EquivalentResources {
	e := &EquivalentResources{}
	e.Update(resources)
	return e
}

// Update replaces the served resources (custom resources come and go).
func (e *EquivalentResources) Update(resources []*registry.Resource) {
	byGVR := map[schema.GroupVersionResource]*registry.Resource{}
	byGroup := map[schema.GroupResource][]schema.GroupVersionResource{}
	for _, r := range resources {
		byGVR[r.GroupVersionResource] = r
		byGroup[r.GroupResource()] = append(byGroup[r.GroupResource()], r.GroupVersionResource)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resources, e.byGroup = byGVR, byGroup
}

// EquivalentResourcesFor lists the versions of resource that serve subresource.
func (e *EquivalentResources) EquivalentResourcesFor(resource schema.GroupVersionResource, subresource string) []schema.GroupVersionResource {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []schema.GroupVersionResource
	for _, gvr := range e.byGroup[resource.GroupResource()] {
		if subresource == "" || servesSubresource(e.resources[gvr], subresource) {
			out = append(out, gvr)
		}
	}
	return out
}

// KindFor is the kind a request to resource/subresource carries. Tower's
// subresource handlers admit the parent object (a scale update is admitted
// as the Deployment it changes), so this is the resource's own kind.
func (e *EquivalentResources) KindFor(resource schema.GroupVersionResource, _ string) schema.GroupVersionKind {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if r, ok := e.resources[resource]; ok {
		return r.GroupVersionKind()
	}
	return schema.GroupVersionKind{}
}

func servesSubresource(r *registry.Resource, subresource string) bool {
	switch subresource {
	case "status":
		return r.Status != nil
	case "scale":
		return r.Scale != nil
	}
	return true
}

// ServiceResolver sends webhook calls for a Service to one of its ready
// endpoints, so that the API server needs no route to cluster IPs. The
// admission webhooks and the CRD conversion webhooks use it.
type ServiceResolver struct {
	services corelisters.ServiceLister
	slices   proxy.EndpointSliceGetter
}

// NewServiceResolver resolves through f's Service and EndpointSlice
// informers; f must be started afterwards.
func NewServiceResolver(f informers.SharedInformerFactory) (*ServiceResolver, error) {
	slices, err := proxy.NewEndpointSliceIndexerGetter(f.Discovery().V1().EndpointSlices())
	if err != nil {
		return nil, fmt.Errorf("endpoint slice index for webhook services: %w", err)
	}
	return &ServiceResolver{services: f.Core().V1().Services().Lister(), slices: slices}, nil
}

// ResolveEndpoint implements k8s.io/apiserver's webhook ServiceResolver.
func (r *ServiceResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	return proxy.ResolveEndpoint(r.services, r.slices, namespace, name, port)
}
