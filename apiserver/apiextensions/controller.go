package apiextensions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/conversion"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/util/workqueue"

	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/apiserver/printers"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/cacher"
)

// cleanupRetry is how soon a terminating CRD whose objects are not all gone
// (finalizers pending) is looked at again.
const cleanupRetry = time.Second

// Config is what the manager needs from the server.
type Config struct {
	Etcd *clientv3.Client
	// CRDs is the store of customresourcedefinitions and CRDKeyPrefix its
	// etcd key prefix ("/registry/apiextensions.k8s.io/customresourcedefinitions").
	CRDs         storage.Interface
	CRDKeyPrefix string
	// KeyPrefix places a registry storage prefix under the server's
	// --etcd-prefix.
	KeyPrefix func(storagePrefix string) string
	// WatchCache puts a watch cache in front of every custom resource store.
	WatchCache bool
	// ServiceResolver finds the endpoint of a conversion webhook given as
	// a Service.
	ServiceResolver webhookutil.ServiceResolver
	// OnChange receives the served custom resources (in discovery order)
	// and the CRDs serving them (as served: with their accepted names)
	// whenever they change.
	OnChange func(resources []*registry.Resource, crds []*apiextensionsv1.CustomResourceDefinition)
}

// Manager establishes CRDs and serves their custom resources.
type Manager struct {
	cfg       Config
	converter internalConverter
	// crConverters makes each CRD's converter between its versions.
	crConverters *conversion.CRConverterFactory
	scope        *endpoints.Scope
	queue        workqueue.TypedRateLimitingInterface[string]

	mu     sync.RWMutex
	served map[schema.GroupVersionResource]*servedVersion
	byCRD  map[string]*servedCRD
}

// servedVersion is one live version of a custom resource.
type servedVersion struct {
	resource *registry.Resource
	handler  *endpoints.Handler
	table    printers.TableConvertor
	crd      string
}

// servedCRD is what a CRD currently serves, and what it was built from.
type servedCRD struct {
	// crd is the CRD the versions were built from.
	crd           *apiextensionsv1.CustomResourceDefinition
	uid           string
	generation    int64
	acceptedNames apiextensionsv1.CustomResourceDefinitionNames
	versions      []*servedVersion
	terminating   bool
	stop          context.CancelFunc
}

// NewManager prepares a manager; Run starts it.
func NewManager(cfg Config) (*Manager, error) {
	converter, err := newInternalConverter()
	if err != nil {
		return nil, err
	}
	crConverters, err := conversion.NewCRConverterFactory(cfg.ServiceResolver, nil)
	if err != nil {
		return nil, fmt.Errorf("custom resource converters: %w", err)
	}
	return &Manager{
		cfg:          cfg,
		converter:    converter,
		crConverters: crConverters,
		queue:        workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		served:       map[schema.GroupVersionResource]*servedVersion{},
		byCRD:        map[string]*servedCRD{},
	}, nil
}

// Run watches CRDs and reconciles them until ctx ends. scope is the shared
// part of every custom resource handler.
func (m *Manager) Run(ctx context.Context, scope *endpoints.Scope) {
	m.scope = scope
	log := logr.FromContextOrDiscard(ctx).WithName("crd-controller")
	ctx = logr.NewContext(ctx, log)
	go func() {
		<-ctx.Done()
		m.queue.ShutDown()
	}()
	go m.watchCRDs(ctx)
	go func() {
		for m.processNext(ctx) {
		}
	}()
}

func (m *Manager) watchCRDs(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx)
	for ctx.Err() == nil {
		w, err := m.cfg.CRDs.Watch(ctx, m.cfg.CRDKeyPrefix+"/", storage.ListOptions{Recursive: true})
		if err != nil {
			log.Error(err, "watch customresourcedefinitions")
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		for event := range w.ResultChan() {
			if event.Type == watch.Error || event.Type == watch.Bookmark {
				continue
			}
			// The watch cache may wrap objects (CachingObject); the name
			// is all the queue needs.
			obj := event.Object
			if cached, ok := obj.(*storage.CachingObject); ok {
				obj = cached.Object()
			}
			if accessor, err := meta.Accessor(obj); err == nil {
				m.queue.Add(accessor.GetName())
			}
		}
		w.Stop()
	}
}

