package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/apiserver/storage/embedded"
)

// AdminUser and AdminGroup identify the client certificate the framework
// hands out: a cluster admin, as kubeadm's admin.conf.
const (
	AdminUser  = "admin"
	AdminGroup = "system:masters"
)

// readyTimeout bounds how long a fresh control plane may take to report
// /readyz; a cold embedded etcd is ready in about a second.
const readyTimeout = 60 * time.Second

// stopTimeout bounds how long server.Run may take to return after its
// context is cancelled before the test is failed for a hung shutdown.
const stopTimeout = 30 * time.Second

// ControlPlane is a running API server over its own embedded etcd.
type ControlPlane struct {
	// Config authenticates as AdminUser in AdminGroup. Client-side rate
	// limiting is off: tests drive thousands of requests.
	Config *rest.Config
	// KubeconfigPath holds the same credentials for kubectl and friends.
	KubeconfigPath string
	// EtcdEndpoints are the client URLs of the embedded etcd.
	EtcdEndpoints []string
	// EtcdClient reads etcd directly, to check what the server stored.
	EtcdClient *clientv3.Client
	// Dir holds the etcd data, the PKI and the kubeconfig.
	Dir string
	// APIServerProcess and EtcdProcess are set when the control plane runs
	// as child processes (StartProcesses), so their cost can be measured.
	APIServerProcess *Process
	EtcdProcess      *Process
	// APIServerStartup is how long the API server took from launch to /readyz.
	APIServerStartup time.Duration

	apiserverArgv []string
	logger        logr.Logger
	serverOptions *server.Options
	address       string
	clientset     *kubernetes.Clientset
	cancelServer  context.CancelFunc
	runDone       chan error
	etcd          *embedded.Etcd
	removeDir     bool
	stopped       bool
}

// Option adjusts how a control plane is started.
type Option func(*settings)

type settings struct {
	compactionInterval time.Duration
	logger             logr.Logger
	serverOptions      []func(*server.Options)
}

// WithCompactionInterval sets how often the server compacts etcd. The
// default is 0 (never) so that tests decide when history disappears, with
// ControlPlane.CompactNow.
func WithCompactionInterval(d time.Duration) Option {
	return func(s *settings) { s.compactionInterval = d }
}

// WithLogger routes the server's logs to logger (default: discarded).
func WithLogger(logger logr.Logger) Option {
	return func(s *settings) { s.logger = logger }
}

// WithServerOptions lets a test change any server option after the
// framework has filled in listener, certificates and etcd.
func WithServerOptions(mutate func(*server.Options)) Option {
	return func(s *settings) { s.serverOptions = append(s.serverOptions, mutate) }
}

// Start brings up a control plane in t.TempDir() and stops it when the test
// ends. It fails the test if the server does not become ready.
func Start(t testing.TB, opts ...Option) *ControlPlane {
	t.Helper()
	cp, err := start(context.Background(), t.TempDir(), false, opts...)
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return cp
}

// New brings up a control plane outside any single test, for a TestMain
// that shares one server across a test binary. The caller must call Stop.
// ctx only bounds start-up; the control plane runs until Stop.
func New(ctx context.Context, opts ...Option) (*ControlPlane, error) {
	dir, err := os.MkdirTemp("", "tower-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("creating control plane directory: %w", err)
	}
	cp, err := start(ctx, dir, true, opts...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return cp, nil
}

func start(ctx context.Context, dir string, removeDir bool, opts ...Option) (*ControlPlane, error) {
	s := settings{logger: logr.Discard()}
	for _, opt := range opts {
		opt(&s)
	}
	cp := &ControlPlane{Dir: dir, removeDir: removeDir, logger: s.logger, address: "127.0.0.1:0"}
	boot := cp.boot
	if os.Getenv(AgainstEnv) == AgainstReference {
		bins, err := ReferenceBinaries(DefaultReferenceDir())
		if err != nil {
			return nil, err
		}
		boot = func(ctx context.Context, s settings) error { return cp.bootProcesses(ctx, bins, s) }
	}
	if err := boot(ctx, s); err != nil {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return cp, nil
}

// boot starts etcd and the server and waits for readiness.
func (cp *ControlPlane) boot(ctx context.Context, s settings) error {
	var err error
	cp.etcd, err = embedded.Start(ctx, embedded.Config{
		DataDir:       filepath.Join(cp.Dir, "etcd"),
		UnsafeNoFsync: true,
	})
	if err != nil {
		return fmt.Errorf("starting embedded etcd: %w", err)
	}
	cp.EtcdEndpoints = cp.etcd.Endpoints()
	if err := cp.connectEtcd(); err != nil {
		return err
	}

	creds, err := createCredentials(filepath.Join(cp.Dir, "pki"))
	if err != nil {
		return err
	}

	o := server.NewOptions()
	o.BindAddress = "127.0.0.1"
	o.CertDir = filepath.Join(cp.Dir, "pki")
	o.TLSCertFile = creds.servingCert
	o.TLSPrivateKeyFile = creds.servingKey
	o.ClientCAFile = creds.caCert
	o.EtcdServers = cp.EtcdEndpoints
	o.EtcdCompactionInterval = s.compactionInterval
	for _, mutate := range s.serverOptions {
		mutate(o)
	}
	cp.serverOptions = o

	listener, err := net.Listen("tcp", cp.address)
	if err != nil {
		return fmt.Errorf("listening on loopback: %w", err)
	}
	cp.address = listener.Addr().String()
	if err := cp.setUpClients(creds); err != nil {
		listener.Close()
		return err
	}
	return cp.runServer(ctx, listener)
}

// setUpClients builds the admin rest.Config, clientset and kubeconfig for
// the server at cp.address.
func (cp *ControlPlane) setUpClients(creds credentials) error {
	host := "https://" + cp.address
	cp.Config = &rest.Config{
		Host: host,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   creds.caCert,
			CertFile: creds.adminCert,
			KeyFile:  creds.adminKey,
		},
		QPS: -1,
	}
	var err error
	cp.clientset, err = kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return fmt.Errorf("building admin clientset: %w", err)
	}
	cp.KubeconfigPath = filepath.Join(cp.Dir, "admin.kubeconfig")
	return writeAdminKubeconfig(cp.KubeconfigPath, host, creds)
}

