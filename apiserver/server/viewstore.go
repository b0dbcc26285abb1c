package server

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// viewStore serves a resource stored as another type (events.k8s.io/v1
// events live in etcd as core/v1 events), converting at the boundary.
type viewStore struct {
	inner storage.Interface
	res   *registry.Resource
	view  *registry.StorageView
}

func newViewStore(inner storage.Interface, res *registry.Resource) storage.Interface {
	return &viewStore{inner: inner, res: res, view: res.StoredAs}
}

func (v *viewStore) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	stored, err := v.view.ToStorage(obj)
	if err != nil {
		return err
	}
	storedOut := v.view.Resource.New()
	if err := v.inner.Create(ctx, key, stored, storedOut); err != nil {
		return err
	}
	return v.fromStorageInto(storedOut, out)
}

func (v *viewStore) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	stored := v.view.Resource.New()
	if err := v.inner.Get(ctx, key, opts, stored); err != nil {
		return err
	}
	return v.fromStorageInto(stored, out)
}

func (v *viewStore) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	opts.Predicate = v.predicate(opts.Predicate)
	storedList := v.view.Resource.NewList()
	if err := v.inner.GetList(ctx, key, opts, storedList); err != nil {
		return err
	}
	var items []runtime.Object
	err := meta.EachListItem(storedList, func(item runtime.Object) error {
		converted, err := v.view.FromStorage(item)
		if err != nil {
			return err
		}
		items = append(items, converted)
		return nil
	})
	if err != nil {
		return err
	}
	if err := meta.SetList(listObj, items); err != nil {
		return err
	}
	from, err := meta.ListAccessor(storedList)
	if err != nil {
		return err
	}
	to, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	to.SetResourceVersion(from.GetResourceVersion())
	to.SetContinue(from.GetContinue())
	to.SetRemainingItemCount(from.GetRemainingItemCount())
	return nil
}

func (v *viewStore) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, _ runtime.Object) error {
	storedOut := v.view.Resource.New()
	err := v.inner.GuaranteedUpdate(ctx, key, storedOut, ignoreNotFound, preconditions, func(current runtime.Object) (runtime.Object, error) {
		served, err := v.view.FromStorage(current)
		if err != nil {
			return nil, err
		}
		updated, err := tryUpdate(served)
		if err != nil {
			return nil, err
		}
		return v.view.ToStorage(updated)
	}, nil)
	if err != nil {
		return err
	}
	return v.fromStorageInto(storedOut, out)
}

func (v *viewStore) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, _ runtime.Object) error {
	var validate storage.ValidateObjectFunc
	if validateDeletion != nil {
		validate = func(ctx context.Context, current runtime.Object) error {
			served, err := v.view.FromStorage(current)
			if err != nil {
				return err
			}
			return validateDeletion(ctx, served)
		}
	}
	storedOut := v.view.Resource.New()
	if err := v.inner.Delete(ctx, key, storedOut, preconditions, validate, nil); err != nil {
		return err
	}
	return v.fromStorageInto(storedOut, out)
}

func (v *viewStore) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	opts.Predicate = v.predicate(opts.Predicate)
	w, err := v.inner.Watch(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(in watch.Event) (watch.Event, bool) {
		obj := in.Object
		if co, ok := obj.(*storage.CachingObject); ok {
			obj = co.Object()
		}
		if in.Type == watch.Error {
			return in, true
		}
		if in.Type == watch.Bookmark {
			return watch.Event{Type: watch.Bookmark, Object: v.bookmark(obj)}, true
		}
		converted, err := v.view.FromStorage(obj)
		if err != nil {
			return in, false
		}
		converted.GetObjectKind().SetGroupVersionKind(v.res.GroupVersionKind())
		return watch.Event{Type: in.Type, Object: converted}, true
	}), nil
}

func (v *viewStore) CurrentResourceVersion(ctx context.Context) (uint64, error) {
	return v.inner.CurrentResourceVersion(ctx)
}

// bookmark carries a stored bookmark's resourceVersion and annotations over
// to an empty served object.
func (v *viewStore) bookmark(stored runtime.Object) runtime.Object {
	out := v.res.New()
	from, err1 := meta.Accessor(stored)
	to, err2 := meta.Accessor(out)
	if err1 == nil && err2 == nil {
		to.SetResourceVersion(from.GetResourceVersion())
		to.SetAnnotations(from.GetAnnotations())
	}
	out.GetObjectKind().SetGroupVersionKind(v.res.GroupVersionKind())
	return out
}

// predicate evaluates the served type's selectable fields on stored objects.
func (v *viewStore) predicate(p storage.SelectionPredicate) storage.SelectionPredicate {
	getAttrs := p.GetAttrs
	if getAttrs == nil {
		return p
	}
	p.GetAttrs = func(obj runtime.Object) (labels.Set, fields.Set, error) {
		served, err := v.view.FromStorage(obj)
		if err != nil {
			return nil, nil, err
		}
		return getAttrs(served)
	}
	return p
}

func (v *viewStore) fromStorageInto(stored, out runtime.Object) error {
	served, err := v.view.FromStorage(stored)
	if err != nil {
		return err
	}
	dst, src := reflect.ValueOf(out), reflect.ValueOf(served)
	if dst.Type() != src.Type() {
		return fmt.Errorf("view of %s: converted %T, want %T", v.res.GroupResource(), served, out)
	}
	dst.Elem().Set(src.Elem())
	out.GetObjectKind().SetGroupVersionKind(v.res.GroupVersionKind())
	return nil
}
