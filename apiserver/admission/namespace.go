package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// immortalNamespaces cannot be deleted, as upstream.
var immortalNamespaces = map[string]bool{
	metav1.NamespaceDefault: true,
	metav1.NamespaceSystem:  true,
	metav1.NamespacePublic:  true,
}

// NamespaceLifecycle refuses content in namespaces that do not exist or are
// being terminated, and the deletion of the system namespaces.
type NamespaceLifecycle struct {
	Namespaces Objects
}

// Admit implements Interface.
func (p *NamespaceLifecycle) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Resource == "namespaces" && a.Resource.Group == "" {
		if a.Operation == Delete && immortalNamespaces[a.Name] {
			return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, fmt.Errorf("this namespace may not be deleted"))
		}
		return nil
	}
	if a.Operation != Create || !a.Resource.Namespaced {
		return nil
	}
	ns, err := p.namespace(ctx, a.Namespace)
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating {
		err := apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", a.Namespace),
			Field:   "metadata.namespace",
		})
		return err
	}
	return nil
}

func (p *NamespaceLifecycle) namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := p.Namespaces.Get(ctx, "", name, ns); err != nil {
		return nil, err
	}
	return ns, nil
}
