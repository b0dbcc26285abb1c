// Package podnet gives each pod its own network namespace, wired through
// the standard CNI plugins: a bridge on the node with host-local IPAM over
// the node's pod CIDR, loopback inside the pod, and portmap for the pod's
// host ports.
package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// DefaultBinDir is where Debian's containernetworking-plugins installs the
// plugins.
const DefaultBinDir = "/usr/lib/cni"

// networkName names the pod network in CNI's cache and IPAM store.
const networkName = "tower"

// Config describes the node's pod network.
type Config struct {
	// BinDir holds the CNI plugins (bridge, host-local, loopback, portmap).
	BinDir string
	// StateDir keeps IPAM allocations, CNI's result cache and the pods'
	// namespace mounts; one per agent, so agents sharing a machine do not
	// hand out each other's addresses.
	StateDir string
	// PodCIDR is the node's pod subnet; empty until SetPodCIDR when the
	// subnet is not known yet (node IPAM has not assigned it).
	PodCIDR string
	// Bridge is the name of the node's pod bridge.
	Bridge string
	// HostNetNSPath, when set, is the network namespace that stands for the
	// node's host network: the bridge and routes live there instead of in
	// the agent's own namespace.
	HostNetNSPath string
}

// Network sets up and tears down pod network namespaces.
type Network struct {
	cfg      Config
	cni      *libcni.CNIConfig
	loopback *libcni.NetworkConfigList

	mu sync.RWMutex
	// podCIDR is the subnet bridge and withPortmap hand out; empty until
	// it is known.
	podCIDR string
	bridge  *libcni.NetworkConfigList
	// withPortmap is the bridge followed by portmap, for pods with host
	// ports; it also tears every pod down, since portmap's DEL removes
	// nothing it did not add.
	withPortmap *libcni.NetworkConfigList
}

// ErrNoPodCIDR is returned by Setup and Teardown before the node's pod
// subnet is known.
var ErrNoPodCIDR = errors.New("the node has no pod CIDR yet")

// PortMapping publishes a pod's port on the node, as a container port's
// hostPort asks.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Sandbox is a pod's network: its namespace and address.
type Sandbox struct {
	NetNSPath string
	IP        net.IP
}

// New checks the configuration and the plugins it needs.
func New(cfg Config) (*Network, error) {
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultBinDir
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, plugin)); err != nil {
			return nil, fmt.Errorf("CNI plugin %s missing in %s (apt-get install containernetworking-plugins): %w", plugin, cfg.BinDir, err)
		}
	}
	loopback, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"loopback","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		return nil, fmt.Errorf("loopback config: %w", err)
	}
	n := &Network{
		cfg:      cfg,
		cni:      libcni.NewCNIConfigWithCacheDir([]string{cfg.BinDir}, filepath.Join(cfg.StateDir, "cache"), nil),
		loopback: loopback,
	}
	if cfg.PodCIDR != "" {
		if err := n.SetPodCIDR(cfg.PodCIDR); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// PodCIDR is the subnet pods get addresses from; empty while unknown.
func (n *Network) PodCIDR() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.podCIDR
}

// SetPodCIDR makes pods take their addresses from cidr (host-local IPAM
// on the bridge); addresses already handed out stay with their pods.
func (n *Network) SetPodCIDR(cidr string) error {
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	bridgePlugin := map[string]any{
		"type":        "bridge",
		"bridge":      n.cfg.Bridge,
		"isGateway":   true,
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": cidr}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": filepath.Join(n.cfg.StateDir, "ipam"),
		},
	}
	// SNAT lets the node itself (and pods, hairpin) reach a host port.
	portmapPlugin := map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]bool{"portMappings": true}}
	bridge, err := networkList(bridgePlugin)
	if err != nil {
		return err
	}
	withPortmap, err := networkList(bridgePlugin, portmapPlugin)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.podCIDR, n.bridge, n.withPortmap = cidr, bridge, withPortmap
	n.mu.Unlock()
	return nil
}

// lists returns the bridge configurations, or ErrNoPodCIDR.
func (n *Network) lists() (bridge, withPortmap *libcni.NetworkConfigList, err error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.bridge == nil {
		return nil, nil, ErrNoPodCIDR
	}
	return n.bridge, n.withPortmap, nil
}

// networkList is the pod network's CNI configuration with plugins chained.
func networkList(plugins ...any) (*libcni.NetworkConfigList, error) {
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": networkName, "plugins": plugins})
	if err != nil {
		return nil, fmt.Errorf("encoding CNI config: %w", err)
	}
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %w", err)
	}
	return list, nil
}

