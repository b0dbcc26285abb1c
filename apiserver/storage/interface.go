// Package storage keeps API objects in etcd. It is the only package in Tower
// that talks to etcd: everything above it sees typed runtime.Objects whose
// metadata.resourceVersion is the etcd revision that last wrote them.
package storage

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface is what the HTTP layer needs from a store of one resource. Keys are
// full etcd keys ("/registry/pods/default/web-1"); list and watch keys are
// prefixes ending in "/" ("/registry/pods/" or "/registry/pods/default/").
type Interface interface {
	// Create stores obj under key unless the key exists (ErrCodeKeyExists).
	// out receives the stored object with its new resourceVersion.
	Create(ctx context.Context, key string, obj, out runtime.Object) error

	// Get reads the object at key into out (ErrCodeKeyNotFound when absent).
	Get(ctx context.Context, key string, opts GetOptions, out runtime.Object) error

	// GetList fills listObj (a *FooList) with the objects under the prefix key
	// that match opts.Predicate, honouring Limit/Continue and the
	// resourceVersion semantics of kube-apiserver. The list's
	// resourceVersion and continue token are set on its ListMeta.
	GetList(ctx context.Context, key string, opts ListOptions, listObj runtime.Object) error

	// GuaranteedUpdate reads the object at key, checks preconditions, calls
	// tryUpdate with it and writes the result with a compare-and-swap on the
	// revision it read, retrying with a fresh read when another writer won.
	// tryUpdate decides about conflicts with a client-supplied
	// resourceVersion: it returns an error to abort. When tryUpdate returns
	// an object equal to the existing one nothing is written.
	// cachedExisting, when not nil, is a recent copy of the object that may be
	// tried first to save a read.
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
		preconditions *Preconditions, tryUpdate UpdateFunc, cachedExisting runtime.Object) error

	// Delete removes the object at key if the preconditions hold and
	// validateDeletion accepts the current object; out receives the last
	// stored state. Like GuaranteedUpdate it retries on concurrent writes.
	Delete(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions,
		validateDeletion ValidateObjectFunc, cachedExisting runtime.Object) error

	// Watch streams changes under key (a prefix when opts.Recursive) after
	// opts.ResourceVersion ("" or "0": the current state as ADDED events
	// first, then changes). Selectors apply to old and new object: an object
	// that leaves the selection arrives as DELETED, one that enters as ADDED.
	// A revision that was compacted away yields ErrCodeResourceVersionTooOld
	// (as an error from Watch or, once started, an ERROR event with a 410
	// Status).
	Watch(ctx context.Context, key string, opts ListOptions) (watch.Interface, error)

	// CurrentResourceVersion is the newest etcd revision (a consistent read).
	CurrentResourceVersion(ctx context.Context) (uint64, error)
}

// UpdateFunc computes the new state from the current one. current is the
// store's own copy, decoded or copied for this call: tryUpdate may change
// it and return it.
type UpdateFunc func(current runtime.Object) (updated runtime.Object, err error)

// ValidateObjectFunc inspects the current object before a destructive write.
type ValidateObjectFunc func(ctx context.Context, current runtime.Object) error

// Preconditions must hold on the stored object for an update or delete to go
// ahead; a mismatch is an ErrCodePreconditionFailed error, which the HTTP
// layer reports as a 409 Conflict.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// GetOptions selects which state Get returns.
type GetOptions struct {
	// ResourceVersion "" is a consistent read; "0" allows any cached state; a
	// number asks for a state at least that new.
	ResourceVersion string
	IgnoreNotFound  bool
}

// ListOptions carries list and watch parameters through the stack.
type ListOptions struct {
	ResourceVersion      string
	ResourceVersionMatch metav1.ResourceVersionMatch
	Predicate            SelectionPredicate
	Recursive            bool
	// ProgressNotify asks Watch for BOOKMARK events (allowWatchBookmarks).
	ProgressNotify bool
	// SendInitialEvents asks Watch to start with the current state as ADDED
	// events followed by a BOOKMARK annotated
	// metav1.InitialEventsAnnotationKey="true".
	SendInitialEvents *bool
}

// AttrFunc extracts the labels and the selectable fields of an object.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// SelectionPredicate filters objects by label and field selectors and pages
// lists.
type SelectionPredicate struct {
	Label    labels.Selector
	Field    fields.Selector
	GetAttrs AttrFunc
	Limit    int64
	Continue string
}

// Empty reports whether the predicate matches everything.
func (p SelectionPredicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}

// Matches reports whether obj passes both selectors.
func (p SelectionPredicate) Matches(obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	lbls, flds, err := p.GetAttrs(obj)
	if err != nil {
		return false, err
	}
	if p.Label != nil && !p.Label.Matches(lbls) {
		return false, nil
	}
	if p.Field != nil && !p.Field.Matches(flds) {
		return false, nil
	}
	return true, nil
}
