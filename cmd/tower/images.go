package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"tower.dev/tower/nodeagent"
	"tower.dev/tower/nodeagent/containers"
)

func newImagesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Manage the node's container images",
	}
	cmd.AddCommand(newImagesImportCommand())
	return cmd
}

func newImagesImportCommand() *cobra.Command {
	address := filepath.Join(defaultDataDir(), "node", "containerd", "containerd.sock")
	namespace := nodeagent.DefaultContainerdNamespace
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import OCI image archives into the node's containerd",
		Long: `Import OCI (or Docker) image archives into containerd, in the namespace
the node agent runs pods from, so pods can use them without a registry.`,
		Args:         cobra.MinimumNArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, files []string) error {
			ctx := cmd.Context()
			rt, err := containers.Connect(ctx, address, namespace)
			if err != nil {
				return err
			}
			defer rt.Close()
			for _, file := range files {
				names, err := rt.ImportArchive(ctx, file)
				if err != nil {
					return err
				}
				for _, name := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", name)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "containerd-address", address, "Socket of the node's containerd.")
	cmd.Flags().StringVar(&namespace, "containerd-namespace", namespace, "containerd namespace of the node's containers.")
	return cmd
}
