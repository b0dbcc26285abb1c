// Package garbagecollector deletes objects whose owners are gone, as
// kube-controller-manager's garbage collector does. It watches the
// metadata of every served resource that can be listed, watched and
// deleted (rediscovered periodically, so custom resources join in), keeps
// an owner-UID index over them, and handles the three propagation
// policies: background (dependents of a vanished owner are deleted),
// foreground (an owner with the foregroundDeletion finalizer waits for its
// blocking dependents) and orphan (an owner with the orphan finalizer
// releases its dependents first).
package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Name is the controller's name in --controllers.
const Name = "garbagecollector"

// ownerUIDIndex indexes every watched object by the UIDs of its owners.
const ownerUIDIndex = "metadata.ownerReferences.uid"

// rediscoveryInterval is how often new resources (CRDs) are looked for.
const rediscoveryInterval = 30 * time.Second

// ignoredResources are never collected, as upstream: events are
// high-volume and expire on their own.
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// objectRef names one object of one kind; it is the controller's request.
type objectRef struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// Collector is the garbage collector.
type Collector struct {
	client    client.Client
	metadata  metadata.Interface
	discovery discovery.DiscoveryInterface
	mapper    meta.RESTMapper
	mgr       ctrl.Manager
	ctrl      controller.TypedController[objectRef]

	mu      sync.Mutex
	watched map[schema.GroupVersionKind]schema.GroupVersionResource
}

// SetupWithManager registers the collector with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	md, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("building metadata client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("building discovery client: %w", err)
	}
	c := &Collector{
		client:    mgr.GetClient(),
		metadata:  md,
		discovery: disc,
		mapper:    mgr.GetRESTMapper(),
		mgr:       mgr,
		watched:   map[schema.GroupVersionKind]schema.GroupVersionResource{},
	}
	c.ctrl, err = controller.NewTyped[objectRef]("garbagecollector", mgr, controller.TypedOptions[objectRef]{
		Reconciler:              c,
		MaxConcurrentReconciles: 10,
	})
	if err != nil {
		return fmt.Errorf("creating garbage collector controller: %w", err)
	}
	return mgr.Add(c)
}

// Start discovers resources and watches the new ones until ctx ends. It
// runs as a leader-elected runnable next to the controller.
func (c *Collector) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("garbagecollector")
	ticker := time.NewTicker(rediscoveryInterval)
	defer ticker.Stop()
	for {
		if err := c.syncMonitors(ctx); err != nil {
			log.Error(err, "Discovering resources to collect")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// syncMonitors starts watching every collectable resource not yet watched.
func (c *Collector) syncMonitors(ctx context.Context) error {
	lists, err := c.discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return fmt.Errorf("discovery: %w", err)
	}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range list.APIResources {
			if !collectable(gv, res) {
				continue
			}
			gvk := gv.WithKind(res.Kind)
			c.mu.Lock()
			_, known := c.watched[gvk]
			c.mu.Unlock()
			if known {
				continue
			}
			// Registered before the watch starts, so its first events
			// are not dropped as unknown.
			c.mu.Lock()
			c.watched[gvk] = gv.WithResource(res.Name)
			c.mu.Unlock()
			if err := c.watch(ctx, gvk); err != nil {
				c.mu.Lock()
				delete(c.watched, gvk)
				c.mu.Unlock()
				return err
			}
		}
	}
	return nil
}

func collectable(gv schema.GroupVersion, res metav1.APIResource) bool {
	if ignoredResources[schema.GroupResource{Group: gv.Group, Resource: res.Name}] {
		return false
	}
	for _, verb := range []string{"list", "watch", "delete", "get", "patch"} {
		if !slices.Contains(res.Verbs, verb) {
			return false
		}
	}
	return !slices.Contains([]rune(res.Name), '/')
}

func partial(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	return obj
}

