package admission

import (
	"context"

	k8sauthorizer "k8s.io/apiserver/pkg/authorization/authorizer"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
)

// upstreamAuthorizer lets k8s.io/apiserver's plugins ask Tower's
// authorizer, as the `authorizer` variable of CEL matchConditions and
// admission policies does.
type upstreamAuthorizer struct {
	authorizer authorization.Authorizer
}

// Authorize implements k8s.io/apiserver's authorizer.UnconditionalAuthorizer.
func (u upstreamAuthorizer) Authorize(ctx context.Context, a k8sauthorizer.Attributes) (k8sauthorizer.Decision, string, error) {
	attrs := &authorization.Attributes{
		Verb:            a.GetVerb(),
		ResourceRequest: a.IsResourceRequest(),
		Path:            a.GetPath(),
		APIGroup:        a.GetAPIGroup(),
		APIVersion:      a.GetAPIVersion(),
		Resource:        a.GetResource(),
		Subresource:     a.GetSubresource(),
		Namespace:       a.GetNamespace(),
		Name:            a.GetName(),
	}
	if info := a.GetUser(); info != nil {
		attrs.User = &authentication.User{Name: info.GetName(), UID: info.GetUID(), Groups: info.GetGroups(), Extra: info.GetExtra()}
	}
	decision, reason, err := u.authorizer.Authorize(ctx, attrs)
	switch decision {
	case authorization.Allow:
		return k8sauthorizer.DecisionAllow, reason, err
	case authorization.Deny:
		return k8sauthorizer.DecisionDeny, reason, err
	default:
		return k8sauthorizer.DecisionNoOpinion, reason, err
	}
}
