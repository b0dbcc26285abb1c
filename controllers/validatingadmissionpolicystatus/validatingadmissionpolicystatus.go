// Package validatingadmissionpolicystatus type-checks
// ValidatingAdmissionPolicies against the schemas of the kinds they match
// and reports what it finds in status.typeChecking, as
// kube-controller-manager's controller of the same name does. The checking
// is k8s.io/apiserver's TypeChecker; schemas come from the API server's
// OpenAPI v3 documents, so custom resources are checked too.
package validatingadmissionpolicystatus

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	validatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Name is the controller's name in --controllers.
const Name = "validatingadmissionpolicy-status-controller"

// Reconciler records the type-checking of each policy generation.
type Reconciler struct {
	Client      client.Client
	TypeChecker *validatingpolicy.TypeChecker
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client for policy type checking: %w", err)
	}
	r := &Reconciler{
		Client: mgr.GetClient(),
		TypeChecker: &validatingpolicy.TypeChecker{
			SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: dc},
			RestMapper:     mgr.GetRESTMapper(),
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&admissionregistrationv1.ValidatingAdmissionPolicy{}).
		Complete(r)
}

// Reconcile type-checks a policy whose generation has not been checked.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if policy.Generation <= policy.Status.ObservedGeneration {
		return ctrl.Result{}, nil
	}
	warnings := r.TypeChecker.Check(policy)
	policy.Status.ObservedGeneration = policy.Generation
	policy.Status.TypeChecking = &admissionregistrationv1.TypeChecking{ExpressionWarnings: warnings}
	if err := r.Client.Status().Update(ctx, policy); err != nil {
		return ctrl.Result{}, fmt.Errorf("update status of ValidatingAdmissionPolicy %s: %w", policy.Name, err)
	}
	return ctrl.Result{}, nil
}
