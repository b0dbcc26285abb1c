// Package server assembles Tower's API server: TLS, authentication, the
// REST handlers for every registered resource, discovery, health and
// metrics, over an etcd-backed store with a watch cache.
package server

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/registry"
)

// Options configure the API server. Flag names follow kube-apiserver's
// wherever the setting is the same.
type Options struct {
	// BindAddress and SecurePort: where HTTPS is served.
	BindAddress string
	SecurePort  int
	// Listener, when set, is used instead of BindAddress/SecurePort (tests
	// listen on port 0 and pass the listener in).
	Listener net.Listener

	// TLSCertFile/TLSPrivateKeyFile: the serving certificate. When empty a
	// self-signed pair is generated into CertDir.
	TLSCertFile       string
	TLSPrivateKeyFile string
	CertDir           string
	// ClientCAFile: CA bundle that signs accepted client certificates.
	ClientCAFile string
	// KubeletClientCertFile/KubeletClientKeyFile: the client certificate
	// presented to node agents (pods/log); KubeletCertificateAuthority
	// verifies their serving certificates (unverified when empty).
	KubeletClientCertFile       string
	KubeletClientKeyFile        string
	KubeletCertificateAuthority string

	// EtcdServers: etcd client URLs.
	EtcdServers  []string
	EtcdPrefix   string
	EtcdCAFile   string
	EtcdCertFile string
	EtcdKeyFile  string
	// EtcdCompactionInterval: how often old revisions are compacted; 0
	// disables compaction.
	EtcdCompactionInterval time.Duration

	// EventTTL: how long events are kept after their last write; zero
	// keeps them until deleted.
	EventTTL time.Duration

	// WatchCache: serve watches and lists from one in-memory cache per
	// resource fed by one etcd watch.
	WatchCache bool

	// ServiceClusterIPRange: CIDR for Service cluster IPs.
	ServiceClusterIPRange string

	// MaxRequestBodyBytes: larger bodies are refused with 413.
	MaxRequestBodyBytes int64
	// RequestTimeout bounds non-watch requests; MinRequestTimeout (seconds)
	// is the lower bound of the random watch timeout (as kube-apiserver).
	RequestTimeout    time.Duration
	MinRequestTimeout int

	// AnonymousAuth: requests without credentials are system:anonymous
	// (and then authorized) rather than refused with 401.
	AnonymousAuth bool
	// TokenAuthFile: static bearer tokens (token,user,uid,"groups").
	TokenAuthFile string
	// ServiceAccountIssuers: the first signs new tokens; all are accepted.
	ServiceAccountIssuers []string
	// ServiceAccountKeyFiles verify tokens; ServiceAccountSigningKeyFile
	// signs them (and verifies, when no key files are given).
	ServiceAccountKeyFiles       []string
	ServiceAccountSigningKeyFile string
	// ServiceAccountMaxTokenExpiration caps requested token lifetimes.
	ServiceAccountMaxTokenExpiration time.Duration
	// APIAudiences a token must be meant for (the issuers when empty).
	APIAudiences []string
	// AuthorizationModes in order: RBAC, Node, AlwaysAllow.
	AuthorizationModes []string
	// MaxRequestsInflight and MaxMutatingRequestsInflight bound concurrent
	// read-only and mutating requests; beyond them clients get 429. Zero
	// means unlimited.
	MaxRequestsInflight         int
	MaxMutatingRequestsInflight int
	// AuditLogPath ("-" for stdout) and AuditPolicyFile configure the
	// audit log.
	AuditLogPath    string
	AuditPolicyFile string
	// EnableAdmissionPlugins and DisableAdmissionPlugins adjust the
	// default admission chain.
	EnableAdmissionPlugins  []string
	DisableAdmissionPlugins []string
	// Profiling serves Go's runtime profiles under /debug/pprof/ to
	// clients authorized for those paths.
	Profiling bool
}

