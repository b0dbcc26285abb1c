package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/apiextensions"
	"tower.dev/tower/apiserver/discovery"
	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/apiserver/openapi"
	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/cacher"
)

// shutdownTimeout bounds how long in-flight requests may take to finish
// once the server is asked to stop.
const shutdownTimeout = 10 * time.Second

// Run serves the API until ctx is cancelled, then shuts down cleanly.
func Run(ctx context.Context, o *Options) error {
	log := logr.FromContextOrDiscard(ctx).WithName("apiserver")
	if o.EventTTL < 0 {
		return fmt.Errorf("--event-ttl %s: must not be negative", o.EventTTL)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return err
	}
	client, err := storage.NewClient(ctx, storage.ClientConfig{
		Endpoints: o.EtcdServers, CAFile: o.EtcdCAFile, CertFile: o.EtcdCertFile, KeyFile: o.EtcdKeyFile,
	})
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", o.EtcdServers, err)
	}
	defer client.Close()

	api, err := newAPI(ctx, o, client)
	if err != nil {
		return err
	}
	if api.auditing != nil {
		defer api.auditing.log.Close()
	}
	if o.EtcdCompactionInterval > 0 {
		storage.StartCompactor(ctx, client, o.EtcdCompactionInterval)
	}
	if err := api.bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := api.syncPolicy(ctx); err != nil {
		return fmt.Errorf("authorization policy: %w", err)
	}

	listener := o.Listener
	if listener == nil {
		addr := net.JoinHostPort(o.BindAddress, strconv.Itoa(o.SecurePort))
		if listener, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
	}
	requestCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	handler, err := api.handler(log)
	if err != nil {
		return fmt.Errorf("handler: %w", err)
	}
	api.crds.Run(ctx, api.scope)
	api.loopback.serve(ctx, api.loopbackHandler)
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return requestCtx },
		ErrorLog:          nil,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(listener, "", "") }()
	log.Info("serving", "address", listener.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancelShutdown()
	// Watches last for minutes: end them so Shutdown need not wait.
	cancelRequests()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// tlsConfig loads the serving certificate (or makes a self-signed one in
// CertDir) and the client CA.
func (o *Options) tlsConfig() (*tls.Config, error) {
	certFile, keyFile := o.TLSCertFile, o.TLSPrivateKeyFile
	if certFile == "" || keyFile == "" {
		// kube-apiserver serves a pair already in --cert-dir as it is
		// (envtest writes one there).
		existingCert, existingKey := filepath.Join(o.CertDir, "apiserver.crt"), filepath.Join(o.CertDir, "apiserver.key")
		if _, err := tls.LoadX509KeyPair(existingCert, existingKey); err == nil {
			certFile, keyFile = existingCert, existingKey
		}
	}
	if certFile == "" || keyFile == "" {
		ca, err := pki.LoadOrCreateCA(o.CertDir)
		if err != nil {
			return nil, fmt.Errorf("self-signed serving CA in %s: %w", o.CertDir, err)
		}
		hosts := []string{o.BindAddress}
		if hostname, err := os.Hostname(); err == nil {
			hosts = append(hosts, hostname)
		}
		if certFile, keyFile, err = ca.EnsureServingCert(o.CertDir, "apiserver", hosts); err != nil {
			return nil, fmt.Errorf("self-signed serving certificate in %s: %w", o.CertDir, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate %s: %w", certFile, err)
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.RequestClientCert,
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(filepath.Clean(o.ClientCAFile))
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no certificates", o.ClientCAFile)
		}
		config.ClientCAs = pool
		config.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return config, nil
}

// api is the assembled server: codecs, stores and handlers.
type api struct {
	options   *Options
	scheme    *runtime.Scheme
	codecs    serializer.CodecFactory
	catalog   *registry.Catalog
	endpoints []*endpoints.Endpoint
	byGVR     map[schema.GroupVersionResource]*endpoints.Endpoint
	discovery *discovery.Swappable
	// crds serves custom resources; scope is the shared handler scope it
	// builds their handlers with.
	crds    *apiextensions.Manager
	scope   *endpoints.Scope
	openapi *openapi.Documents
	// typeConverter knows every served kind's structure, for managedFields.
	typeConverter managedfields.TypeConverter
	metrics       *metrics
	etcd          *clientv3.Client
	services      *admission.ServiceAllocator
	security      *security
	auditing      *auditing
	// notStored are the review resources, answered by endpoints.Reviews.
	notStored map[schema.GroupVersionResource]*registry.Resource
	// loopback is the server's client of itself; loopbackHandler serves it.
	loopback        *loopback
	loopbackHandler http.Handler
	// served maps every served resource, custom ones included, to its kind
	// and its other versions, for admission.
	served   *admission.EquivalentResources
	webhooks *admission.Webhooks
	policies *admission.ValidatingPolicies
}

// NewScheme registers every built-in type Tower serves plus the meta types
// (Status, Table, WatchEvent, options) in each group version.
func NewScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register built-in types: %w", err)
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	// Clients send DeleteOptions and friends as meta.k8s.io/v1 as well.
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register apiextensions types: %w", err)
	}
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register meta types: %w", err)
	}
	return scheme, nil
}

