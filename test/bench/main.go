// Command bench is Tower's load generator. Its apiserver suite starts
// Tower (`tower etcd` and `tower apiserver` as child processes, built from
// this tree) and, when a reference build exists, upstream kube-apiserver
// on upstream etcd, runs the same load against each in turn over loopback,
// and prints one table with both columns and their ratio: ConfigMaps and
// custom objects created, listed and watched, and envtest's start. Its
// controlplane suite adds `tower scheduler`, `tower controller-manager`
// and `tower node --simulate` as child processes and measures scheduler
// throughput, a Deployment's time to Running and the managers' memory:
//
//	go run ./test/bench                       # both suites, full size
//	go run ./test/bench -short                # quick sanity check
//	go run ./test/bench -suite=controlplane   # one suite
//	go run ./test/bench -suite=node           # one real node (root, containerd)
//
// The node suite, not part of "all", measures a real `tower node` with a
// private containerd: pod start latency (create to Running) over 50 pods,
// how many pods the node holds (ramping in batches until starts fail or
// slow down, within a time budget) and the agent's RSS. Without root, containerd, runc or the CNI
// plugins it says what is missing and skips.
//
// The reference binaries are looked up in $REF/bin (default
// ~/.cache/tower-reference/bin, built by /work/shared/reference/build.sh).
// The run fails if Tower drops a watch event.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"tower.dev/tower/test/framework"
)

// row is one line of the report.
type row struct {
	metric string
	// higherIsBetter is true for rates.
	higherIsBetter bool
}

// rows lists the report in order; runLoad fills values under these names.
var rows = []row{
	{"startup seconds", false},
	{"envtest start seconds", false},
	{"create per second", true},
	{"create apiserver CPU s/1000", false},
	{"create etcd CPU s/1000", false},
	{"update per second", true},
	{"update apiserver CPU s/1000", false},
	{"update etcd CPU s/1000", false},
	{"LIST RV=0 JSON p50 ms", false},
	{"LIST RV=0 protobuf p50 ms", false},
	{"LIST consistent JSON p50 ms", false},
	{"LIST consistent protobuf p50 ms", false},
	{"LIST apiserver CPU ms/list", false},
	{"watch latency p50 ms", false},
	{"watch latency p99 ms", false},
	{"watch missed events", false},
	{"watch unexpected events", false},
	{"watch apiserver CPU s/1000 deliveries", false},
	{"CR create per second", true},
	{"CR create apiserver CPU s/1000", false},
	{"CR create etcd CPU s/1000", false},
	{"CR LIST RV=0 JSON p50 ms", false},
	{"CR LIST consistent JSON p50 ms", false},
	{"CR LIST apiserver CPU ms/list", false},
	{"CR watch latency p50 ms", false},
	{"CR watch latency p99 ms", false},
	{"CR watch missed events", false},
	{"CR watch unexpected events", false},
	{"CR watch apiserver CPU s/1000 deliveries", false},
	{"apiserver peak RSS MiB", false},
	{"apiserver peak anon RSS MiB", false},
	{"etcd peak RSS MiB", false},
}

func main() {
	os.Exit(run())
}