// connectEtcd opens cp.EtcdClient on cp.EtcdEndpoints.
func (cp *ControlPlane) connectEtcd() error {
	var err error
	cp.EtcdClient, err = clientv3.New(clientv3.Config{
		Endpoints:   cp.EtcdEndpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("connecting to etcd at %v: %w", cp.EtcdEndpoints, err)
	}
	return nil
}

// runServer starts server.Run on listener and waits until it is ready.
func (cp *ControlPlane) runServer(ctx context.Context, listener net.Listener) error {
	o := *cp.serverOptions
	o.Listener = listener
	runCtx, cancel := context.WithCancel(logr.NewContext(context.Background(), cp.logger))
	cp.cancelServer = cancel
	cp.runDone = make(chan error, 1)
	launched := time.Now()
	go func() { cp.runDone <- server.Run(runCtx, &o) }()
	if err := cp.waitReady(ctx, cp.serverExited); err != nil {
		return err
	}
	cp.APIServerStartup = time.Since(launched)
	return nil
}

// serverExited reports whether the in-process server has returned.
func (cp *ControlPlane) serverExited() error {
	select {
	case err := <-cp.runDone:
		cp.runDone <- err
		return fmt.Errorf("API server exited: %w", err)
	default:
		return nil
	}
}

// RestartAPIServer stops the API server and starts a fresh one on the same
// address and etcd, as after a crash or an upgrade: caches start empty,
// clients reconnect.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	if cp.APIServerProcess != nil {
		return cp.restartAPIServerProcess(ctx)
	}
	if err := cp.stopServer(); err != nil {
		return err
	}
	listener, err := net.Listen("tcp", cp.address)
	if err != nil {
		return fmt.Errorf("listening again on %s: %w", cp.address, err)
	}
	return cp.runServer(ctx, listener)
}

// waitReady polls /readyz until it answers 200, exited reports that the
// server is gone, or the deadline passes.
func (cp *ControlPlane) waitReady(ctx context.Context, exited func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	var lastErr error
	for {
		var status int
		result := cp.clientset.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		if result.Error() == nil && status == http.StatusOK {
			return nil
		}
		lastErr = result.Error()
		if err := exited(); err != nil {
			return fmt.Errorf("API server gone before becoming ready: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API server not ready after %s (last /readyz error: %v): %w", readyTimeout, lastErr, ctx.Err())
		case <-ticker.C:
		}
	}
}

// stopServer cancels server.Run and waits for it to return.
func (cp *ControlPlane) stopServer() error {
	if cp.cancelServer == nil {
		return nil
	}
	cp.cancelServer()
	cp.cancelServer = nil
	select {
	case err := <-cp.runDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("API server returned: %w", err)
		}
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("API server still running %s after shutdown was requested", stopTimeout)
	}
}

// Stop shuts the server down, waits for it to return, and closes etcd.
// It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	if cp.stopped {
		return nil
	}
	cp.stopped = true
	var errs []error
	if err := cp.stopServer(); err != nil {
		errs = append(errs, err)
	}
	if cp.APIServerProcess != nil {
		if err := cp.APIServerProcess.Stop(context.Background(), processStopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if cp.EtcdClient != nil {
		if err := cp.EtcdClient.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("closing etcd client: %w", err))
		}
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
	if cp.EtcdProcess != nil {
		if err := cp.EtcdProcess.Stop(context.Background(), processStopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if cp.removeDir {
		if err := os.RemoveAll(cp.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing control plane directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Clientset returns a client-go clientset authenticated as the admin.
func (cp *ControlPlane) Clientset() *kubernetes.Clientset {
	return cp.clientset
}

// CompactNow compacts etcd at its current revision, as the server's
// periodic compactor would, and returns that revision. Watches and lists
// at older resource versions must then fail with 410 Gone.
func (cp *ControlPlane) CompactNow(ctx context.Context) (int64, error) {
	resp, err := cp.EtcdClient.Get(ctx, "compact-revision-probe")
	if err != nil {
		return 0, fmt.Errorf("reading current etcd revision: %w", err)
	}
	rev := resp.Header.Revision
	if _, err := cp.EtcdClient.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, fmt.Errorf("compacting etcd at revision %d: %w", rev, err)
	}
	return rev, nil
}
