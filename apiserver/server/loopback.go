package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"tower.dev/tower/apiserver/authentication"
)

// loopbackUser is the identity of the server's own requests, as
// kube-apiserver's loopback client has.
const loopbackUser = "system:apiserver"

// loopback is the API server's client of itself: the admission plugins
// watch webhook configurations, namespaces and services through it. Its
// requests travel over in-memory connections into the handler chain after
// authentication, so they need no port, certificate or token.
type loopback struct {
	listener  *pipeListener
	client    kubernetes.Interface
	informers informers.SharedInformerFactory
	// dynamic and mapper reach any kind, custom resources included:
	// admission policies watch their parameter objects through them.
	dynamic dynamic.Interface
	mapper  meta.RESTMapper
	user    *authentication.User
}

func newLoopback() (*loopback, error) {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	config := &rest.Config{
		Host:          "http://apiserver.loopback",
		Dial:          l.DialContext,
		ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
		QPS:           -1,
		UserAgent:     "tower-apiserver/loopback",
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	dynamicClient, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	return &loopback{
		listener:  l,
		client:    client,
		informers: informers.NewSharedInformerFactory(client, 0),
		dynamic:   dynamicClient,
		// Discovery is read again when a kind is not found, so kinds of
		// CRDs created later are mapped.
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery())),
		user: &authentication.User{
			Name: loopbackUser, UID: string(uuid.NewUUID()),
			Groups: []string{authentication.GroupMasters, authentication.GroupAuthenticated},
		},
	}, nil
}

// serve answers loopback requests with handler (the chain after
// authentication) as the loopback user and starts the informers; both
// stop with ctx.
func (l *loopback) serve(ctx context.Context, handler http.Handler) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handler.ServeHTTP(w, r.WithContext(authentication.WithUser(r.Context(), l.user)))
		}),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() { _ = srv.Serve(l.listener) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	l.informers.Start(ctx.Done())
}

// pipeListener hands out the server ends of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// DialContext connects a client to the listener.
func (l *pipeListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, errors.New("loopback listener closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "loopback" }
