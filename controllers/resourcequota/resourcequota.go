// Package resourcequota keeps each ResourceQuota's status.used equal to
// what the objects in its namespace cost, as kube-controller-manager's
// resourcequota controller does. The API server's ResourceQuota admission
// charges new objects as they are created; this controller gives usage
// back when objects are deleted or pods finish, and corrects any drift.
package resourcequota

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/internal/quota"
)

// Name is the controller's name in --controllers.
const Name = "resourcequota"

// resyncPeriod recomputes every quota now and then, as upstream's full
// resync does, for objects whose deletions the controller does not watch.
const resyncPeriod = 5 * time.Minute

// Reconciler is the resourcequota controller.
type Reconciler struct {
	Client client.Client
	// Reader reads through the API server, not the cache, so usage is
	// computed from the newest state.
	Reader client.Reader
	Mapper interface {
		KindFor(resource schema.GroupVersionResource) (schema.GroupVersionKind, error)
	}
	Now func() time.Time
}

// SetupWithManager registers the controller: quotas are recomputed when
// they change, when pods or services in their namespace go away or pods
// finish, and every resyncPeriod.
func SetupWithManager(mgr manager.Manager) error {
	r := &Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Mapper: mgr.GetRESTMapper(), Now: time.Now}
	releases := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, ok1 := e.ObjectOld.(*corev1.Pod)
			pod, ok2 := e.ObjectNew.(*corev1.Pod)
			return ok1 && ok2 && (old.Status.Phase != pod.Status.Phase || (old.DeletionTimestamp == nil) != (pod.DeletionTimestamp == nil))
		},
	}
	return ctrl.ControllerManagedBy(mgr).
		Named(Name).
		For(&corev1.ResourceQuota{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.quotasInNamespace), ctrl.WithPredicates(releases)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.quotasInNamespace), ctrl.WithPredicates(releases)).
		Complete(r)
}

func (r *Reconciler) quotasInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	list := &corev1.ResourceQuotaList{}
	if err := r.Client.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, rq := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rq)})
	}
	return out
}

// Reconcile recomputes one quota's status from the objects it covers.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rq := &corev1.ResourceQuota{}
	if err := r.Reader.Get(ctx, req.NamespacedName, rq); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	used, err := quota.Used(rq, r.Now(), func(gr schema.GroupResource) ([]any, error) { return r.list(ctx, gr, rq.Namespace) })
	if err != nil {
		return reconcile.Result{}, err
	}
	if quota.Equal(rq.Status.Hard, rq.Spec.Hard) && quota.Equal(rq.Status.Used, used) {
		return reconcile.Result{RequeueAfter: resyncPeriod}, nil
	}
	rq.Status.Hard = rq.Spec.DeepCopy().Hard
	rq.Status.Used = used
	// The update carries the resourceVersion read above: a charge made
	// by admission in between makes it conflict and the quota is
	// recomputed.
	if err := r.Client.Status().Update(ctx, rq); err != nil {
		return reconcile.Result{}, fmt.Errorf("update status of quota %s: %w", req.NamespacedName, err)
	}
	return reconcile.Result{RequeueAfter: resyncPeriod}, nil
}

// list reads the namespace's objects of gr: full pods and services (their
// usage depends on the spec), metadata for everything else.
func (r *Reconciler) list(ctx context.Context, gr schema.GroupResource, namespace string) ([]any, error) {
	var out []any
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		list := &corev1.PodList{}
		if err := r.Reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", namespace, err)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	case schema.GroupResource{Resource: "services"}:
		list := &corev1.ServiceList{}
		if err := r.Reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("list services in %s: %w", namespace, err)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	}
	gvk, err := r.Mapper.KindFor(gr.WithVersion(""))
	if err != nil {
		// A resource the server does not serve has no objects.
		return nil, nil
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := r.Reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", gr, namespace, err)
	}
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}
