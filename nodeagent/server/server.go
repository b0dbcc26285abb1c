// Package server is the node agent's HTTPS endpoint for the API server:
// container logs (kubelet's /containerLogs) served from the CRI-format log
// files the agent writes, exec and attach (WebSocket or SPDY) and
// port-forward (SPDY), to clients holding a certificate signed by the
// cluster CA.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// DefaultPort is kubelet's port, which clients and tools expect.
const DefaultPort = 10250

// ContainerState tells the server whether a container still runs, so that
// a followed log ends when its container does.
type ContainerState interface {
	// ContainerRunning reports whether the given run (restart count) of the
	// pod's container is running now.
	ContainerRunning(ctx context.Context, podUID, container string, restartCount int) bool
}

// Config configures the server.
type Config struct {
	// PodsDir holds one directory per pod, <namespace>_<name>_<uid>, with
	// logs/<container>/<restartCount>.log inside.
	PodsDir string
	// Certificate is served to clients.
	Certificate tls.Certificate
	// ClientCAs sign the client certificates accepted (the API server's).
	ClientCAs *x509.CertPool
	// Containers answers whether a followed container still runs.
	Containers ContainerState
	// Exec runs commands for /exec; nil refuses them.
	Exec Execer
	// Attach connects to containers' streams for /attach; nil refuses it.
	Attach Attacher
	// PortForward connects to pod ports for /portForward; nil refuses it.
	PortForward PortForwarder
	// Authorizer decides whether an authenticated client may use an
	// endpoint; nil lets every client with a valid certificate in.
	Authorizer Authorizer
	// FollowPollInterval is how often a followed log is checked for new
	// output; zero means 200ms.
	FollowPollInterval time.Duration
}

// Authorizer asks the API server whether user (in groups) may perform
// verb on nodes/proxy of this node, as kubelet's webhook authorization.
type Authorizer interface {
	Authorize(ctx context.Context, user string, groups []string, verb string) (allowed bool, reason string, err error)
}

// Server serves the node agent's endpoints.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New builds a server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.PodsDir == "" {
		return nil, errors.New("node server: pods dir is required")
	}
	if cfg.ClientCAs == nil {
		return nil, errors.New("node server: a client CA is required; the endpoints are never served unauthenticated")
	}
	if cfg.FollowPollInterval == 0 {
		cfg.FollowPollInterval = 200 * time.Millisecond
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveContainerLogs)
	s.mux.HandleFunc("GET /exec/{namespace}/{pod}/{container}", s.serveExec)
	s.mux.HandleFunc("POST /exec/{namespace}/{pod}/{container}", s.serveExec)
	s.mux.HandleFunc("GET /attach/{namespace}/{pod}/{container}", s.serveAttach)
	s.mux.HandleFunc("POST /attach/{namespace}/{pod}/{container}", s.serveAttach)
	s.mux.HandleFunc("GET /portForward/{namespace}/{pod}", s.servePortForward)
	s.mux.HandleFunc("POST /portForward/{namespace}/{pod}", s.servePortForward)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	return s, nil
}

// ServeHTTP serves the endpoints to a request that has already been
// authenticated.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Serve answers HTTPS on listener until ctx ends. Only clients presenting a
// certificate signed by one of the ClientCAs complete the handshake.
func (s *Server) Serve(ctx context.Context, listener net.Listener) error {
	log := logr.FromContextOrDiscard(ctx).WithName("server")
	httpServer := &http.Server{
		Handler: s.withRequestLog(log),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cfg.Certificate},
			ClientCAs:    s.cfg.ClientCAs,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return logr.NewContext(ctx, log) },
		ErrorLog:          stdlog.New(handshakeLog{log}, "", 0),
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := httpServer.Shutdown(shutdownCtx); err != nil {
				_ = httpServer.Close()
			}
		case <-done:
		}
	}()
	log.Info("serving", "address", listener.Addr().String())
	err := httpServer.ServeTLS(listener, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("node server: %w", err)
}

func (s *Server) withRequestLog(log logr.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			user = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		log.V(4).Info("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "user", user)
		if s.cfg.Authorizer != nil && r.URL.Path != "/healthz" {
			var groups []string
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				groups = r.TLS.PeerCertificates[0].Subject.Organization
			}
			verb := "get"
			if r.Method == http.MethodPost {
				verb = "create"
			}
			allowed, reason, err := s.cfg.Authorizer.Authorize(r.Context(), user, groups, verb)
			if err != nil {
				log.Error(err, "authorizing request", "user", user)
				httpError(w, http.StatusInternalServerError, "authorization failed: %v", err)
				return
			}
			if !allowed {
				httpError(w, http.StatusForbidden, "Forbidden (user=%s, verb=%s, resource=nodes, subresource=proxy): %s", user, verb, reason)
				return
			}
		}
		s.ServeHTTP(w, r)
	})
}

// httpError answers with a plain-text message, as kubelet does; the API
// server turns it into a Status.
func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// handshakeLog sends net/http's own messages (refused TLS handshakes of
// clients without a valid certificate, mostly) to the agent's log.
type handshakeLog struct{ log logr.Logger }

func (h handshakeLog) Write(p []byte) (int, error) {
	h.log.V(2).Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
