package main

import (
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
)

// newKubectlCommand and newEtcdCommand only list the programs in `tower
// help`; their arguments, flags included, go untouched to the real program.
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl",
		Short:              "Run kubectl (k8s.io/kubectl, unmodified)",
		DisableFlagParsing: true,
		Run:                func(_ *cobra.Command, args []string) { runKubectl(args) },
	}
}

func newEtcdCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "etcd",
		Short:              "Run an etcd server (go.etcd.io/etcd, unmodified)",
		DisableFlagParsing: true,
		Run:                func(_ *cobra.Command, args []string) { runEtcd(args) },
	}
}

// runKubectl runs kubectl's own command tree with args (without the program
// name), exiting as kubectl would.
func runKubectl(args []string) {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	configFlags := genericclioptions.NewConfigFlags(true).
		WithDeprecatedPasswordFlag().
		WithDiscoveryBurst(300).
		WithDiscoveryQPS(50.0).
		WithWarningPrinter(streams)
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		// Plugin lookup reads the program name from Arguments[0].
		Arguments:   append([]string{"kubectl"}, args...),
		ConfigFlags: configFlags,
		IOStreams:   streams,
	})
	cmd.SetArgs(args)
	if err := cli.RunNoErrOutput(cmd); err != nil {
		kubectlutil.CheckErr(err)
	}
	os.Exit(0)
}

// runEtcd runs the etcd server with args (without the program name); it
// does not return.
func runEtcd(args []string) {
	// etcdmain's gateway and grpc-proxy subcommands read os.Args rather
	// than the slice they are given: make both say the same thing.
	os.Args = append([]string{"etcd"}, withLoneMemberTiming(args, os.Getenv)...)
	etcdmain.Main(os.Args)
	os.Exit(0)
}

// loneMemberTiming is raft's clock for an etcd that is its own cluster.
// etcd's defaults (100 ms heartbeat, 1 s election timeout) are sized for
// peers across a network; a lone member waits out a random part of that
// timeout to elect itself, half a second on average, before it serves.
// envtest starts one such etcd for every suite.
var loneMemberTiming = []string{"--heartbeat-interval=10", "--election-timeout=100"}

// withLoneMemberTiming adds loneMemberTiming to the arguments of an etcd
// that will be alone, unless they or the environment (ETCD_*) set its
// timing, its cluster or a configuration file, or name a subcommand.
func withLoneMemberTiming(args []string, getenv func(string) string) []string {
	settings := []string{"heartbeat-interval", "election-timeout", "initial-cluster", "discovery", "config-file"}
	for _, setting := range settings {
		if getenv("ETCD_"+strings.ToUpper(strings.ReplaceAll(setting, "-", "_"))) != "" {
			return args
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args
	}
	for _, arg := range args {
		if !strings.HasPrefix(arg, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if slices.Contains(settings, name) || strings.HasPrefix(name, "discovery") || slices.Contains([]string{"h", "help", "version"}, name) {
			return args
		}
	}
	return append(append([]string{}, loneMemberTiming...), args...)
}
