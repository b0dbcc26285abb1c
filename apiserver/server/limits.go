package server

import (
	"net/http"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/endpoints"
)

// retryAfterSeconds is what a refused client is told to wait.
const retryAfterSeconds = "1"

// longRunningSubresources stream for as long as the client wants, so they
// do not hold an in-flight slot, like watches.
var longRunningSubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true, "proxy": true}

// inflightLimits bound concurrent requests: one pool for reads, one for
// writes, as --max-requests-inflight and --max-mutating-requests-inflight.
type inflightLimits struct {
	readOnly chan struct{}
	mutating chan struct{}
}

func newInflightLimits(readOnly, mutating int) *inflightLimits {
	l := &inflightLimits{}
	if readOnly > 0 {
		l.readOnly = make(chan struct{}, readOnly)
	}
	if mutating > 0 {
		l.mutating = make(chan struct{}, mutating)
	}
	return l
}

// limitInflight answers 429 with Retry-After when the request's pool is
// full. Watches and streams, health checks and system:masters (the admin
// and loopback clients must always get through) are never refused.
func (a *api) limitInflight(next http.Handler) http.Handler {
	limits := newInflightLimits(a.options.MaxRequestsInflight, a.options.MaxMutatingRequestsInflight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pool := limits.readOnly
		if isMutating(r.Method) {
			pool = limits.mutating
		}
		if pool == nil || isHealthPath(r.URL.Path) || isLongRunning(r) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case pool <- struct{}{}:
			defer func() { <-pool }()
			next.ServeHTTP(w, r)
		default:
			if u, ok := authentication.UserFrom(r.Context()); ok && u.InGroup(authentication.GroupMasters) {
				next.ServeHTTP(w, r)
				return
			}
			a.metrics.rejected(isMutating(r.Method))
			w.Header().Set("Retry-After", retryAfterSeconds)
			http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
		}
	})
}

func isMutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func isLongRunning(r *http.Request) bool {
	info, ok := endpoints.ParseRequestInfo(r)
	return ok && (info.Verb == "watch" || longRunningSubresources[info.Subresource])
}