func (m *Manager) processNext(ctx context.Context) bool {
	name, shutdown := m.queue.Get()
	if shutdown {
		return false
	}
	defer m.queue.Done(name)
	retry, err := m.reconcile(ctx, name)
	switch {
	case err != nil:
		logr.FromContextOrDiscard(ctx).Error(err, "reconcile customresourcedefinition", "name", name)
		m.queue.AddRateLimited(name)
	case retry:
		m.queue.Forget(name)
		m.queue.AddAfter(name, cleanupRetry)
	default:
		m.queue.Forget(name)
	}
	return true
}

func (m *Manager) crdKey(name string) string { return m.cfg.CRDKeyPrefix + "/" + name }

// reconcile brings one CRD's serving and status in line with its spec. It
// reports retry when deletion waits for custom objects to go.
func (m *Manager) reconcile(ctx context.Context, name string) (bool, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := m.cfg.CRDs.Get(ctx, m.crdKey(name), storage.GetOptions{}, crd); err != nil {
		if storage.IsNotFound(err) {
			m.unserve(name)
			return false, nil
		}
		return false, fmt.Errorf("read customresourcedefinition %s: %w", name, err)
	}
	if crd.DeletionTimestamp != nil {
		return m.finalize(ctx, crd)
	}
	accepted, namesCondition, err := m.acceptNames(ctx, crd)
	if err != nil {
		return false, err
	}
	status := crd.Status.DeepCopy()
	status.AcceptedNames = accepted
	namesCondition.LastTransitionTime = metav1.Now()
	setCondition(status, namesCondition)
	established := apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established)
	if namesCondition.Status == apiextensionsv1.ConditionTrue || established {
		withNames := crd.DeepCopy()
		withNames.Status.AcceptedNames = accepted
		if err := m.serve(ctx, withNames); err != nil {
			return false, err
		}
		setCondition(status, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue,
			Reason: "InitialNamesAccepted", Message: "the initial names have been accepted", LastTransitionTime: metav1.Now(),
		})
	} else {
		setCondition(status, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionFalse,
			Reason: "NotAccepted", Message: "not all names are accepted", LastTransitionTime: metav1.Now(),
		})
	}
	return false, m.writeStatus(ctx, crd.Name, *status)
}

// setCondition replaces a condition, keeping its transition time when the
// status did not change.
func setCondition(status *apiextensionsv1.CustomResourceDefinitionStatus, c apiextensionsv1.CustomResourceDefinitionCondition) {
	holder := &apiextensionsv1.CustomResourceDefinition{Status: *status}
	apihelpers.SetCRDCondition(holder, c)
	*status = holder.Status
}

func (m *Manager) writeStatus(ctx context.Context, name string, status apiextensionsv1.CustomResourceDefinitionStatus) error {
	out := &apiextensionsv1.CustomResourceDefinition{}
	err := m.cfg.CRDs.GuaranteedUpdate(ctx, m.crdKey(name), out, false, nil, func(current runtime.Object) (runtime.Object, error) {
		crd := current.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		merged := status.DeepCopy()
		// storedVersions belongs to the CRD strategy: keep what is stored.
		merged.StoredVersions = crd.Status.StoredVersions
		if equality.Semantic.DeepEqual(conditionsWithoutTimes(crd.Status), conditionsWithoutTimes(*merged)) &&
			equality.Semantic.DeepEqual(crd.Status.AcceptedNames, merged.AcceptedNames) {
			return crd, nil
		}
		crd.Status = *merged
		return crd, nil
	}, nil)
	if err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("update status of customresourcedefinition %s: %w", name, err)
	}
	return nil
}

func conditionsWithoutTimes(status apiextensionsv1.CustomResourceDefinitionStatus) []apiextensionsv1.CustomResourceDefinitionCondition {
	out := slices.Clone(status.Conditions)
	for i := range out {
		out[i].LastTransitionTime = metav1.Time{}
	}
	return out
}

