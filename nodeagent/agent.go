package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"tower.dev/tower/nodeagent/admission"
	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/podnet"
	"tower.dev/tower/nodeagent/server"
)

// DefaultContainerdNamespace is the containerd namespace Tower keeps its
// containers in, apart from anything else the daemon runs.
const DefaultContainerdNamespace = "tower"

// Config is what `tower node` needs to run.
type Config struct {
	// NodeName is the Node object this agent registers and serves.
	NodeName string
	// RESTConfig reaches the API server.
	RESTConfig *rest.Config
	// ContainerdAddress is containerd's socket.
	ContainerdAddress string
	// ContainerdNamespace keeps this agent's containers apart; two agents
	// on one machine need different namespaces.
	ContainerdNamespace string
	// RootDir holds logs, volumes and network state.
	RootDir string
	// ImagesDir holds OCI archives imported at start; may be empty.
	ImagesDir string
	// RegistryHostsDir configures image pulls per registry in containerd's
	// certs.d layout (<dir>/<host[:port]>/hosts.toml or ca.crt); empty
	// uses each registry's defaults.
	RegistryHostsDir string
	// ManifestsDir holds static pod manifests, run without an API server
	// and shown in it as mirror pods; empty runs none.
	ManifestsDir string
	// PodCIDR is the node's pod subnet when node IPAM does not assign one:
	// it is registered with a new Node and used until the Node has its
	// own spec.podCIDR. Empty waits for node IPAM's.
	PodCIDR string
	// CNIBinDir holds the CNI plugins.
	CNIBinDir string
	// Bridge names the node's pod bridge.
	Bridge string
	// HostNetNS names (in /run/netns) the network namespace standing for
	// the node's host network; empty is the agent's own.
	HostNetNS string
	// NodeIP is the node's InternalIP; empty picks the first global IPv4
	// address.
	NodeIP string
	// LeaseInterval is how often the Lease is renewed.
	LeaseInterval time.Duration
	// StatusInterval is how often the Node's status is reported.
	StatusInterval time.Duration
	// ServerAddress is where the agent serves logs to the API server
	// (kubelet's port); empty is ":10250".
	ServerAddress string
	// ServerCertFile and ServerKeyFile are the serving certificate; empty
	// makes a self-signed one for the node's name and IP.
	ServerCertFile string
	ServerKeyFile  string
	// ClientCAFile signs the client certificates the server accepts (the
	// API server's); empty is the CA of RESTConfig, the cluster's CA.
	ClientCAFile string
	// ContainerLogMaxSize rotates a container's log file at this size;
	// zero is kubelet's default, 10Mi.
	ContainerLogMaxSize int64
	// ContainerLogMaxFiles is how many log files (current and rotated)
	// are kept per container; zero is kubelet's default, 5.
	ContainerLogMaxFiles int
}

// Defaults fills in unset fields.
func (c *Config) Defaults() {
	if c.ContainerdNamespace == "" {
		c.ContainerdNamespace = DefaultContainerdNamespace
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = podnet.DefaultBinDir
	}
	if c.Bridge == "" {
		c.Bridge = "tower0"
	}
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Minute
	}
	if c.ContainerLogMaxSize == 0 {
		c.ContainerLogMaxSize = 10 << 20
	}
	if c.ContainerLogMaxFiles == 0 {
		c.ContainerLogMaxFiles = 5
	}
	if c.ServerAddress == "" {
		c.ServerAddress = fmt.Sprintf(":%d", server.DefaultPort)
	}
}

// Agent is a running node agent.
type Agent struct {
	cfg       Config
	client    kubernetes.Interface
	runtime   *containers.Runtime
	network   *podnet.Network
	nodeIP    net.IP
	version   string
	startTime time.Time
	// serverPort is the port of the agent's HTTPS server, published in
	// the Node's daemonEndpoints.
	serverPort int32

	// recorder posts the events kubelet would (hook failures, deadlines).
	recorder record.EventRecorder
	// imagePulls backs off failed image pulls.
	imagePulls *imagePulls

	// admitMu orders admission decisions: each sees the pods admitted
	// before it.
	admitMu sync.Mutex

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// pendingPods are the pods of the first list, held until all of it
	// is there to be admitted oldest first; admitting is set after that.
	pendingPods map[types.UID]*corev1.Pod
	admitting   bool
	// nodeStore is the watch's view of the agent's Node, once it runs.
	nodeStore cache.Store
	// staticPods are the pods of the manifests directory, by UID.
	staticPods map[types.UID]*corev1.Pod
	// podStore is the informer's view of the node's pods, once it runs.
	podStore cache.Store
	wg       sync.WaitGroup
}

