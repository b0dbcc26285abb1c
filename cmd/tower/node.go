package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"tower.dev/tower/nodeagent"
	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/server"
	"tower.dev/tower/nodeagent/simulator"
)

// standalonePodCIDR is the local node's pod subnet under `tower up` when
// its controller manager runs without node IPAM.
const standalonePodCIDR = "10.244.0.0/24"

// defaultRegistryHostsDir is where containerd's own CRI plugin reads
// registry host configuration, so a node set up for containerd pulls alike.
const defaultRegistryHostsDir = "/etc/containerd/certs.d"

// nodeOptions are the flags of `tower node`, shared with `tower up` where
// they configure the local node.
type nodeOptions struct {
	NodeName            string
	DataDir             string
	ContainerdAddress   string
	ContainerdNamespace string
	ImagesDir           string
	RegistryHostsDir    string
	ManifestsDir        string
	PodCIDR             string
	CNIBinDir           string
	HostNetNS           string
	NodeIP              string
	// Address and Port are where the agent serves logs to the API server;
	// TLSCertFile/TLSPrivateKeyFile its serving certificate (self-signed
	// when empty) and ClientCAFile the CA of accepted client certificates
	// (the kubeconfig's CA when empty), as kubelet's flags of those names.
	Address           string
	Port              int
	TLSCertFile       string
	TLSPrivateKeyFile string
	ClientCAFile      string
	// ContainerLogMaxSize and ContainerLogMaxFiles rotate container logs,
	// as kubelet's flags of those names.
	ContainerLogMaxSize  string
	ContainerLogMaxFiles int
	// KubeAPIQPS and KubeAPIBurst limit the agent's requests to the API
	// server, as kubelet's flags of those names (and their defaults).
	KubeAPIQPS   float32
	KubeAPIBurst int
}

func newNodeOptions(dataDir string) *nodeOptions {
	hostname, _ := os.Hostname()
	return &nodeOptions{
		NodeName:             hostname,
		DataDir:              dataDir,
		ContainerdNamespace:  nodeagent.DefaultContainerdNamespace,
		RegistryHostsDir:     defaultRegistryHostsDir,
		Address:              "0.0.0.0",
		Port:                 server.DefaultPort,
		ContainerLogMaxSize:  "10Mi",
		ContainerLogMaxFiles: 5,
		KubeAPIQPS:           50,
		KubeAPIBurst:         100,
	}
}

// addFlags registers the node flags; up is true for `tower up`, which
// has its own --data-dir.
func (o *nodeOptions) addFlags(fs *pflag.FlagSet, up bool) {
	if up {
		fs.StringVar(&o.ImagesDir, "images-dir", o.ImagesDir, "Directory of OCI image archives (*.tar) the local node imports at start (default <data-dir>/images).")
	} else {
		fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "Directory for the node's state: logs, volumes, network state and (without --containerd-address) a private containerd.")
		fs.StringVar(&o.NodeName, "node-name", o.NodeName, "Name of the Node object this agent registers.")
		fs.StringVar(&o.ImagesDir, "images-dir", o.ImagesDir, "Directory of OCI image archives (*.tar) imported at start.")
	}
	fs.StringVar(&o.RegistryHostsDir, "registry-hosts-dir", o.RegistryHostsDir, "Directory of per-registry configuration for image pulls in containerd's certs.d layout: <host[:port]>/hosts.toml (server, ca, client, skip_verify), or Docker's ca.crt and client .cert/.key files. Empty uses every registry's defaults.")
	fs.StringVar(&o.ManifestsDir, "manifests-dir", o.ManifestsDir, "Directory of static pod manifests (one Pod per *.yaml, *.yml or *.json file), run without an API server and shown in it as mirror pods.")
	fs.StringVar(&o.ManifestsDir, "pod-manifest-path", o.ManifestsDir, "Kubelet's name for --manifests-dir.")
	fs.StringVar(&o.ContainerdAddress, "containerd-address", o.ContainerdAddress, "Socket of an existing containerd. Empty starts a private one under the data directory.")
	fs.StringVar(&o.ContainerdNamespace, "containerd-namespace", o.ContainerdNamespace, "containerd namespace holding this node's containers.")
	fs.StringVar(&o.PodCIDR, "pod-cidr", o.PodCIDR, "Subnet the node's pods get addresses from when the controller manager's node IPAM does not assign one (the Node's spec.podCIDR wins when set). Empty waits for node IPAM.")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", o.CNIBinDir, "Directory of the CNI plugins (default /usr/lib/cni).")
	fs.StringVar(&o.HostNetNS, "host-netns", o.HostNetNS, "Named network namespace (ip netns) standing for the node's host network; the pod bridge and routes go there instead of the host's own.")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "The node's InternalIP. Empty picks the first global IPv4 address of the host network.")
	fs.StringVar(&o.Address, "address", o.Address, "The IP address the node agent serves logs to the API server on.")
	fs.IntVar(&o.Port, "port", o.Port, "The port the node agent serves logs to the API server on.")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "Serving certificate of the node agent. Empty generates a self-signed one.")
	fs.StringVar(&o.TLSPrivateKeyFile, "tls-private-key-file", o.TLSPrivateKeyFile, "Private key matching --tls-cert-file.")
	fs.StringVar(&o.ContainerLogMaxSize, "container-log-max-size", o.ContainerLogMaxSize, "Size (a quantity such as 10Mi) at which a container's log file is rotated.")
	fs.IntVar(&o.ContainerLogMaxFiles, "container-log-max-files", o.ContainerLogMaxFiles, "Most log files (current and rotated) kept per container; at least 2.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second the node agent sends the API server at most (status updates, events, leases).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Requests the node agent may send the API server in a burst above --kube-api-qps.")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "CA whose client certificates (the API server's) the node agent accepts. Empty uses the kubeconfig's CA.")
}

