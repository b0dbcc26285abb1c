package main

import (
	"os"

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
	os.Args = append([]string{"etcd"}, args...)
	etcdmain.Main(os.Args)
	os.Exit(0)
}
