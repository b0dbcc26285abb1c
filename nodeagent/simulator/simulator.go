// Package simulator runs KWOK-style simulated nodes: it registers Nodes
// with the capacity and labels it is given, renews their Leases, and
// drives the pods bound to them through Pending → Running → Ready (with
// fake pod IPs from each node's pod CIDR) and through termination on
// delete, all through the API server and without any container. It is how
// Tower's controllers and scheduler are tested end to end, and how users
// test operators at scale (`tower node --simulate N`, `tower up
// --simulated-nodes N`).
package simulator

import (
	"context"
	"fmt"
	"maps"
	"net"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"tower.dev/tower/internal/kubeclient"
)

// TypeLabel marks simulated nodes, so tests and users can select them.
const TypeLabel = "tower.dev/simulated"

// Defaults for Config fields left zero.
const (
	DefaultNamePrefix        = "sim-node-"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultLeaseDuration     = 40 * time.Second
	registerParallelism      = 32
)

// Config describes a set of simulated nodes.
type Config struct {
	// RESTConfig reaches the API server, with rights to read the nodes
	// and pods, and to write them too unless NodeRESTConfig is set.
	RESTConfig *rest.Config
	// NodeRESTConfig, when set, gives each simulated node its own
	// identity (system:node:<name> in system:nodes, as a kubelet has):
	// the node's registration, status, Lease and its pods' status and
	// deletion are then written with it, through the Node authorizer and
	// NodeRestriction like a real node's.
	NodeRESTConfig func(node string) (*rest.Config, error)
	// Nodes is how many nodes to simulate, named NamePrefix0, 1, ...
	Nodes      int
	NamePrefix string
	// Capacity of each node; empty means 32 CPUs, 256Gi memory, 110 pods.
	Capacity corev1.ResourceList
	// Labels and Taints are added to every node.
	Labels map[string]string
	Taints []corev1.Taint
	// HeartbeatInterval is how often Leases are renewed (10s default);
	// LeaseDuration is the duration they announce (40s default).
	HeartbeatInterval time.Duration
	LeaseDuration     time.Duration
}

func (c *Config) defaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = DefaultNamePrefix
	}
	if len(c.Capacity) == 0 {
		c.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("32"),
			corev1.ResourceMemory:           resource.MustParse("256Gi"),
			corev1.ResourcePods:             resource.MustParse("110"),
			corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
		}
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
}

// Simulator runs a set of simulated nodes.
type Simulator struct {
	cfg       Config
	clientset kubernetes.Interface
	// writers are the nodes' own clients (NodeRESTConfig), by node name.
	writers map[string]kubernetes.Interface
	names   []string
	index   map[string]int

	mu sync.Mutex
	// silenced nodes stop renewing their Lease, as a node that lost its
	// network would.
	silenced map[string]bool
	ipam     map[string]*podIPs
	// resync carries the pods of a node that came back, so their status
	// is reported again.
	resync chan event.GenericEvent
	// nodes reads the simulated Nodes from the pod manager's cache, so a
	// heartbeat costs no extra request unless a node needs its status
	// fixed.
	nodes client.Reader
	// admissions are the nodes' admitted pods; recorders post their
	// events (set by Run before pods are handled).
	admissions map[string]*nodeAdmission
	recorders  map[string]record.EventRecorder
}

