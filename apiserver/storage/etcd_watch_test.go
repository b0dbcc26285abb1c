package storage_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/storagetest"
)

func asStorageError(err error, target **storage.Error) bool { return errors.As(err, target) }

// nextEvent waits for one event.
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

type eventSummary struct {
	Type watch.EventType
	Name string
	RV   string
}

func summarize(t *testing.T, e watch.Event) eventSummary {
	t.Helper()
	obj := e.Object
	if co, ok := obj.(*storage.CachingObject); ok {
		obj = co.Object()
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("event %s carries %T", e.Type, e.Object)
	}
	return eventSummary{Type: e.Type, Name: cm.Name, RV: cm.ResourceVersion}
}

func TestWatchOrderAndSelectors(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	start := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "before", map[string]string{"app": "web"}))

	pred := storagetest.LabelPredicate(t, "app=web")
	w, err := s.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{ResourceVersion: start.ResourceVersion, Recursive: true, Predicate: pred})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	a := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", map[string]string{"app": "web"}))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "other", map[string]string{"app": "db"}))
	relabel := func(value string) storage.UpdateFunc {
		return func(current runtime.Object) (runtime.Object, error) {
			cm := current.(*corev1.ConfigMap)
			cm.Labels["app"] = value
			return cm, nil
		}
	}
	var left, entered, deleted corev1.ConfigMap
	if err := s.GuaranteedUpdate(ctx, storagetest.Key("ns", "a"), &left, false, nil, relabel("db"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.GuaranteedUpdate(ctx, storagetest.Key("ns", "other"), &entered, false, nil, relabel("web"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, storagetest.Key("ns", "other"), &deleted, nil, nil, nil); err != nil {
		t.Fatal(err)
	}

	want := []eventSummary{
		{watch.Added, "a", a.ResourceVersion},
		{watch.Deleted, "a", left.ResourceVersion},
		{watch.Added, "other", entered.ResourceVersion},
		{watch.Deleted, "other", deleted.ResourceVersion},
	}
	for i, w8 := range want {
		if got := summarize(t, nextEvent(t, w)); got != w8 {
			t.Fatalf("event %d: got %+v, want %+v", i, got, w8)
		}
	}
}

func TestWatchInitialEvents(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "b", nil))

	sendInitial := true
	w, err := s.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, SendInitialEvents: &sendInitial, ProgressNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, name := range []string{"a", "b"} {
		if got := summarize(t, nextEvent(t, w)); got.Type != watch.Added || got.Name != name {
			t.Fatalf("initial event %+v, want ADDED %s", got, name)
		}
	}
	bookmark := nextEvent(t, w)
	cm := bookmark.Object.(*corev1.ConfigMap)
	if bookmark.Type != watch.Bookmark || cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("got %s %+v, want the initial-events-end bookmark", bookmark.Type, cm.ObjectMeta)
	}
	c := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "c", nil))
	if got := summarize(t, nextEvent(t, w)); got != (eventSummary{watch.Added, "c", c.ResourceVersion}) {
		t.Fatalf("got %+v after the initial events", got)
	}
}

func TestWatchFromCompactedRevision(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	s := storagetest.NewStore(client)
	first := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "b", nil))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "c", nil))
	rev, err := s.CurrentResourceVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Compact(ctx, int64(rev)); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{ResourceVersion: first.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := nextEvent(t, w)
	status, ok := e.Object.(*metav1.Status)
	if e.Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("got %s %#v, want ERROR 410 Expired", e.Type, e.Object)
	}
}

func TestCachingObjectEncodesOnce(t *testing.T) {
	codec := storagetest.Codec()
	cm := storagetest.ConfigMap("ns", "a", nil)
	cached := storage.NewCachingObject(cm)

	var first, second bytes.Buffer
	if err := codec.Encode(cached, &first); err != nil {
		t.Fatal(err)
	}
	// Changing the original after the first encoding shows the second one
	// came from the cache.
	cm.Data["k"] = "changed"
	if err := codec.Encode(cached, &second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatal("second encoding differs: not served from the cache")
	}
	decoded, _, err := codec.Decode(first.Bytes(), nil, &corev1.ConfigMap{})
	if err != nil {
		t.Fatal(err)
	}
	if decoded.(*corev1.ConfigMap).Data["k"] != "v" {
		t.Fatalf("decoded %+v", decoded)
	}
	if copied := cached.DeepCopyObject().(*corev1.ConfigMap); copied == cm {
		t.Fatal("DeepCopyObject returned the shared object")
	}
}