func (c *Collector) watch(ctx context.Context, gvk schema.GroupVersionKind) error {
	err := c.mgr.GetFieldIndexer().IndexField(ctx, partial(gvk), ownerUIDIndex, func(obj client.Object) []string {
		var uids []string
		for _, ref := range obj.GetOwnerReferences() {
			uids = append(uids, string(ref.UID))
		}
		return uids
	})
	if err != nil {
		return fmt.Errorf("indexing %s by owner: %w", gvk, err)
	}
	src := source.TypedKind(c.mgr.GetCache(), partial(gvk), c.handler(gvk))
	if err := c.ctrl.Watch(src); err != nil {
		return fmt.Errorf("watching %s: %w", gvk, err)
	}
	return nil
}

type queue = workqueue.TypedRateLimitingInterface[objectRef]

// handler enqueues an object that has owners or awaits the collector, and
// the dependents of an object that is going away.
func (c *Collector) handler(gvk schema.GroupVersionKind) handler.TypedEventHandler[*metav1.PartialObjectMetadata, objectRef] {
	enqueue := func(ctx context.Context, obj *metav1.PartialObjectMetadata, gone bool, q queue) {
		if len(obj.OwnerReferences) > 0 || hasGCFinalizer(obj) {
			q.Add(objectRef{GVK: gvk, Namespace: obj.Namespace, Name: obj.Name})
		}
		if gone || obj.DeletionTimestamp != nil {
			c.enqueueDependents(ctx, obj.UID, q)
		}
		if gone {
			// An owner in foreground deletion waits for this one.
			for _, ref := range obj.OwnerReferences {
				if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil {
					q.Add(objectRef{GVK: gv.WithKind(ref.Kind), Namespace: obj.Namespace, Name: ref.Name})
					q.Add(objectRef{GVK: gv.WithKind(ref.Kind), Name: ref.Name})
				}
			}
		}
	}
	return handler.TypedFuncs[*metav1.PartialObjectMetadata, objectRef]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*metav1.PartialObjectMetadata], q queue) {
			enqueue(ctx, e.Object, false, q)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*metav1.PartialObjectMetadata], q queue) {
			enqueue(ctx, e.ObjectNew, false, q)
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[*metav1.PartialObjectMetadata], q queue) {
			enqueue(ctx, e.Object, true, q)
		},
	}
}

func hasGCFinalizer(obj metav1.Object) bool {
	f := obj.GetFinalizers()
	return slices.Contains(f, metav1.FinalizerOrphanDependents) || slices.Contains(f, metav1.FinalizerDeleteDependents)
}

func (c *Collector) enqueueDependents(ctx context.Context, uid types.UID, q queue) {
	deps, err := c.dependents(ctx, uid)
	if err != nil {
		return
	}
	for _, d := range deps {
		q.Add(objectRef{GVK: d.GroupVersionKind(), Namespace: d.Namespace, Name: d.Name})
	}
}

// dependents lists, from the cache, every watched object that names uid
// as an owner.
func (c *Collector) dependents(ctx context.Context, uid types.UID) ([]*metav1.PartialObjectMetadata, error) {
	c.mu.Lock()
	gvks := make([]schema.GroupVersionKind, 0, len(c.watched))
	for gvk := range c.watched {
		gvks = append(gvks, gvk)
	}
	c.mu.Unlock()
	var out []*metav1.PartialObjectMetadata
	for _, gvk := range gvks {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.client.List(ctx, list, client.MatchingFields{ownerUIDIndex: string(uid)}); err != nil {
			return nil, fmt.Errorf("listing dependents among %s: %w", gvk, err)
		}
		for i := range list.Items {
			item := &list.Items[i]
			item.SetGroupVersionKind(gvk)
			out = append(out, item)
		}
	}
	return out, nil
}

