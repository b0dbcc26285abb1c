package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/klog/v2"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/apiserver/storage/embedded"
	"tower.dev/tower/cmd/tower/internal/version"
)

// kubeAPIServerFlags are kube-apiserver flags that Tower accepts but does
// not act on yet, so that tools which start kube-apiserver with them
// (envtest passes most of these) start Tower unchanged. They are parsed and
// kept here until the features they configure are wired in.
type kubeAPIServerFlags struct {
	AdvertiseAddress          string
	AllowPrivileged           bool
	EnablePriorityAndFairness bool
	FeatureGates              map[string]bool
	RuntimeConfig             cliflag.ConfigurationMap
}

func newKubeAPIServerFlags() *kubeAPIServerFlags {
	return &kubeAPIServerFlags{
		EnablePriorityAndFairness: true,
		RuntimeConfig:             cliflag.ConfigurationMap{},
	}
}

func (f *kubeAPIServerFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.AdvertiseAddress, "advertise-address", f.AdvertiseAddress, "The IP address on which to advertise the apiserver to members of the cluster.")
	fs.BoolVar(&f.AllowPrivileged, "allow-privileged", f.AllowPrivileged, "If true, allow privileged containers.")
	fs.BoolVar(&f.EnablePriorityAndFairness, "enable-priority-and-fairness", f.EnablePriorityAndFairness, "If true, replace the max-in-flight handler with an enhanced one that queues and dispatches with priority and fairness.")
	fs.Var(cliflag.NewMapStringBool(&f.FeatureGates), "feature-gates", "A set of key=value pairs that describe feature gates for alpha/experimental features.")
	fs.Var(&f.RuntimeConfig, "runtime-config", "A set of key=value pairs that enable or disable built-in APIs.")
}

// newAPIServerCommand is `tower apiserver`, and the whole program when the
// binary runs as kube-apiserver (use is the command name shown in help).
func newAPIServerCommand(use string) *cobra.Command {
	opts := server.NewOptions()
	compat := newKubeAPIServerFlags()
	compatFlags := pflag.NewFlagSet("kube-apiserver-compat", pflag.ContinueOnError)
	etcdDataDir := filepath.Join(defaultDataDir(), "etcd")

	cmd := &cobra.Command{
		Use:   use,
		Short: "Run the Kubernetes API server",
		Long: `Run Tower's Kubernetes API server. Flags follow kube-apiserver's.

Without --etcd-servers it starts an embedded etcd keeping its data in
--embedded-etcd-data-dir.`,
		Version:      version.Get().Kubernetes,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx = logr.NewContext(ctx, klog.Background())
			if accepted := changedFlags(compatFlags); len(accepted) > 0 {
				logr.FromContextOrDiscard(ctx).Info("Accepted kube-apiserver flags that Tower does not act on yet", "flags", accepted)
			}
			return runAPIServer(ctx, opts, etcdDataDir, nil)
		},
	}
	cmd.SetVersionTemplate("Kubernetes {{.Version}}\n")
	fs := cmd.Flags()
	opts.AddFlags(fs)
	compat.addFlags(compatFlags)
	fs.AddFlagSet(compatFlags)
	fs.StringVar(&etcdDataDir, "embedded-etcd-data-dir", etcdDataDir, "Data directory of the embedded etcd started when --etcd-servers is empty (Tower only).")
	return cmd
}

// runAPIServer serves the API until ctx ends, starting an embedded etcd in
// etcdDataDir first when opts names no etcd servers. onReady, when set, is
// called once the server answers /readyz.
func runAPIServer(ctx context.Context, opts *server.Options, etcdDataDir string, onReady func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	log := logr.FromContextOrDiscard(ctx)

	if len(opts.EtcdServers) == 0 {
		etcd, err := embedded.Start(ctx, embedded.Config{DataDir: etcdDataDir})
		if err != nil {
			return fmt.Errorf("starting embedded etcd in %s: %w", etcdDataDir, err)
		}
		defer etcd.Close()
		go func() {
			select {
			case err := <-etcd.Err():
				cancel(fmt.Errorf("embedded etcd failed: %w", err))
			case <-ctx.Done():
			}
		}()
		opts.EtcdServers = etcd.Endpoints()
		log.Info("Embedded etcd started", "dataDir", etcdDataDir, "endpoints", opts.EtcdServers)
	}

	runErr := make(chan error, 1)
	go func() { runErr <- server.Run(ctx, opts) }()

	if onReady != nil {
		readyErr := make(chan error, 1)
		go func() { readyErr <- onReady(ctx) }()
		select {
		case err := <-runErr:
			return apiServerExit(ctx, err)
		case err := <-readyErr:
			if err != nil {
				cancel(err)
				return errors.Join(err, <-runErr)
			}
		}
	}
	return apiServerExit(ctx, <-runErr)
}

// apiServerExit explains why server.Run returned: a failure of the embedded
// etcd (the context's cause) or the server's own error.
func apiServerExit(ctx context.Context, runErr error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return errors.Join(cause, runErr)
	}
	if runErr != nil {
		return fmt.Errorf("API server: %w", runErr)
	}
	return nil
}

// changedFlags names the flags of fs given on the command line.
func changedFlags(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			names = append(names, f.Name)
		}
	})
	return names
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// kills the process the default way, for a shutdown that hangs.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// defaultDataDir is where Tower keeps state: /var/lib/tower for root,
// ~/.tower for anyone else.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/tower"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".tower")
	}
	return ".tower"
}
