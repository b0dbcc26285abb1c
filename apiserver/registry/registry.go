// Package registry describes the resources the API server serves: their
// names for discovery, where they live in etcd, and the per-type rules
// (defaulting, server-owned fields, validation, selectable fields) that
// kube-apiserver applies to them. The HTTP layer is generic; everything that
// differs between Pods and ConfigMaps lives here.
package registry

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one served REST resource, e.g. apps/v1 deployments.
type Resource struct {
	schema.GroupVersionResource
	Kind         string
	SingularName string
	ShortNames   []string
	Categories   []string
	Namespaced   bool
	// Verbs as listed in discovery.
	Verbs []string
	// StoragePrefix is the etcd key prefix without a trailing slash, as
	// kube-apiserver lays it out ("/registry/minions" for nodes).
	StoragePrefix string

	// New and NewList return empty typed objects.
	New     func() runtime.Object
	NewList func() runtime.Object

	Strategy Strategy
	// AllowCreateOnUpdate: a PUT of a missing object creates it (leases,
	// endpoints, events), as upstream's strategies allow.
	AllowCreateOnUpdate bool
	// ReturnDeletedObject: a delete answers with the object rather than a
	// Status (pods, namespaces, services upstream).
	ReturnDeletedObject bool
	// Status, when set, serves the status subresource.
	Status StatusStrategy
	// Scale, when set, serves the scale subresource (autoscaling/v1 Scale).
	Scale *ScaleSubresource

	// NotStored resources are answered, not kept: a create is handled by a
	// dedicated handler (access reviews, token reviews) and no store exists.
	NotStored bool

	// TTL, when positive, is how long an object is kept after its last
	// create or update; then etcd deletes it (events, after --event-ttl).
	TTL time.Duration

	// StoredAs is set when this resource is a view of another resource's
	// storage (events.k8s.io/v1 events are stored as core/v1 events). The
	// conversion functions translate between the two.
	StoredAs *StorageView
}

// StorageView converts between a served type and the type it is stored as.
type StorageView struct {
	// Resource is the owner of the storage (its New/NewList and prefix are used).
	Resource *Resource
	// ToStorage converts a served object to the stored type.
	ToStorage func(obj runtime.Object) (runtime.Object, error)
	// FromStorage converts a stored object to the served type.
	FromStorage func(stored runtime.Object) (runtime.Object, error)
}

// ScaleSubresource says where a resource keeps what its autoscaling/v1
// Scale shows, as JSON paths in the form CustomResourceDefinitions use
// (".spec.replicas"), so that built-in and custom resources share one
// implementation.
type ScaleSubresource struct {
	// SpecReplicasPath is the desired replica count; a Scale write sets it.
	SpecReplicasPath string
	// StatusReplicasPath is the observed replica count.
	StatusReplicasPath string
	// LabelSelectorPath, when set, points at the pod selector: a
	// metav1.LabelSelector (built-in workloads) or its string form (custom
	// resources). It becomes the Scale's status.selector.
	LabelSelectorPath string
}

// GroupVersionKind of the objects served.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// Strategy holds the per-type rules for writes to the main resource.
type Strategy interface {
	// Default fills unset fields as upstream's defaulting functions do. It
	// runs on every decoded request body and on objects read from storage.
	Default(obj runtime.Object)
	// PrepareForCreate resets what a client may not set on create (usually
	// status) and sets generation to 1 for types that track it.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate keeps what an update of the main resource may not
	// change (usually status) and bumps generation when upstream does.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// Validate checks a new object, metadata included.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update, immutable fields included.
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// GetAttrs returns the labels and the fields that field selectors may
	// use (metadata.name, metadata.namespace and the per-type fields).
	GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error)
}

// StatusStrategy holds the rules for writes to the status subresource.
type StatusStrategy interface {
	// PrepareForUpdate keeps everything but status (and what upstream lets
	// a status writer change) from old.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

// UnknownFieldsReporter is implemented by strategies whose objects decode
// without a Go type to check against (custom resources): it lists the
// fields of obj that its schema does not know, as JSON paths ("spec.foo"),
// so that fieldValidation can reject or warn about them as upstream does.
type UnknownFieldsReporter interface {
	UnknownFields(obj runtime.Object) []string
}

// GracefulDeleter is implemented by strategies whose objects are not removed
// at once on delete (pods).
type GracefulDeleter interface {
	// CheckGracefulDelete decides the grace period: it may change
	// options.GracePeriodSeconds and returns true when the object should be
	// marked with deletionTimestamp/deletionGracePeriodSeconds instead of
	// being removed now.
	CheckGracefulDelete(ctx context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool
}

// Catalog is the set of served resources.
type Catalog struct {
	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
}

// NewCatalog indexes resources.
func NewCatalog(resources []*Resource) *Catalog {
	c := &Catalog{resources: resources, byGVR: map[schema.GroupVersionResource]*Resource{}}
	for _, r := range resources {
		c.byGVR[r.GroupVersionResource] = r
	}
	return c
}

// Resources in registration order.
func (c *Catalog) Resources() []*Resource { return c.resources }

// Lookup finds a resource by group, version and plural name.
func (c *Catalog) Lookup(gvr schema.GroupVersionResource) (*Resource, bool) {
	r, ok := c.byGVR[gvr]
	return r, ok
}

// GroupVersions lists the served group versions in a stable order: the
// legacy core group first, then the named groups in registration order.
func (c *Catalog) GroupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range c.resources {
		gv := r.GroupVersion()
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}
