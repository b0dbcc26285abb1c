package nodeagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/version"
	"k8s.io/utils/ptr"
)

const (
	leaseNamespace = "kube-node-lease"
	// leaseDuration is how long the node counts as alive after a renewal,
	// as kubelet's default (four missed renewals).
	leaseDuration = 40 * time.Second
	maxPods       = 110
)

// registerNode creates the Node, or takes over an existing one, and
// reports its status.
func (a *Agent) registerNode(ctx context.Context) error {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName}}
		a.applyNodeMeta(node)
		if a.cfg.PodCIDR != "" {
			node.Spec.PodCIDR = a.cfg.PodCIDR
			node.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
		}
		if node, err = a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("registering node %s: %w", a.cfg.NodeName, err)
		}
	case err != nil:
		return fmt.Errorf("reading node %s: %w", a.cfg.NodeName, err)
	default:
		a.applyNodeMeta(node)
		if node, err = a.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating node %s: %w", a.cfg.NodeName, err)
		}
	}
	return a.reportNodeStatus(ctx, node)
}

// podCIDRFile, in the network state directory, keeps the pod subnet of
// the last run, so that static pods started before the API server answers
// stay in it.
const podCIDRFile = "pod-cidr"

// podCIDRPollInterval is how often an agent waiting for node IPAM looks
// at its Node.
const podCIDRPollInterval = time.Second

// ensurePodCIDR settles the node's pod subnet: the Node's spec.podCIDR
// (node IPAM's, or one registered before), else the configured one; with
// neither it waits until node IPAM assigns one.
func (a *Agent) ensurePodCIDR(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx)
	waiting := false
	for {
		node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil && ctx.Err() != nil {
			return nil
		}
		cidr := a.cfg.PodCIDR
		switch {
		case err != nil:
			log.Error(err, "reading the node for its pod CIDR")
			cidr = ""
		case node.Spec.PodCIDR != "":
			cidr = node.Spec.PodCIDR
		}
		if cidr != "" {
			return a.usePodCIDR(ctx, cidr)
		}
		if !waiting {
			log.Info("waiting for node IPAM to assign the node's spec.podCIDR (or run with --pod-cidr)")
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(podCIDRPollInterval):
		}
	}
}

// usePodCIDR gives new pods addresses from cidr and remembers it.
func (a *Agent) usePodCIDR(ctx context.Context, cidr string) error {
	if current := a.network.PodCIDR(); current != cidr {
		if current != "" {
			logr.FromContextOrDiscard(ctx).Info("the node's pod CIDR differs from the one in use; new pods take the node's", "inUse", current, "node", cidr)
		}
		if err := a.network.SetPodCIDR(cidr); err != nil {
			return err
		}
	}
	dir := filepath.Join(a.cfg.RootDir, "network")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, podCIDRFile), []byte(cidr+"\n"), 0o600); err != nil {
		return fmt.Errorf("recording the pod CIDR: %w", err)
	}
	return nil
}

func (a *Agent) applyNodeMeta(node *corev1.Node) {
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	node.Labels[corev1.LabelHostname] = a.cfg.NodeName
	node.Labels[corev1.LabelOSStable] = runtime.GOOS
	node.Labels[corev1.LabelArchStable] = runtime.GOARCH
}

// reportNodeStatus writes capacity, node info, addresses and conditions
// through nodes/status.
func (a *Agent) reportNodeStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.Now()
	status, err := a.nodeStatus(now)
	if err != nil {
		return err
	}
	for i := range status.Conditions {
		for _, old := range node.Status.Conditions {
			if old.Type == status.Conditions[i].Type && old.Status == status.Conditions[i].Status {
				status.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	node = node.DeepCopy()
	node.Status = status
	if _, err := a.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting status of node %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

func (a *Agent) nodeStatus(now metav1.Time) (corev1.NodeStatus, error) {
	capacity, err := a.capacity()
	if err != nil {
		return corev1.NodeStatus{}, err
	}
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, message string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: message, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "node agent has sufficient memory available"),
			condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
			condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "node agent has sufficient PID available"),
			condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "node agent is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.nodeIP.String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		NodeInfo: a.nodeInfo(),
		DaemonEndpoints: corev1.NodeDaemonEndpoints{
			KubeletEndpoint: corev1.DaemonEndpoint{Port: a.serverPort},
		},
	}, nil
}

