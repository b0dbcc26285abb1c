package cacher_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/cacher"
	"tower.dev/tower/apiserver/storage/storagetest"
)

// countingStore counts the etcd watches and lists the cacher opens.
type countingStore struct {
	storage.Interface
	watches, lists atomic.Int64
}

func (s *countingStore) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	s.watches.Add(1)
	return s.Interface.Watch(ctx, key, opts)
}

func (s *countingStore) GetList(ctx context.Context, key string, opts storage.ListOptions, list runtime.Object) error {
	s.lists.Add(1)
	return s.Interface.GetList(ctx, key, opts, list)
}

type fixture struct {
	ctx    context.Context
	client *clientv3.Client
	etcd   *countingStore
	cache  storage.Interface
}

func newFixture(t *testing.T) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	client := storagetest.StartEtcd(t)
	etcd := &countingStore{Interface: storagetest.NewStore(client)}
	cache, err := cacher.New(ctx, etcd, client, storagetest.Prefix, storagetest.NewConfigMap, storagetest.NewConfigMapList)
	if err != nil {
		t.Fatal(err)
	}
	// The cache is serving once it has listed and opened its watch.
	for deadline := time.Now().Add(10 * time.Second); etcd.watches.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the cache did not start watching within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &fixture{ctx: ctx, client: client, etcd: etcd, cache: cache}
}

func (f *fixture) create(t *testing.T, cm *corev1.ConfigMap) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := f.cache.Create(f.ctx, storagetest.Key(cm.Namespace, cm.Name), cm, out); err != nil {
		t.Fatalf("create %s: %v", cm.Name, err)
	}
	return out
}

