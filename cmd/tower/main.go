// Command tower is the whole of Tower in one binary: `tower up` runs a
// cluster on this machine, and each component also runs alone (`tower
// apiserver`, `tower etcd`, `tower kubectl`).
//
// Invoked through a link named kube-apiserver, etcd or kubectl, the binary
// is that program, flags and all, so tools that expect the upstream
// binaries (envtest's KUBEBUILDER_ASSETS) run Tower unchanged.
package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
)

func main() {
	args := os.Args[1:]
	switch filepath.Base(os.Args[0]) {
	case "kubectl":
		runKubectl(args)
	case "etcd":
		runEtcd(args)
	case "kube-apiserver":
		os.Exit(runCommand(newAPIServerCommand("kube-apiserver"), args))
	default:
		os.Exit(runCommand(newTowerCommand(), args))
	}
}

func newTowerCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tower",
		Short: "Tower is a small, real Kubernetes in one binary",
		Long: `Tower is a small, real Kubernetes in one binary.

Run "tower up" to start a cluster on this machine, then use it with
"tower kubectl" (or any kubectl) and the kubeconfig it prints.`,
		SilenceUsage: true,
	}
	root.AddCommand(
		newUpCommand(),
		newAPIServerCommand("apiserver"),
		newControllerManagerCommand(),
		newSchedulerCommand(),
		newEtcdCommand(),
		newKubectlCommand(),
		newVersionCommand(),
		newNodeCommand(),
		newImagesCommand(),
	)
	return root
}

// runCommand executes cmd with args the way Kubernetes components do
// (logging flags, flag normalisation, error printing) and returns the exit
// code.
func runCommand(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