func run() int {
	short := flag.Bool("short", false, "small load for a quick sanity check")
	refDir := flag.String("ref", framework.DefaultReferenceDir(), "directory holding the reference bin/kube-apiserver and bin/etcd")
	towerBin := flag.String("tower", "", "use this tower binary instead of building one")
	keep := flag.Bool("keep", false, "keep the working directory (logs, data) after the run")
	profileDir := flag.String("profile", "", "write CPU and allocation profiles of the API server and managers, taken while the control-plane phases run, into this directory")
	profileSeconds := flag.Int("profile-seconds", 5, "how long each -profile profile lasts, from the start of its phase")
	nodes := flag.Int("nodes", 0, "control plane: simulated nodes, instead of the scale's")
	pods := flag.Int("pods", 0, "control plane: pending pods to schedule, instead of the scale's")
	replicas := flag.Int("replicas", 0, "control plane: the Deployment's replicas, instead of the scale's")
	suite := flag.String("suite", "all", "which suite to run: apiserver, controlplane, all, or node (one real node: root and containerd)")
	flag.Parse()
	runAPIServer := *suite == "all" || *suite == "apiserver"
	runControlPlane := *suite == "all" || *suite == "controlplane"
	if !runAPIServer && !runControlPlane && *suite != "node" {
		fmt.Fprintf(os.Stderr, "unknown -suite %q: want apiserver, controlplane, all or node\n", *suite)
		return 2
	}

	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logr.NewContext(ctx, log)
	// envtest logs through controller-runtime's logger.
	ctrllog.SetLogger(log)

	if *suite == "node" {
		nsc := nodeFullScale
		if *short {
			nsc = nodeShortScale
		}
		if err := nodeBenchmark(ctx, nsc, *towerBin, *keep); err != nil {
			log.Error(err, "node benchmark failed")
			return 1
		}
		return 0
	}
	sc, cpScale := fullScale, fullControlPlaneScale
	if *short {
		sc, cpScale = shortScale, shortControlPlaneScale
	}
	for _, override := range []struct{ flag, field *int }{{nodes, &cpScale.nodes}, {pods, &cpScale.pods}, {replicas, &cpScale.replicas}} {
		if *override.flag > 0 {
			*override.field = *override.flag
		}
	}
	if !runAPIServer {
		sc = scale{}
	}
	if !runControlPlane {
		cpScale = controlPlaneScale{}
	}
	var prof *profiler
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o700); err != nil {
			log.Error(err, "creating the profile directory")
			return 1
		}
		prof = &profiler{dir: *profileDir, seconds: *profileSeconds}
	}
	if err := benchmark(ctx, sc, cpScale, prof, *refDir, *towerBin, *keep); err != nil {
		log.Error(err, "benchmark failed")
		return 1
	}
	return 0
}

// benchmark runs the API server suite unless sc is zero and the control
// plane suite unless cpScale is zero.
func benchmark(ctx context.Context, sc scale, cpScale controlPlaneScale, prof *profiler, refDir, towerBin string, keep bool) error {
	dir, towerBin, cleanup, err := prepareRun(ctx, "tower-bench-", towerBin, keep)
	if err != nil {
		return err
	}
	defer cleanup()
	if sc.objects > 0 {
		if err := benchmarkAPIServer(ctx, sc, refDir, towerBin, dir); err != nil {
			return err
		}
	}
	if cpScale.nodes > 0 {
		targets := serverTargets(ctx, refDir, towerBin)
		results := make([]measurement, len(targets))
		for i, server := range targets {
			// Profiles are of Tower's API server.
			serverProf := prof
			if i > 0 {
				serverProf = nil
			}
			if results[i], err = benchmarkControlPlane(ctx, cpScale, serverProf, server, towerBin, filepath.Join(dir, "controlplane-"+server.Name)); err != nil {
				return fmt.Errorf("control plane on %s: %w", server.Name, err)
			}
		}
		printControlPlaneReport(os.Stdout, cpScale, targets, results)
	}
	return nil
}

// serverTargets are Tower's API server and, when built, the reference
// kube-apiserver.
func serverTargets(ctx context.Context, refDir, towerBin string) []framework.Binaries {
	targets := []framework.Binaries{framework.TowerBinaries(towerBin)}
	if reference, err := framework.ReferenceBinaries(refDir); err == nil {
		targets = append(targets, reference)
	} else {
		logr.FromContextOrDiscard(ctx).Info("no reference build: reporting Tower alone (run /work/shared/reference/build.sh to compare)", "reason", err.Error())
	}
	return targets
}