func newAPI(ctx context.Context, o *Options, client *clientv3.Client) (*api, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	crdResource, err := apiextensions.CRDResource()
	if err != nil {
		return nil, err
	}
	builtins := append(registry.Builtins(registry.BuiltinOptions{EventTTL: o.EventTTL}).Resources(), crdResource)
	a := &api{
		options:   o,
		scheme:    scheme,
		codecs:    serializer.NewCodecFactory(scheme, serializer.EnableStrict),
		catalog:   registry.NewCatalog(builtins),
		byGVR:     map[schema.GroupVersionResource]*endpoints.Endpoint{},
		metrics:   newMetrics(),
		etcd:      client,
		notStored: map[schema.GroupVersionResource]*registry.Resource{},
	}
	stores := map[string]storage.Interface{}
	for _, res := range a.catalog.Resources() {
		if res.NotStored {
			a.notStored[res.GroupVersionResource] = res
			continue
		}
		owner := res
		if res.StoredAs != nil {
			owner = res.StoredAs.Resource
		}
		store, ok := stores[owner.StoragePrefix]
		if !ok {
			if store, err = a.newStore(ctx, scheme, owner); err != nil {
				return nil, err
			}
			stores[owner.StoragePrefix] = store
		}
		if res.StoredAs != nil {
			store = newViewStore(store, res)
		}
		e := &endpoints.Endpoint{Resource: res, Store: store, KeyPrefix: a.keyPrefix(owner)}
		a.endpoints = append(a.endpoints, e)
		a.byGVR[res.GroupVersionResource] = e
	}
	a.discovery = discovery.NewSwappable(a.catalog)
	if a.loopback, err = newLoopback(); err != nil {
		return nil, fmt.Errorf("loopback client: %w", err)
	}
	// Admission webhooks and CRD conversion webhooks given as a Service
	// are called at one of its ready endpoints.
	webhookServices, err := admission.NewServiceResolver(a.loopback.informers)
	if err != nil {
		return nil, err
	}
	crdEndpoint := a.byGVR[crdResource.GroupVersionResource]
	a.crds, err = apiextensions.NewManager(apiextensions.Config{
		Etcd:         client,
		CRDs:         crdEndpoint.Store,
		CRDKeyPrefix: crdEndpoint.KeyPrefix,
		KeyPrefix: func(storagePrefix string) string {
			return a.keyPrefix(&registry.Resource{StoragePrefix: storagePrefix})
		},
		WatchCache:      o.WatchCache,
		ServiceResolver: webhookServices,
		OnChange: func(custom []*registry.Resource, crds []*apiextensionsv1.CustomResourceDefinition) {
			all := append(slices.Clip(builtins), custom...)
			a.discovery.Update(registry.NewCatalog(all))
			a.served.Update(all)
			if err := a.openapi.UpdateCustomResources(crds); err != nil {
				logr.FromContextOrDiscard(ctx).WithName("apiserver").Error(err, "custom resources left out of the OpenAPI documents")
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if a.openapi, err = openapi.New(a.catalog, scheme, KubernetesVersion); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	schemas, err := a.openapi.TypeSchemas()
	if err != nil {
		return nil, err
	}
	if a.typeConverter, err = managedfields.NewTypeConverter(schemas, false); err != nil {
		return nil, fmt.Errorf("type converter for managed fields: %w", err)
	}
	if a.services, err = newServiceAllocator(o, a.byGVR[corev1.SchemeGroupVersion.WithResource("services")]); err != nil {
		return nil, err
	}
	if a.security, err = a.newSecurity(); err != nil {
		return nil, err
	}
	if a.auditing, err = newAuditing(o); err != nil {
		return nil, err
	}
	a.served = admission.NewEquivalentResources(builtins)
	upstream := admission.UpstreamConfig{
		Client: a.loopback.client, Informers: a.loopback.informers, Dynamic: a.loopback.dynamic, RESTMapper: a.loopback.mapper,
		Authorizer: a.security.authorizer, Scheme: scheme, Resources: a.served,
		ServiceResolver: webhookServices, Stop: ctx.Done(),
	}
	if a.webhooks, err = admission.NewWebhooks(upstream); err != nil {
		return nil, err
	}
	if a.policies, err = admission.NewValidatingPolicies(upstream); err != nil {
		return nil, err
	}
	return a, nil
}

// newStore builds the etcd store of one resource and, unless disabled, the
// watch cache in front of it.
func (a *api) newStore(ctx context.Context, scheme *runtime.Scheme, res *registry.Resource) (storage.Interface, error) {
	codec := newStorageCodec(scheme, res.GroupVersionKind())
	prefix := a.keyPrefix(res)
	etcdStore := storage.NewEtcdStore(a.etcd, codec, res.New, res.NewList, prefix, storage.WithTTL(res.TTL))
	if !a.options.WatchCache {
		return etcdStore, nil
	}
	cached, err := cacher.New(ctx, etcdStore, a.etcd, prefix, res.New, res.NewList)
	if err != nil {
		return nil, fmt.Errorf("watch cache for %s: %w", res.GroupResource(), err)
	}
	return cached, nil
}

// keyPrefix places a resource's upstream key layout under --etcd-prefix.
func (a *api) keyPrefix(res *registry.Resource) string {
	return strings.TrimSuffix(a.options.EtcdPrefix, "/") + strings.TrimPrefix(res.StoragePrefix, "/registry")
}
