package main

import (
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"tower.dev/tower/controllers/manager"
	"tower.dev/tower/controllers/scheduler"
)

func newSchedulerCommand() *cobra.Command {
	o := manager.NewSchedulerOptions()
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Run Tower's scheduler (kube-scheduler)",
		Long: `Run Tower's scheduler: it binds pods that name --scheduler-name and
have no node to the best node that fits them, through pods/binding. Only
one instance is active at a time: the others wait for the
kube-system/kube-scheduler Lease.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runManager(cmd.Context(), kubeconfig, func(cfg *rest.Config) (ctrl.Manager, error) {
				return manager.NewScheduler(cfg, o)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "Path to a kubeconfig; empty uses the in-cluster configuration.")
	fs.StringVar(&o.Scheduler.SchedulerName, "scheduler-name", o.Scheduler.SchedulerName, "Schedule the pods whose spec.schedulerName is this.")
	fs.IntVar(&o.Scheduler.Parallelism, "parallelism", scheduler.DefaultParallelism, "How many bindings may be in flight at once.")
	addCommonManagerFlags(fs, &o.Common)
	return cmd
}
