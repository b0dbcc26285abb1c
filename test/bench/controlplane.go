package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"tower.dev/tower/internal/kubeclient"
	"tower.dev/tower/test/framework"
)

// controlPlaneScale sizes the control-plane benchmark: simulated nodes,
// pods for the scheduler, and the Deployment's replicas.
type controlPlaneScale struct {
	nodes, pods, replicas int
}

var (
	fullControlPlaneScale  = controlPlaneScale{nodes: 1000, pods: 10000, replicas: 1000}
	shortControlPlaneScale = controlPlaneScale{nodes: 100, pods: 1000, replicas: 100}
)

const (
	schedulingNamespace = "bench-scheduling"
	deploymentNamespace = "bench-deployment"
	// phaseTimeout bounds each waiting phase, so a stuck component fails
	// the run instead of hanging it.
	phaseTimeout = 10 * time.Minute
)

// controlPlaneRows lists the control-plane report in order.
var controlPlaneRows = []row{
	{"nodes Ready seconds", false},
	{"pod create per second", true},
	{"scheduler start to first bind seconds", false},
	{"scheduler throughput pods/s", true},
	{"scheduler pods/s incl. start", true},
	{"scheduler CPU s/1000 pods", false},
	{"apiserver CPU s/1000 pods scheduled", false},
	{"etcd CPU s/1000 pods scheduled", false},
	{"deployment apply to all Running seconds", false},
	{"apiserver RSS MiB", false},
	{"apiserver peak RSS MiB", false},
	{"etcd RSS MiB", false},
	{"etcd peak RSS MiB", false},
	{"controller-manager RSS MiB", false},
	{"controller-manager peak RSS MiB", false},
	{"scheduler RSS MiB", false},
	{"scheduler peak RSS MiB", false},
	{"simulated nodes RSS MiB", false},
	{"simulated nodes peak RSS MiB", false},
}

// benchmarkControlPlane runs an API server (Tower's, or the reference
// kube-apiserver) with Tower's scheduler, controller manager and simulated
// nodes as child processes and measures (a) how fast the scheduler binds
// sc.pods pending pods over sc.nodes nodes, (b) how long a Deployment of
// sc.replicas takes from create to all pods Running, and (c) memory at the
// end.
func benchmarkControlPlane(ctx context.Context, sc controlPlaneScale, prof *profiler, server framework.Binaries, towerBin, dir string) (measurement, error) {
	log := logr.FromContextOrDiscard(ctx)
	c, err := startCluster(ctx, server, dir)
	if err != nil {
		return nil, err
	}
	// The benchmark's own pod creates and watches speak protobuf, as the
	// components do and as upstream's scheduler_perf clients do, so that
	// JSON encoding for the observer does not count against the scheduler.
	config := kubeclient.Protobuf(c.cp.Config)
	config.DisableCompression = true
	if c.clientset, err = kubernetes.NewForConfig(config); err != nil {
		return nil, errors.Join(fmt.Errorf("building clientset: %w", err), c.cp.Stop())
	}
	var components []*framework.Process
	stop := func() error {
		var errs []error
		for _, p := range components {
			errs = append(errs, p.Stop(context.WithoutCancel(ctx), 15*time.Second))
		}
		return errors.Join(append(errs, c.cp.Stop())...)
	}
	start := func(name string, args ...string) (*framework.Process, error) {
		args = append(args, "--kubeconfig="+c.cp.KubeconfigPath)
		p, err := framework.StartProcess(name, filepath.Join(dir, name+".log"), towerBin, args...)
		if err == nil {
			components = append(components, p)
		}
		return p, err
	}
	result, err := runControlPlane(ctx, log, c, sc, prof, start)
	return result, errors.Join(err, stop())
}

type startFunc func(name string, args ...string) (*framework.Process, error)

