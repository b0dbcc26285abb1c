package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"

	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/internal/profiling"
)

// KubernetesVersion is the API version Tower implements, reported by
// /version so clients pick the matching behaviour.
const KubernetesVersion = "v1.37.2"

// anonymousPaths are the health and version endpoints: bootstrap RBAC
// lets anyone read them and the in-flight limits never refuse them.
var anonymousPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true}

// handler is the request chain: panic recovery, metrics, authentication,
// impersonation, in-flight limits, authorization, timeouts, then routing.
// The loopback client enters the same chain after authentication.
func (a *api) handler(log logr.Logger) (http.Handler, error) {
	admit, err := a.admission(log)
	if err != nil {
		return nil, err
	}
	scope := &endpoints.Scope{
		Codecs:            a.codecs,
		MaxBodyBytes:      a.options.MaxRequestBodyBytes,
		MinRequestTimeout: time.Duration(a.options.MinRequestTimeout) * time.Second,
		Admission:         admit,
		Parameters:        runtime.NewParameterCodec(a.scheme),
		Scheme:            a.scheme,
		TypeConverter:     a.typeConverter,
		ServerUser:        a.loopback.user,
	}
	kubeletTransport, err := endpoints.NewKubeletTransport(a.options.KubeletClientCertFile, a.options.KubeletClientKeyFile, a.options.KubeletCertificateAuthority)
	if err != nil {
		return nil, err
	}
	nodeSubresources := &endpoints.NodeSubresources{
		Scope:     scope,
		Pods:      a.byGVR[corev1.SchemeGroupVersion.WithResource("pods")],
		Nodes:     a.byGVR[corev1.SchemeGroupVersion.WithResource("nodes")],
		Transport: kubeletTransport,
	}
	a.scope = scope
	resources, err := endpoints.NewHandler(scope, a.endpoints)
	if err != nil {
		return nil, err
	}
	reviews := a.reviews(scope)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", a.health("healthz"))
	mux.HandleFunc("/livez", a.health("livez"))
	mux.HandleFunc("/readyz", a.health("readyz"))
	mux.HandleFunc("/version", serveVersion)
	mux.Handle("/metrics", a.metrics.handler())
	if a.options.Profiling {
		profiling.Register(mux)
	}
	if err := a.serveIssuerDiscovery(mux); err != nil {
		return nil, err
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if a.discovery.ServeHTTP(w, r) || a.openapi.ServeHTTP(w, r) {
			return
		}
		info, ok := endpoints.ParseRequestInfo(r)
		if !ok {
			a.notFound(w, r)
			return
		}
		timeout := a.options.RequestTimeout
		if longRunningSubresources[info.Subresource] {
			timeout = 0
		}
		ctx, cancel := requestContext(r.Context(), info.Verb, timeout)
		defer cancel()
		if a.crds.Serve(w, r.WithContext(ctx), info) {
			return
		}
		if reviews.Serves(info) {
			reviews.Serve(w, r.WithContext(ctx), info)
			return
		}
		if nodeSubresources.Serves(info) {
			nodeSubresources.Serve(w, r.WithContext(ctx), info)
			return
		}
		resources.Serve(w, r.WithContext(ctx), info)
	})
	authenticated := a.audit(a.impersonate(a.limitInflight(a.authorize(mux))))
	a.loopbackHandler = a.recoverPanics(authenticated)
	return a.recoverPanics(a.metrics.instrument(a.authenticate(authenticated))), nil
}

// requestContext bounds non-watch requests by the request timeout.
func requestContext(ctx context.Context, verb string, timeout time.Duration) (context.Context, context.CancelFunc) {
	if verb == "watch" || timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	a.writeStatus(w, &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource",
		Details: &metav1.StatusDetails{},
	})
}

func (a *api) writeStatus(w http.ResponseWriter, status *metav1.Status) {
	status.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	body, err := json.Marshal(status)
	if err != nil {
		http.Error(w, status.Message, int(status.Code))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(status.Code))
	_, _ = w.Write(body)
}

// recoverPanics turns a panic in a handler into a 500 Status; the stored
// state is untouched because writes are single etcd transactions.
func (a *api) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logr.FromContextOrDiscard(r.Context()).Error(fmt.Errorf("%v", p), "handler panic",
					"method", r.Method, "path", r.URL.Path, "stack", string(debug.Stack()))
				status := apierrors.NewInternalError(fmt.Errorf("the server hit an unexpected error handling %s %s", r.Method, r.URL.Path)).ErrStatus
				a.writeStatus(w, &status)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// health serves /healthz, /livez and /readyz with kube-apiserver's text
// format, including ?verbose and ?exclude=.
func (a *api) health(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := []struct {
			name  string
			check func(context.Context) error
		}{
			{"ping", func(context.Context) error { return nil }},
			{"log", func(context.Context) error { return nil }},
			{"etcd", a.etcdHealthy},
		}
		excluded := map[string]bool{}
		for _, e := range r.URL.Query()["exclude"] {
			excluded[e] = true
		}
		var b strings.Builder
		failed := false
		for _, c := range checks {
			if excluded[c.name] {
				fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.name)
				continue
			}
			if err := c.check(ctx); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-]%s failed: reason withheld\n", c.name)
				continue
			}
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "%s%s check failed\n", b.String(), name)
			return
		}
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprintf(w, "%s%s check passed\n", b.String(), name)
			return
		}
		fmt.Fprint(w, "ok")
	}
}

func (a *api) etcdHealthy(ctx context.Context) error {
	_, err := a.etcd.Get(ctx, "health")
	return err
}

func serveVersion(w http.ResponseWriter, _ *http.Request) {
	info := version.Info{
		Major:        "1",
		Minor:        "37",
		GitVersion:   KubernetesVersion,
		GitTreeState: "clean",
		GoVersion:    goruntime.Version(),
		Compiler:     goruntime.Compiler,
		Platform:     goruntime.GOOS + "/" + goruntime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.GitCommit = s.Value
			case "vcs.time":
				info.BuildDate = s.Value
			}
		}
	}
	body, _ := json.MarshalIndent(info, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
