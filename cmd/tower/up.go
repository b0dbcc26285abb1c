package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/apiserver/server"
)

const (
	adminUser    = "admin"
	adminGroup   = "system:masters"
	clusterName  = "tower"
	readyTimeout = 2 * time.Minute
)

// upOptions are the flags of `tower up`.
type upOptions struct {
	DataDir     string
	EtcdServers []string
	SecurePort  int
	BindAddress string
	// Node configures the local node agent, run when this machine can.
	Node *nodeOptions
	// Controllers is the controller manager's enable list.
	Controllers []string
	// SimulatedNodes starts this many simulated nodes in process.
	SimulatedNodes int
}

func newUpCommand() *cobra.Command {
	o := &upOptions{
		DataDir:     defaultDataDir(),
		SecurePort:  6443,
		BindAddress: "127.0.0.1",
		Node:        newNodeOptions(""),
		Controllers: []string{"*"},
	}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a cluster on this machine and write an admin kubeconfig",
		Long: `Run a Tower cluster on this machine: a certificate authority and
certificates under <data-dir>/pki, an embedded etcd under <data-dir>/etcd
(unless --etcd-servers names an external one) and the API server. An admin
kubeconfig is written to <data-dir>/admin.kubeconfig.

Stop with Ctrl-C; run again with the same --data-dir to continue where it
stopped (objects and certificates are kept).`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx = logr.NewContext(ctx, klog.Background())
			return runUp(ctx, o, programName(), cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "Directory for the cluster's state: PKI, etcd data and the admin kubeconfig.")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "External etcd client URLs, comma separated. Empty runs an embedded etcd in <data-dir>/etcd.")
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "The port on which to serve HTTPS.")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "The IP address on which to listen for the --secure-port port.")
	o.Node.addFlags(fs, true)
	fs.StringSliceVar(&o.Controllers, "controllers", o.Controllers, "Controllers the controller manager runs: '*' for all on by default, 'foo' to add foo, '-foo' to disable foo.")
	fs.IntVar(&o.SimulatedNodes, "simulated-nodes", o.SimulatedNodes, "Start this many simulated nodes (no containers) in the same process.")
	return cmd
}

// runUp runs the cluster until ctx ends; program is how the greeting tells
// the user to invoke tower.
func runUp(ctx context.Context, o *upOptions, program string, out io.Writer) error {
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("resolving --data-dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	pkiDir := filepath.Join(dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(pkiDir)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	servingCert, servingKey, err := ca.EnsureServingCert(pkiDir, "apiserver", servingHosts(o.BindAddress))
	if err != nil {
		return fmt.Errorf("API server certificate: %w", err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(pkiDir, "admin", adminUser, []string{adminGroup})
	if err != nil {
		return fmt.Errorf("admin client certificate: %w", err)
	}

	serverURL := "https://" + net.JoinHostPort(dialHost(o.BindAddress), fmt.Sprint(o.SecurePort))
	kubeconfig := filepath.Join(dataDir, "admin.kubeconfig")
	if err := writeAdminKubeconfig(kubeconfig, serverURL, ca, adminCert, adminKey); err != nil {
		return err
	}

	opts := server.NewOptions()
	opts.BindAddress = o.BindAddress
	opts.SecurePort = o.SecurePort
	opts.CertDir = pkiDir
	opts.TLSCertFile = servingCert
	opts.TLSPrivateKeyFile = servingKey
	opts.ClientCAFile = ca.CertFile
	opts.EtcdServers = o.EtcdServers
	// Node agents accept client certificates from the cluster CA; this one
	// is the API server's, for pods/log, under kubeadm's name.
	if opts.KubeletClientCertFile, opts.KubeletClientKeyFile, err = ca.EnsureClientCert(pkiDir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{adminGroup}); err != nil {
		return fmt.Errorf("kubelet client certificate: %w", err)
	}
	// Service-account tokens (TokenRequest, projected tokens) are signed
	// with a key kept in the PKI directory, under kubeadm's issuer name.
	if opts.ServiceAccountSigningKeyFile, err = pki.EnsureServiceAccountKey(pkiDir); err != nil {
		return fmt.Errorf("service account signing key: %w", err)
	}
	opts.ServiceAccountIssuers = []string{"https://kubernetes.default.svc.cluster.local"}

	// The local node agent stops with the control plane's context; its
	// containerd is stopped before up returns.
	var localNode sync.WaitGroup
	defer localNode.Wait()
	onReady := func(ctx context.Context) error {
		if err := waitReady(ctx, kubeconfig); err != nil {
			return err
		}
		if err := startUpControlPlane(ctx, o, kubeconfig, ca.CertFile); err != nil {
			return err
		}
		fmt.Fprintf(out, "Tower is up. Use:\n  %s kubectl --kubeconfig %s get namespaces\nor:\n  export KUBECONFIG=%s\n", program, kubeconfig, kubeconfig)
		return startLocalNode(ctx, o.Node, dataDir, kubeconfig, out, &localNode)
	}
	return runAPIServer(ctx, opts, filepath.Join(dataDir, "etcd"), onReady)
}

func writeAdminKubeconfig(path, serverURL string, ca *pki.CA, certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("reading admin certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("reading admin key: %w", err)
	}
	if err := pki.WriteKubeconfig(path, serverURL, ca.CertPEM, certPEM, keyPEM, adminUser, clusterName); err != nil {
		return fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	return nil
}

// programName is how the user invoked tower, when given as a path (as
// `make run` does with bin/tower), so the printed commands work as typed.
func programName() string {
	if strings.Contains(os.Args[0], "/") {
		return os.Args[0]
	}
	return "tower"
}

// servingHosts are the names, beyond pki's defaults, the serving
// certificate must cover: the bind address when it is a specific one, and
// this machine's hostname for clients on other machines.
func servingHosts(bindAddress string) []string {
	var hosts []string
	if ip := net.ParseIP(bindAddress); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, bindAddress)
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	return hosts
}

// dialHost is the address a local client uses to reach a server bound to
// bindAddress.
func dialHost(bindAddress string) string {
	ip := net.ParseIP(bindAddress)
	switch {
	case ip == nil || (ip.IsUnspecified() && ip.To4() != nil):
		return "127.0.0.1"
	case ip.IsUnspecified():
		return "::1"
	default:
		return bindAddress
	}
}

// waitReady polls /readyz with the admin credentials until the server
// reports ready, ctx ends or readyTimeout passes.
func waitReady(ctx context.Context, kubeconfig string) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	client, err := rest.HTTPClientFor(config)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	var lastErr error
	for {
		lastErr = probeReady(ctx, client, config.Host+"/readyz")
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API server not ready: %w (last error: %w)", ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

func probeReady(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("/readyz: %s: %s", resp.Status, body)
	}
	return nil
}
