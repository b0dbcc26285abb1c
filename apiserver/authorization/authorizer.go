// Package authorization decides whether an authenticated user may do what a
// request asks: RBAC over Roles, ClusterRoles and their bindings, the Node
// authorizer for kubelets, and AlwaysAllow for test clusters.
package authorization

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/authentication"
)

// Decision is an authorizer's verdict.
type Decision int

// An authorizer allows, denies outright, or leaves the decision to the next.
const (
	NoOpinion Decision = iota
	Allow
	Deny
)

// Attributes describe what a request wants to do.
type Attributes struct {
	User *authentication.User
	Verb string
	// ResourceRequest is true for /api and /apis resource URLs; the rest
	// are non-resource requests authorized by Path.
	ResourceRequest bool
	Path            string
	APIGroup        string
	APIVersion      string
	Resource        string
	Subresource     string
	Namespace       string
	Name            string
}

// Authorizer decides about one request. reason explains a decision and is
// added to the Forbidden message.
type Authorizer interface {
	Authorize(ctx context.Context, a *Attributes) (decision Decision, reason string, err error)
}

// RuleResolver lists what a user may do in a namespace, for
// SelfSubjectRulesReview and escalation checks.
type RuleResolver interface {
	// RulesFor returns the rules that apply to user in namespace (the
	// cluster-wide rules alone when namespace is empty). Errors are for
	// rules that could not be resolved; the rules returned are still valid.
	RulesFor(ctx context.Context, user *authentication.User, namespace string) ([]Rule, error)
}

// Union asks authorizers in order; the first opinion decides.
type Union []Authorizer

// Authorize implements Authorizer.
func (u Union) Authorize(ctx context.Context, a *Attributes) (Decision, string, error) {
	var reasons []string
	var errs []error
	for _, authz := range u {
		decision, reason, err := authz.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if decision != NoOpinion {
			return decision, reason, err
		}
	}
	return NoOpinion, strings.Join(reasons, "\n"), errors.Join(errs...)
}

// AlwaysAllow allows every request.
type AlwaysAllow struct{}

// Authorize implements Authorizer.
func (AlwaysAllow) Authorize(context.Context, *Attributes) (Decision, string, error) {
	return Allow, "", nil
}

// PrivilegedGroup lets system:masters do everything, before any other
// authorizer is asked, as kube-apiserver does.
type PrivilegedGroup struct{}

// Authorize implements Authorizer.
func (PrivilegedGroup) Authorize(_ context.Context, a *Attributes) (Decision, string, error) {
	if a.User != nil && a.User.InGroup(authentication.GroupMasters) {
		return Allow, "", nil
	}
	return NoOpinion, "", nil
}

// Forbidden is kube-apiserver's 403 for a request the authorizers did not
// allow.
func Forbidden(a *Attributes, reason string) *apierrors.StatusError {
	msg := ForbiddenMessage(a)
	if reason != "" {
		msg = msg + ": " + reason
	}
	if !a.ResourceRequest {
		return apierrors.NewForbidden(schema.GroupResource{}, "", errors.New(msg))
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}, a.Name, errors.New(msg))
}

// ForbiddenMessage names who cannot do what, in kube-apiserver's words.
func ForbiddenMessage(a *Attributes) string {
	name := ""
	if a.User != nil {
		name = a.User.Name
	}
	if !a.ResourceRequest {
		return fmt.Sprintf("User %q cannot %s path %q", name, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", name, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", name, a.Verb, resource, a.APIGroup)
}

// NonResourceVerb is the verb of a non-resource request.
func NonResourceVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "post"
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}