// NewOptions returns the defaults kube-apiserver uses.
func NewOptions() *Options {
	return &Options{
		BindAddress:            "0.0.0.0",
		SecurePort:             6443,
		CertDir:                "/var/run/kubernetes",
		EtcdPrefix:             "/registry",
		EtcdCompactionInterval: 5 * time.Minute,
		EventTTL:               registry.DefaultEventTTL,
		WatchCache:             true,
		ServiceClusterIPRange:  "10.0.0.0/24",
		MaxRequestBodyBytes:    3 * 1024 * 1024,
		RequestTimeout:         60 * time.Second,
		MinRequestTimeout:      1800,
		AnonymousAuth:          true,
		AuthorizationModes:     []string{"Node", "RBAC"},
		// kube-apiserver's defaults.
		MaxRequestsInflight:         400,
		MaxMutatingRequestsInflight: 200,
		Profiling:                   true,
	}
}

// AddFlags registers the options under kube-apiserver's flag names.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "The IP address on which to listen for the --secure-port port.")
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "The port on which to serve HTTPS with authentication and authorization.")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "File containing the default x509 Certificate for HTTPS.")
	fs.StringVar(&o.TLSPrivateKeyFile, "tls-private-key-file", o.TLSPrivateKeyFile, "File containing the default x509 private key matching --tls-cert-file.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "The directory where the TLS certs are located. Ignored if --tls-cert-file and --tls-private-key-file are provided.")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "If set, any request presenting a client certificate signed by one of the authorities in the client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate.")
	fs.StringVar(&o.KubeletClientCertFile, "kubelet-client-certificate", o.KubeletClientCertFile, "Path to a client cert file for TLS to node agents.")
	fs.StringVar(&o.KubeletClientKeyFile, "kubelet-client-key", o.KubeletClientKeyFile, "Path to a client key file for TLS to node agents.")
	fs.StringVar(&o.KubeletCertificateAuthority, "kubelet-certificate-authority", o.KubeletCertificateAuthority, "Path to a cert file for the certificate authority of node agents' serving certificates.")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "List of etcd servers to connect with (scheme://ip:port), comma separated.")
	fs.StringVar(&o.EtcdPrefix, "etcd-prefix", o.EtcdPrefix, "The prefix to prepend to all resource paths in etcd.")
	fs.StringVar(&o.EtcdCAFile, "etcd-cafile", o.EtcdCAFile, "SSL Certificate Authority file used to secure etcd communication.")
	fs.StringVar(&o.EtcdCertFile, "etcd-certfile", o.EtcdCertFile, "SSL certification file used to secure etcd communication.")
	fs.StringVar(&o.EtcdKeyFile, "etcd-keyfile", o.EtcdKeyFile, "SSL key file used to secure etcd communication.")
	fs.DurationVar(&o.EtcdCompactionInterval, "etcd-compaction-interval", o.EtcdCompactionInterval, "The interval of compaction requests. If 0, the compaction request from apiserver is disabled.")
	AddEventTTLFlag(fs, &o.EventTTL)
	fs.BoolVar(&o.WatchCache, "watch-cache", o.WatchCache, "Enable watch caching in the apiserver.")
	fs.StringVar(&o.ServiceClusterIPRange, "service-cluster-ip-range", o.ServiceClusterIPRange, "A CIDR notation IP range from which to assign service cluster IPs.")
	fs.Int64Var(&o.MaxRequestBodyBytes, "max-request-body-bytes", o.MaxRequestBodyBytes, "Limits the size of request bodies.")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "The duration a handler must keep a request open before timing it out.")
	fs.BoolVar(&o.AnonymousAuth, "anonymous-auth", o.AnonymousAuth, "Enables anonymous requests to the secure port of the API server. Requests that are not rejected by another authentication method are treated as anonymous requests.")
	fs.StringVar(&o.TokenAuthFile, "token-auth-file", o.TokenAuthFile, "If set, the file that will be used to secure the secure port of the API server via token authentication.")
	fs.StringArrayVar(&o.ServiceAccountIssuers, "service-account-issuer", o.ServiceAccountIssuers, "Identifier of the service account token issuer. May be given multiple times; the first is used to sign new tokens.")
	fs.StringArrayVar(&o.ServiceAccountKeyFiles, "service-account-key-file", o.ServiceAccountKeyFiles, "File containing PEM-encoded x509 RSA or ECDSA public or private keys, used to verify ServiceAccount tokens. May be given multiple times.")
	fs.StringVar(&o.ServiceAccountSigningKeyFile, "service-account-signing-key-file", o.ServiceAccountSigningKeyFile, "Path to the file that contains the current private key of the service account token issuer.")
	fs.DurationVar(&o.ServiceAccountMaxTokenExpiration, "service-account-max-token-expiration", o.ServiceAccountMaxTokenExpiration, "The maximum validity duration of a token created by the service account token issuer.")
	fs.StringSliceVar(&o.APIAudiences, "api-audiences", o.APIAudiences, "Identifiers of the API. The service account token authenticator will validate that tokens used against the API are bound to at least one of these audiences.")
	fs.StringSliceVar(&o.AuthorizationModes, "authorization-mode", o.AuthorizationModes, "Ordered list of plug-ins to do authorization on secure port. Comma-delimited list of: AlwaysAllow,Node,RBAC.")
	fs.IntVar(&o.MaxRequestsInflight, "max-requests-inflight", o.MaxRequestsInflight, "The maximum number of non-mutating requests in flight at a given time. When the server exceeds this, it rejects requests. Zero for no limit.")
	fs.IntVar(&o.MaxMutatingRequestsInflight, "max-mutating-requests-inflight", o.MaxMutatingRequestsInflight, "The maximum number of mutating requests in flight at a given time. When the server exceeds this, it rejects requests. Zero for no limit.")
	fs.StringVar(&o.AuditLogPath, "audit-log-path", o.AuditLogPath, "If set, all requests coming to the apiserver will be logged to this file. '-' means standard out.")
	fs.StringVar(&o.AuditPolicyFile, "audit-policy-file", o.AuditPolicyFile, "Path to the file that defines the audit policy configuration.")
	fs.StringSliceVar(&o.EnableAdmissionPlugins, "enable-admission-plugins", o.EnableAdmissionPlugins, "admission plugins that should be enabled in addition to default enabled ones.")
	fs.StringSliceVar(&o.DisableAdmissionPlugins, "disable-admission-plugins", o.DisableAdmissionPlugins, "admission plugins that should be disabled although they are in the default enabled plugins list.")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "Enable profiling via web interface host:port/debug/pprof/.")
	fs.IntVar(&o.MinRequestTimeout, "min-request-timeout", o.MinRequestTimeout, "An optional field indicating the minimum number of seconds a handler must keep a request open before timing it out (watch).")
}

// AddEventTTLFlag registers kube-apiserver's --event-ttl, for commands
// that start an API server with a few of its flags (tower up).
func AddEventTTLFlag(fs *pflag.FlagSet, ttl *time.Duration) {
	fs.DurationVar(ttl, "event-ttl", *ttl, "Amount of time to keep events after their last write (0 keeps them until deleted).")
}

// KubernetesServiceIP is the cluster IP of the default/kubernetes
// Service, the first address of --service-cluster-ip-range: pods reach the
// API server there, so serving certificates must name it.
func (o *Options) KubernetesServiceIP() (netip.Addr, error) {
	cidr, err := netip.ParsePrefix(o.ServiceClusterIPRange)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--service-cluster-ip-range %q: %w", o.ServiceClusterIPRange, err)
	}
	return (&admission.ServiceAllocator{Range: cidr.Masked()}).KubernetesServiceIP(), nil
}