// acceptNames checks the CRD's names against the names other CRDs of the
// same group already hold, with kube-apiserver's reasons and messages. On a
// conflict the previously accepted names stay.
func (m *Manager) acceptNames(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (apiextensionsv1.CustomResourceDefinitionNames, apiextensionsv1.CustomResourceDefinitionCondition, error) {
	list := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := m.cfg.CRDs.GetList(ctx, m.cfg.CRDKeyPrefix+"/", storage.ListOptions{Recursive: true}, list); err != nil {
		return apiextensionsv1.CustomResourceDefinitionNames{}, apiextensionsv1.CustomResourceDefinitionCondition{}, fmt.Errorf("list customresourcedefinitions: %w", err)
	}
	taken := map[string]bool{}
	takenKinds := map[string]bool{}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == crd.Name || other.Spec.Group != crd.Spec.Group {
			continue
		}
		names := other.Status.AcceptedNames
		for _, n := range append([]string{names.Plural, names.Singular}, names.ShortNames...) {
			if n != "" {
				taken[n] = true
			}
		}
		for _, k := range []string{names.Kind, names.ListKind} {
			if k != "" {
				takenKinds[k] = true
			}
		}
	}
	requested := crd.Spec.Names
	conflict := func(reason, message string) (apiextensionsv1.CustomResourceDefinitionNames, apiextensionsv1.CustomResourceDefinitionCondition, error) {
		return crd.Status.AcceptedNames, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionFalse, Reason: reason, Message: message,
		}, nil
	}
	switch {
	case taken[requested.Plural]:
		return conflict("PluralConflict", fmt.Sprintf("%q is already in use", requested.Plural))
	case requested.Singular != "" && taken[requested.Singular]:
		return conflict("SingularConflict", fmt.Sprintf("%q is already in use", requested.Singular))
	case takenKinds[requested.Kind]:
		return conflict("KindConflict", fmt.Sprintf("%q is already in use", requested.Kind))
	case requested.ListKind != "" && takenKinds[requested.ListKind]:
		return conflict("ListKindConflict", fmt.Sprintf("%q is already in use", requested.ListKind))
	}
	for _, short := range requested.ShortNames {
		if taken[short] {
			return conflict("ShortNamesConflict", fmt.Sprintf("%q is already in use", short))
		}
	}
	return requested, apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionTrue, Reason: "NoConflicts", Message: "no conflicts found",
	}, nil
}

// serve (re)builds the handlers of a CRD's served versions when its spec or
// accepted names changed, and swaps them in.
func (m *Manager) serve(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	m.mu.RLock()
	current := m.byCRD[crd.Name]
	m.mu.RUnlock()
	if current != nil && current.uid == string(crd.UID) && current.generation == crd.Generation &&
		equality.Semantic.DeepEqual(current.acceptedNames, crd.Status.AcceptedNames) {
		return nil
	}
	internal, err := m.converter.internal(crd)
	if err != nil {
		return err
	}
	storageVersion, err := apihelpers.GetCRDStorageVersion(crd)
	if err != nil {
		return fmt.Errorf("customresourcedefinition %s: %w", crd.Name, err)
	}
	storedGV := schema.GroupVersion{Group: crd.Spec.Group, Version: storageVersion}
	safe, unsafe, err := m.crConverters.NewConverter(crd)
	if err != nil {
		return fmt.Errorf("converter of customresourcedefinition %s: %w", crd.Name, err)
	}
	converters := crConverters{safe: safe, unsafe: unsafe}
	schemas := map[string]*crSchema{}
	for _, version := range crd.Spec.Versions {
		if schemas[version.Name], err = newCRSchema(internal, version.Name); err != nil {
			return fmt.Errorf("customresourcedefinition %s: %w", crd.Name, err)
		}
	}
	scope, err := m.customResourceScope(crd, safe)
	if err != nil {
		return err
	}
	crdCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	next := &servedCRD{crd: crd, uid: string(crd.UID), generation: crd.Generation, acceptedNames: crd.Status.AcceptedNames, stop: stop}
	for i := range crd.Spec.Versions {
		version := &crd.Spec.Versions[i]
		if !version.Served {
			continue
		}
		res := newCustomResource(crd, version, schemas[version.Name])
		codec := &storageCodec{served: res.GroupVersion(), stored: storedGV, schemas: schemas, converters: converters}
		prefix := m.cfg.KeyPrefix(res.StoragePrefix)
		var store storage.Interface = storage.NewEtcdStore(m.cfg.Etcd, codec, res.New, res.NewList, prefix)
		if m.cfg.WatchCache {
			if store, err = cacher.New(crdCtx, store, m.cfg.Etcd, prefix, res.New, res.NewList); err != nil {
				stop()
				return fmt.Errorf("watch cache for %s: %w", res.GroupResource(), err)
			}
		}
		handler, err := endpoints.NewHandler(scope, []*endpoints.Endpoint{{Resource: res, Store: store, KeyPrefix: prefix}})
		if err != nil {
			stop()
			return fmt.Errorf("handler for %s: %w", res.GroupVersionResource, err)
		}
		table, err := tableconvertor.New(version.AdditionalPrinterColumns)
		if err != nil {
			stop()
			return fmt.Errorf("table columns of %s: %w", res.GroupVersionResource, err)
		}
		next.versions = append(next.versions, &servedVersion{resource: res, handler: handler, table: table, crd: crd.Name})
	}
	m.replace(crd.Name, next)
	return nil
}

