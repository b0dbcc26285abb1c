package manager

import (
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"tower.dev/tower/controllers/cronjob"
	"tower.dev/tower/controllers/daemonset"
	"tower.dev/tower/controllers/deployment"
	"tower.dev/tower/controllers/disruption"
	"tower.dev/tower/controllers/endpoints"
	"tower.dev/tower/controllers/endpointslice"
	"tower.dev/tower/controllers/garbagecollector"
	"tower.dev/tower/controllers/job"
	"tower.dev/tower/controllers/namespace"
	"tower.dev/tower/controllers/nodeipam"
	"tower.dev/tower/controllers/nodelifecycle"
	"tower.dev/tower/controllers/podgc"
	"tower.dev/tower/controllers/replicaset"
	"tower.dev/tower/controllers/resourcequota"
	"tower.dev/tower/controllers/rootcacert"
	"tower.dev/tower/controllers/scheduler"
	"tower.dev/tower/controllers/serviceaccount"
	"tower.dev/tower/controllers/statefulset"
	"tower.dev/tower/controllers/tainteviction"
	"tower.dev/tower/controllers/validatingadmissionpolicystatus"
)

// ControllerManagerOptions configure `tower controller-manager`.
type ControllerManagerOptions struct {
	Common
	// Controllers is the enable list, as --controllers: "*" for every
	// controller on by default, "name" to add one, "-name" to drop one.
	Controllers []string
	// RootCAFile is the PEM bundle published as kube-root-ca.crt; empty
	// turns the publisher off.
	RootCAFile string
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its Lease before it is marked Unknown and tainted unreachable, as
	// --node-monitor-grace-period.
	NodeMonitorGracePeriod time.Duration
	// TerminatedPodGCThreshold is how many terminated pods may exist
	// before pod GC deletes the oldest, as --terminated-pod-gc-threshold.
	TerminatedPodGCThreshold int
	// PodGCPeriod is how often pod GC runs (20s when zero).
	PodGCPeriod time.Duration
	// StalePodDisruptionTimeout is how long a pod that is not being
	// deleted may carry DisruptionTarget=True before the disruption
	// controller resets it (2m when zero; upstream has no flag).
	StalePodDisruptionTimeout time.Duration
	// ClusterCIDR and NodeCIDRMaskSize are --cluster-cidr and
	// --node-cidr-mask-size: node IPAM gives each node a subnet of that
	// size from the cluster CIDR.
	ClusterCIDR      string
	NodeCIDRMaskSize int
}

// NewControllerManagerOptions returns the defaults of
// kube-controller-manager: every default controller, leader election on.
func NewControllerManagerOptions() ControllerManagerOptions {
	return ControllerManagerOptions{
		Common: Common{
			LeaderElect:            true,
			LeaderElectionID:       "kube-controller-manager",
			MetricsBindAddress:     "0",
			HealthProbeBindAddress: "",
			Profiling:              true,
		},
		Controllers:              []string{"*"},
		NodeMonitorGracePeriod:   nodelifecycle.DefaultGracePeriod,
		TerminatedPodGCThreshold: podgc.DefaultTerminatedPodThreshold,
		ClusterCIDR:              nodeipam.DefaultClusterCIDR,
		NodeCIDRMaskSize:         nodeipam.DefaultMaskSize,
	}
}

// controllerManagerQPS and controllerManagerBurst apply when the config
// does not set its own limits.
const controllerManagerQPS, controllerManagerBurst = 500, 1000

// controllerSpec is one controller the manager can run.
type controllerSpec struct {
	name        string
	onByDefault bool
	setup       func(manager.Manager, ControllerManagerOptions) error
}

