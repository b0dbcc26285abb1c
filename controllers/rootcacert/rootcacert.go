// Package rootcacert publishes the cluster CA as the "kube-root-ca.crt"
// ConfigMap in every active namespace, as kube-controller-manager's
// root-ca-cert-publisher does, so pods can verify the API server.
package rootcacert

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Name is the controller's name in --controllers.
const Name = "root-ca-cert-publisher"

// ConfigMapName and DataKey are where pods find the CA.
const (
	ConfigMapName         = "kube-root-ca.crt"
	DataKey               = "ca.crt"
	descriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Reconciler is the root CA publisher.
type Reconciler struct {
	Client client.Client
	// CA is the PEM bundle to publish.
	CA string
}

// SetupWithManager registers the controller with mgr; caFile holds the
// PEM CA bundle (the API server's client CA, as --root-ca-file).
func SetupWithManager(mgr ctrl.Manager, caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading root CA file: %w", err)
	}
	r := &Reconciler{Client: mgr.GetClient(), CA: string(pem)}
	isRootCA := predicate.NewPredicateFuncs(func(obj client.Object) bool { return obj.GetName() == ConfigMapName })
	return ctrl.NewControllerManagedBy(mgr).
		Named("root-ca-cert-publisher").
		For(&corev1.Namespace{}).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: obj.GetNamespace()}}}
		}), builder.WithPredicates(isRootCA)).
		Complete(r)
}

// Reconcile ensures namespace req.Name has an up-to-date kube-root-ca.crt.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return reconcile.Result{}, nil
	}
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: ConfigMapName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   ns.Name,
				Name:        ConfigMapName,
				Annotations: map[string]string{descriptionAnnotation: description},
			},
			Data: map[string]string{DataKey: r.CA},
		}
		if err := r.Client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) {
			return reconcile.Result{}, fmt.Errorf("creating %s in %s: %w", ConfigMapName, ns.Name, err)
		}
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, err
	}
	if cm.Data[DataKey] == r.CA && len(cm.Data) == 1 && len(cm.BinaryData) == 0 && cm.Annotations[descriptionAnnotation] == description {
		return reconcile.Result{}, nil
	}
	updated := cm.DeepCopy()
	updated.Data = map[string]string{DataKey: r.CA}
	updated.BinaryData = nil
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[descriptionAnnotation] = description
	if err := r.Client.Update(ctx, updated); err != nil {
		return reconcile.Result{}, fmt.Errorf("updating %s in %s: %w", ConfigMapName, ns.Name, err)
	}
	return reconcile.Result{}, nil
}