// benchmarkAPIServer runs the load against Tower and, when built, the
// reference kube-apiserver, and prints both.
func benchmarkAPIServer(ctx context.Context, sc scale, refDir, towerBin, dir string) error {
	log := logr.FromContextOrDiscard(ctx)
	targets := serverTargets(ctx, refDir, towerBin)

	results := make([]measurement, len(targets))
	for i, bins := range targets {
		log.Info("timing envtest start", "server", bins.Name, "runs", envtestStartRuns)
		envtestStart, err := measureEnvtestStart(ctx, bins, filepath.Join(dir, bins.Name))
		if err != nil {
			return err
		}
		log.Info("starting", "server", bins.Name)
		c, err := startCluster(ctx, bins, filepath.Join(dir, bins.Name))
		if err != nil {
			return err
		}
		results[i], err = runLoad(ctx, c, sc)
		stopErr := c.cp.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", bins.Name, err)
		}
		if stopErr != nil {
			return fmt.Errorf("stopping %s: %w", bins.Name, stopErr)
		}
		results[i]["envtest start seconds"] = envtestStart.Seconds()
	}

	printReport(os.Stdout, sc, targets, results)
	if missed := results[0]["watch missed events"] + results[0]["CR watch missed events"]; missed > 0 {
		return fmt.Errorf("tower dropped %.0f watch events", missed)
	}
	return nil
}

func printReport(out io.Writer, sc scale, targets []framework.Binaries, results []measurement) {
	fmt.Fprintf(out, "\n%d ConfigMaps (~1 KiB), %d concurrent writers, %d LIST runs, %d watchers x %d events every %s;\netcd with --unsafe-no-fsync, clients without response compression, loopback; %s\n\n",
		sc.objects, sc.writers, sc.listRuns, sc.watchers, sc.watchEvents, sc.watchInterval, time.Now().Format(time.DateTime))
	fmt.Fprintf(out, "%s\n\n", crdScaleNote(sc))
	printTable(out, rows, targets, results)
}

// printTable prints one column of results per target and, for two, their
// ratio.
func printTable(out io.Writer, rows []row, targets []framework.Binaries, results []measurement) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "metric\t"
	for _, target := range targets {
		header += target.Name + "\t"
	}
	if len(targets) == 2 {
		header += "ratio\t"
	}
	fmt.Fprintln(w, header)
	for _, r := range rows {
		line := r.metric + "\t"
		for _, res := range results {
			line += formatValue(res[r.metric]) + "\t"
		}
		if len(results) == 2 {
			line += formatRatio(results[0][r.metric], results[1][r.metric], r.higherIsBetter) + "\t"
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
	if len(targets) == 2 {
		fmt.Fprintln(out, "\nratio = tower / kube-apiserver; (+) marks where Tower does better.")
	}
}

func formatValue(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

func formatRatio(tower, reference float64, higherIsBetter bool) string {
	if reference == 0 {
		if tower == 0 {
			return "="
		}
		return "-"
	}
	ratio := tower / reference
	better := (higherIsBetter && ratio > 1) || (!higherIsBetter && ratio < 1)
	if better {
		return fmt.Sprintf("%.2f (+)", ratio)
	}
	return fmt.Sprintf("%.2f", ratio)
}

// prepareRun makes the run's working directory and, unless towerBin names
// one, builds tower into it. cleanup removes the directory unless keep.
func prepareRun(ctx context.Context, prefix, towerBin string, keep bool) (dir, bin string, cleanup func(), err error) {
	log := logr.FromContextOrDiscard(ctx)
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", nil, fmt.Errorf("creating working directory: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if keep {
		log.Info("keeping working directory", "dir", dir)
		cleanup = func() {}
	}
	if towerBin == "" {
		log.Info("building tower")
		if towerBin, err = framework.BuildTower(ctx, filepath.Join(dir, "bin")); err != nil {
			cleanup()
			return "", "", nil, err
		}
	}
	return dir, towerBin, cleanup, nil
}
