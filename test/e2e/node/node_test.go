// Package node_test runs the node agent against a real containerd, runc and
// CNI plugins, as root, inside a network namespace the test creates, so the
// machine's own network is never touched.
package node_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"tower.dev/tower/nodeagent"
	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/podnet"
	"tower.dev/tower/test/framework"
	"tower.dev/tower/test/images/imagebuild"
)

const nodeName = "e2e-node"

// requireNodeFacilities skips the test when the machine cannot run pods,
// except in CI, which installs everything and must run it.
func requireNodeFacilities(t *testing.T) {
	t.Helper()
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
		if _, err := os.Stat(filepath.Join(podnet.DefaultBinDir, plugin)); err != nil {
			missing = append(missing, "CNI plugin "+plugin)
		}
	}
	if len(missing) == 0 {
		return
	}
	reason := "node e2e needs " + strings.Join(missing, ", ") + " (make deps installs the packages; run as root)"
	if os.Getenv("CI") == "" {
		t.Skip(reason)
	}
	t.Fatal(reason)
}

// node is an agent running against a private containerd inside a host
// network namespace of its own.
type node struct {
	config *rest.Config
	// kubeconfig holds the admin credentials for kubectl.
	kubeconfig string
	client     kubernetes.Interface
	runtime    *containers.Runtime
	hostNetNS  string
	rootDir    string

	agentConfig nodeagent.Config
	logger      logr.Logger
	// agent is the running agent; nil while it is stopped.
	agent *runningAgent
}

type runningAgent struct {
	stop func()
	done chan error
}

// startAgent runs the node agent until stopAgent.
func (n *node) startAgent() {
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{stop: cancel, done: make(chan error, 1)}
	go func() { a.done <- nodeagent.Run(logr.NewContext(ctx, n.logger), n.agentConfig) }()
	n.agent = a
}

// stopAgent stops the agent as a node going down does: its containers
// keep running.
func (n *node) stopAgent(t *testing.T) {
	t.Helper()
	if n.agent == nil {
		return
	}
	n.agent.stop()
	select {
	case err := <-n.agent.done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("agent did not stop within 30s")
	}
	n.agent = nil
}

// nodeSetup adjusts the control plane and the agent a test starts.
type nodeSetup struct {
	controlPlane []framework.Option
	agent        func(*nodeagent.Config)
}

func startNode(t *testing.T) *node {
	t.Helper()
	return startNodeWith(t, nodeSetup{})
}

func startNodeWith(t *testing.T, setup nodeSetup) *node {
	t.Helper()
	requireNodeFacilities(t)
	ctx := t.Context()
	dir := t.TempDir()
	suffix := randomSuffix(t)

	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	logger := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintln(logFile, time.Now().Format(time.StampMilli), prefix, args)
	}, funcr.Options{Verbosity: 4})
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", data)
		}
	})

	imagesDir := filepath.Join(dir, "images")
	if _, err := imagebuild.Build(ctx, imagesDir); err != nil {
		t.Fatalf("building test images: %v", err)
	}

	cp := framework.Start(t, setup.controlPlane...)

	hostNetNS := "tower-e2e-" + suffix
	run(t, "ip", "netns", "add", hostNetNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", hostNetNS).Run() })
	run(t, "ip", "-n", hostNetNS, "link", "set", "lo", "up")

	daemon, err := containers.StartDaemon(ctx, containers.DaemonConfig{Dir: filepath.Join(dir, "containerd")})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := daemon.Stop(context.Background()); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	namespace := "tower-e2e-" + suffix
	rt, err := containers.Connect(ctx, daemon.Address, namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAllContainers(t, rt) })

	rootDir := filepath.Join(dir, "node")
	agentConfig := nodeagent.Config{
		NodeName:            nodeName,
		RESTConfig:          cp.Config,
		ContainerdAddress:   daemon.Address,
		ContainerdNamespace: namespace,
		RootDir:             rootDir,
		ImagesDir:           imagesDir,
		PodCIDR:             "10.254.7.0/24",
		Bridge:              "tower" + suffix[:6],
		HostNetNS:           hostNetNS,
		NodeIP:              "10.254.7.1",
		// The API server does not reach into the host namespace; tests
		// that need the agent's server move it to loopback.
		ServerAddress: "127.0.0.1:0",
	}
	if setup.agent != nil {
		setup.agent(&agentConfig)
	}
	n := &node{config: cp.Config, kubeconfig: cp.KubeconfigPath, client: cp.Clientset(), runtime: rt, hostNetNS: hostNetNS, rootDir: rootDir, agentConfig: agentConfig, logger: logger}
	n.startAgent()
	t.Cleanup(func() { n.stopAgent(t) })
	// Runs before the agent stops: pods left by the test go through the
	// agent's own clean-up, and what it misses is unmounted here.
	t.Cleanup(func() { n.removeAllPods(t) })
	waitFor(t, 60*time.Second, "node Ready", func() (bool, error) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	return n
}