// Run registers the node and runs its pods until ctx ends. Containers keep
// running when it returns: a restarted agent adopts them.
func Run(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	log := logr.FromContextOrDiscard(ctx).WithValues("node", cfg.NodeName)
	ctx = logr.NewContext(ctx, log)
	if cfg.NodeName == "" {
		return errors.New("node name is required")
	}
	rootDir, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return fmt.Errorf("resolving root dir: %w", err)
	}
	cfg.RootDir = rootDir
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := os.MkdirAll(rootDir, 0o700); err != nil {
		return fmt.Errorf("creating root dir: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	rt, err := containers.Connect(ctx, cfg.ContainerdAddress, cfg.ContainerdNamespace, containers.WithRegistryHostsDir(cfg.RegistryHostsDir))
	if err != nil {
		return err
	}
	defer rt.Close()
	version, err := rt.Version(ctx)
	if err != nil {
		return err
	}
	hostNetNSPath := ""
	if cfg.HostNetNS != "" {
		hostNetNSPath = filepath.Join("/run/netns", cfg.HostNetNS)
	}
	networkDir := filepath.Join(rootDir, "network")
	// Until the API server says otherwise, pods (static ones, before it
	// answers) take the configured subnet, else the one of the last run.
	initialPodCIDR := cfg.PodCIDR
	if initialPodCIDR == "" {
		initialPodCIDR = readTrimmed(filepath.Join(networkDir, podCIDRFile))
	}
	network, err := podnet.New(podnet.Config{
		BinDir:        cfg.CNIBinDir,
		StateDir:      networkDir,
		PodCIDR:       initialPodCIDR,
		Bridge:        cfg.Bridge,
		HostNetNSPath: hostNetNSPath,
	})
	if err != nil {
		return err
	}
	nodeIP, err := chooseNodeIP(cfg.NodeIP, hostNetNSPath)
	if err != nil {
		return err
	}
	events := record.NewBroadcaster(record.WithContext(ctx))
	defer events.Shutdown()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	a := &Agent{
		recorder:    events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.NodeName}),
		cfg:         cfg,
		client:      client,
		runtime:     rt,
		network:     network,
		nodeIP:      nodeIP,
		version:     version,
		startTime:   time.Now(),
		workers:     map[types.UID]*podWorker{},
		pendingPods: map[types.UID]*corev1.Pod{},

		imagePulls: newImagePulls(),
	}
	if cfg.ImagesDir != "" {
		names, err := rt.ImportDirectory(ctx, cfg.ImagesDir)
		if err != nil {
			return fmt.Errorf("importing images from %s: %w", cfg.ImagesDir, err)
		}
		log.Info("imported images", "dir", cfg.ImagesDir, "images", names)
	}
	listener, nodeServer, err := a.newServer()
	if err != nil {
		return err
	}
	var background sync.WaitGroup
	if cfg.ManifestsDir != "" {
		// Static pods run at once, API server or not; the first read
		// comes before orphan removal so that their containers are known.
		a.loadStaticPods(ctx)
		background.Go(func() { a.runStaticPods(ctx) })
	}
	if err := a.register(ctx); err != nil {
		stopped := ctx.Err() != nil
		listener.Close()
		cancel()
		background.Wait()
		a.wg.Wait()
		if stopped {
			// Stopped before the API server ever answered.
			return nil
		}
		return err
	}
	background.Go(func() { a.heartbeat(ctx) })
	var serveErr error
	background.Go(func() { serveErr = nodeServer.Serve(ctx, listener) })
	if err = a.ensurePodCIDR(ctx); err == nil {
		log.Info("node registered", "containerd", version, "ip", nodeIP.String(), "podCIDR", a.network.PodCIDR())
		err = a.runPods(ctx)
	}
	background.Wait()
	a.wg.Wait()
	return errors.Join(err, serveErr)
}

