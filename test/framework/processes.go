package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// AgainstEnv selects what the framework's control planes run. Set to
// AgainstReference, every Start and New runs upstream kube-apiserver and
// etcd from the reference build as child processes instead of Tower, so
// that a test can be checked against the behaviour it claims to pin.
const (
	AgainstEnv       = "TOWER_TEST_AGAINST"
	AgainstReference = "reference"
)

// processStopGrace is how long a server process gets to exit after SIGTERM.
const processStopGrace = 15 * time.Second

// Binaries are the argv prefixes of a control plane run as processes; the
// framework appends the same kube-apiserver and etcd flags to either.
type Binaries struct {
	Name      string
	Etcd      []string
	APIServer []string
}

// TowerBinaries runs `tower etcd` and `tower apiserver`.
func TowerBinaries(towerBin string) Binaries {
	return Binaries{
		Name:      "tower",
		Etcd:      []string{towerBin, "etcd"},
		APIServer: []string{towerBin, "apiserver"},
	}
}

// ReferenceBinaries runs upstream etcd and kube-apiserver from refDir/bin,
// as built by /work/shared/reference/build.sh.
func ReferenceBinaries(refDir string) (Binaries, error) {
	bins := Binaries{
		Name:      "kube-apiserver",
		Etcd:      []string{filepath.Join(refDir, "bin", "etcd")},
		APIServer: []string{filepath.Join(refDir, "bin", "kube-apiserver")},
	}
	for _, bin := range []string{bins.Etcd[0], bins.APIServer[0]} {
		info, err := os.Stat(bin)
		if err != nil {
			return Binaries{}, fmt.Errorf("reference build: %w", err)
		}
		if info.Mode()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("reference build: %s is not executable", bin)
		}
	}
	return bins, nil
}

// DefaultReferenceDir is $REF, or ~/.cache/tower-reference.
func DefaultReferenceDir() string {
	if ref := os.Getenv("REF"); ref != "" {
		return ref
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tower-reference")
	}
	return filepath.Join(home, ".cache", "tower-reference")
}

// StartProcesses runs etcd and an API server from bins as child processes
// with their data, certificates and logs in dir (which the caller owns).
// The caller must call Stop.
func StartProcesses(ctx context.Context, dir string, bins Binaries, opts ...Option) (*ControlPlane, error) {
	s := settings{}
	for _, opt := range opts {
		opt(&s)
	}
	cp := &ControlPlane{Dir: dir}
	if err := cp.bootProcesses(ctx, bins, s); err != nil {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) bootProcesses(ctx context.Context, bins Binaries, s settings) error {
	if len(s.serverOptions) > 0 {
		return errors.New("WithServerOptions applies to an in-process server only")
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cp.address = "127.0.0.1:" + strconv.Itoa(ports[2])
	cp.EtcdEndpoints = []string{clientURL}

	etcdArgs := append(slices.Clone(bins.Etcd[1:]),
		"--name=tower-test",
		"--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=tower-test="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	cp.EtcdProcess, err = StartProcess(bins.Name+" etcd", filepath.Join(cp.Dir, "etcd.log"), bins.Etcd[0], etcdArgs...)
	if err != nil {
		return err
	}
	if err := waitEtcdHealthy(ctx, clientURL, cp.EtcdProcess); err != nil {
		return err
	}
	if err := cp.connectEtcd(); err != nil {
		return err
	}

	pkiDir := filepath.Join(cp.Dir, "pki")
	creds, err := createCredentials(pkiDir)
	if err != nil {
		return err
	}
	serviceAccountKey, err := writeServiceAccountKey(filepath.Join(pkiDir, "sa.key"))
	if err != nil {
		return err
	}
	if err := cp.setUpClients(creds); err != nil {
		return err
	}
	cp.apiserverArgv = append(slices.Clone(bins.APIServer),
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(cp.Dir, "certs"),
		"--tls-cert-file="+creds.servingCert,
		"--tls-private-key-file="+creds.servingKey,
		"--client-ca-file="+creds.caCert,
		"--etcd-compaction-interval="+s.compactionInterval.String(),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		// kube-apiserver refuses to start without token signing keys.
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+serviceAccountKey,
		"--service-account-signing-key-file="+serviceAccountKey,
	)
	return cp.launchAPIServerProcess(ctx)
}

func (cp *ControlPlane) launchAPIServerProcess(ctx context.Context) error {
	launched := time.Now()
	p, err := StartProcess(filepath.Base(cp.apiserverArgv[0]), filepath.Join(cp.Dir, "apiserver.log"), cp.apiserverArgv[0], cp.apiserverArgv[1:]...)
	if err != nil {
		return err
	}
	cp.APIServerProcess = p
	exited := func() error {
		if gone, err := p.Exited(); gone {
			return fmt.Errorf("%s exited (%v); log ends:\n%s", p.Name, err, p.LogTail(8192))
		}
		return nil
	}
	if err := cp.waitReady(ctx, exited); err != nil {
		return err
	}
	cp.APIServerStartup = time.Since(launched)
	return nil
}

func (cp *ControlPlane) restartAPIServerProcess(ctx context.Context) error {
	if err := cp.APIServerProcess.Stop(ctx, processStopGrace); err != nil {
		return err
	}
	return cp.launchAPIServerProcess(ctx)
}

// waitEtcdHealthy polls etcd's /health until it answers 200.
func waitEtcdHealthy(ctx context.Context, clientURL string, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		if gone, err := p.Exited(); gone {
			return fmt.Errorf("%s exited during start-up (%v); log ends:\n%s", p.Name, err, p.LogTail(4096))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return fmt.Errorf("building etcd health request: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("etcd /health: %s", resp.Status)
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy (last: %v): %w", p.Name, lastErr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