func runControlPlane(ctx context.Context, log logr.Logger, c *cluster, sc controlPlaneScale, prof *profiler, start startFunc) (measurement, error) {
	result := measurement{}
	log.Info("starting simulated nodes", "nodes", sc.nodes)
	began := time.Now()
	sim, err := start("simulated-nodes", "node", "--simulate="+strconv.Itoa(sc.nodes))
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "nodes Ready", func(ctx context.Context) (bool, error) {
		return readyNodes(ctx, c.clientset, sc.nodes)
	}); err != nil {
		return nil, err
	}
	result["nodes Ready seconds"] = time.Since(began).Seconds()
	// (a) times the scheduler alone, as upstream's scheduler_perf does:
	// the nodes stay registered and Ready (no node lifecycle controller
	// runs yet to notice their Leases age) but nothing starts the pods,
	// so the API server's work is binding and events only. Every pod is
	// pending before the scheduler starts.
	if err := sim.Stop(ctx, 15*time.Second); err != nil {
		return nil, fmt.Errorf("stopping simulated nodes: %w", err)
	}
	if err := clearNotReadyTaints(ctx, c.clientset); err != nil {
		return nil, err
	}
	if err := createNamespace(ctx, c.clientset, schedulingNamespace); err != nil {
		return nil, err
	}
	pods, err := trackPods(ctx, c.clientset, schedulingNamespace)
	if err != nil {
		return nil, err
	}
	defer pods.stop()
	log.Info("creating pending pods", "pods", sc.pods)
	began = time.Now()
	if err := framework.InParallel(ctx, sc.pods, 32, func(ctx context.Context, i int) error {
		_, err := c.clientset.CoreV1().Pods(schedulingNamespace).Create(ctx, benchPod(fmt.Sprintf("pod-%05d", i)), metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, fmt.Errorf("creating pods: %w", err)
	}
	result["pod create per second"] = float64(sc.pods) / time.Since(began).Seconds()

	log.Info("starting the scheduler")
	meter, err := startCPUMeter(c)
	if err != nil {
		return nil, err
	}
	schedulerArgs, schedulerProfiles, err := profiledManager(prof, "scheduler")
	if err != nil {
		return nil, err
	}
	began = time.Now()
	sched, err := start("scheduler", schedulerArgs...)
	if err != nil {
		return nil, err
	}
	prof.capture(ctx, "apiserver-scheduling", apiServerProfiles(c.clientset))
	prof.capture(ctx, "scheduler", schedulerProfiles)
	if err := waitFor(ctx, "all pods bound", func(context.Context) (bool, error) {
		return pods.count(func(r *podRecord) bool { return !r.bound.IsZero() }) == sc.pods, nil
	}); err != nil {
		return nil, err
	}
	first, last := pods.bindSpan()
	result["scheduler start to first bind seconds"] = first.Sub(began).Seconds()
	result["scheduler throughput pods/s"] = float64(sc.pods-1) / last.Sub(first).Seconds()
	result["scheduler pods/s incl. start"] = float64(sc.pods) / last.Sub(began).Seconds()
	cpu, err := cpuTime(sched.Pid())
	if err != nil {
		return nil, err
	}
	thousands := float64(sc.pods) / 1000
	result["scheduler CPU s/1000 pods"] = cpu.Seconds() / thousands
	apiserverCPU, etcdCPU, err := meter.stop()
	if err != nil {
		return nil, err
	}
	result["apiserver CPU s/1000 pods scheduled"] = apiserverCPU.Seconds() / thousands
	result["etcd CPU s/1000 pods scheduled"] = etcdCPU.Seconds() / thousands
	log.Info("scheduled", "pods/s", result["scheduler throughput pods/s"])
	if err := prof.wait(); err != nil {
		return nil, err
	}

	// (b) A Deployment from create to every pod Running, with the
	// simulated nodes back and (a)'s pods gone.
	if err := c.clientset.CoreV1().Pods(schedulingNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}); err != nil {
		return nil, fmt.Errorf("deleting the scheduled pods: %w", err)
	}
	if err := waitFor(ctx, "scheduled pods deleted", func(ctx context.Context) (bool, error) {
		list, err := c.clientset.CoreV1().Pods(schedulingNamespace).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(list.Items) == 0, err
	}); err != nil {
		return nil, err
	}
	log.Info("restarting simulated nodes")
	if sim, err = start("simulated-nodes-again", "node", "--simulate="+strconv.Itoa(sc.nodes)); err != nil {
		return nil, err
	}
	log.Info("starting the controller manager")
	cmArgs, cmProfiles, err := profiledManager(prof, "controller-manager")
	if err != nil {
		return nil, err
	}
	cm, err := start("controller-manager", cmArgs...)
	if err != nil {
		return nil, err
	}
	if err := createNamespace(ctx, c.clientset, deploymentNamespace); err != nil {
		return nil, err
	}
	running, err := trackPods(ctx, c.clientset, deploymentNamespace)
	if err != nil {
		return nil, err
	}
	defer running.stop()
	log.Info("creating deployment", "replicas", sc.replicas)
	began = time.Now()
	prof.capture(ctx, "apiserver-deployment", apiServerProfiles(c.clientset))
	prof.capture(ctx, "controller-manager", cmProfiles)
	if _, err := c.clientset.AppsV1().Deployments(deploymentNamespace).Create(ctx, benchDeployment(int32(sc.replicas)), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating deployment: %w", err)
	}
	if err := waitFor(ctx, "deployment pods Running", func(context.Context) (bool, error) {
		return running.count(func(r *podRecord) bool { return r.running }) == sc.replicas, nil
	}); err != nil {
		return nil, err
	}
	result["deployment apply to all Running seconds"] = time.Since(began).Seconds()
	if err := prof.wait(); err != nil {
		return nil, err
	}

	// (c) Memory at the end, and the most it took.
	for name, p := range map[string]*framework.Process{
		"apiserver": c.cp.APIServerProcess, "etcd": c.cp.EtcdProcess,
		"controller-manager": cm, "scheduler": sched, "simulated nodes": sim,
	} {
		rss, err := statusKB(p.Pid(), "VmRSS:")
		if err != nil {
			return nil, err
		}
		peak, err := peakRSS(p.Pid())
		if err != nil {
			return nil, err
		}
		result[name+" RSS MiB"] = float64(rss) / (1 << 20)
		result[name+" peak RSS MiB"] = float64(peak) / (1 << 20)
	}
	return result, nil
}

