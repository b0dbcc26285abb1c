// Package authentication establishes who sent a request: x509 client
// certificates verified against the client CA, bearer tokens from a static
// token file, and service-account JWTs; requests without credentials are
// anonymous when that is allowed.
package authentication

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// The groups and names kube-apiserver gives to identities it derives.
const (
	GroupAuthenticated   = "system:authenticated"
	GroupUnauthenticated = "system:unauthenticated"
	GroupMasters         = "system:masters"
	GroupNodes           = "system:nodes"
	UserAnonymous        = "system:anonymous"
	NodeUserPrefix       = "system:node:"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// InGroup reports whether the user is a member of group.
func (u *User) InGroup(group string) bool {
	for _, g := range u.Groups {
		if g == group {
			return true
		}
	}
	return false
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

// ErrInvalidCredentials means the request carried credentials that do not
// check out: it is answered 401 rather than treated as anonymous.
var ErrInvalidCredentials = errors.New("invalid bearer token")

// Authenticator identifies the sender of a request. It returns ok=false
// when the request carries no credentials of its kind and an error when it
// carries credentials of its kind that are not valid.
type Authenticator interface {
	AuthenticateRequest(r *http.Request) (u *User, ok bool, err error)
}

// TokenAuthenticator checks one bearer token.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (u *User, ok bool, err error)
}

// Union tries authenticators in order; the first that recognises the
// request decides.
type Union []Authenticator

// AuthenticateRequest implements Authenticator.
func (u Union) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	var errs []error
	for _, a := range u {
		user, ok, err := a.AuthenticateRequest(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return user, true, nil
		}
	}
	return nil, false, errors.Join(errs...)
}

// BearerToken reads bearer tokens from the Authorization header and tries
// each token authenticator on it.
type BearerToken []TokenAuthenticator

// AuthenticateRequest implements Authenticator.
func (b BearerToken) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, false, nil
	}
	for _, a := range b {
		user, ok, err := a.AuthenticateToken(r.Context(), token)
		if err != nil {
			return nil, false, err
		}
		if ok {
			return user, true, nil
		}
	}
	return nil, false, ErrInvalidCredentials
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// ClientCertificate authenticates verified TLS client certificates.
type ClientCertificate struct{}

// AuthenticateRequest reads the user from a verified client certificate:
// the common name is the user name and the organizations are the groups.
func (ClientCertificate) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false, nil
	}
	cert := r.TLS.VerifiedChains[0][0]
	if cert.Subject.CommonName == "" {
		return nil, false, nil
	}
	return &User{Name: cert.Subject.CommonName, Groups: append([]string{}, cert.Subject.Organization...)}, true, nil
}

// Anonymous is the identity of a request without credentials.
func Anonymous() *User {
	return &User{Name: UserAnonymous, Groups: []string{GroupUnauthenticated}}
}

// WithAuthenticatedGroup adds system:authenticated to a non-anonymous user,
// as kube-apiserver does for every authenticator.
func WithAuthenticatedGroup(u *User) *User {
	if u.Name == UserAnonymous || u.InGroup(GroupAuthenticated) {
		return u
	}
	out := *u
	out.Groups = append(append([]string{}, u.Groups...), GroupAuthenticated)
	return &out
}
