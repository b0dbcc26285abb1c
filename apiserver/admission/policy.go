package admission

import (
	"context"
	"fmt"

	validatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
)

// ValidatingPolicies enforces ValidatingAdmissionPolicies through their
// bindings. Matching (matchConstraints, binding matchResources,
// matchConditions), parameters (paramKind and paramRef, watched through
// the dynamic client), CEL variables and validations, messages, reasons,
// failurePolicy and the Deny/Warn/Audit actions are k8s.io/apiserver's
// ValidatingAdmissionPolicy plugin, the one kube-apiserver runs.
type ValidatingPolicies struct {
	plugin *validatingpolicy.Plugin
	adapter
	// bindings: a policy without one applies to nothing.
	bindings configurations
}

// NewValidatingPolicies builds the ValidatingAdmissionPolicy plugin. The
// informers must be started afterwards; until they have synced, requests
// wait for them (up to the plugin's limit) as in kube-apiserver.
func NewValidatingPolicies(c UpstreamConfig) (*ValidatingPolicies, error) {
	p, err := validatingpolicy.NewPlugin(nil)
	if err != nil {
		return nil, fmt.Errorf("validating admission policy plugin: %w", err)
	}
	p.SetExternalKubeClientSet(c.Client)
	p.SetExternalKubeInformerFactory(c.Informers)
	p.SetDynamicClient(c.Dynamic)
	p.SetRESTMapper(c.RESTMapper)
	p.SetDrainedNotification(c.Stop)
	p.SetUnconditionalAuthorizer(upstreamAuthorizer{c.Authorizer})
	if err := p.ValidateInitialization(); err != nil {
		return nil, fmt.Errorf("validating admission policy plugin: %w", err)
	}
	return &ValidatingPolicies{
		plugin:   p,
		adapter:  adapter{scheme: c.Scheme, resources: c.Resources},
		bindings: configurations{c.Informers.Admissionregistration().V1().ValidatingAdmissionPolicyBindings().Informer()},
	}, nil
}

// Validate evaluates the bound policies that match the write.
func (p *ValidatingPolicies) Validate(ctx context.Context, a *Attributes) error {
	if p.bindings.none() {
		return nil
	}
	ctx, attrs, o := p.attributes(ctx, a)
	return p.plugin.Validate(ctx, attrs, o)
}
