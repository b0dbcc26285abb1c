package authorization

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"tower.dev/tower/apiserver/authentication"
)

// The impersonation headers kubectl --as, --as-group and --as-uid send.
const (
	ImpersonateUserHeader        = "Impersonate-User"
	ImpersonateGroupHeader       = "Impersonate-Group"
	ImpersonateUIDHeader         = "Impersonate-Uid"
	ImpersonateExtraHeaderPrefix = "Impersonate-Extra-"
)

// Impersonate returns the identity the request asks to act as, after
// checking that requester holds the impersonate verb on every part of it.
// It returns requester unchanged when the request impersonates nobody.
func Impersonate(ctx context.Context, authz Authorizer, requester *authentication.User, h http.Header) (*authentication.User, error) {
	name := h.Get(ImpersonateUserHeader)
	groups := h.Values(ImpersonateGroupHeader)
	uid := h.Get(ImpersonateUIDHeader)
	extra := map[string][]string{}
	for key, values := range h {
		if suffix, ok := strings.CutPrefix(key, ImpersonateExtraHeaderPrefix); ok {
			decoded, err := url.PathUnescape(suffix)
			if err != nil {
				decoded = suffix
			}
			extra[strings.ToLower(decoded)] = values
		}
	}
	if name == "" {
		if len(groups) > 0 || uid != "" || len(extra) > 0 {
			return nil, apierrors.NewBadRequest("requested impersonation of groups, uid or extra without impersonating a user")
		}
		return requester, nil
	}
	checks := []*Attributes{}
	target := &authentication.User{Name: name, UID: uid}
	if ns, sa, ok := authentication.SplitServiceAccountUser(name); ok {
		checks = append(checks, &Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "serviceaccounts", Namespace: ns, Name: sa})
		if len(groups) == 0 {
			target.Groups = authentication.ServiceAccountUser(ns, sa, "").Groups
		}
	} else {
		checks = append(checks, &Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "users", Name: name})
	}
	for _, g := range groups {
		checks = append(checks, &Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "groups", Name: g})
		target.Groups = append(target.Groups, g)
	}
	if uid != "" {
		checks = append(checks, &Attributes{Verb: "impersonate", ResourceRequest: true, APIGroup: "authentication.k8s.io", Resource: "uids", Name: uid})
	}
	for key, values := range extra {
		for _, v := range values {
			checks = append(checks, &Attributes{Verb: "impersonate", ResourceRequest: true, APIGroup: "authentication.k8s.io", Resource: "userextras", Subresource: key, Name: v})
		}
	}
	if len(extra) > 0 {
		target.Extra = extra
	}
	for _, check := range checks {
		check.User = requester
		decision, reason, err := authz.Authorize(ctx, check)
		if decision != Allow {
			if err != nil && reason == "" {
				reason = err.Error()
			}
			return nil, Forbidden(check, reason)
		}
	}
	switch {
	case name == authentication.UserAnonymous:
		if !slices.Contains(target.Groups, authentication.GroupUnauthenticated) {
			target.Groups = append(target.Groups, authentication.GroupUnauthenticated)
		}
	case !slices.Contains(target.Groups, authentication.GroupAuthenticated):
		target.Groups = append(target.Groups, authentication.GroupAuthenticated)
	}
	return target, nil
}

// StripImpersonationHeaders removes the headers once they are applied, so
// that nothing downstream applies them again.
func StripImpersonationHeaders(h http.Header) {
	for key := range h {
		if key == ImpersonateUserHeader || key == ImpersonateGroupHeader || key == ImpersonateUIDHeader || strings.HasPrefix(key, ImpersonateExtraHeaderPrefix) {
			h.Del(key)
		}
	}
}

// ImpersonationRequested reports whether any impersonation header is set.
func ImpersonationRequested(h http.Header) bool {
	for key := range h {
		if key == ImpersonateUserHeader || key == ImpersonateGroupHeader || key == ImpersonateUIDHeader || strings.HasPrefix(key, ImpersonateExtraHeaderPrefix) {
			return true
		}
	}
	return false
}