func (n *node) removeAllPods(t *testing.T) {
	ctx := context.Background()
	pods, err := n.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("listing pods: %v", err)
	}
	for _, pod := range pods.Items {
		err := n.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting pod %s: %v", pod.Name, err)
		}
	}
	netnsDir := filepath.Join(n.rootDir, "network", "netns")
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(netnsDir)
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d pod network namespaces left after the pods were deleted", len(entries))
			for _, e := range entries {
				_ = unix.Unmount(filepath.Join(netnsDir, e.Name()), unix.MNT_DETACH)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func removeAllContainers(t *testing.T, rt *containers.Runtime) {
	ctx := context.Background()
	list, err := rt.List(ctx, "tower.dev/pod-uid")
	if err != nil {
		t.Errorf("listing leftover containers: %v", err)
	}
	for _, c := range list {
		if err := rt.Remove(ctx, c.ID); err != nil {
			t.Errorf("removing leftover container %s: %v", c.ID, err)
		}
	}
	_ = rt.Close()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (n *node) createPod(t *testing.T, namespace, name, image string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	if mutate != nil {
		mutate(pod)
	}
	created, err := n.client.CoreV1().Pods(namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return created
}

func (n *node) waitPod(t *testing.T, namespace, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	waitFor(t, timeout, fmt.Sprintf("pod %s: %s", name, what), func() (bool, error) {
		pod, err := n.client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Not yet (a mirror pod) or not any more (being recreated).
			return false, nil
		}
		if err != nil {
			return false, err
		}
		last = pod
		return cond(pod), nil
	})
	return last
}

// httpGetInHostNetwork sends GET / to addr from inside the node's host
// network namespace and returns the body. A Running container may not be
// listening yet (the echo pods carry no readiness probe), so a refused
// connection is retried for a few seconds.
func (n *node) httpGetInHostNetwork(t *testing.T, addr string) string {
	t.Helper()
	var conn net.Conn
	dial := func() error {
		return ns.WithNetNSPath(filepath.Join("/run/netns", n.hostNetNS), func(ns.NetNS) error {
			var err error
			conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
			return err
		})
	}
	err := dial()
	for deadline := time.Now().Add(10 * time.Second); errors.Is(err, unix.ECONNREFUSED) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		err = dial()
	}
	if err != nil {
		t.Fatalf("dialing %s in %s: %v", addr, n.hostNetNS, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return strings.TrimSpace(string(body))
}

// createNamespace creates a namespace with what the controller manager
// (which these tests do not run) would add: the default ServiceAccount,
// which the ServiceAccount admission plugin requires of pods, and the
// kube-root-ca.crt ConfigMap a service-account volume projects. The
// ServiceAccount does not automount a token: the test control plane does
// not serve TokenRequest.
func (n *node) createNamespace(t *testing.T, name string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := n.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	if _, err := n.client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, AutomountServiceAccountToken: ptr.To(false)}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the default service account: %v", err)
	}
	ca := n.config.CAData
	if len(ca) == 0 {
		var err error
		if ca, err = os.ReadFile(n.config.CAFile); err != nil {
			t.Fatalf("reading the cluster CA: %v", err)
		}
	}
	rootCA := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(ca)}}
	if _, err := n.client.CoreV1().ConfigMaps(name).Create(ctx, rootCA, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the root CA config map: %v", err)
	}
	return name
}