func (f *fixture) list(t *testing.T, opts storage.ListOptions) *corev1.ConfigMapList {
	t.Helper()
	opts.Recursive = true
	out := &corev1.ConfigMapList{}
	if err := f.cache.GetList(f.ctx, storagetest.Prefix+"/", opts, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) watch(t *testing.T, opts storage.ListOptions) watch.Interface {
	t.Helper()
	opts.Recursive = true
	w, err := f.cache.Watch(f.ctx, storagetest.Prefix+"/", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func configMapOf(t *testing.T, e watch.Event) *corev1.ConfigMap {
	t.Helper()
	co, ok := e.Object.(*storage.CachingObject)
	if !ok {
		t.Fatalf("%s event carries %T, want *storage.CachingObject", e.Type, e.Object)
	}
	return co.Object().(*corev1.ConfigMap)
}

func TestConsistentListFromCache(t *testing.T) {
	f := newFixture(t)
	created := f.create(t, storagetest.ConfigMap("ns", "a", nil))
	listsBefore := f.etcd.lists.Load()

	got := f.list(t, storage.ListOptions{})
	if len(got.Items) != 1 || got.Items[0].ResourceVersion != created.ResourceVersion {
		t.Fatalf("consistent list right after a write: %+v", got.Items)
	}

	// Writes elsewhere move etcd's revision while this resource is idle:
	// progress notifications must let the cache answer anyway.
	for i := range 5 {
		if _, err := f.client.Put(f.ctx, fmt.Sprintf("/registry/other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	current, err := f.etcd.CurrentResourceVersion(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = f.list(t, storage.ListOptions{})
	if rv, _ := strconv.ParseUint(got.ResourceVersion, 10, 64); rv < current {
		t.Fatalf("consistent list at rv %d, etcd was at %d", rv, current)
	}
	if n := f.etcd.lists.Load() - listsBefore; n != 0 {
		t.Fatalf("consistent lists read etcd %d times, want them served from the cache", n)
	}
}

func TestListPagingFromCache(t *testing.T) {
	f := newFixture(t)
	for i := range 25 {
		f.create(t, storagetest.ConfigMap("ns", fmt.Sprintf("cm-%02d", i), nil))
	}
	var names []string
	token := ""
	for {
		page := f.list(t, storage.ListOptions{Predicate: storage.SelectionPredicate{Limit: 10, Continue: token}})
		for _, item := range page.Items {
			names = append(names, item.Name)
		}
		if page.Continue == "" {
			break
		}
		token = page.Continue
	}
	if len(names) != 25 || names[0] != "cm-00" || names[24] != "cm-24" {
		t.Fatalf("paged through %v", names)
	}
	if all := f.list(t, storage.ListOptions{ResourceVersion: "0", Predicate: storage.SelectionPredicate{Limit: 10}}); len(all.Items) != 25 {
		t.Fatalf("resourceVersion=0 list has %d items, want the limit ignored", len(all.Items))
	}
}

func TestGetFromCacheIsACopy(t *testing.T) {
	f := newFixture(t)
	created := f.create(t, storagetest.ConfigMap("ns", "a", nil))
	key := storagetest.Key("ns", "a")

	got := &corev1.ConfigMap{}
	if err := f.cache.Get(f.ctx, key, storage.GetOptions{ResourceVersion: created.ResourceVersion}, got); err != nil {
		t.Fatal(err)
	}
	got.Data["k"] = "mutated"
	again := &corev1.ConfigMap{}
	if err := f.cache.Get(f.ctx, key, storage.GetOptions{ResourceVersion: created.ResourceVersion}, again); err != nil {
		t.Fatal(err)
	}
	if again.Data["k"] != "v" {
		t.Fatal("mutating a Get result changed the cache")
	}
	err := f.cache.Get(f.ctx, storagetest.Key("ns", "missing"), storage.GetOptions{ResourceVersion: created.ResourceVersion}, again)
	if !storage.IsNotFound(err) {
		t.Fatalf("missing key: got %v", err)
	}
}

func TestManyWatchersShareOneEtcdWatch(t *testing.T) {
	f := newFixture(t)
	start := f.create(t, storagetest.ConfigMap("ns", "first", nil))
	const watchers = 1000
	ws := make([]watch.Interface, watchers)
	for i := range ws {
		ws[i] = f.watch(t, storage.ListOptions{ResourceVersion: start.ResourceVersion})
	}
	created := f.create(t, storagetest.ConfigMap("ns", "second", nil))

	var shared *storage.CachingObject
	for i, w := range ws {
		e := nextEvent(t, w)
		if e.Type != watch.Added || configMapOf(t, e).ResourceVersion != created.ResourceVersion {
			t.Fatalf("watcher %d got %s %+v", i, e.Type, configMapOf(t, e).ObjectMeta)
		}
		if shared == nil {
			shared = e.Object.(*storage.CachingObject)
		} else if e.Object != shared {
			t.Fatal("watchers got different objects for one event: encodings are not shared")
		}
	}
	if n := f.etcd.watches.Load(); n != 1 {
		t.Fatalf("%d etcd watches for %d clients, want 1", n, watchers)
	}
}

func TestWatchFromTooOldRevision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := storagetest.StartEtcd(t)
	etcd := storagetest.NewStore(client)
	first := &corev1.ConfigMap{}
	if err := etcd.Create(ctx, storagetest.Key("ns", "a"), storagetest.ConfigMap("ns", "a", nil), first); err != nil {
		t.Fatal(err)
	}
	if err := etcd.Create(ctx, storagetest.Key("ns", "b"), storagetest.ConfigMap("ns", "b", nil), &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	// The cache starts after both writes: it knows nothing before them.
	cache, err := cacher.New(ctx, etcd, client, storagetest.Prefix, storagetest.NewConfigMap, storagetest.NewConfigMapList)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cache.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, w)
	status, ok := e.Object.(*metav1.Status)
	if e.Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("got %s %#v, want ERROR 410 Expired", e.Type, e.Object)
	}
	if _, open := <-w.ResultChan(); open {
		t.Fatal("watch stays open after the ERROR event")
	}

	// The cache cannot replay the change between a revision before its
	// initial list and the list itself either.
	w, err = cache.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e = nextEvent(t, w)
	if e.Type != watch.Error {
		t.Fatalf("watch from before the cache's list: got %s, want ERROR", e.Type)
	}
}

func TestWatchSelectorsEnterAndLeave(t *testing.T) {
	f := newFixture(t)
	start := f.create(t, storagetest.ConfigMap("ns", "a", map[string]string{"app": "web"}))
	w := f.watch(t, storage.ListOptions{ResourceVersion: start.ResourceVersion, Predicate: storagetest.LabelPredicate(t, "app=web")})

	relabel := func(value string) storage.UpdateFunc {
		return func(current runtime.Object) (runtime.Object, error) {
			cm := current.(*corev1.ConfigMap)
			cm.Labels["app"] = value
			return cm, nil
		}
	}
	var left, back corev1.ConfigMap
	if err := f.cache.GuaranteedUpdate(f.ctx, storagetest.Key("ns", "a"), &left, false, nil, relabel("db"), nil); err != nil {
		t.Fatal(err)
	}
	if err := f.cache.GuaranteedUpdate(f.ctx, storagetest.Key("ns", "a"), &back, false, nil, relabel("web"), nil); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, w)
	if cm := configMapOf(t, e); e.Type != watch.Deleted || cm.ResourceVersion != left.ResourceVersion || cm.Labels["app"] != "web" {
		t.Fatalf("leaving: got %s %+v", e.Type, cm.ObjectMeta)
	}
	e = nextEvent(t, w)
	if cm := configMapOf(t, e); e.Type != watch.Added || cm.ResourceVersion != back.ResourceVersion {
		t.Fatalf("entering: got %s %+v", e.Type, cm.ObjectMeta)
	}
}

func TestWatchBookmarks(t *testing.T) {
	f := newFixture(t)
	start := f.create(t, storagetest.ConfigMap("ns", "a", nil))
	w := f.watch(t, storage.ListOptions{ResourceVersion: start.ResourceVersion, ProgressNotify: true})
	f.create(t, storagetest.ConfigMap("ns", "b", nil))
	if e := nextEvent(t, w); e.Type != watch.Added {
		t.Fatalf("got %s, want ADDED", e.Type)
	}

	// etcd moves on elsewhere; a consistent read brings the idle cache up to
	// date, and watchers learn the new revision from a bookmark.
	put, err := f.client.Put(f.ctx, "/registry/other/x", "x")
	if err != nil {
		t.Fatal(err)
	}
	f.list(t, storage.ListOptions{})
	e := nextEvent(t, w)
	if e.Type != watch.Bookmark {
		t.Fatalf("got %s, want BOOKMARK", e.Type)
	}
	if rv, _ := strconv.ParseInt(configMapOf(t, e).ResourceVersion, 10, 64); rv < put.Header.Revision {
		t.Fatalf("bookmark at rv %d, want at least %d", rv, put.Header.Revision)
	}
}

func TestWatchSendInitialEvents(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"a", "b", "c"} {
		f.create(t, storagetest.ConfigMap("ns", name, nil))
	}
	sendInitial := true
	w := f.watch(t, storage.ListOptions{
		SendInitialEvents:    &sendInitial,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		ProgressNotify:       true,
	})
	for _, name := range []string{"a", "b", "c"} {
		e := nextEvent(t, w)
		if cm := configMapOf(t, e); e.Type != watch.Added || cm.Name != name {
			t.Fatalf("initial event %s %s, want ADDED %s", e.Type, cm.Name, name)
		}
	}
	e := nextEvent(t, w)
	if cm := configMapOf(t, e); e.Type != watch.Bookmark || cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("got %s %+v, want the initial-events-end bookmark", e.Type, cm.ObjectMeta)
	}
	d := f.create(t, storagetest.ConfigMap("ns", "d", nil))
	if e := nextEvent(t, w); e.Type != watch.Added || configMapOf(t, e).ResourceVersion != d.ResourceVersion {
		t.Fatalf("after the initial events: got %s", e.Type)
	}
}

func TestSlowWatcherIsClosedWithoutBlockingOthers(t *testing.T) {
	f := newFixture(t)
	start := f.create(t, storagetest.ConfigMap("ns", "start", nil))
	slow := f.watch(t, storage.ListOptions{ResourceVersion: start.ResourceVersion})
	fast := f.watch(t, storage.ListOptions{ResourceVersion: start.ResourceVersion})

	const writes = 400
	received := make(chan int)
	go func() {
		n := 0
		for range fast.ResultChan() {
			n++
			if n == writes {
				break
			}
		}
		received <- n
	}()
	for i := range writes {
		f.create(t, storagetest.ConfigMap("ns", fmt.Sprintf("cm-%d", i), nil))
	}
	select {
	case n := <-received:
		if n != writes {
			t.Fatalf("fast watcher got %d events, want %d", n, writes)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fast watcher was held up")
	}
	// The slow watcher's channel drains its buffer and then closes.
	for range slow.ResultChan() {
	}
}

// TestInformerSeesEveryChangeInOrder runs concurrent writers and checks that
// a watcher gets, for each object, exactly its create, updates and delete,
// with strictly increasing resourceVersions overall.
func TestInformerSeesEveryChangeInOrder(t *testing.T) {
	f := newFixture(t)
	list := f.list(t, storage.ListOptions{})
	w := f.watch(t, storage.ListOptions{ResourceVersion: list.ResourceVersion})

	const objects, writers = 1000, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for worker := range writers {
		wg.Go(func() {
			for i := worker; i < objects; i += writers {
				name := fmt.Sprintf("cm-%04d", i)
				key := storagetest.Key("ns", name)
				if err := f.cache.Create(f.ctx, key, storagetest.ConfigMap("ns", name, nil), &corev1.ConfigMap{}); err != nil {
					errs <- err
					return
				}
				update := func(current runtime.Object) (runtime.Object, error) {
					cm := current.(*corev1.ConfigMap)
					cm.Data["k"] = "updated"
					return cm, nil
				}
				if err := f.cache.GuaranteedUpdate(f.ctx, key, &corev1.ConfigMap{}, false, nil, update, nil); err != nil {
					errs <- err
					return
				}
				if err := f.cache.Delete(f.ctx, key, &corev1.ConfigMap{}, nil, nil, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	seen := map[string][]watch.EventType{}
	var lastRV uint64
	for range objects * len(want) {
		e := nextEvent(t, w)
		cm := configMapOf(t, e)
		rv, _ := strconv.ParseUint(cm.ResourceVersion, 10, 64)
		if rv <= lastRV {
			t.Fatalf("rv %d after %d", rv, lastRV)
		}
		lastRV = rv
		seen[cm.Name] = append(seen[cm.Name], e.Type)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != objects {
		t.Fatalf("events for %d objects, want %d", len(seen), objects)
	}
	for name, types := range seen {
		if fmt.Sprint(types) != fmt.Sprint(want) {
			t.Fatalf("%s: events %v, want %v", name, types, want)
		}
	}
}