// Run simulates cfg.Nodes nodes until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New prepares a simulator; Run starts it.
func New(cfg Config) (*Simulator, error) {
	cfg.defaults()
	if cfg.RESTConfig == nil {
		return nil, fmt.Errorf("simulator: RESTConfig is required")
	}
	if cfg.Nodes < 0 {
		return nil, fmt.Errorf("simulator: negative node count %d", cfg.Nodes)
	}
	rc := rest.CopyConfig(cfg.RESTConfig)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 1000, 2000
	}
	cfg.RESTConfig = rc
	// Pod status and Lease updates go in protobuf, as a kubelet's do.
	cs, err := kubernetes.NewForConfig(kubeclient.Protobuf(rc))
	if err != nil {
		return nil, fmt.Errorf("simulator: building clientset: %w", err)
	}
	s := &Simulator{cfg: cfg, clientset: cs, writers: map[string]kubernetes.Interface{}, index: map[string]int{}, silenced: map[string]bool{}, ipam: map[string]*podIPs{}, resync: make(chan event.GenericEvent, 64)}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("%s%d", cfg.NamePrefix, i)
		s.names = append(s.names, name)
		s.index[name] = i
		if cfg.NodeRESTConfig == nil {
			continue
		}
		nodeConfig, err := cfg.NodeRESTConfig(name)
		if err != nil {
			return nil, fmt.Errorf("simulator: client configuration of node %s: %w", name, err)
		}
		nodeConfig = rest.CopyConfig(nodeConfig)
		nodeConfig.QPS, nodeConfig.Burst = rc.QPS, rc.Burst
		if s.writers[name], err = kubernetes.NewForConfig(kubeclient.Protobuf(nodeConfig)); err != nil {
			return nil, fmt.Errorf("simulator: clientset of node %s: %w", name, err)
		}
	}
	s.admissions = newNodeAdmissions(s.names)
	return s, nil
}

// writer is the client node writes with: its own identity when it has
// one.
func (s *Simulator) writer(node string) kubernetes.Interface {
	if w, ok := s.writers[node]; ok {
		return w
	}
	return s.clientset
}

// NodeNames lists the simulated nodes.
func (s *Simulator) NodeNames() []string {
	return append([]string(nil), s.names...)
}

// StopHeartbeats makes node stop renewing its Lease and reporting its
// pods' status, so the node lifecycle controller sees it go silent.
func (s *Simulator) StopHeartbeats(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silenced[node] = true
}

func (s *Simulator) isSilenced(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.silenced[node]
}

// ResumeHeartbeats undoes StopHeartbeats.
func (s *Simulator) ResumeHeartbeats(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.silenced, node)
}

// Run registers the nodes, then renews Leases and drives pods until ctx
// ends.
func (s *Simulator) Run(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("simulator")
	if err := s.register(ctx); err != nil {
		if ctx.Err() != nil {
			// Stopped while registering: a shutdown, not a failure.
			return nil
		}
		return err
	}
	log.Info("Simulated nodes registered", "nodes", len(s.names))
	events := record.NewBroadcaster(record.WithContext(ctx))
	defer events.Shutdown()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.clientset.CoreV1().Events("")})
	s.recorders = nodeRecorders(events, s.names)
	mgr, err := s.podManager()
	if err != nil {
		return err
	}
	s.nodes = mgr.GetCache()
	errs := make(chan error, 2)
	go func() { errs <- s.heartbeat(ctx) }()
	go func() { errs <- mgr.Start(ctx) }()
	first := <-errs
	second := <-errs
	if first != nil {
		return first
	}
	return second
}

func (s *Simulator) podManager() (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building scheme: %w", err)
	}
	skip := true
	mgr, err := ctrl.NewManager(s.cfg.RESTConfig, manager.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return nil, fmt.Errorf("simulator: creating manager: %w", err)
	}
	err = mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, podNodeNameField, func(obj client.Object) []string {
		return []string{obj.(*corev1.Pod).Spec.NodeName}
	})
	if err != nil {
		return nil, fmt.Errorf("simulator: indexing pods by node: %w", err)
	}
	r := &podReconciler{sim: s, client: mgr.GetClient()}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("simulated-pods").
		For(&corev1.Pod{}).
		WatchesRawSource(source.Channel(s.resync, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 16}).
		Complete(r)
	if err != nil {
		return nil, fmt.Errorf("simulator: registering pod controller: %w", err)
	}
	return mgr, nil
}