// profiledManager returns the arguments that start a manager command,
// with a metrics listener serving its profiles when prof is set.
func profiledManager(prof *profiler, command string) ([]string, profileSource, error) {
	if prof == nil {
		return []string{command}, nil, nil
	}
	addr, err := freeLoopbackAddress()
	if err != nil {
		return nil, nil, err
	}
	return []string{command, "--metrics-bind-address=" + addr, "--profiling"}, listenerProfiles(addr), nil
}

func waitFor(ctx context.Context, what string, done func(context.Context) (bool, error)) error {
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, phaseTimeout, true, done); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

func readyNodes(ctx context.Context, cs kubernetes.Interface, want int) (bool, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return false, err
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready >= want, nil
}

// clearNotReadyTaints does for Ready nodes what the node lifecycle
// controller, which is not running yet, would do: kube-apiserver's
// TaintNodesByCondition admission registers every node with the not-ready
// NoSchedule taint.
func clearNotReadyTaints(ctx context.Context, cs kubernetes.Interface) error {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	return framework.InParallel(ctx, len(nodes.Items), 32, func(ctx context.Context, i int) error {
		node := &nodes.Items[i]
		kept := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule
		})
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = kept
		if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("untainting node %s: %w", node.Name, err)
		}
		return nil
	})
}

// createNamespace creates a namespace and its default ServiceAccount,
// which ServiceAccount admission requires of pods: the scheduling phase
// runs no controller manager to create it.
func createNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	_, err = cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the default ServiceAccount of %s: %w", name, err)
	}
	return nil
}

// benchRequests are modest requests, so that the scheduler's resource
// filters and scores have real numbers to work with.
var benchRequests = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("100m"),
	corev1.ResourceMemory: resource.MustParse("64Mi"),
}

func benchPodSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name:      "app",
		Image:     "bench",
		Resources: corev1.ResourceRequirements{Requests: benchRequests},
	}}}
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}}, Spec: benchPodSpec()}
}

func benchDeployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "bench-deployment"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: benchPodSpec()},
		},
	}
}

// podRecord is what the benchmark saw of one pod: when it was first seen
// bound, and whether it runs and is ready.
type podRecord struct {
	bound   time.Time
	running bool
}

// podTracker follows a namespace's pods through an informer and notes
// when each is bound and whether it runs.
type podTracker struct {
	mu     sync.Mutex
	pods   map[string]*podRecord
	cancel context.CancelFunc
}

func trackPods(ctx context.Context, cs kubernetes.Interface, ns string) (*podTracker, error) {
	t := &podTracker{pods: map[string]*podRecord{}}
	ctx, t.cancel = context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().Pods().Informer()
	observe := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		r, ok := t.pods[pod.Name]
		if !ok {
			r = &podRecord{}
			t.pods[pod.Name] = r
		}
		if pod.Spec.NodeName != "" && r.bound.IsZero() {
			r.bound = now
		}
		r.running = pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil && podReady(pod)
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		t.cancel()
		return nil, fmt.Errorf("watching pods of %s: %w", ns, err)
	}
	factory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.cancel()
		return nil, fmt.Errorf("watching pods of %s: cache did not sync", ns)
	}
	return t, nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (t *podTracker) stop() { t.cancel() }

func (t *podTracker) count(match func(*podRecord) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.pods {
		if match(r) {
			n++
		}
	}
	return n
}

// bindSpan returns when the first and the last pod were seen bound.
func (t *podTracker) bindSpan() (first, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.pods {
		if r.bound.IsZero() {
			continue
		}
		if first.IsZero() || r.bound.Before(first) {
			first = r.bound
		}
		if r.bound.After(last) {
			last = r.bound
		}
	}
	return first, last
}

func printControlPlaneReport(out io.Writer, sc controlPlaneScale, targets []framework.Binaries, results []measurement) {
	fmt.Fprintf(out, "\nControl plane: %d simulated nodes (one `tower node --simulate` process, stopped while the scheduler\nalone is timed), %d pending pods (100m cpu, 64Mi each) bound by `tower scheduler`, a %d-replica\nDeployment through `tower controller-manager`; every component a child process on loopback, etcd with\n--unsafe-no-fsync; the components are Tower's whichever API server serves them; %s\n\n",
		sc.nodes, sc.pods, sc.replicas, time.Now().Format(time.DateTime))
	printTable(out, controlPlaneRows, targets, results)
}