func newNodeCommand() *cobra.Command {
	o := newNodeOptions(filepath.Join(defaultDataDir(), "node"))
	var kubeconfig string
	var simulate int
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the node agent: register a Node and run the pods bound to it",
		Long: `Run Tower's node agent (its kubelet). It registers a Node, renews its
Lease, and runs the pods bound to it in containerd, with a network
namespace per pod set up through CNI, reporting their status back.

Needs root, containerd and runc, and the CNI plugins (Debian's
containernetworking-plugins). With --simulate N it instead registers N
simulated nodes that run bound pods without containers (no root needed).`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx = logr.NewContext(ctx, klog.Background())
			config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("loading --kubeconfig: %w", err)
			}
			if simulate > 0 {
				return simulator.Run(ctx, simulator.Config{RESTConfig: config, Nodes: simulate})
			}
			return runNode(ctx, o, config, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "Kubeconfig to reach the API server.")
	fs.IntVar(&simulate, "simulate", 0, "Register this many simulated nodes (pods bound to them run without containers) instead of running a real node.")
	o.addFlags(fs, false)
	return cmd
}

// nodeUnavailableReason says why this machine cannot run a node agent, or
// "" when it can.
func nodeUnavailableReason(o *nodeOptions) string {
	if os.Geteuid() != 0 {
		return "the node agent needs root (network namespaces, mounts, containerd)"
	}
	if o.ContainerdAddress == "" {
		if _, err := exec.LookPath("containerd"); err != nil {
			return "containerd is not installed (apt-get install containerd runc containernetworking-plugins, or make deps)"
		}
	}
	return ""
}

// startLocalNode runs `tower up`'s own node agent in the background, with
// its state under <data-dir>/node, when this machine can run one, and
// otherwise says why it does not: the control plane is useful without it.
func startLocalNode(ctx context.Context, o *nodeOptions, dataDir, kubeconfig string, out io.Writer, running *sync.WaitGroup) error {
	if o == nil {
		// No node configured (tests of the control plane alone).
		return nil
	}
	if reason := nodeUnavailableReason(o); reason != "" {
		fmt.Fprintf(out, "The local node is not running: %s. The control plane runs without it.\n", reason)
		return nil
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s for the local node: %w", kubeconfig, err)
	}
	local := *o
	local.DataDir = filepath.Join(dataDir, "node")
	if local.ImagesDir == "" {
		local.ImagesDir = filepath.Join(dataDir, "images")
	}
	running.Go(func() {
		if err := runNode(ctx, &local, config, out); err != nil && ctx.Err() == nil {
			fmt.Fprintf(out, "The local node stopped: %v\n", err)
		}
	})
	fmt.Fprintf(out, "The local node %s is starting (state in %s).\n", local.NodeName, local.DataDir)
	return nil
}

// runNode runs the node agent until ctx ends, starting a private
// containerd first when no address is given and stopping it at the end.
func runNode(ctx context.Context, o *nodeOptions, config *rest.Config, out io.Writer) (err error) {
	if reason := nodeUnavailableReason(o); reason != "" {
		return errors.New(reason)
	}
	logMaxSize, err := resource.ParseQuantity(o.ContainerLogMaxSize)
	if err != nil || logMaxSize.Value() <= 0 {
		return fmt.Errorf("--container-log-max-size %q: must be a positive quantity such as 10Mi", o.ContainerLogMaxSize)
	}
	if o.ContainerLogMaxFiles < 2 {
		return fmt.Errorf("--container-log-max-files %d: must be at least 2", o.ContainerLogMaxFiles)
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("resolving node data dir: %w", err)
	}
	config = rest.CopyConfig(config)
	config.QPS, config.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	address := o.ContainerdAddress
	if address == "" {
		daemon, err := containers.StartDaemon(ctx, containers.DaemonConfig{Dir: filepath.Join(dataDir, "containerd")})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, daemon.Stop(context.Background())) }()
		address = daemon.Address
		fmt.Fprintf(out, "Started containerd at %s (log %s)\n", address, daemon.LogPath)
	}
	return nodeagent.Run(ctx, nodeagent.Config{
		NodeName:             o.NodeName,
		RESTConfig:           config,
		ContainerdAddress:    address,
		ContainerdNamespace:  o.ContainerdNamespace,
		RootDir:              dataDir,
		ImagesDir:            o.ImagesDir,
		RegistryHostsDir:     o.RegistryHostsDir,
		ManifestsDir:         o.ManifestsDir,
		PodCIDR:              o.PodCIDR,
		CNIBinDir:            o.CNIBinDir,
		HostNetNS:            o.HostNetNS,
		NodeIP:               o.NodeIP,
		ServerAddress:        net.JoinHostPort(o.Address, strconv.Itoa(o.Port)),
		ServerCertFile:       o.TLSCertFile,
		ServerKeyFile:        o.TLSPrivateKeyFile,
		ClientCAFile:         o.ClientCAFile,
		ContainerLogMaxSize:  logMaxSize.Value(),
		ContainerLogMaxFiles: o.ContainerLogMaxFiles,
	})
}
