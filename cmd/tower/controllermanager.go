package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"tower.dev/tower/controllers/manager"
	"tower.dev/tower/nodeagent/simulator"
)

func newControllerManagerCommand() *cobra.Command {
	o := manager.NewControllerManagerOptions()
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "controller-manager",
		Short: "Run Tower's controllers (kube-controller-manager)",
		Long: `Run Tower's controllers in one controller-runtime manager: deployment,
replicaset, garbagecollector, namespace, serviceaccount,
root-ca-cert-publisher, endpointslice, endpoint, nodelifecycle,
taint-eviction-controller, job, cronjob, daemonset, statefulset and
podgc. Only one instance is
active at a time: the others wait for the kube-system/kube-controller-manager
Lease.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runManager(cmd.Context(), kubeconfig, func(cfg *rest.Config) (ctrl.Manager, error) {
				return manager.NewControllerManager(cfg, o)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "Path to a kubeconfig; empty uses the in-cluster configuration.")
	fs.StringSliceVar(&o.Controllers, "controllers", o.Controllers, "Controllers to enable: '*' for all on by default, 'foo' to add foo, '-foo' to disable foo. Known: "+fmt.Sprint(manager.ControllerNames()))
	fs.StringVar(&o.RootCAFile, "root-ca-file", o.RootCAFile, "CA bundle published to every namespace as the kube-root-ca.crt ConfigMap; empty disables the publisher.")
	fs.DurationVar(&o.NodeMonitorGracePeriod, "node-monitor-grace-period", o.NodeMonitorGracePeriod, "How long a node may go without renewing its Lease before it is marked Unknown and tainted unreachable.")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", o.ClusterCIDR, "CIDR range the node IPAM controller divides into the nodes' pod subnets.")
	fs.IntVar(&o.NodeCIDRMaskSize, "node-cidr-mask-size", o.NodeCIDRMaskSize, "Mask size of the pod subnet each node gets from --cluster-cidr.")
	fs.IntVar(&o.TerminatedPodGCThreshold, "terminated-pod-gc-threshold", o.TerminatedPodGCThreshold, "Number of terminated pods that can exist before the pod garbage collector deletes the oldest; 0 or less disables that collection.")
	addCommonManagerFlags(fs, &o.Common)
	return cmd
}

// addCommonManagerFlags adds kube-controller-manager's leader election
// flags and controller-runtime's metrics and probe addresses.
func addCommonManagerFlags(fs *pflag.FlagSet, c *manager.Common) {
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "Elect a leader through a Lease before running, so that only one replica acts.")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-elect-resource-namespace", "kube-system", "Namespace of the leader election Lease.")
	fs.StringVar(&c.LeaderElectionID, "leader-elect-resource-name", c.LeaderElectionID, "Name of the leader election Lease.")
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's Lease lasts without renewal.")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it steps down.")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", c.MetricsBindAddress, "Address to serve /metrics on; '0' disables it.")
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", c.HealthProbeBindAddress, "Address to serve /healthz and /readyz on; empty disables them.")
	fs.BoolVar(&c.Profiling, "profiling", c.Profiling, "Serve Go's runtime profiles under /debug/pprof/ on --metrics-bind-address.")
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading client configuration: %w", err)
	}
	return cfg, nil
}

// withControllerLogger routes controller-runtime's logs through klog, as
// the other components log.
func withControllerLogger(ctx context.Context) context.Context {
	logger := klog.Background()
	ctrl.SetLogger(logger)
	return logr.NewContext(ctx, logger)
}

// runManager runs the manager build makes from --kubeconfig until a
// signal arrives.
func runManager(ctx context.Context, kubeconfig string, build func(*rest.Config) (ctrl.Manager, error)) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	ctx = withControllerLogger(ctx)
	mgr, err := build(cfg)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// controlPlaneOptions are what `tower up` runs next to the API server,
// each component with its own identity.
type controlPlaneOptions struct {
	Controllers    []string
	RootCAFile     string
	SimulatedNodes int

	ControllerManager, Scheduler *rest.Config
	// Simulator registers the simulated nodes and reads their pods; each
	// node then writes as itself (system:node:<name>) with the client
	// certificate SimulatedNode returns.
	Simulator     *rest.Config
	SimulatedNode func(name string) (*rest.Config, error)
}

// startControlPlane runs the controller manager, the scheduler and any
// simulated nodes in this process until ctx ends, each counted in running
// until it has stopped. They keep running (and retrying) on their own;
// failures to start are returned, later ones logged.
func startControlPlane(ctx context.Context, o controlPlaneOptions, running *sync.WaitGroup) error {
	log := logr.FromContextOrDiscard(ctx)
	ctrl.SetLogger(log)
	cmOpts := manager.NewControllerManagerOptions()
	cmOpts.Controllers = o.Controllers
	cmOpts.RootCAFile = o.RootCAFile
	cm, err := manager.NewControllerManager(o.ControllerManager, cmOpts)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	sched, err := manager.NewScheduler(o.Scheduler, manager.NewSchedulerOptions())
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	run := func(name string, start func(context.Context) error) {
		running.Go(func() {
			if err := start(ctx); err != nil && ctx.Err() == nil {
				log.Error(err, "Component stopped", "component", name)
			}
		})
	}
	run("controller-manager", cm.Start)
	run("scheduler", sched.Start)
	if o.SimulatedNodes > 0 {
		sim, err := simulator.New(simulator.Config{RESTConfig: o.Simulator, NodeRESTConfig: o.SimulatedNode, Nodes: o.SimulatedNodes})
		if err != nil {
			return fmt.Errorf("simulated nodes: %w", err)
		}
		run("simulated-nodes", sim.Run)
	}
	return nil
}

// startUpControlPlane is `tower up`'s share of startControlPlane, with
// the kubeconfigs up just wrote.
func startUpControlPlane(ctx context.Context, o *upOptions, kubeconfigs upKubeconfigs, simulatedNode func(string) (*rest.Config, error), caFile string, running *sync.WaitGroup) error {
	cp := controlPlaneOptions{
		Controllers:    o.Controllers,
		RootCAFile:     caFile,
		SimulatedNodes: o.SimulatedNodes,
		SimulatedNode:  simulatedNode,
	}
	for _, c := range []struct {
		cfg        **rest.Config
		kubeconfig string
	}{
		{&cp.ControllerManager, kubeconfigs.controllerManager},
		{&cp.Scheduler, kubeconfigs.scheduler},
		{&cp.Simulator, kubeconfigs.admin},
	} {
		cfg, err := restConfig(c.kubeconfig)
		if err != nil {
			return err
		}
		*c.cfg = cfg
	}
	return startControlPlane(ctx, cp, running)
}
