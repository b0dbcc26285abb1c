package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/framework"
)

// scale sizes the load; -short shrinks it to a quick sanity check.
type scale struct {
	objects       int
	writers       int
	listRuns      int
	watchers      int
	watchEvents   int
	watchInterval time.Duration
}

var (
	fullScale  = scale{objects: 10000, writers: 32, listRuns: 20, watchers: 1000, watchEvents: 200, watchInterval: 20 * time.Millisecond}
	shortScale = scale{objects: 1000, writers: 32, listRuns: 5, watchers: 100, watchEvents: 30, watchInterval: 20 * time.Millisecond}
)

// configMapPayload gives every object about 1 KiB of data, so lists move
// realistic amounts of bytes.
var configMapPayload = map[string]string{
	"config.yaml": strings.Repeat("key: value\n", 80),
	"mode":        "benchmark",
}

const (
	loadNamespace  = "bench-load"
	watchNamespace = "bench-watch"
	mediaJSON      = "application/json"
	mediaProtobuf  = "application/vnd.kubernetes.protobuf"
)

// measurement is one row's value for one server; missing values are NaN-free
// by construction: a failed phase aborts the run.
type measurement map[string]float64

// cpuMeter measures the CPU time the two server processes spend in a phase.
type cpuMeter struct {
	apiserver, etcd       time.Duration
	apiserverPid, etcdPid int
}

func startCPUMeter(c *cluster) (*cpuMeter, error) {
	m := &cpuMeter{apiserverPid: c.cp.APIServerProcess.Pid(), etcdPid: c.cp.EtcdProcess.Pid()}
	var err error
	if m.apiserver, err = cpuTime(m.apiserverPid); err != nil {
		return nil, err
	}
	if m.etcd, err = cpuTime(m.etcdPid); err != nil {
		return nil, err
	}
	return m, nil
}

// stop returns the CPU time each process used since start.
func (m *cpuMeter) stop() (apiserver, etcd time.Duration, err error) {
	a, err := cpuTime(m.apiserverPid)
	if err != nil {
		return 0, 0, err
	}
	e, err := cpuTime(m.etcdPid)
	if err != nil {
		return 0, 0, err
	}
	return a - m.apiserver, e - m.etcd, nil
}

// runLoad drives every phase against one cluster and returns its numbers.
func runLoad(ctx context.Context, c *cluster, sc scale) (measurement, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("server", c.name)
	result := measurement{"startup seconds": c.cp.APIServerStartup.Seconds()}
	anon := sampleAnonRSS(c.cp.APIServerProcess.Pid(), 100*time.Millisecond)
	defer anon.Stop()
	for _, ns := range []string{loadNamespace, watchNamespace} {
		_, err := c.clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}

	log.Info("creating", "objects", sc.objects, "clients", sc.writers)
	if err := measureWrites(ctx, c, sc, "create", result, func(ctx context.Context, i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: objectName(i)}, Data: configMapPayload}
		_, err := c.clientset.CoreV1().ConfigMaps(loadNamespace).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, err
	}

	log.Info("updating", "objects", sc.objects, "clients", sc.writers)
	if err := measureWrites(ctx, c, sc, "update", result, func(ctx context.Context, i int) error {
		// A blind update (no resourceVersion) is one request per object,
		// like create, so the two rates compare.
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: objectName(i)}, Data: map[string]string{"updated": strconv.Itoa(i)}}
		_, err := c.clientset.CoreV1().ConfigMaps(loadNamespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return nil, err
	}

	log.Info("listing", "objects", sc.objects, "runs", sc.listRuns)
	configMapsPath := "/api/v1/namespaces/" + loadNamespace + "/configmaps"
	if err := measureLists(ctx, c, sc, result, listTarget{metric: "LIST", path: configMapsPath, accepts: []string{mediaJSON, mediaProtobuf}}); err != nil {
		return nil, err
	}

	log.Info("watching", "watchers", sc.watchers, "events", sc.watchEvents)
	if err := measureWatch(ctx, c, sc, result, configMapWatchTarget(c)); err != nil {
		return nil, err
	}

	log.Info("custom resources", "objects", sc.objects, "watchers", sc.watchers)
	if err := measureCustomResources(ctx, c, sc, result); err != nil {
		return nil, fmt.Errorf("custom resources: %w", err)
	}

	for name, p := range map[string]*framework.Process{"apiserver": c.cp.APIServerProcess, "etcd": c.cp.EtcdProcess} {
		rss, err := peakRSS(p.Pid())
		if err != nil {
			return nil, err
		}
		result[name+" peak RSS MiB"] = float64(rss) / (1 << 20)
	}
	result["apiserver peak anon RSS MiB"] = float64(anon.Peak()) / (1 << 20)
	return result, nil
}

