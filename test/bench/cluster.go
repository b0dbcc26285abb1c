package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/test/framework"
)

// readyTimeout bounds a server's start-up; kube-apiserver runs its
// post-start hooks before /readyz turns green, which takes seconds.
const readyTimeout = 2 * time.Minute

// stopGrace is how long a server gets to exit after SIGTERM.
const stopGrace = 15 * time.Second

// credentials are shared by every server the benchmark starts.
type credentials struct {
	caFile                  string
	servingCert, servingKey string
	adminCert, adminKey     string
	serviceAccountKey       string
}

func createCredentials(dir string) (credentials, error) {
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return credentials{}, fmt.Errorf("creating CA: %w", err)
	}
	servingCert, servingKey, err := ca.EnsureServingCert(dir, "apiserver", []string{"127.0.0.1", "localhost"})
	if err != nil {
		return credentials{}, fmt.Errorf("creating serving certificate: %w", err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(dir, "admin", framework.AdminUser, []string{framework.AdminGroup})
	if err != nil {
		return credentials{}, fmt.Errorf("creating admin certificate: %w", err)
	}
	saKey, err := writeServiceAccountKey(filepath.Join(dir, "sa.key"))
	if err != nil {
		return credentials{}, err
	}
	return credentials{
		caFile:      ca.CertFile,
		servingCert: servingCert, servingKey: servingKey,
		adminCert: adminCert, adminKey: adminKey,
		serviceAccountKey: saKey,
	}, nil
}

// writeServiceAccountKey creates the token signing key kube-apiserver
// insists on, even though the benchmark never uses tokens.
func writeServiceAccountKey(path string) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generating service account key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("writing service account key: %w", err)
	}
	return path, nil
}

// flavor says how to run one control plane: which binaries. Both get the
// same flags: Tower accepts kube-apiserver's and etcd's.
type flavor struct {
	name string
	// etcdCommand and apiserverCommand are argv prefixes; the flags are
	// appended.
	etcdCommand      []string
	apiserverCommand []string
}

func towerFlavor(towerBin string) flavor {
	return flavor{
		name:             "tower",
		etcdCommand:      []string{towerBin, "etcd"},
		apiserverCommand: []string{towerBin, "apiserver"},
	}
}

func referenceFlavor(refBin string) flavor {
	return flavor{
		name:             "kube-apiserver",
		etcdCommand:      []string{filepath.Join(refBin, "etcd")},
		apiserverCommand: []string{filepath.Join(refBin, "kube-apiserver")},
	}
}

// cluster is a running etcd and API server, each its own process.
type cluster struct {
	flavor    flavor
	etcd      *framework.Process
	apiserver *framework.Process
	config    *rest.Config
	clientset *kubernetes.Clientset
	// startup is the time from launching the API server to /readyz.
	startup time.Duration
}

func startCluster(ctx context.Context, f flavor, creds credentials, dir string) (_ *cluster, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c := &cluster{flavor: f}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop(context.WithoutCancel(ctx)))
		}
	}()

	etcdArgs := append(slices.Clone(f.etcdCommand[1:]),
		"--name=bench",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=bench="+peerURL,
		// The comparison is between API servers: keep the disk out of it.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	c.etcd, err = framework.StartProcess(f.name+" etcd", filepath.Join(dir, "etcd.log"), f.etcdCommand[0], etcdArgs...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, http.DefaultClient, clientURL+"/health", c.etcd); err != nil {
		return nil, fmt.Errorf("%s etcd not healthy: %w\n%s", f.name, err, c.etcd.LogTail(4096))
	}

	apiserverArgs := append(slices.Clone(f.apiserverCommand[1:]),
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+creds.servingCert,
		"--tls-private-key-file="+creds.servingKey,
		"--client-ca-file="+creds.caFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		// kube-apiserver refuses to start without token signing keys,
		// although the benchmark never uses tokens.
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+creds.serviceAccountKey,
		"--service-account-signing-key-file="+creds.serviceAccountKey,
	)
	launched := time.Now()
	c.apiserver, err = framework.StartProcess(f.name, filepath.Join(dir, "apiserver.log"), f.apiserverCommand[0], apiserverArgs...)
	if err != nil {
		return nil, err
	}
	c.config = &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(ports[2]),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   creds.caFile,
			CertFile: creds.adminCert,
			KeyFile:  creds.adminKey,
		},
		QPS: -1,
		// Like for like: kube-apiserver gzips large responses when asked,
		// Tower does not (yet); on loopback compression only costs CPU.
		DisableCompression: true,
	}
	c.clientset, err = kubernetes.NewForConfig(c.config)
	if err != nil {
		return nil, fmt.Errorf("building clientset: %w", err)
	}
	transport, err := rest.TransportFor(c.config)
	if err != nil {
		return nil, fmt.Errorf("building transport: %w", err)
	}
	if err := waitHTTP(ctx, &http.Client{Transport: transport}, c.config.Host+"/readyz", c.apiserver); err != nil {
		return nil, fmt.Errorf("%s not ready: %w\n%s", f.name, err, c.apiserver.LogTail(8192))
	}
	c.startup = time.Since(launched)
	return c, nil
}

// stop ends the API server, then etcd.
func (c *cluster) stop(ctx context.Context) error {
	var errs []error
	for _, p := range []*framework.Process{c.apiserver, c.etcd} {
		if p != nil {
			errs = append(errs, p.Stop(ctx, stopGrace))
		}
	}
	return errors.Join(errs...)
}

// waitHTTP polls url until it answers 200, the process exits or readyTimeout passes.
func waitHTTP(ctx context.Context, client *http.Client, url string, p *framework.Process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited during start-up: %v", p.Name, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("building request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("GET %s: %s", url, resp.Status)
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
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