func TestPodsOnRealContainerd(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	namespace := n.createNamespace(t, "e2e")

	echo := n.createPod(t, namespace, "echo", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		}
	})
	crash := n.createPod(t, namespace, "crash", imagebuild.CrashloopImage, nil)
	// Nothing listens on 8081: the liveness probe fails and the agent
	// restarts the container.
	unhealthy := n.createPod(t, namespace, "unhealthy", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8081)}},
			PeriodSeconds:    1,
			FailureThreshold: 2,
		}
	})

	running := n.waitPod(t, namespace, echo.Name, 60*time.Second, "Running with an IP", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	cs := running.Status.ContainerStatuses[0]
	if !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.ImageID == "" || cs.State.Running == nil {
		t.Errorf("container status incomplete: %+v", cs)
	}
	if running.Status.HostIP != "10.254.7.1" || running.Status.StartTime == nil {
		t.Errorf("hostIP %q startTime %v", running.Status.HostIP, running.Status.StartTime)
	}

	t.Run("HTTP to the pod IP answers with the pod name", func(t *testing.T) {
		body := n.httpGetInHostNetwork(t, net.JoinHostPort(running.Status.PodIP, "8080"))
		if body != echo.Name {
			t.Errorf("got %q, want %q", body, echo.Name)
		}
	})

	t.Run("lease is renewed", func(t *testing.T) {
		lease, err := n.client.CoordinationV1().Leases("kube-node-lease").Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lease.Spec.RenewTime == nil || ptr.Deref(lease.Spec.HolderIdentity, "") != nodeName {
			t.Errorf("lease spec %+v", lease.Spec)
		}
	})

	t.Run("crash-looper shows CrashLoopBackOff", func(t *testing.T) {
		pod := n.waitPod(t, namespace, crash.Name, 60*time.Second, "CrashLoopBackOff", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) != 1 {
				return false
			}
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == "CrashLoopBackOff"
		})
		cs := pod.Status.ContainerStatuses[0]
		if cs.RestartCount < 1 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
			t.Errorf("restartCount %d lastState %+v", cs.RestartCount, cs.LastTerminationState)
		}
		if pod.Status.Phase != corev1.PodRunning {
			t.Errorf("phase %s, want Running (restarting)", pod.Status.Phase)
		}
	})

	t.Run("failing liveness probe restarts the container", func(t *testing.T) {
		pod := n.waitPod(t, namespace, unhealthy.Name, 60*time.Second, "restarted", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		if last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil {
			t.Errorf("no lastState.terminated after a liveness restart: %+v", pod.Status.ContainerStatuses[0])
		}
	})

	t.Run("deletion stops the processes within the grace period and removes the netns", func(t *testing.T) {
		netnsDir := filepath.Join(n.rootDir, "network", "netns")
		before, _ := os.ReadDir(netnsDir)
		start := time.Now()
		if err := n.client.CoreV1().Pods(namespace).Delete(ctx, echo.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "echo pod gone", func() (bool, error) {
			_, err := n.client.CoreV1().Pods(namespace).Get(ctx, echo.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		if took := time.Since(start); took > 5*time.Second+2*time.Second {
			t.Errorf("deletion took %s, grace period is 5s", took)
		}
		list, err := n.runtime.List(ctx, "tower.dev/pod-uid")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Labels["tower.dev/pod-uid"] == string(echo.UID) {
				t.Errorf("container %s of the deleted pod is still there (running=%v)", c.ID, c.Running)
			}
		}
		after, _ := os.ReadDir(netnsDir)
		if len(after) != len(before)-1 {
			t.Errorf("network namespaces: %d before deletion, %d after", len(before), len(after))
		}
	})
}