// Reconcile collects one object.
func (c *Collector) Reconcile(ctx context.Context, ref objectRef) (reconcile.Result, error) {
	if !c.isWatched(ref.GVK) {
		return reconcile.Result{}, nil
	}
	obj := partial(ref.GVK)
	if err := c.client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	obj.SetGroupVersionKind(ref.GVK)
	if obj.DeletionTimestamp != nil {
		switch {
		case slices.Contains(obj.Finalizers, metav1.FinalizerOrphanDependents):
			return reconcile.Result{}, c.orphanDependents(ctx, obj)
		case slices.Contains(obj.Finalizers, metav1.FinalizerDeleteDependents):
			return c.deleteDependentsFirst(ctx, obj)
		}
		return reconcile.Result{}, nil
	}
	if len(obj.OwnerReferences) == 0 {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, c.checkOwners(ctx, obj)
}

type ownerState int

const (
	ownerAlive ownerState = iota
	ownerAbsent
	// ownerDeletingForeground is an owner waiting for its dependents.
	ownerDeletingForeground
)

// checkOwners deletes obj when all its owners are gone (or waiting for it
// in a foreground deletion) and drops references to vanished owners while
// a live one remains.
func (c *Collector) checkOwners(ctx context.Context, obj *metav1.PartialObjectMetadata) error {
	var alive, absent, waiting []metav1.OwnerReference
	for _, ref := range obj.OwnerReferences {
		state, err := c.ownerState(ctx, ref, obj.Namespace)
		if err != nil {
			return err
		}
		switch state {
		case ownerAlive:
			alive = append(alive, ref)
		case ownerAbsent:
			absent = append(absent, ref)
		case ownerDeletingForeground:
			waiting = append(waiting, ref)
		}
	}
	switch {
	case len(alive) > 0:
		if len(absent) == 0 {
			return nil
		}
		return c.removeOwnerRefs(ctx, obj, absent)
	case len(waiting) > 0:
		return c.delete(ctx, obj, metav1.DeletePropagationForeground)
	default:
		policy := metav1.DeletePropagationBackground
		switch {
		case slices.Contains(obj.Finalizers, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case slices.Contains(obj.Finalizers, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		return c.delete(ctx, obj, policy)
	}
}

// ownerState looks the owner up in the cache and, before calling it
// absent, asks the API server: a cache that lags behind must never get a
// dependent deleted.
func (c *Collector) ownerState(ctx context.Context, ref metav1.OwnerReference, namespace string) (ownerState, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ownerAbsent, nil
	}
	mapping, err := c.mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if err != nil {
		// A kind the server does not serve (yet): keep the dependent.
		return ownerAlive, nil
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		namespace = ""
	}
	owner := partial(gv.WithKind(ref.Kind))
	cacheErr := fmt.Errorf("%s is not watched", ref.Kind)
	if c.isWatched(owner.GroupVersionKind()) {
		cacheErr = c.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, owner)
	}
	if cacheErr != nil || owner.UID != ref.UID {
		live, err := c.metadata.Resource(mapping.Resource).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return ownerAbsent, nil
		case err != nil:
			return ownerAlive, fmt.Errorf("looking up owner %s %s: %w", ref.Kind, ref.Name, err)
		case live.UID != ref.UID:
			return ownerAbsent, nil
		}
		owner = live
	}
	if owner.DeletionTimestamp != nil && slices.Contains(owner.Finalizers, metav1.FinalizerDeleteDependents) {
		return ownerDeletingForeground, nil
	}
	return ownerAlive, nil
}

func (c *Collector) isWatched(gvk schema.GroupVersionKind) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.watched[gvk]
	return ok
}

func (c *Collector) resourceFor(gvk schema.GroupVersionKind) (schema.GroupVersionResource, error) {
	c.mu.Lock()
	gvr, ok := c.watched[gvk]
	c.mu.Unlock()
	if ok {
		return gvr, nil
	}
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return schema.GroupVersionResource{}, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	return mapping.Resource, nil
}

