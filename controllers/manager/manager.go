// Package manager builds the controller-runtime managers Tower runs as its
// control plane: the controller manager (every controller under
// controllers/, enabled by name) and the scheduler. Both talk to the API
// server only, elect a leader through a coordination.k8s.io Lease, and
// serve metrics and health probes.
package manager

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"tower.dev/tower/internal/profiling"
)

// Common are the settings every Tower manager shares.
type Common struct {
	// LeaderElect makes the manager campaign for LeaderElectionID in
	// LeaderElectionNamespace before it starts its controllers.
	LeaderElect             bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election; zero
	// takes kube-controller-manager's 15s/10s/2s.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// MetricsBindAddress serves /metrics; "0" or empty turns it off.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; empty turns it off.
	HealthProbeBindAddress string
	// Profiling serves Go's runtime profiles under /debug/pprof/ on the
	// metrics listener, as kube-scheduler and kube-controller-manager
	// serve them beside /metrics.
	Profiling bool
}

// newManager builds a manager with the shared settings and cacheOpts for
// its informers.
func newManager(cfg *rest.Config, c Common, defaultID string, cacheOpts cache.Options) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building scheme: %w", err)
	}
	id := c.LeaderElectionID
	if id == "" {
		id = defaultID
	}
	ns := c.LeaderElectionNamespace
	if ns == "" {
		ns = "kube-system"
	}
	skipNameValidation := true
	metrics := metricsserver.Options{BindAddress: metricsAddress(c.MetricsBindAddress)}
	if c.Profiling {
		metrics.ExtraHandlers = profiling.Handlers()
	}
	opts := manager.Options{
		Scheme:                     scheme,
		LeaderElection:             c.LeaderElect,
		LeaderElectionID:           id,
		LeaderElectionNamespace:    ns,
		LeaderElectionResourceLock: resourcelock.LeasesResourceLock,
		// A stopping manager hands the Lease over at once instead of
		// making its successor wait out the lease duration.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metrics,
		Cache:                         cacheOpts,
		HealthProbeBindAddress:        c.HealthProbeBindAddress,
		// Several managers may share a process (tower up, tests); names
		// only need to be unique within one.
		Controller: config.Controller{SkipNameValidation: &skipNameValidation},
	}
	if c.LeaseDuration > 0 {
		opts.LeaseDuration = &c.LeaseDuration
	}
	if c.RenewDeadline > 0 {
		opts.RenewDeadline = &c.RenewDeadline
	}
	if c.RetryPeriod > 0 {
		opts.RetryPeriod = &c.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if c.HealthProbeBindAddress != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("adding healthz check: %w", err)
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("adding readyz check: %w", err)
		}
	}
	return mgr, nil
}

func metricsAddress(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}

// Enabled reports whether name is on in an enable list written as
// kube-controller-manager's --controllers: "*" turns on every controller
// that is on by default, "foo" turns foo on, "-foo" turns it off.
func Enabled(list []string, name string, onByDefault bool) bool {
	if slices.Contains(list, "-"+name) {
		return false
	}
	if slices.Contains(list, name) {
		return true
	}
	return onByDefault && slices.Contains(list, "*")
}

// validateEnableList rejects names no controller has, so a typo does not
// silently leave a controller off.
func validateEnableList(list []string, known []string) error {
	for _, entry := range list {
		// Turning off a controller Tower does not have is harmless, and
		// keeps flags written for kube-controller-manager working.
		if entry == "*" || strings.HasPrefix(entry, "-") {
			continue
		}
		if !slices.Contains(known, entry) {
			return fmt.Errorf("unknown controller %q in --controllers (known: %s)", entry, strings.Join(known, ", "))
		}
	}
	return nil
}