// customResourceScope is the shared scope with crd's field management:
// its own type converter, and converter between its versions for the
// managedFields entries recorded through other versions, so that
// managedFields and server-side apply follow the CRD's schemas and
// conversion as kube-apiserver's field manager does.
func (m *Manager) customResourceScope(crd *apiextensionsv1.CustomResourceDefinition, converter runtime.ObjectConvertor) (*endpoints.Scope, error) {
	typeConverter, err := newTypeConverter(crd)
	if err != nil {
		return nil, fmt.Errorf("customresourcedefinition %s: %w", crd.Name, err)
	}
	scope := *m.scope
	scope.TypeConverter = typeConverter
	scope.CustomResourceConvertor = converter
	return &scope, nil
}

// replace swaps a CRD's served versions (nil: none) and reports the new set.
func (m *Manager) replace(name string, next *servedCRD) {
	m.mu.Lock()
	previous := m.byCRD[name]
	if previous != nil {
		for _, v := range previous.versions {
			delete(m.served, v.resource.GroupVersionResource)
		}
	}
	if next == nil {
		delete(m.byCRD, name)
	} else {
		m.byCRD[name] = next
		for _, v := range next.versions {
			m.served[v.resource.GroupVersionResource] = v
		}
	}
	resources := m.resourcesLocked()
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(m.byCRD))
	for _, served := range m.byCRD {
		crds = append(crds, served.crd)
	}
	m.mu.Unlock()
	if previous != nil {
		previous.stop()
	}
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(resources, crds)
	}
}

func (m *Manager) unserve(name string) {
	m.mu.RLock()
	_, ok := m.byCRD[name]
	m.mu.RUnlock()
	if ok {
		m.replace(name, nil)
	}
}

// resourcesLocked lists the served custom resources grouped by group, each
// group's versions by Kubernetes version priority (the first is the
// preferred version discovery reports), then by resource name.
func (m *Manager) resourcesLocked() []*registry.Resource {
	out := make([]*registry.Resource, 0, len(m.served))
	for _, v := range m.served {
		out = append(out, v.resource)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return version.CompareKubeAwareVersionStrings(a.Version, b.Version) > 0
		}
		return a.Resource < b.Resource
	})
	return out
}

// Resources lists the served custom resources in discovery order.
func (m *Manager) Resources() []*registry.Resource {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.resourcesLocked()
}

// Serve handles a request for a custom resource and reports whether info
// named one.
func (m *Manager) Serve(w http.ResponseWriter, r *http.Request, info *endpoints.RequestInfo) bool {
	m.mu.RLock()
	v, ok := m.served[info.GroupVersion.WithResource(info.Resource)]
	terminating := ok && m.byCRD[v.crd].terminating
	m.mu.RUnlock()
	if !ok {
		return false
	}
	if terminating && info.Verb == "create" {
		err := apierrors.NewMethodNotSupported(v.resource.GroupResource(), "create")
		err.ErrStatus.Message = "create not allowed while custom resource definition is terminating"
		writeStatus(w, &err.ErrStatus)
		return true
	}
	ctx := printers.WithTableConvertor(r.Context(), v.table)
	v.handler.Serve(w, r.WithContext(ctx), info)
	return true
}

func writeStatus(w http.ResponseWriter, status *metav1.Status) {
	status.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	body, err := json.Marshal(status)
	if err != nil {
		http.Error(w, status.Message, int(status.Code))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(status.Code))
	_, _ = w.Write(body)
}

