package workload

import (
	"context"
	"maps"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// EnqueueAdopters returns a handler that wakes every owner that could
// adopt an orphan (an object without a controller reference), as
// kube-controller-manager's workload controllers do on their pod and
// ControllerRevision events: an orphan that appears, or whose labels or
// controller reference change, enqueues the owners in its namespace whose
// selector is not empty and matches its labels. Owners are read from c,
// the manager's cache, as a list of owners' kind (owners is a prototype,
// copied for each lookup); selectorOf gives an owner's selector. Orphans
// being deleted, and orphans going away, wake nobody: no owner adopts
// them.
func EnqueueAdopters[O client.Object](c client.Reader, owners client.ObjectList, selectorOf func(O) *metav1.LabelSelector) handler.EventHandler {
	enqueue := func(ctx context.Context, orphan client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range adopters(ctx, c, owners, selectorOf, orphan) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if isAdoptable(e.Object) {
				enqueue(ctx, e.Object, q)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, cur := e.ObjectOld, e.ObjectNew
			if old.GetResourceVersion() == cur.GetResourceVersion() || !isAdoptable(cur) {
				return
			}
			// An orphan that stays an orphan with the same labels was
			// already offered to the same owners.
			if ControllerRef(old) == nil && maps.Equal(old.GetLabels(), cur.GetLabels()) {
				return
			}
			enqueue(ctx, cur, q)
		},
	}
}

// isAdoptable is true for an orphan that is not being deleted.
func isAdoptable(obj client.Object) bool {
	return obj.GetDeletionTimestamp() == nil && ControllerRef(obj) == nil
}

// adopters lists the owners whose selector matches orphan's labels.
func adopters[O client.Object](ctx context.Context, c client.Reader, owners client.ObjectList, selectorOf func(O) *metav1.LabelSelector, orphan client.Object) []reconcile.Request {
	if len(orphan.GetLabels()) == 0 {
		return nil
	}
	list, ok := owners.DeepCopyObject().(client.ObjectList)
	if !ok {
		return nil
	}
	if err := c.List(ctx, list, client.InNamespace(orphan.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "listing the owners that could adopt an orphan", "orphan", client.ObjectKeyFromObject(orphan))
		return nil
	}
	var reqs []reconcile.Request
	set := labels.Set(orphan.GetLabels())
	err := meta.EachListItem(list, func(item runtime.Object) error {
		owner, ok := item.(O)
		if !ok {
			return nil
		}
		selector, err := metav1.LabelSelectorAsSelector(selectorOf(owner))
		// An owner with an empty or broken selector matches nothing,
		// not everything.
		if err != nil || selector.Empty() || !selector.Matches(set) {
			return nil
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: owner.GetNamespace(), Name: owner.GetName()}})
		return nil
	})
	if err != nil {
		logf.FromContext(ctx).Error(err, "reading the owners that could adopt an orphan", "orphan", client.ObjectKeyFromObject(orphan))
	}
	return reqs
}