func objectName(i int) string { return fmt.Sprintf("cm-%06d", i) }

// measureWrites runs write(i) for every object on sc.writers concurrent
// clients and records the rate and the CPU spent per 1000 writes.
func measureWrites(ctx context.Context, c *cluster, sc scale, verb string, result measurement, write func(ctx context.Context, i int) error) error {
	meter, err := startCPUMeter(c)
	if err != nil {
		return err
	}
	started := time.Now()
	if err := framework.InParallel(ctx, sc.objects, sc.writers, write); err != nil {
		return fmt.Errorf("%s phase: %w", verb, err)
	}
	elapsed := time.Since(started)
	apiserverCPU, etcdCPU, err := meter.stop()
	if err != nil {
		return err
	}
	thousands := float64(sc.objects) / 1000
	result[verb+" per second"] = float64(sc.objects) / elapsed.Seconds()
	result[verb+" apiserver CPU s/1000"] = apiserverCPU.Seconds() / thousands
	result[verb+" etcd CPU s/1000"] = etcdCPU.Seconds() / thousands
	return nil
}

// listTarget names what measureLists lists: metric prefixes its rows,
// accepts are the media types to ask for.
type listTarget struct {
	metric  string
	path    string
	accepts []string
}

var mediaNames = map[string]string{mediaJSON: "JSON", mediaProtobuf: "protobuf"}

// measureLists times full LISTs of target, served from the watch cache
// (resourceVersion=0) and as consistent reads, in each media type. Bodies
// are read but not decoded: the client's decoding speed is not what is
// measured.
func measureLists(ctx context.Context, c *cluster, sc scale, result measurement, target listTarget) error {
	meter, err := startCPUMeter(c)
	if err != nil {
		return err
	}
	lists := 0
	for _, read := range []struct{ name, resourceVersion string }{{"RV=0", "0"}, {"consistent", ""}} {
		for _, accept := range target.accepts {
			name := fmt.Sprintf("%s %s %s", target.metric, read.name, mediaNames[accept])
			var latencies []time.Duration
			for range sc.listRuns {
				req := c.clientset.CoreV1().RESTClient().Get().AbsPath(target.path).SetHeader("Accept", accept)
				if read.resourceVersion != "" {
					req = req.Param("resourceVersion", read.resourceVersion)
				}
				started := time.Now()
				body, err := req.DoRaw(ctx)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				latencies = append(latencies, time.Since(started))
				lists++
				if len(body) < sc.objects*100 {
					return fmt.Errorf("%s: %d-byte body is too small for %d objects", name, len(body), sc.objects)
				}
			}
			result[name+" p50 ms"] = percentile(latencies, 50).Seconds() * 1000
		}
	}
	apiserverCPU, _, err := meter.stop()
	if err != nil {
		return err
	}
	result[target.metric+" apiserver CPU ms/list"] = apiserverCPU.Seconds() * 1000 / float64(lists)
	return nil
}

// watchTarget is what measureWatch watches and writes: metric prefixes
// its rows, name tells an event's object name (false for another type).
type watchTarget struct {
	metric string
	list   func(ctx context.Context) (resourceVersion string, err error)
	watch  func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	create func(ctx context.Context, name string) error
	name   func(obj runtime.Object) (string, bool)
}

// configMapWatchTarget watches the ConfigMaps of the watch namespace.
func configMapWatchTarget(c *cluster) watchTarget {
	configMaps := c.clientset.CoreV1().ConfigMaps(watchNamespace)
	return watchTarget{
		metric: "watch",
		list: func(ctx context.Context) (string, error) {
			list, err := configMaps.List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", err
			}
			return list.ResourceVersion, nil
		},
		watch: configMaps.Watch,
		create: func(ctx context.Context, name string) error {
			_, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		},
		name: func(obj runtime.Object) (string, bool) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				return "", false
			}
			return cm.Name, true
		},
	}
}