// register creates (or refreshes) every node and marks it Ready.
func (s *Simulator) register(ctx context.Context) error {
	sem := make(chan struct{}, registerParallelism)
	errs := make(chan error, len(s.names))
	var wg sync.WaitGroup
	for i, name := range s.names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.registerNode(ctx, i, name); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (s *Simulator) registerNode(ctx context.Context, i int, name string) error {
	labels := map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
		TypeLabel:              "true",
	}
	maps.Copy(labels, s.cfg.Labels)
	nodes := s.writer(name).CoreV1().Nodes()
	node, err := nodes.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node, err = nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.NodeSpec{Taints: s.cfg.Taints},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("registering node %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("reading node %s: %w", name, err)
	}

	node.Status = corev1.NodeStatus{
		Capacity:    s.cfg.Capacity,
		Allocatable: s.cfg.Capacity,
		Phase:       corev1.NodeRunning,
		Conditions:  healthyConditions(metav1.Now()),
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: nodeIP(i)},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          "v1.37.2-tower-simulated",
			ContainerRuntimeVersion: "simulated://1.0.0",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
			OSImage:                 "Tower simulated node",
			KernelVersion:           "simulated",
		},
	}
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting status of node %s: %w", name, err)
	}
	return s.renewLease(ctx, node)
}

// healthyConditions are the conditions a kubelet with nothing to
// complain about posts.
func healthyConditions(now metav1.Time) []corev1.NodeCondition {
	return []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available", LastHeartbeatTime: now, LastTransitionTime: now},
	}
}

// reassertReady posts healthy conditions again when the node lifecycle
// controller marked the node Unknown while it was silent, as a kubelet
// does on its next status update.
func (s *Simulator) reassertReady(ctx context.Context, name string) error {
	if s.nodes == nil {
		return nil
	}
	node := &corev1.Node{}
	if err := s.nodes.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		// The cache may not be synced yet; the next heartbeat retries.
		return nil
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	node.Status.Conditions = healthyConditions(metav1.Now())
	if _, err := s.writer(name).CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("reporting node %s ready: %w", name, err)
	}
	var pods corev1.PodList
	if err := s.nodes.List(ctx, &pods); err != nil {
		return fmt.Errorf("listing pods to resync on node %s: %w", name, err)
	}
	for i := range pods.Items {
		if pods.Items[i].Spec.NodeName != name {
			continue
		}
		select {
		case s.resync <- event.GenericEvent{Object: &pods.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// nodeIP is a fake address for node i, from 10.255.0.0/16's neighbours.
func nodeIP(i int) string {
	return net.IPv4(172, byte(16+i>>16), byte(i>>8), byte(i)).String()
}

// heartbeat renews every node's Lease each interval until ctx ends.
func (s *Simulator) heartbeat(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("simulator")
	ticker := time.NewTicker(s.cfg.HeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		for _, name := range s.names {
			s.mu.Lock()
			silent := s.silenced[name]
			s.mu.Unlock()
			if silent {
				continue
			}
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
			if err := s.renewLease(ctx, node); err != nil && ctx.Err() == nil {
				log.Error(err, "Renewing lease", "node", name)
			}
			if err := s.reassertReady(ctx, name); err != nil && ctx.Err() == nil {
				log.Error(err, "Reporting node ready", "node", name)
			}
		}
	}
}

func (s *Simulator) renewLease(ctx context.Context, node *corev1.Node) error {
	leases := s.writer(node.Name).CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NowMicro()
	seconds := int32(s.cfg.LeaseDuration / time.Second)
	lease, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node.Name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &node.Name,
				LeaseDurationSeconds: &seconds,
				RenewTime:            &now,
			},
		}
		if node.UID != "" {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating lease of node %s: %w", node.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading lease of node %s: %w", node.Name, err)
	}
	lease.Spec.HolderIdentity = &node.Name
	lease.Spec.LeaseDurationSeconds = &seconds
	lease.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renewing lease of node %s: %w", node.Name, err)
	}
	return nil
}
