package endpoints

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/registry"
)

// TokenAuthenticator checks a token for a TokenReview against the
// audiences it asks for (the API's when empty) and returns the audiences
// the token was accepted for.
type TokenAuthenticator interface {
	ReviewToken(ctx context.Context, token string, audiences []string) (user *authentication.User, accepted []string, err error)
}

// Reviews answers the create-only resources that are computed, never
// stored: access reviews, rules reviews, SelfSubjectReview, TokenReview and
// the TokenRequest subresource of service accounts.
type Reviews struct {
	Scope *Scope
	// Resources are the review resources of the catalog, by GVR.
	Resources  map[schema.GroupVersionResource]*registry.Resource
	Authorizer authorization.Authorizer
	Rules      authorization.RuleResolver
	Tokens     TokenAuthenticator
	// TokenRequests issues service-account tokens; nil disables the
	// subresource (no signing key).
	TokenRequests *TokenRequests
}

// Serves reports whether info names a resource Reviews answers.
func (v *Reviews) Serves(info *RequestInfo) bool {
	if info.Resource == "serviceaccounts" && info.Subresource == "token" && info.GroupVersion.Group == "" {
		return v.TokenRequests != nil
	}
	_, ok := v.Resources[info.GroupVersion.WithResource(info.Resource)]
	return ok
}

// Serve answers one review or token request.
func (v *Reviews) Serve(w http.ResponseWriter, r *http.Request, info *RequestInfo) {
	if info.Resource == "serviceaccounts" {
		v.TokenRequests.serve(w, r, info, v.Scope)
		return
	}
	res := v.Resources[info.GroupVersion.WithResource(info.Resource)]
	q := &request{Endpoint: &Endpoint{Resource: res}, scope: v.Scope, info: info, w: w, r: r}
	if info.Verb != "create" || info.Name != "" {
		q.fail(apierrors.NewMethodNotSupported(q.gr(), info.Verb))
		return
	}
	if info.Namespace != "" && !res.Namespaced {
		q.fail(newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource"))
		return
	}
	obj, warnings, err := q.decodeBody(r.URL.Query().Get("fieldValidation"))
	if err != nil {
		q.fail(err)
		return
	}
	addWarnings(w, warnings)
	ctx := r.Context()
	requester, _ := authentication.UserFrom(ctx)
	if requester == nil {
		requester = authentication.Anonymous()
	}
	if err := v.review(ctx, requester, info.Namespace, obj); err != nil {
		q.fail(err)
		return
	}
	q.respond(ctx, http.StatusCreated, obj)
}

func (v *Reviews) review(ctx context.Context, requester *authentication.User, namespace string, obj runtime.Object) error {
	switch review := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		if err := validateAccessSpec(review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes, "SelfSubjectAccessReview"); err != nil {
			return err
		}
		review.Status = v.access(ctx, requester, review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes)
	case *authorizationv1.SubjectAccessReview:
		if err := validateSubjectAccessSpec(&review.Spec, "SubjectAccessReview"); err != nil {
			return err
		}
		review.Status = v.access(ctx, subjectOf(&review.Spec), review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes)
	case *authorizationv1.LocalSubjectAccessReview:
		if review.Namespace == "" {
			review.Namespace = namespace
		}
		if err := validateSubjectAccessSpec(&review.Spec, "LocalSubjectAccessReview"); err != nil {
			return err
		}
		if review.Spec.NonResourceAttributes != nil {
			return invalidReview("LocalSubjectAccessReview", field.Invalid(field.NewPath("spec", "nonResourceAttributes"), review.Spec.NonResourceAttributes, "disallowed on this kind of request"))
		}
		if review.Spec.ResourceAttributes.Namespace == "" {
			review.Spec.ResourceAttributes.Namespace = namespace
		}
		if review.Spec.ResourceAttributes.Namespace != namespace || review.Namespace != namespace {
			return invalidReview("LocalSubjectAccessReview", field.Invalid(field.NewPath("spec", "resourceAttributes", "namespace"), review.Spec.ResourceAttributes.Namespace, "must match metadata.namespace"))
		}
		review.Status = v.access(ctx, subjectOf(&review.Spec), review.Spec.ResourceAttributes, nil)
	case *authorizationv1.SelfSubjectRulesReview:
		review.Status = v.rules(ctx, requester, review.Spec.Namespace)
	case *authenticationv1.SelfSubjectReview:
		review.Status.UserInfo = userInfo(requester)
	case *authenticationv1.TokenReview:
		if review.Spec.Token == "" {
			return invalidReview("TokenReview", field.Required(field.NewPath("spec", "token"), "token must be specified"))
		}
		review.Status = v.tokenReview(ctx, review.Spec)
	default:
		return apierrors.NewInternalError(fmt.Errorf("unexpected review type %T", obj))
	}
	return nil
}