// finalize deletes a terminating CRD's objects, then drops the cleanup
// finalizer (and the CRD, when no other finalizer holds it).
func (m *Manager) finalize(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	m.mu.Lock()
	if served := m.byCRD[crd.Name]; served != nil {
		served.terminating = true
	}
	m.mu.Unlock()
	if !slices.Contains(crd.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer) {
		return false, nil
	}
	status := crd.Status.DeepCopy()
	setCondition(status, apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionTrue,
		Reason: "InstanceDeletionInProgress", Message: "CustomResource deletion is in progress", LastTransitionTime: metav1.Now(),
	})
	if err := m.writeStatus(ctx, crd.Name, *status); err != nil {
		return false, err
	}
	remaining, err := m.deleteObjects(ctx, crd)
	if err != nil {
		return false, err
	}
	if remaining > 0 {
		return true, nil
	}
	m.unserve(crd.Name)
	out := &apiextensionsv1.CustomResourceDefinition{}
	err = m.cfg.CRDs.GuaranteedUpdate(ctx, m.crdKey(crd.Name), out, false, nil, func(current runtime.Object) (runtime.Object, error) {
		updated := current.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		updated.Finalizers = slices.DeleteFunc(updated.Finalizers, func(f string) bool { return f == apiextensionsv1.CustomResourceCleanupFinalizer })
		return updated, nil
	}, nil)
	if storage.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove cleanup finalizer of %s: %w", crd.Name, err)
	}
	if len(out.Finalizers) > 0 {
		return false, nil
	}
	rv := out.ResourceVersion
	err = m.cfg.CRDs.Delete(ctx, m.crdKey(crd.Name), &apiextensionsv1.CustomResourceDefinition{}, &storage.Preconditions{ResourceVersion: &rv}, nil, nil)
	if err != nil && !storage.IsNotFound(err) {
		return false, fmt.Errorf("delete finalized customresourcedefinition %s: %w", crd.Name, err)
	}
	return false, nil
}

// deleteObjects removes every stored object of the CRD; objects with
// finalizers are marked for deletion and counted as remaining.
func (m *Manager) deleteObjects(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (int, error) {
	storageVersion, err := apihelpers.GetCRDStorageVersion(crd)
	if err != nil {
		return 0, fmt.Errorf("customresourcedefinition %s: %w", crd.Name, err)
	}
	gv := schema.GroupVersion{Group: crd.Spec.Group, Version: storageVersion}
	prefix := m.cfg.KeyPrefix("/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural)
	newObj := func() runtime.Object { return &unstructured.Unstructured{} }
	newList := func() runtime.Object { return &unstructured.UnstructuredList{} }
	store := storage.NewEtcdStore(m.cfg.Etcd, rawCodec{gv: gv}, newObj, newList, prefix)
	list := &unstructured.UnstructuredList{}
	if err := store.GetList(ctx, prefix+"/", storage.ListOptions{Recursive: true}, list); err != nil {
		return 0, fmt.Errorf("list objects of %s: %w", crd.Name, err)
	}
	remaining := 0
	var errs []error
	for i := range list.Items {
		item := &list.Items[i]
		key := prefix + "/" + item.GetName()
		if ns := item.GetNamespace(); ns != "" {
			key = prefix + "/" + ns + "/" + item.GetName()
		}
		if len(item.GetFinalizers()) > 0 {
			remaining++
			if item.GetDeletionTimestamp() != nil {
				continue
			}
			err := store.GuaranteedUpdate(ctx, key, &unstructured.Unstructured{}, false, nil, func(current runtime.Object) (runtime.Object, error) {
				u := current.(*unstructured.Unstructured).DeepCopy()
				now := metav1.Now()
				u.SetDeletionTimestamp(&now)
				zero := int64(0)
				u.SetDeletionGracePeriodSeconds(&zero)
				return u, nil
			}, nil)
			if err != nil && !storage.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		if err := store.Delete(ctx, key, &unstructured.Unstructured{}, nil, nil, nil); err != nil && !storage.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return remaining, errors.Join(errs...)
}

// rawCodec reads and writes stored custom resources as they are, for the
// cleanup of a CRD whose schema no longer matters.
type rawCodec struct{ gv schema.GroupVersion }

func (c rawCodec) Encode(obj runtime.Object, w io.Writer) error {
	return unstructured.UnstructuredJSONScheme.Encode(obj, w)
}

func (c rawCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into == nil {
		into = &unstructured.Unstructured{}
	}
	return unstructured.UnstructuredJSONScheme.Decode(data, defaults, into)
}

func (c rawCodec) Identifier() runtime.Identifier {
	return runtime.Identifier("tower-custom-resource-raw-" + strings.ReplaceAll(c.gv.String(), "/", "-"))
}