// registerRetryInterval is how often an agent with static pods retries
// registering while the API server does not answer.
const registerRetryInterval = 5 * time.Second

// register registers the node. Without static pods a failure ends the
// agent; with them it keeps running them and retries until the API
// server answers.
func (a *Agent) register(ctx context.Context) error {
	for {
		err := a.registerNode(ctx)
		if err == nil || a.cfg.ManifestsDir == "" {
			return err
		}
		logr.FromContextOrDiscard(ctx).Error(err, "registering the node; static pods keep running, retrying", "in", registerRetryInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(registerRetryInterval):
		}
	}
}

// runPods watches the pods bound to this node and gives each a worker,
// once admitted.
func (a *Agent) runPods(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.cfg.NodeName).String()
		}))
	nodeInformer := nodeFactory.Core().V1().Nodes().Informer()
	informer := factory.Core().V1().Pods().Informer()
	handler, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.podChanged(ctx, obj) },
		UpdateFunc: func(_, obj any) { a.podChanged(ctx, obj) },
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok && !isMirrorPod(pod) {
				a.podRemoved(pod)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	nodeFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodeInformer.HasSynced, informer.HasSynced, handler.HasSynced) {
		// Stopped before the first list: not a failure.
		return nil
	}
	a.mu.Lock()
	a.nodeStore = nodeInformer.GetStore()
	a.mu.Unlock()
	a.setPodStore(informer.GetStore())
	a.admitPending(ctx)
	if err := a.removeOrphans(ctx, informer.GetStore()); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "removing containers of pods that are gone")
	}
	<-ctx.Done()
	factory.Shutdown()
	nodeFactory.Shutdown()
	return nil
}

// podChanged hands a pod to its worker; a pod without one is admitted
// first (static pods at once, the first list's pods once it is complete).
func (a *Agent) podChanged(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || isMirrorPod(pod) {
		return
	}
	a.mu.Lock()
	if w, ok := a.workers[pod.UID]; ok {
		w.update(pod, false)
		a.mu.Unlock()
		return
	}
	if !a.admitting && !isStaticPod(pod) {
		a.pendingPods[pod.UID] = pod
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.admitMu.Lock()
	defer a.admitMu.Unlock()
	a.admitAndStart(ctx, pod)
}

// startWorker runs a worker for pod, one that only reports the rejection
// when rejection is set. The caller holds a.mu.
func (a *Agent) startWorker(ctx context.Context, pod *corev1.Pod, rejection *admission.Result) {
	w := newPodWorker(a, pod)
	w.rejection = rejection
	a.workers[pod.UID] = w
	a.wg.Go(func() {
		w.run(ctx)
		a.mu.Lock()
		delete(a.workers, pod.UID)
		a.mu.Unlock()
	})
}

func (a *Agent) podRemoved(pod *corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pendingPods, pod.UID)
	if w, ok := a.workers[pod.UID]; ok {
		w.update(pod, true)
	}
}

// removeOrphans deletes containers whose pod no longer exists (deleted
// while the agent was down) and releases their network.
func (a *Agent) removeOrphans(ctx context.Context, store cache.Store) error {
	known := map[string]bool{}
	for _, obj := range store.List() {
		if pod, ok := obj.(*corev1.Pod); ok {
			known[string(pod.UID)] = true
		}
	}
	a.mu.Lock()
	for uid := range a.staticPods {
		known[string(uid)] = true
	}
	a.mu.Unlock()
	list, err := a.runtime.List(ctx, labelPodUID)
	if err != nil {
		return err
	}
	torndown := map[string]bool{}
	var errs []error
	for _, c := range list {
		uid := c.Labels[labelPodUID]
		if known[uid] {
			continue
		}
		logr.FromContextOrDiscard(ctx).Info("removing container of a pod that is gone", "container", c.ID, "podUID", uid)
		if err := a.runtime.Stop(ctx, c.ID, 0); err != nil {
			errs = append(errs, err)
		}
		if err := a.runtime.Remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
		if !torndown[uid] {
			torndown[uid] = true
			if err := a.network.Teardown(ctx, uid, c.Labels[labelPodNamespace], c.Labels[labelPodName], c.Labels[labelNetNS]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
