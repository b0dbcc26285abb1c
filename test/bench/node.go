package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/framework"
	"tower.dev/tower/test/images/imagebuild"
)

// nodeScale sizes the node benchmark.
type nodeScale struct {
	// latencyPods are created at latencyRate per second; each one's time
	// from create to Running is a sample.
	latencyPods int
	latencyRate float64
	// The ramp adds rampBatch pods at a time until a batch does not come
	// up within rampPodTimeout, its p99 start exceeds rampDegraded,
	// rampMaxPods run, or rampBudget has passed.
	rampBatch      int
	rampMaxPods    int
	rampPodTimeout time.Duration
	rampDegraded   time.Duration
	rampBudget     time.Duration
	// rampMinAvailable stops the ramp before the machine, shared with
	// others, runs short of memory: a fraction of MemTotal that must stay
	// available.
	rampMinAvailable float64
}

var (
	nodeFullScale = nodeScale{
		latencyPods: 50, latencyRate: 5,
		rampBatch: 25, rampMaxPods: 500, rampPodTimeout: 2 * time.Minute, rampDegraded: 30 * time.Second, rampBudget: 8 * time.Minute,
		rampMinAvailable: 0.25,
	}
	nodeShortScale = nodeScale{
		latencyPods: 10, latencyRate: 5,
		rampBatch: 10, rampMaxPods: 30, rampPodTimeout: time.Minute, rampDegraded: 30 * time.Second, rampBudget: 2 * time.Minute,
		rampMinAvailable: 0.25,
	}
)

const (
	benchNodeName = "bench-node"
	// benchPodCIDR leaves room for the ramp: 1022 pod addresses.
	benchPodCIDR = "10.254.96.0/22"
	benchNodeIP  = "10.254.96.1"
)

// nodeBenchUnavailable says why this machine cannot run a real node, or
// is empty when it can.
func nodeBenchUnavailable() string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			missing = append(missing, "CNI plugin "+plugin)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "the node benchmark runs a real node and needs " + strings.Join(missing, ", ") + " (make deps installs the packages; run as root)"
}

// benchNode is a control plane and one real `tower node` process with a
// private containerd, inside a network namespace of its own.
type benchNode struct {
	cp        *framework.ControlPlane
	client    kubernetes.Interface
	agent     *framework.Process
	hostNetNS string
}

// nodeBenchmark measures one real node: pod start latency, how many pods
// it holds, and the agent's memory.
func nodeBenchmark(ctx context.Context, sc nodeScale, towerBin string, keep bool) error {
	log := logr.FromContextOrDiscard(ctx)
	if reason := nodeBenchUnavailable(); reason != "" {
		log.Info("skipping the node benchmark", "reason", reason)
		return nil
	}
	dir, towerBin, cleanup, err := prepareRun(ctx, "tower-bench-node-", towerBin, keep)
	if err != nil {
		return err
	}
	defer cleanup()
	imagesDir := filepath.Join(dir, "images")
	if _, err := imagebuild.Build(ctx, imagesDir); err != nil {
		return fmt.Errorf("building test images: %w", err)
	}
	n, err := startBenchNode(ctx, dir, towerBin, imagesDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := n.stop(); err != nil {
			log.Error(err, "stopping the node")
		}
	}()

	report := measurement{}
	recordLoad(report, "load average before")
	idle, err := statusKB(n.agent.Pid(), "VmRSS:")
	if err != nil {
		return err
	}
	report["agent RSS idle MiB"] = float64(idle) / (1 << 20)

	log.Info("measuring pod start latency", "pods", sc.latencyPods, "perSecond", sc.latencyRate)
	latencies, err := n.startPods(ctx, "latency", 0, sc.latencyPods, sc.latencyRate, sc.rampPodTimeout)
	if err != nil {
		return err
	}
	report["start latency p50 s"] = percentile(latencies, 50).Seconds()
	report["start latency p99 s"] = percentile(latencies, 99).Seconds()
	report["start latency max s"] = percentile(latencies, 100).Seconds()
	recordLoad(report, "load average after latency")
	withPods, err := statusKB(n.agent.Pid(), "VmRSS:")
	if err != nil {
		return err
	}
	report[fmt.Sprintf("agent RSS with %d pods MiB", sc.latencyPods)] = float64(withPods) / (1 << 20)

	held, why, err := n.ramp(ctx, sc, sc.latencyPods)
	if err != nil {
		return err
	}
	report["pods held"] = float64(held)
	recordLoad(report, "load average at ramp end")
	if rss, err := statusKB(n.agent.Pid(), "VmRSS:"); err == nil {
		report["agent RSS at ramp end MiB"] = float64(rss) / (1 << 20)
	}
	if peak, err := peakRSS(n.agent.Pid()); err == nil {
		report["agent peak RSS MiB"] = float64(peak) / (1 << 20)
	}
	if err := n.deleteAllPods(ctx); err != nil {
		return err
	}
	printNodeReport(sc, report, held, why)
	return nil
}

