package server

import (
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/apiserver/audit"
	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/endpoints"
)

// authenticate establishes the request's user: a verified client
// certificate or bearer token, else anonymous when allowed. Invalid
// credentials are refused with 401, never downgraded to anonymous.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := a.security.authenticator.AuthenticateRequest(r)
		switch {
		case err != nil || (!ok && !a.options.AnonymousAuth):
			a.unauthorized(w)
			return
		case !ok:
			user = authentication.Anonymous()
		default:
			user = authentication.WithAuthenticatedGroup(user)
		}
		// Credentials are for this server only.
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r.WithContext(authentication.WithUser(r.Context(), user)))
	})
}

func (a *api) unauthorized(w http.ResponseWriter) {
	a.writeStatus(w, &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnauthorized, Reason: metav1.StatusReasonUnauthorized,
		Message: "Unauthorized",
	})
}

// impersonate swaps the user for the one the Impersonate-* headers name,
// when the user may impersonate it.
func (a *api) impersonate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorization.ImpersonationRequested(r.Header) {
			next.ServeHTTP(w, r)
			return
		}
		requester, _ := authentication.UserFrom(r.Context())
		user, err := authorization.Impersonate(r.Context(), a.security.authorizer, requester, r.Header)
		if err != nil {
			a.writeError(w, err)
			return
		}
		authorization.StripImpersonationHeaders(r.Header)
		audit.SetImpersonatedUser(r, userInfo(user))
		next.ServeHTTP(w, r.WithContext(authentication.WithUser(r.Context(), user)))
	})
}

// authorize lets the request through when an authorizer allows it and
// answers kube-apiserver's 403 otherwise.
func (a *api) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := requestAttributes(r)
		decision, reason, err := a.security.authorizer.Authorize(r.Context(), attrs)
		if decision == authorization.Allow {
			next.ServeHTTP(w, r)
			return
		}
		if err != nil && reason == "" {
			reason = err.Error()
		}
		a.writeError(w, authorization.Forbidden(attrs, reason))
	})
}

// requestAttributes describes a request for the authorizers.
func requestAttributes(r *http.Request) *authorization.Attributes {
	user, _ := authentication.UserFrom(r.Context())
	if info, ok := endpoints.ParseRequestInfo(r); ok {
		name := info.Name
		if info.Resource == "namespaces" && info.Name == "" && info.Namespace != "" {
			name = info.Namespace
		}
		return &authorization.Attributes{
			User: user, Verb: info.Verb, ResourceRequest: true, Path: r.URL.Path,
			APIGroup: info.GroupVersion.Group, APIVersion: info.GroupVersion.Version,
			Resource: info.Resource, Subresource: info.Subresource, Namespace: info.Namespace, Name: name,
		}
	}
	return &authorization.Attributes{User: user, Verb: authorization.NonResourceVerb(r.Method), Path: r.URL.Path}
}

// writeError answers with the Status of an API error.
func (a *api) writeError(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		a.writeStatus(w, &s)
		return
	}
	s := apierrors.NewInternalError(err).ErrStatus
	a.writeStatus(w, &s)
}

func isHealthPath(path string) bool {
	return anonymousPaths[path] || strings.HasPrefix(path, "/livez/") || strings.HasPrefix(path, "/readyz/") || strings.HasPrefix(path, "/healthz/")
}