// access asks the authorizers about one request on behalf of user.
func (v *Reviews) access(ctx context.Context, user *authentication.User, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	attrs := &authorization.Attributes{User: user}
	if res != nil {
		attrs.ResourceRequest = true
		attrs.Verb, attrs.APIGroup, attrs.APIVersion = res.Verb, res.Group, res.Version
		attrs.Resource, attrs.Subresource, attrs.Namespace, attrs.Name = res.Resource, res.Subresource, res.Namespace, res.Name
	} else {
		attrs.Verb, attrs.Path = nonRes.Verb, nonRes.Path
	}
	decision, reason, err := v.Authorizer.Authorize(ctx, attrs)
	status := authorizationv1.SubjectAccessReviewStatus{
		Allowed: decision == authorization.Allow,
		Denied:  decision == authorization.Deny,
		Reason:  reason,
	}
	if err != nil {
		status.EvaluationError = err.Error()
	}
	return status
}

// rules lists what user may do in namespace, in SelfSubjectRulesReview form.
func (v *Reviews) rules(ctx context.Context, user *authentication.User, namespace string) authorizationv1.SubjectRulesReviewStatus {
	status := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules:    []authorizationv1.ResourceRule{},
		NonResourceRules: []authorizationv1.NonResourceRule{},
	}
	rules, err := v.Rules.RulesFor(ctx, user, namespace)
	if err != nil {
		status.EvaluationError = err.Error()
		status.Incomplete = true
	}
	for _, rule := range rules {
		if len(rule.NonResourceURLs) > 0 {
			status.NonResourceRules = append(status.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
			continue
		}
		status.ResourceRules = append(status.ResourceRules, authorizationv1.ResourceRule{
			Verbs: rule.Verbs, APIGroups: rule.APIGroups, Resources: rule.Resources, ResourceNames: rule.ResourceNames,
		})
	}
	return status
}

func (v *Reviews) tokenReview(ctx context.Context, spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	user, audiences, err := v.Tokens.ReviewToken(ctx, spec.Token, spec.Audiences)
	if err != nil || user == nil {
		status := authenticationv1.TokenReviewStatus{}
		if err != nil {
			status.Error = err.Error()
		}
		return status
	}
	user = authentication.WithAuthenticatedGroup(user)
	return authenticationv1.TokenReviewStatus{Authenticated: true, User: userInfo(user), Audiences: audiences}
}

func userInfo(u *authentication.User) authenticationv1.UserInfo {
	info := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		info.Extra = map[string]authenticationv1.ExtraValue{}
		keys := make([]string, 0, len(u.Extra))
		for k := range u.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			info.Extra[k] = u.Extra[k]
		}
	}
	return info
}

func subjectOf(spec *authorizationv1.SubjectAccessReviewSpec) *authentication.User {
	u := &authentication.User{Name: spec.User, UID: spec.UID, Groups: spec.Groups}
	if len(spec.Extra) > 0 {
		u.Extra = map[string][]string{}
		for k, v := range spec.Extra {
			u.Extra[k] = v
		}
	}
	return u
}

func validateAccessSpec(res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes, kind string) error {
	if (res == nil) == (nonRes == nil) {
		return invalidReview(kind, field.Invalid(field.NewPath("spec", "resourceAttributes"), res, "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
	}
	return nil
}

func validateSubjectAccessSpec(spec *authorizationv1.SubjectAccessReviewSpec, kind string) error {
	if err := validateAccessSpec(spec.ResourceAttributes, spec.NonResourceAttributes, kind); err != nil {
		return err
	}
	if spec.User == "" && len(spec.Groups) == 0 {
		return invalidReview(kind, field.Invalid(field.NewPath("spec", "user"), spec.User, "at least one of user or group must be specified"))
	}
	return nil
}

func invalidReview(kind string, errs ...*field.Error) error {
	group := authorizationv1.GroupName
	if kind == "TokenReview" {
		group = authenticationv1.GroupName
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: group, Kind: kind}, "", errs)
}
