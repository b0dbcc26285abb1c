// Package namespace empties namespaces that are being deleted, as
// kube-controller-manager's namespace controller does: it deletes every
// namespaced object of every served resource (custom resources included),
// waits until none is left, then removes the "kubernetes" finalizer
// through namespaces/{name}/finalize so the API server can drop the
// namespace.
package namespace

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Name is the controller's name in --controllers.
const Name = "namespace"

// contentRecheck is how soon a namespace whose content is still going away
// (pods in their grace period, objects with finalizers) is looked at again.
const contentRecheck = 2 * time.Second

// Reconciler is the Namespace controller.
type Reconciler struct {
	Client    client.Client
	Clientset kubernetes.Interface
	Metadata  metadata.Interface
	Discovery discovery.DiscoveryInterface
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	cs, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("building clientset: %w", err)
	}
	md, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("building metadata client: %w", err)
	}
	r := &Reconciler{Client: mgr.GetClient(), Clientset: cs, Metadata: md, Discovery: cs.Discovery()}
	return ctrl.NewControllerManagedBy(mgr).
		Named("namespace").
		For(&corev1.Namespace{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile empties and finalizes one terminating namespace.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return reconcile.Result{}, nil
	}
	remaining, err := r.deleteContent(ctx, ns.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if remaining > 0 {
		return reconcile.Result{RequeueAfter: contentRecheck}, nil
	}
	return reconcile.Result{}, r.finalize(ctx, ns)
}

// deleteContent deletes every namespaced object in namespace and returns
// how many were still there.
func (r *Reconciler) deleteContent(ctx context.Context, namespace string) (int, error) {
	lists, err := r.Discovery.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return 0, fmt.Errorf("discovering namespaced resources: %w", err)
	}
	remaining := 0
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range list.APIResources {
			if strings.Contains(res.Name, "/") || !slices.Contains(res.Verbs, "list") || !slices.Contains(res.Verbs, "delete") {
				continue
			}
			n, err := r.deleteResource(ctx, gv.WithResource(res.Name), namespace, slices.Contains(res.Verbs, "deletecollection"))
			if err != nil {
				return 0, err
			}
			remaining += n
		}
	}
	return remaining, nil
}

func (r *Reconciler) deleteResource(ctx context.Context, gvr schema.GroupVersionResource, namespace string, collection bool) (int, error) {
	client := r.Metadata.Resource(gvr).Namespace(namespace)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	if collection {
		err := client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return 0, fmt.Errorf("deleting %s in %s: %w", gvr.Resource, namespace, err)
		}
	}
	list, err := client.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing %s in %s: %w", gvr.Resource, namespace, err)
	}
	for _, item := range list.Items {
		if item.DeletionTimestamp != nil {
			continue
		}
		if err := client.Delete(ctx, item.Name, opts); err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("deleting %s %s/%s: %w", gvr.Resource, namespace, item.Name, err)
		}
	}
	return len(list.Items), nil
}

// finalize removes the "kubernetes" finalizer through the finalize
// subresource; the API server deletes the namespace once spec.finalizers
// and metadata.finalizers are empty.
func (r *Reconciler) finalize(ctx context.Context, ns *corev1.Namespace) error {
	updated := ns.DeepCopy()
	updated.Spec.Finalizers = slices.DeleteFunc(updated.Spec.Finalizers, func(f corev1.FinalizerName) bool {
		return f == corev1.FinalizerKubernetes
	})
	_, err := r.Clientset.CoreV1().Namespaces().Finalize(ctx, updated, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalizing namespace %s: %w", ns.Name, err)
	}
	return nil
}