func printNodeReport(sc nodeScale, report measurement, held int, why string) {
	fmt.Printf("\nOne real node (tower node + private containerd + runc + CNI bridge), echo image imported locally;\n%d pods created at %.0f/s for latency (create to Running, seen by a watch); ramp in batches of %d; %s\n\n",
		sc.latencyPods, sc.latencyRate, sc.rampBatch, time.Now().Format(time.DateTime))
	for _, name := range []string{
		"start latency p50 s", "start latency p99 s", "start latency max s",
		"agent RSS idle MiB", fmt.Sprintf("agent RSS with %d pods MiB", sc.latencyPods), "agent RSS at ramp end MiB", "agent peak RSS MiB", "pods held",
		"load average before", "load average after latency", "load average at ramp end",
	} {
		fmt.Printf("%-32s %s\n", name, formatValue(report[name]))
	}
	fmt.Printf("\nThe ramp stopped at %d running pods: %s.\n", held, why)
}

// recordLoad puts the machine's one-minute load average under name; the
// machine is shared, so figures mean little without it.
func recordLoad(report measurement, name string) {
	if load, err := loadAverage(); err == nil {
		report[name] = load
	}
}

func startBenchNode(ctx context.Context, dir, towerBin, imagesDir string) (*benchNode, error) {
	cpDir := filepath.Join(dir, "control-plane")
	if err := os.MkdirAll(cpDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cpDir, err)
	}
	cp, err := framework.StartProcesses(ctx, cpDir, framework.TowerBinaries(towerBin))
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	// The ServiceAccount admission plugin wants the namespace's default
	// ServiceAccount, which a controller manager (not run here) would make.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := cp.Clientset().CoreV1().ServiceAccounts(metav1.NamespaceDefault).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, errors.Join(fmt.Errorf("creating the default service account: %w", err), cp.Stop())
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := &benchNode{cp: cp, client: cp.Clientset(), hostNetNS: "tower-bench-" + hex.EncodeToString(suffix)}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", n.hostNetNS).CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("ip netns add: %v: %s", err, out), cp.Stop())
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", n.hostNetNS, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("ip link set lo up: %v: %s", err, out), n.stop())
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, errors.Join(err, n.stop())
	}
	n.agent, err = framework.StartProcess("node", filepath.Join(dir, "node.log"), towerBin, "node",
		"--kubeconfig", cp.KubeconfigPath,
		"--node-name", benchNodeName,
		"--data-dir", filepath.Join(dir, "node"),
		"--containerd-namespace", n.hostNetNS,
		"--images-dir", imagesDir,
		"--pod-cidr", benchPodCIDR,
		"--node-ip", benchNodeIP,
		"--host-netns", n.hostNetNS,
		"--address", "127.0.0.1",
		"--port", strconv.Itoa(port),
	)
	if err != nil {
		return nil, errors.Join(err, n.stop())
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		node, err := n.client.CoreV1().Nodes().Get(ctx, benchNodeName, metav1.GetOptions{})
		if err == nil && nodeReady(node) {
			return n, nil
		}
		if exited, exitErr := n.agent.Exited(); exited {
			return nil, errors.Join(fmt.Errorf("the node exited: %v\n%s", exitErr, n.agent.LogTail(4096)), n.stop())
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("the node was not Ready within 2 minutes\n%s", n.agent.LogTail(4096)), n.stop())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// freeLoopbackPort asks the kernel for a free loopback port.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop deletes what the run left and stops the node, then the control
// plane. The node goes first with its pods deleted, so no container
// outlives the run.
func (n *benchNode) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	var errs []error
	if n.agent != nil {
		errs = append(errs, n.deleteAllPods(ctx), n.agent.Stop(ctx, time.Minute))
	}
	if out, err := exec.Command("ip", "netns", "delete", n.hostNetNS).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("ip netns delete: %v: %s", err, out))
	}
	errs = append(errs, n.cp.Stop())
	return errors.Join(errs...)
}

