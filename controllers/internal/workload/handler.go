package workload

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// OwnedPodHandler enqueues the owner of kind that controls a pod, and
// tells expectations about the pod creations and deletions it sees.
func OwnedPodHandler(kind schema.GroupVersionKind, expectations *Expectations) handler.EventHandler {
	enqueue := func(pod *corev1.Pod, q workqueue.TypedRateLimitingInterface[reconcile.Request]) (reconcile.Request, bool) {
		ref := ControllerRef(pod)
		if ref == nil || ref.Kind != kind.Kind || ref.APIVersion != kind.GroupVersion().String() {
			return reconcile.Request{}, false
		}
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}}
		q.Add(req)
		return req, true
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if req, ok := enqueue(e.Object.(*corev1.Pod), q); ok {
				expectations.CreationObserved(req.String())
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pod := e.ObjectNew.(*corev1.Pod)
			if req, ok := enqueue(pod, q); ok && pod.DeletionTimestamp != nil {
				expectations.DeletionObserved(req.String(), pod.Name)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pod, ok := e.Object.(*corev1.Pod)
			if !ok {
				return
			}
			if req, ok := enqueue(pod, q); ok {
				expectations.DeletionObserved(req.String(), pod.Name)
			}
		},
	}
}