func (n *Network) runtimeConf(podUID, namespace, name, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: podUID,
		NetNS:       netnsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"K8S_POD_NAMESPACE", namespace},
			{"K8S_POD_NAME", name},
			{"K8S_POD_UID", podUID},
			// Lets plugins that do not know the K8S_* arguments ignore them.
			{"IgnoreUnknown", "1"},
		},
	}
}

// inHostNetwork runs fn with the calling thread in the host network
// namespace, so that plugins it executes (children of that thread) create
// the bridge there.
func (n *Network) inHostNetwork(fn func() error) error {
	if n.cfg.HostNetNSPath == "" {
		return fn()
	}
	return ns.WithNetNSPath(n.cfg.HostNetNSPath, func(ns.NetNS) error { return fn() })
}

// Setup creates the pod's namespace, attaches it to the bridge and
// publishes its host ports.
func (n *Network) Setup(ctx context.Context, podUID, namespace, name string, ports []PortMapping) (Sandbox, error) {
	bridge, withPortmap, err := n.lists()
	if err != nil {
		return Sandbox{}, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	podNS, err := netns.NewNetNS(filepath.Join(n.cfg.StateDir, "netns"))
	if err != nil {
		return Sandbox{}, fmt.Errorf("creating network namespace: %w", err)
	}
	path := podNS.GetPath()
	rt := n.runtimeConf(podUID, namespace, name, path)
	var result types.Result
	err = n.inHostNetwork(func() error {
		if _, err := n.cni.AddNetworkList(ctx, n.loopback, n.runtimeConf(podUID, namespace, name, path)); err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		list := bridge
		if len(ports) > 0 {
			list = withPortmap
			rt.CapabilityArgs = map[string]any{"portMappings": ports}
		}
		var err error
		result, err = n.cni.AddNetworkList(ctx, list, rt)
		return err
	})
	if err != nil {
		return Sandbox{}, errors.Join(fmt.Errorf("CNI add for pod %s/%s: %w", namespace, name, err), n.Teardown(ctx, podUID, namespace, name, path))
	}
	ip, err := firstIPv4(result)
	if err != nil {
		return Sandbox{}, errors.Join(fmt.Errorf("pod %s/%s: %w", namespace, name, err), n.Teardown(ctx, podUID, namespace, name, path))
	}
	return Sandbox{NetNSPath: path, IP: ip}, nil
}

// Teardown detaches the pod from the bridge, releases its address and
// removes its namespace. netnsPath may be empty (an agent that restarted
// and lost it): CNI DEL still releases the address from its cache.
func (n *Network) Teardown(ctx context.Context, podUID, namespace, name, netnsPath string) error {
	_, withPortmap, err := n.lists()
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	rt := n.runtimeConf(podUID, namespace, name, netnsPath)
	err = n.inHostNetwork(func() error {
		return n.cni.DelNetworkList(ctx, withPortmap, rt)
	})
	if err != nil {
		return fmt.Errorf("CNI del for pod %s/%s: %w", namespace, name, err)
	}
	if netnsPath != "" {
		if err := netns.LoadNetNS(netnsPath).Remove(); err != nil {
			return fmt.Errorf("removing network namespace of pod %s/%s: %w", namespace, name, err)
		}
	}
	return nil
}

func firstIPv4(result types.Result) (net.IP, error) {
	res, err := current.NewResultFromResult(result)
	if err != nil {
		return nil, fmt.Errorf("reading CNI result: %w", err)
	}
	for _, ipc := range res.IPs {
		if ip := ipc.Address.IP.To4(); ip != nil {
			return ip, nil
		}
	}
	return nil, errors.New("CNI result has no IPv4 address")
}

// Dial connects from the host network (where pod IPs are routed), as
// probes do.
func (n *Network) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	var dialer net.Dialer
	err := n.inHostNetwork(func() error {
		var err error
		conn, err = dialer.DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// DialInPod connects to address from inside the pod network namespace at
// netnsPath, so that ports a pod listens on only on loopback are reached,
// as port forwarding needs.
func DialInPod(ctx context.Context, netnsPath, network, address string) (net.Conn, error) {
	var conn net.Conn
	var dialer net.Dialer
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var err error
		conn, err = dialer.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dialing %s in %s: %w", address, netnsPath, err)
	}
	return conn, nil
}