// deleteAllPods deletes the run's pods gracefully and waits until they are
// gone: the node removes a gracefully deleted pod only once its containers
// and network are, so nothing outlives the run when the node stops next.
func (n *benchNode) deleteAllPods(ctx context.Context) error {
	pods := n.client.CoreV1().Pods(metav1.NamespaceDefault)
	if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("deleting pods: %w", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := pods.List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing pods: %w", err)
		}
		if len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pods left 5 minutes after their deletion", len(list.Items))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startPods creates count pods named <prefix>-<i> (i from first) at rate
// per second and returns each one's time from create to Running, as a
// watch sees it. A pod not Running within timeout is an error.
func (n *benchNode) startPods(ctx context.Context, prefix string, first, count int, rate float64, timeout time.Duration) ([]time.Duration, error) {
	pods := n.client.CoreV1().Pods(metav1.NamespaceDefault)
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "bench=" + prefix})
	if err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	defer w.Stop()

	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Duration{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for event := range w.ResultChan() {
			pod, ok := event.Object.(*corev1.Pod)
			if !ok || event.Type == watch.Deleted || pod.Status.Phase != corev1.PodRunning {
				continue
			}
			now := time.Now()
			mu.Lock()
			if start, ok := created[pod.Name]; ok {
				if _, seen := running[pod.Name]; !seen {
					running[pod.Name] = now.Sub(start)
				}
			}
			finished := len(running) == count
			mu.Unlock()
			if finished {
				return
			}
		}
	}()

	interval := time.Duration(float64(time.Second) / rate)
	for i := first; i < first+count; i++ {
		name := fmt.Sprintf("%s-%04d", prefix, i)
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		_, err := pods.Create(ctx, nodeBenchPod(name, prefix), metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating pod %s: %w", name, err)
		}
		time.Sleep(interval)
	}
	select {
	case <-done:
	case <-time.After(timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	latencies := make([]time.Duration, 0, len(running))
	for _, d := range running {
		latencies = append(latencies, d)
	}
	if len(latencies) < count {
		return latencies, fmt.Errorf("%d of %d pods Running %s after the last was created", len(latencies), count, timeout)
	}
	return latencies, nil
}

func nodeBenchPod(name, group string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": group}},
		Spec: corev1.PodSpec{
			NodeName:                      benchNodeName,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			// The echo server needs no API access: no token volume.
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name:            "echo",
				Image:           imagebuild.EchoImage,
				ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

// ramp adds batches of pods to the running ones until the node stops
// keeping up, and returns how many ran and why it stopped.
func (n *benchNode) ramp(ctx context.Context, sc nodeScale, running int) (int, string, error) {
	log := logr.FromContextOrDiscard(ctx)
	deadline := time.Now().Add(sc.rampBudget)
	for batch := 0; ; batch++ {
		switch {
		case running >= sc.rampMaxPods:
			return running, fmt.Sprintf("the run's limit of %d pods", sc.rampMaxPods), nil
		case time.Now().After(deadline):
			return running, fmt.Sprintf("the run's time budget of %s", sc.rampBudget), nil
		}
		if available, total, err := memAvailable(); err == nil && float64(available) < sc.rampMinAvailable*float64(total) {
			return running, fmt.Sprintf("the machine's available memory fell to %d MiB of %d MiB (the ramp keeps %.0f%% free)",
				available>>20, total>>20, sc.rampMinAvailable*100), nil
		}
		log.Info("ramp", "running", running, "adding", sc.rampBatch)
		// As fast as the API takes them: the node sees a burst.
		latencies, err := n.startPods(ctx, fmt.Sprintf("ramp%d", batch), running, sc.rampBatch, 50, sc.rampPodTimeout)
		if errors.Is(err, context.Canceled) {
			return running, "", err
		}
		if err != nil {
			return running + len(latencies), "a batch did not start: " + err.Error(), nil
		}
		running += len(latencies)
		if p99 := percentile(latencies, 99); p99 > sc.rampDegraded {
			return running, fmt.Sprintf("a batch's p99 start latency reached %s (limit %s)", p99.Round(time.Millisecond), sc.rampDegraded), nil
		}
		if n.podFailed(ctx) {
			return running, "a pod failed", nil
		}
	}
}

// podFailed reports whether any pod of the run is not Running.
func (n *benchNode) podFailed(ctx context.Context) bool {
	list, err := n.client.CoreV1().Pods(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
	if err != nil {
		return !apierrors.IsNotFound(err)
	}
	for _, p := range list.Items {
		if p.Status.Phase != corev1.PodRunning {
			return true
		}
	}
	return false
}
