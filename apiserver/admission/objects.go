package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/storage"
)

// Objects reads one resource's stored objects for a plugin.
type Objects struct {
	Store     storage.Interface
	KeyPrefix string
	// Resource names the resource in errors.
	Resource schema.GroupResource
}

func (o Objects) key(namespace, name string) string {
	if namespace == "" {
		return o.KeyPrefix + "/" + name
	}
	return o.KeyPrefix + "/" + namespace + "/" + name
}

// Get reads an object from the watch cache first and confirms a miss with
// a consistent read, so an object created a moment ago is found. A
// missing object is an apierrors NotFound.
func (o Objects) Get(ctx context.Context, namespace, name string, out runtime.Object) error {
	key := o.key(namespace, name)
	err := o.Store.Get(ctx, key, storage.GetOptions{ResourceVersion: "0"}, out)
	if storage.IsNotFound(err) {
		err = o.Store.Get(ctx, key, storage.GetOptions{}, out)
	}
	if storage.IsNotFound(err) {
		return apierrors.NewNotFound(o.Resource, name)
	}
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("read %s %s/%s: %w", o.Resource, namespace, name, err))
	}
	return nil
}

// List reads the objects of a namespace (all of them for "") into list,
// from the watch cache.
func (o Objects) List(ctx context.Context, namespace string, list runtime.Object) error {
	return o.list(ctx, namespace, "0", list)
}

// ListConsistent is List with a consistent read: objects created a moment
// ago are included.
func (o Objects) ListConsistent(ctx context.Context, namespace string, list runtime.Object) error {
	return o.list(ctx, namespace, "", list)
}

func (o Objects) list(ctx context.Context, namespace, resourceVersion string, list runtime.Object) error {
	key := o.KeyPrefix + "/"
	if namespace != "" {
		key = o.KeyPrefix + "/" + namespace + "/"
	}
	if err := o.Store.GetList(ctx, key, storage.ListOptions{ResourceVersion: resourceVersion, Recursive: true}, list); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("list %s in %q: %w", o.Resource, namespace, err))
	}
	return nil
}

const (
	// liveLookupTTL is how long a consistent read that found none of a
	// namespace's objects stands in for the watch cache, as upstream's
	// quota and limit-range admission remember theirs.
	liveLookupTTL = 30 * time.Second
	// liveLookupEntries bounds the namespaces remembered.
	liveLookupEntries = 100
)

// liveLookup lists a namespace's objects of one kind for a plugin that
// must not miss one created a moment ago, the way kube-apiserver's
// ResourceQuota and LimitRanger do: from the watch cache, and when that
// has none, from a consistent read that is remembered for liveLookupTTL.
// A namespace without any such objects so costs one etcd read per TTL
// instead of one per request. The zero value is ready to use.
type liveLookup struct {
	// now is the clock entries expire by (time.Now when nil).
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]liveLookupEntry
	flights singleflight.Group
}

type liveLookupEntry struct {
	items   []runtime.Object
	expires time.Time
}

// list fills list, an empty list of objects' kind, with the namespace's
// objects.
func (l *liveLookup) list(ctx context.Context, objects Objects, namespace string, list runtime.Object) error {
	if err := objects.List(ctx, namespace, list); err != nil {
		return err
	}
	if meta.LenList(list) > 0 {
		return nil
	}
	items, err := l.live(ctx, objects, namespace, list.DeepCopyObject())
	if err != nil {
		return err
	}
	copies := make([]runtime.Object, len(items))
	for i, item := range items {
		copies[i] = item.DeepCopyObject()
	}
	if err := meta.SetList(list, copies); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("list %s in %q: %w", objects.Resource, namespace, err))
	}
	return nil
}

// live returns the remembered consistent read of the namespace, reading
// anew (once for concurrent callers) when there is none or it expired.
func (l *liveLookup) live(ctx context.Context, objects Objects, namespace string, list runtime.Object) ([]runtime.Object, error) {
	l.mu.Lock()
	entry, ok := l.entries[namespace]
	l.mu.Unlock()
	if ok && l.clock().Before(entry.expires) {
		return entry.items, nil
	}
	items, err, _ := l.flights.Do(namespace, func() (any, error) {
		if err := objects.ListConsistent(ctx, namespace, list); err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("list %s in %q: %w", objects.Resource, namespace, err))
		}
		l.remember(namespace, liveLookupEntry{items: items, expires: l.clock().Add(liveLookupTTL)})
		return items, nil
	})
	if err != nil {
		return nil, err
	}
	return items.([]runtime.Object), nil
}

func (l *liveLookup) remember(namespace string, entry liveLookupEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[string]liveLookupEntry{}
	}
	if len(l.entries) >= liveLookupEntries {
		now := l.clock()
		for ns, e := range l.entries {
			if !now.Before(e.expires) {
				delete(l.entries, ns)
			}
		}
	}
	for ns := range l.entries {
		if len(l.entries) < liveLookupEntries {
			break
		}
		delete(l.entries, ns)
	}
	l.entries[namespace] = entry
}

func (l *liveLookup) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}