func (c *Collector) delete(ctx context.Context, obj *metav1.PartialObjectMetadata, policy metav1.DeletionPropagation) error {
	gvr, err := c.resourceFor(obj.GroupVersionKind())
	if err != nil {
		return err
	}
	uid := obj.UID
	err = c.metadata.Resource(gvr).Namespace(obj.Namespace).Delete(ctx, obj.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s %s/%s: %w", gvr.Resource, obj.Namespace, obj.Name, err)
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Deleted dependent", "resource", gvr.Resource, "namespace", obj.Namespace, "name", obj.Name, "propagation", policy)
	return nil
}

// removeOwnerRefs drops the given owner references from obj.
func (c *Collector) removeOwnerRefs(ctx context.Context, obj *metav1.PartialObjectMetadata, refs []metav1.OwnerReference) error {
	var deletes []any
	for _, ref := range refs {
		deletes = append(deletes, map[string]any{"$patch": "delete", "uid": ref.UID})
	}
	return c.patchMetadata(ctx, obj, types.StrategicMergePatchType, map[string]any{
		"metadata": map[string]any{"ownerReferences": deletes, "uid": obj.UID},
	}, func() error {
		// Custom resources take no strategic merge patch: replace the
		// whole list, guarded by resourceVersion.
		var keep []metav1.OwnerReference
		for _, existing := range obj.OwnerReferences {
			if !slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == existing.UID }) {
				keep = append(keep, existing)
			}
		}
		return c.mergePatch(ctx, obj, map[string]any{"ownerReferences": keep})
	})
}

func (c *Collector) patchMetadata(ctx context.Context, obj *metav1.PartialObjectMetadata, pt types.PatchType, patch map[string]any, fallback func() error) error {
	gvr, err := c.resourceFor(obj.GroupVersionKind())
	if err != nil {
		return err
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = c.metadata.Resource(gvr).Namespace(obj.Namespace).Patch(ctx, obj.Name, pt, data, metav1.PatchOptions{})
	if apierrors.IsUnsupportedMediaType(err) && fallback != nil {
		return fallback()
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching %s %s/%s: %w", gvr.Resource, obj.Namespace, obj.Name, err)
	}
	return nil
}

// mergePatch sets metadata fields with a JSON merge patch that only
// applies to the resourceVersion obj was read at.
func (c *Collector) mergePatch(ctx context.Context, obj *metav1.PartialObjectMetadata, fields map[string]any) error {
	fields["resourceVersion"] = obj.ResourceVersion
	return c.patchMetadata(ctx, obj, types.MergePatchType, map[string]any{"metadata": fields}, nil)
}

// orphanDependents releases every dependent of obj, then lets obj go.
func (c *Collector) orphanDependents(ctx context.Context, obj *metav1.PartialObjectMetadata) error {
	deps, err := c.dependents(ctx, obj.UID)
	if err != nil {
		return err
	}
	for _, dep := range deps {
		var refs []metav1.OwnerReference
		for _, ref := range dep.OwnerReferences {
			if ref.UID == obj.UID {
				refs = append(refs, ref)
			}
		}
		if err := c.removeOwnerRefs(ctx, dep, refs); err != nil {
			return err
		}
	}
	return c.removeFinalizer(ctx, obj, metav1.FinalizerOrphanDependents)
}

// deleteDependentsFirst deletes obj's dependents and removes the
// foregroundDeletion finalizer once no dependent blocks it any more.
func (c *Collector) deleteDependentsFirst(ctx context.Context, obj *metav1.PartialObjectMetadata) (reconcile.Result, error) {
	deps, err := c.dependents(ctx, obj.UID)
	if err != nil {
		return reconcile.Result{}, err
	}
	blocking := 0
	for _, dep := range deps {
		blocks := false
		for _, ref := range dep.OwnerReferences {
			if ref.UID == obj.UID && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocks = true
			}
		}
		if blocks {
			blocking++
		}
		if dep.DeletionTimestamp != nil {
			continue
		}
		policy := metav1.DeletePropagationBackground
		if blocks {
			policy = metav1.DeletePropagationForeground
		}
		if err := c.delete(ctx, dep, policy); err != nil {
			return reconcile.Result{}, err
		}
	}
	if blocking > 0 {
		// Dependents' deletions re-queue obj as they go; the timer
		// covers dependents of kinds the collector does not watch yet.
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}
	return reconcile.Result{}, c.removeFinalizer(ctx, obj, metav1.FinalizerDeleteDependents)
}

func (c *Collector) removeFinalizer(ctx context.Context, obj *metav1.PartialObjectMetadata, finalizer string) error {
	var keep []string
	for _, f := range obj.Finalizers {
		if f != finalizer {
			keep = append(keep, f)
		}
	}
	return c.mergePatch(ctx, obj, map[string]any{"finalizers": keep})
}
