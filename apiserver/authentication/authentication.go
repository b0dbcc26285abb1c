// Package authentication establishes who sent a request. Today that is the
// x509 client certificate verified against the client CA; tokens and
// service accounts arrive with the security issue.
package authentication

import (
	"context"
	"net/http"
)

// User is an authenticated identity.
type User struct {
	Name   string
	Groups []string
}

type userKey struct{}

// WithUser returns a context carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the request's user, if authenticated.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok
}

// FromClientCertificate reads the user from a verified client certificate:
// the common name is the user name, the organizations are the groups, and
// every such user is in system:authenticated.
func FromClientCertificate(r *http.Request) (*User, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false
	}
	cert := r.TLS.VerifiedChains[0][0]
	if cert.Subject.CommonName == "" {
		return nil, false
	}
	groups := append([]string{}, cert.Subject.Organization...)
	groups = append(groups, "system:authenticated")
	return &User{Name: cert.Subject.CommonName, Groups: groups}, true
}
