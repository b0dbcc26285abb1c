// Package simulated runs Tower's control plane end to end without
// containers: the API server on an embedded etcd, the controller manager
// and the scheduler as in-process controller-runtime managers, and
// simulated nodes that play the kubelet. Clients are real kubectl (its
// command tree, in process) and client-go. One cluster serves the whole
// test binary; every test works in a namespace of its own.
package simulated

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/controllers/manager"
	"tower.dev/tower/nodeagent/simulator"
	"tower.dev/tower/test/framework"
)

// nodeCount simulated nodes with nodeCPU each: enough room for the tests'
// pods (100m by default request nothing) and small enough that a 100-CPU
// pod fits nowhere.
const (
	nodeCount = 4
	nodeCPU   = "8"
)

// Node heartbeats are sped up so that a silent node is noticed within
// seconds, with room for a loaded machine to delay a few renewals.
const (
	heartbeatInterval      = time.Second
	nodeMonitorGracePeriod = 10 * time.Second
)

// cluster is shared by every test; TestMain sets it up once.
var cluster struct {
	cp        *framework.ControlPlane
	clientset kubernetes.Interface
	sim       *simulator.Simulator
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	// client-go's event broadcasters and leader election log through
	// klog; their complaints while the cluster shuts down are noise.
	klog.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startCtx, startCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer startCancel()
	cp, err := framework.New(startCtx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	cluster.cp = cp
	cluster.clientset = cp.Clientset()

	stopped, err := startManagers(ctx, cp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting managers: %v\n", err)
		return 1
	}
	if err := waitNodesSchedulable(startCtx, cluster.clientset); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for the simulated nodes: %v\n", err)
		cancel()
		return 1
	}
	code := m.Run()
	cancel()
	for _, done := range stopped {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "manager stopped with: %v\n", err)
		}
	}
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// waitNodesSchedulable waits, as a user of a fresh cluster would, until
// every simulated node is Ready and the node lifecycle controller has
// lifted the not-ready taint new nodes are registered with: until then
// DaemonSets rightly have no node to run on.
func waitNodesSchedulable(ctx context.Context, cs kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		schedulable := 0
		for _, node := range nodes.Items {
			tainted := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
			ready := slices.ContainsFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool {
				return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			})
			if ready && !tainted {
				schedulable++
			}
		}
		return schedulable == nodeCount, nil
	})
}

// startManagers runs the controller manager, the scheduler and the
// simulated nodes until ctx ends, each with its own identity as tower up
// runs them (so the bootstrap policy, the Node authorizer and
// NodeRestriction are part of every test); each channel reports one's
// exit.
func startManagers(ctx context.Context, cp *framework.ControlPlane) ([]chan error, error) {
	cmConfig, err := cp.ConfigFor("system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	schedConfig, err := cp.ConfigFor("system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	cmOpts := manager.NewControllerManagerOptions()
	cmOpts.RootCAFile = cp.Config.CAFile
	cmOpts.NodeMonitorGracePeriod = nodeMonitorGracePeriod
	cmOpts.PodGCPeriod = time.Second
	cm, err := manager.NewControllerManager(cmConfig, cmOpts)
	if err != nil {
		return nil, err
	}
	sched, err := manager.NewScheduler(schedConfig, manager.NewSchedulerOptions())
	if err != nil {
		return nil, err
	}
	sim, err := simulator.New(simulator.Config{
		RESTConfig: cp.Config,
		NodeRESTConfig: func(name string) (*rest.Config, error) {
			return cp.ConfigFor("system:node:"+name, "system:nodes")
		},
		Nodes:             nodeCount,
		HeartbeatInterval: heartbeatInterval,
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(nodeCPU),
			corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		},
	})
	if err != nil {
		return nil, err
	}
	cluster.sim = sim
	run := func(start func(context.Context) error) chan error {
		done := make(chan error, 1)
		go func() { done <- start(ctx) }()
		return done
	}
	return []chan error{run(cm.Start), run(sched.Start), run(sim.Run)}, nil
}

// eventually polls condition until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, description string, condition func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, condition)
	if err != nil {
		t.Fatalf("waiting for %s: %v", description, err)
	}
}

// kubectl runs kubectl's own command tree with args against the test
// cluster and returns its output; a non-zero exit fails the test.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runKubectl(args ...string) (output string, err error) {
	return framework.RunKubectl(cluster.cp.KubeconfigPath, nil, args...)
}