// capacity reads what the host has: CPUs, memory, the root dir's
// filesystem, and the pod limit.
func (a *Agent) capacity() (corev1.ResourceList, error) {
	memory, err := memTotalBytes()
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(a.cfg.RootDir, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", a.cfg.RootDir, err)
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(memory, resource.BinarySI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(maxPods, resource.DecimalSI),
	}, nil
}

func memTotalBytes() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading memory size: %w", err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			var kib int64
			if _, err := fmt.Sscan(fields[1], &kib); err != nil {
				return 0, fmt.Errorf("parsing MemTotal: %w", err)
			}
			return kib * 1024, nil
		}
	}
	return 0, errors.New("MemTotal not found in /proc/meminfo")
}

func (a *Agent) nodeInfo() corev1.NodeSystemInfo {
	var uname unix.Utsname
	kernel := ""
	if unix.Uname(&uname) == nil {
		kernel = unix.ByteSliceToString(uname.Release[:])
	}
	return corev1.NodeSystemInfo{
		MachineID:               readTrimmed("/etc/machine-id"),
		SystemUUID:              readTrimmed("/sys/class/dmi/id/product_uuid"),
		BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           kernel,
		OSImage:                 osImage(),
		ContainerRuntimeVersion: "containerd://" + a.version,
		KubeletVersion:          version.Get().GitVersion,
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
	}
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func osImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(value, `"`)
		}
	}
	return "Linux"
}

// chooseNodeIP returns the configured IP, else the first global IPv4
// address of the host network (the named namespace when given).
func chooseNodeIP(configured, hostNetNSPath string) (net.IP, error) {
	if configured != "" {
		ip := net.ParseIP(configured)
		if ip == nil {
			return nil, fmt.Errorf("node IP %q is not an IP address", configured)
		}
		return ip, nil
	}
	var found net.IP
	find := func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return fmt.Errorf("listing addresses: %w", err)
		}
		for _, addr := range addrs {
			if ipnet, ok := addr.(*net.IPNet); ok && ipnet.IP.To4() != nil && ipnet.IP.IsGlobalUnicast() {
				found = ipnet.IP.To4()
				return nil
			}
		}
		return nil
	}
	var err error
	if hostNetNSPath != "" {
		err = ns.WithNetNSPath(hostNetNSPath, func(ns.NetNS) error { return find() })
	} else {
		err = find()
	}
	if err != nil {
		return nil, err
	}
	if found == nil {
		// A namespace with only loopback: the node is reachable on no
		// network, so it names itself by loopback.
		found = net.IPv4(127, 0, 0, 1).To4()
	}
	return found, nil
}

// heartbeat renews the Lease every LeaseInterval and re-reports status
// every StatusInterval until ctx ends.
func (a *Agent) heartbeat(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx)
	leaseTicker := time.NewTicker(a.cfg.LeaseInterval)
	defer leaseTicker.Stop()
	statusTicker := time.NewTicker(a.cfg.StatusInterval)
	defer statusTicker.Stop()
	if err := a.renewLease(ctx); err != nil {
		log.Error(err, "renewing node lease")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTicker.C:
			if err := a.renewLease(ctx); err != nil {
				log.Error(err, "renewing node lease")
			}
		case <-statusTicker.C:
			node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
			if err == nil {
				err = a.reportNodeStatus(ctx, node)
			}
			if err != nil {
				log.Error(err, "reporting node status")
			}
		}
	}
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading node for its lease: %w", err)
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:      a.cfg.NodeName,
				Namespace: leaseNamespace,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
				}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(a.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node lease: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading node lease: %w", err)
	}
	lease.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration / time.Second))
	lease.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renewing node lease: %w", err)
	}
	return nil
}