// measureWatch opens sc.watchers watches of target on an idle namespace,
// writes sc.watchEvents objects at a steady pace and records, for every
// watcher, when each object's ADDED event arrived. Latency is counted from
// just before the create request is sent.
func measureWatch(ctx context.Context, c *cluster, sc scale, result measurement, target watchTarget) error {
	initialVersion, err := target.list(ctx)
	if err != nil {
		return fmt.Errorf("listing the watch namespace: %w", err)
	}

	received := make([][]time.Time, sc.watchers)
	watchers := make([]watch.Interface, sc.watchers)
	var delivered atomic.Int64
	var unexpected atomic.Int64
	var firstUnexpected atomic.Pointer[string]
	// Stopping a watch may surface a client-side ERROR event: only what
	// arrives before the watchers are stopped counts.
	var stopping atomic.Bool
	noteUnexpected := func(event watch.Event) {
		if stopping.Load() {
			return
		}
		unexpected.Add(1)
		description := fmt.Sprintf("%s %#v", event.Type, event.Object)
		firstUnexpected.CompareAndSwap(nil, &description)
	}
	var readers sync.WaitGroup
	defer func() {
		for _, w := range watchers {
			if w != nil {
				w.Stop()
			}
		}
		readers.Wait()
	}()
	// The watches outlive inParallel, whose context ends when it returns.
	watchCtx := ctx
	err = framework.InParallel(ctx, sc.watchers, sc.writers, func(_ context.Context, i int) error {
		w, err := target.watch(watchCtx, metav1.ListOptions{
			ResourceVersion: initialVersion,
			TimeoutSeconds:  ptr.To[int64](3600),
		})
		if err != nil {
			return fmt.Errorf("opening watch %d: %w", i, err)
		}
		watchers[i] = w
		received[i] = make([]time.Time, sc.watchEvents)
		readers.Go(func() {
			for event := range w.ResultChan() {
				now := time.Now()
				name, ok := target.name(event.Object)
				if event.Type != watch.Added || !ok {
					noteUnexpected(event)
					continue
				}
				index, err := strconv.Atoi(strings.TrimPrefix(name, "event-"))
				if err != nil || index < 0 || index >= sc.watchEvents || !received[i][index].IsZero() {
					noteUnexpected(event)
					continue
				}
				received[i][index] = now
				delivered.Add(1)
			}
		})
		return nil
	})
	if err != nil {
		return err
	}

	meter, err := startCPUMeter(c)
	if err != nil {
		return err
	}
	sent := make([]time.Time, sc.watchEvents)
	ticker := time.NewTicker(sc.watchInterval)
	for i := range sc.watchEvents {
		<-ticker.C
		sent[i] = time.Now()
		if err := target.create(ctx, fmt.Sprintf("event-%d", i)); err != nil {
			ticker.Stop()
			return fmt.Errorf("writing watch event %d: %w", i, err)
		}
	}
	ticker.Stop()

	expected := int64(sc.watchers * sc.watchEvents)
	deadline := time.Now().Add(30 * time.Second)
	for delivered.Load() < expected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	apiserverCPU, _, err := meter.stop()
	if err != nil {
		return err
	}
	stopping.Store(true)
	for _, w := range watchers {
		w.Stop()
	}
	readers.Wait()

	var latencies []time.Duration
	missed := 0
	for _, times := range received {
		for event, at := range times {
			if at.IsZero() {
				missed++
				continue
			}
			latencies = append(latencies, at.Sub(sent[event]))
		}
	}
	result[target.metric+" latency p50 ms"] = percentile(latencies, 50).Seconds() * 1000
	result[target.metric+" latency p99 ms"] = percentile(latencies, 99).Seconds() * 1000
	result[target.metric+" missed events"] = float64(missed)
	result[target.metric+" unexpected events"] = float64(unexpected.Load())
	if first := firstUnexpected.Load(); first != nil {
		logr.FromContextOrDiscard(ctx).Info("unexpected watch event", "server", c.name, "target", target.metric, "first", *first)
	}
	result[target.metric+" apiserver CPU s/1000 deliveries"] = apiserverCPU.Seconds() / (float64(expected) / 1000)
	return nil
}

// percentile returns the p-th percentile (nearest rank) of samples.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
