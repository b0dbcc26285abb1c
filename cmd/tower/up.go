package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/controllers/manager"
	"tower.dev/tower/controllers/nodeipam"
)

const (
	adminUser    = "admin"
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
	// EventTTL is the API server's --event-ttl.
	EventTTL time.Duration
}

func newUpCommand() *cobra.Command {
	o := &upOptions{
		DataDir:     defaultDataDir(),
		SecurePort:  6443,
		BindAddress: "127.0.0.1",
		Node:        newNodeOptions(""),
		Controllers: []string{"*"},
		EventTTL:    registry.DefaultEventTTL,
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
	server.AddEventTTLFlag(fs, &o.EventTTL)
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
	// The local node takes its pod subnet from node IPAM (spec.podCIDR);
	// with IPAM off it needs one of its own.
	if o.Node != nil && o.Node.PodCIDR == "" && !manager.Enabled(o.Controllers, nodeipam.Name, true) {
		o.Node.PodCIDR = standalonePodCIDR
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	pkiDir := filepath.Join(dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(pkiDir)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	opts := server.NewOptions()
	serviceIP, err := opts.KubernetesServiceIP()
	if err != nil {
		return err
	}
	servingCert, servingKey, err := ca.EnsureServingCert(pkiDir, "apiserver", servingHosts(o.BindAddress, serviceIP))
	if err != nil {
		return fmt.Errorf("API server certificate: %w", err)
	}
	serverURL := "https://" + net.JoinHostPort(dialHost(o.BindAddress), fmt.Sprint(o.SecurePort))
	kubeconfigs, err := writeComponentKubeconfigs(ca, serverURL, dataDir, o.Node)
	if err != nil {
		return err
	}
	kubeconfig := kubeconfigs.admin

	opts.BindAddress = o.BindAddress
	opts.SecurePort = o.SecurePort
	opts.CertDir = pkiDir
	opts.TLSCertFile = servingCert
	opts.TLSPrivateKeyFile = servingKey
	opts.ClientCAFile = ca.CertFile
	opts.EtcdServers = o.EtcdServers
	opts.EventTTL = o.EventTTL
	// Node agents accept client certificates from the cluster CA; this one
	// is the API server's, for pods/log, under kubeadm's name.
	if opts.KubeletClientCertFile, opts.KubeletClientKeyFile, err = ca.EnsureClientCert(pkiDir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{authentication.GroupMasters}); err != nil {
		return fmt.Errorf("kubelet client certificate: %w", err)
	}
	// Service-account tokens (TokenRequest, projected tokens) are signed
	// with a key kept in the PKI directory, under kubeadm's issuer name.
	if opts.ServiceAccountSigningKeyFile, err = pki.EnsureServiceAccountKey(pkiDir); err != nil {
		return fmt.Errorf("service account signing key: %w", err)
	}
	opts.ServiceAccountIssuers = []string{"https://kubernetes.default.svc.cluster.local"}

	// The components (controller manager, scheduler, nodes) stop first and
	// the API server only once they have: stopping the server under them
	// makes them log failed requests and lost leader elections. The
	// server's own context therefore ignores ctx and ends when they are
	// gone (or when up returns).
	componentsCtx, stopComponents := context.WithCancel(ctx)
	defer stopComponents()
	serverCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	var components sync.WaitGroup
	go func() {
		<-componentsCtx.Done()
		components.Wait()
		stopServer()
	}()
	onReady := func(readyCtx context.Context) error {
		if err := waitReady(readyCtx, kubeconfig); err != nil {
			return err
		}
		if err := startUpControlPlane(componentsCtx, o, kubeconfigs, simulatedNodeConfig(ca, serverURL, pkiDir), ca.CertFile, &components); err != nil {
			return err
		}
		fmt.Fprintf(out, "Tower is up. Use:\n  %s kubectl --kubeconfig %s get namespaces\nor:\n  export KUBECONFIG=%s\n", program, kubeconfig, kubeconfig)
		return startLocalNode(componentsCtx, o.Node, dataDir, kubeconfigs.node, out, &components)
	}
	err = runAPIServer(serverCtx, opts, filepath.Join(dataDir, "etcd"), onReady)
	// The server failed, or stopped after the components: either way
	// nothing may outlive up (the local node stops its containerd).
	stopComponents()
	components.Wait()
	return err
}

// upKubeconfigs are the kubeconfigs tower up writes into its data
// directory, one identity per component as kubeadm's: the admin
// (system:masters), the controller manager and the scheduler under their
// bootstrap-policy users, and the local node as system:node:<name> in
// system:nodes, which the Node authorizer and NodeRestriction confine to
// that node's objects.
type upKubeconfigs struct {
	admin, controllerManager, scheduler, node string
}

func writeComponentKubeconfigs(ca *pki.CA, serverURL, dataDir string, node *nodeOptions) (upKubeconfigs, error) {
	pkiDir := filepath.Join(dataDir, "pki")
	k := upKubeconfigs{
		admin:             filepath.Join(dataDir, "admin.kubeconfig"),
		controllerManager: filepath.Join(dataDir, "controller-manager.kubeconfig"),
		scheduler:         filepath.Join(dataDir, "scheduler.kubeconfig"),
	}
	type identity struct {
		path, certName, user string
		groups               []string
	}
	identities := []identity{
		{k.admin, "admin", adminUser, []string{authentication.GroupMasters}},
		{k.controllerManager, "controller-manager", authorization.UserKubeControllerManager, nil},
		{k.scheduler, "scheduler", authorization.UserKubeScheduler, nil},
	}
	if node != nil {
		k.node = filepath.Join(dataDir, "kubelet.kubeconfig")
		identities = append(identities, identity{k.node, "kubelet", authentication.NodeUserPrefix + node.NodeName, []string{authentication.GroupNodes}})
	}
	for _, id := range identities {
		if err := ca.WriteClientKubeconfig(id.path, serverURL, pkiDir, id.certName, id.user, id.groups); err != nil {
			return upKubeconfigs{}, err
		}
	}
	return k, nil
}

// simulatedNodeConfig gives each simulated node a client certificate of
// its own (system:node:<name>), kept under <pki>/simulated-nodes.
func simulatedNodeConfig(ca *pki.CA, serverURL, pkiDir string) func(string) (*rest.Config, error) {
	return func(name string) (*rest.Config, error) {
		certFile, keyFile, err := ca.EnsureClientCert(filepath.Join(pkiDir, "simulated-nodes"), name, authentication.NodeUserPrefix+name, []string{authentication.GroupNodes})
		if err != nil {
			return nil, fmt.Errorf("client certificate of simulated node %s: %w", name, err)
		}
		return &rest.Config{Host: serverURL, TLSClientConfig: rest.TLSClientConfig{CAFile: ca.CertFile, CertFile: certFile, KeyFile: keyFile}}, nil
	}
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
// certificate must cover: the bind address when it is a specific one, this
// machine's hostname and addresses for clients on other machines, and the
// kubernetes Service's cluster IP for pods. The certificate is reissued at
// start whenever this set grows (a new address), and kept otherwise.
func servingHosts(bindAddress string, serviceIP netip.Addr) []string {
	var hosts []string
	if ip := net.ParseIP(bindAddress); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, bindAddress)
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	hosts = append(hosts, hostAddresses()...)
	return append(hosts, serviceIP.String())
}

// hostAddresses lists the global unicast addresses of this machine's
// interfaces; none when they cannot be read (loopback still works).
func hostAddresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if ipNet, ok := a.(*net.IPNet); ok && ipNet.IP.IsGlobalUnicast() {
			out = append(out, ipNet.IP.String())
		}
	}
	return out
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