func controllerSpecs() []controllerSpec {
	plain := func(f func(manager.Manager) error) func(manager.Manager, ControllerManagerOptions) error {
		return func(m manager.Manager, _ ControllerManagerOptions) error { return f(m) }
	}
	return []controllerSpec{
		{deployment.Name, true, plain(deployment.SetupWithManager)},
		{replicaset.Name, true, plain(replicaset.SetupWithManager)},
		{garbagecollector.Name, true, plain(garbagecollector.SetupWithManager)},
		{namespace.Name, true, plain(namespace.SetupWithManager)},
		{serviceaccount.Name, true, plain(serviceaccount.SetupWithManager)},
		{resourcequota.Name, true, plain(resourcequota.SetupWithManager)},
		{rootcacert.Name, true, func(m manager.Manager, o ControllerManagerOptions) error {
			if o.RootCAFile == "" {
				return nil
			}
			return rootcacert.SetupWithManager(m, o.RootCAFile)
		}},
		{endpointslice.Name, true, plain(endpointslice.SetupWithManager)},
		{endpoints.Name, true, plain(endpoints.SetupWithManager)},
		{nodelifecycle.Name, true, func(m manager.Manager, o ControllerManagerOptions) error {
			return nodelifecycle.SetupWithManager(m, nodelifecycle.Options{GracePeriod: o.NodeMonitorGracePeriod})
		}},
		{tainteviction.Name, true, plain(tainteviction.SetupWithManager)},
		{validatingadmissionpolicystatus.Name, true, plain(validatingadmissionpolicystatus.SetupWithManager)},
		{job.Name, true, plain(job.SetupWithManager)},
		{cronjob.Name, true, plain(cronjob.SetupWithManager)},
		{daemonset.Name, true, plain(daemonset.SetupWithManager)},
		{statefulset.Name, true, plain(statefulset.SetupWithManager)},
		{disruption.Name, true, func(m manager.Manager, o ControllerManagerOptions) error {
			return disruption.SetupWithManager(m, disruption.Options{StalePodDisruptionTimeout: o.StalePodDisruptionTimeout})
		}},
		{nodeipam.Name, true, func(m manager.Manager, o ControllerManagerOptions) error {
			return nodeipam.SetupWithManager(m, nodeipam.Options{ClusterCIDR: o.ClusterCIDR, MaskSize: o.NodeCIDRMaskSize})
		}},
		{podgc.Name, true, func(m manager.Manager, o ControllerManagerOptions) error {
			return podgc.SetupWithManager(m, podgc.Options{TerminatedPodThreshold: o.TerminatedPodGCThreshold, Period: o.PodGCPeriod})
		}},
	}
}

// ControllerNames lists every controller the controller manager knows.
func ControllerNames() []string {
	var names []string
	for _, spec := range controllerSpecs() {
		names = append(names, spec.name)
	}
	return names
}

// NewControllerManager builds the controller manager with the enabled
// controllers registered; the caller starts it with Start(ctx).
func NewControllerManager(cfg *rest.Config, o ControllerManagerOptions) (manager.Manager, error) {
	specs := controllerSpecs()
	if err := validateEnableList(o.Controllers, ControllerNames()); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		// client-go's default of 5 would throttle a 1000-pod rollout
		// to minutes.
		cfg.QPS, cfg.Burst = controllerManagerQPS, controllerManagerBurst
	}
	mgr, err := newManager(cfg, o.Common, "kube-controller-manager", cache.Options{})
	if err != nil {
		return nil, err
	}
	for _, spec := range specs {
		if !Enabled(o.Controllers, spec.name, spec.onByDefault) {
			continue
		}
		if err := spec.setup(mgr, o); err != nil {
			return nil, fmt.Errorf("setting up controller %s: %w", spec.name, err)
		}
	}
	return mgr, nil
}

// SchedulerOptions configure `tower scheduler`.
type SchedulerOptions struct {
	Common
	Scheduler scheduler.Options
}

// NewSchedulerOptions returns kube-scheduler's defaults: leader election
// on, the default scheduler name.
func NewSchedulerOptions() SchedulerOptions {
	return SchedulerOptions{
		Common: Common{
			LeaderElect:        true,
			LeaderElectionID:   "kube-scheduler",
			MetricsBindAddress: "0",
			Profiling:          true,
		},
		Scheduler: scheduler.Options{SchedulerName: scheduler.DefaultSchedulerName},
	}
}

// NewScheduler builds the scheduler manager; the caller starts it. Its
// client has no client-side rate limit: binding is the scheduler's hot
// path and the API server does its own flow control. A negative QPS is
// client-go's "no limiter", which also spares every request the limiter's
// bookkeeping.
func NewScheduler(cfg *rest.Config, o SchedulerOptions) (manager.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	mgr, err := newManager(cfg, o.Common, "kube-scheduler", scheduler.CacheOptions())
	if err != nil {
		return nil, err
	}
	if err := scheduler.SetupWithManager(mgr, o.Scheduler); err != nil {
		return nil, fmt.Errorf("setting up scheduler: %w", err)
	}
	return mgr, nil
}
