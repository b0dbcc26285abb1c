// Package profiling serves Go's runtime profiles under /debug/pprof/, as
// kube-apiserver, kube-scheduler and kube-controller-manager do when
// started with --profiling (their default).
package profiling

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is the path every profile is served under.
const Prefix = "/debug/pprof/"

// Handlers maps the paths to serve to their handlers. The index also
// serves the named profiles (heap, allocs, goroutine, block, mutex,
// threadcreate) below Prefix; the CPU profile, trace, command line and
// symbol lookup need handlers of their own.
func Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		Prefix:             http.HandlerFunc(pprof.Index),
		Prefix + "cmdline": http.HandlerFunc(pprof.Cmdline),
		Prefix + "profile": http.HandlerFunc(pprof.Profile),
		Prefix + "symbol":  http.HandlerFunc(pprof.Symbol),
		Prefix + "trace":   http.HandlerFunc(pprof.Trace),
	}
}

// Register adds the handlers to mux.
func Register(mux *http.ServeMux) {
	for path, h := range Handlers() {
		mux.Handle(path, h)
	}
}
