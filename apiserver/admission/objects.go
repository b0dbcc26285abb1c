package admission

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
