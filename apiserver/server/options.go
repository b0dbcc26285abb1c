// Package server assembles Tower's API server: TLS, authentication, the
// REST handlers for every registered resource, discovery, health and
// metrics, over an etcd-backed store with a watch cache.
package server

import (
	"net"
	"time"

	"github.com/spf13/pflag"
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

	// EtcdServers: etcd client URLs.
	EtcdServers  []string
	EtcdPrefix   string
	EtcdCAFile   string
	EtcdCertFile string
	EtcdKeyFile  string
	// EtcdCompactionInterval: how often old revisions are compacted; 0
	// disables compaction.
	EtcdCompactionInterval time.Duration

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
}

// NewOptions returns the defaults kube-apiserver uses.
func NewOptions() *Options {
	return &Options{
		BindAddress:            "0.0.0.0",
		SecurePort:             6443,
		CertDir:                "/var/run/kubernetes",
		EtcdPrefix:             "/registry",
		EtcdCompactionInterval: 5 * time.Minute,
		WatchCache:             true,
		ServiceClusterIPRange:  "10.0.0.0/24",
		MaxRequestBodyBytes:    3 * 1024 * 1024,
		RequestTimeout:         60 * time.Second,
		MinRequestTimeout:      1800,
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
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "List of etcd servers to connect with (scheme://ip:port), comma separated.")
	fs.StringVar(&o.EtcdPrefix, "etcd-prefix", o.EtcdPrefix, "The prefix to prepend to all resource paths in etcd.")
	fs.StringVar(&o.EtcdCAFile, "etcd-cafile", o.EtcdCAFile, "SSL Certificate Authority file used to secure etcd communication.")
	fs.StringVar(&o.EtcdCertFile, "etcd-certfile", o.EtcdCertFile, "SSL certification file used to secure etcd communication.")
	fs.StringVar(&o.EtcdKeyFile, "etcd-keyfile", o.EtcdKeyFile, "SSL key file used to secure etcd communication.")
	fs.DurationVar(&o.EtcdCompactionInterval, "etcd-compaction-interval", o.EtcdCompactionInterval, "The interval of compaction requests. If 0, the compaction request from apiserver is disabled.")
	fs.BoolVar(&o.WatchCache, "watch-cache", o.WatchCache, "Enable watch caching in the apiserver.")
	fs.StringVar(&o.ServiceClusterIPRange, "service-cluster-ip-range", o.ServiceClusterIPRange, "A CIDR notation IP range from which to assign service cluster IPs.")
	fs.Int64Var(&o.MaxRequestBodyBytes, "max-request-body-bytes", o.MaxRequestBodyBytes, "Limits the size of request bodies.")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "The duration a handler must keep a request open before timing it out.")
	fs.IntVar(&o.MinRequestTimeout, "min-request-timeout", o.MinRequestTimeout, "An optional field indicating the minimum number of seconds a handler must keep a request open before timing it out (watch).")
}
