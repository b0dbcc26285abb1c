package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/framework"
)

// watchEventTimeout bounds the wait for any single expected watch event.
const watchEventTimeout = 10 * time.Second

// nextEvent returns the next event from w or fails the test.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case event, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch ended while an event was expected")
		}
		return event
	case <-time.After(watchEventTimeout):
		t.Fatalf("no watch event within %s", watchEventTimeout)
	}
	return watch.Event{}
}

// describeEvent renders an event as "TYPE name" for comparisons.
func describeEvent(event watch.Event) string {
	if cm, ok := event.Object.(*corev1.ConfigMap); ok {
		return fmt.Sprintf("%s %s", event.Type, cm.Name)
	}
	return fmt.Sprintf("%s %T", event.Type, event.Object)
}

func createConfigMap(t *testing.T, configMaps typedcorev1.ConfigMapInterface, name string, labels map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm, err := configMaps.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Data:       map[string]string{"key": "value"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return cm
}

// TestWatchFromCompactedRevision: a client resuming a watch from a
// revision that etcd compacted away and that the API server's watch cache
// does not hold (here: the server restarted since) gets what
// kube-apiserver sends: a 200 watch stream whose only event is an ERROR
// carrying a 410 Expired Status ("too old resource version: ..."). A
// reflector in that position relists and converges. (A revision still in
// the watch cache's history is served from memory even after compaction,
// by Tower as by kube-apiserver.)
func TestWatchFromCompactedRevision(t *testing.T) {
	ctx := t.Context()
	// A control plane of its own: the test restarts the API server.
	cp := framework.Start(t)
	ns := cp.CreateNamespace(t)
	configMaps := cp.Clientset().CoreV1().ConfigMaps(ns)

	first := createConfigMap(t, configMaps, "first", nil)
	for i := range 5 {
		first.Data["key"] = strconv.Itoa(i)
		var err error
		if first, err = configMaps.Update(ctx, first, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating: %v", err)
		}
	}
	createConfigMap(t, configMaps, "second", nil)
	staleRV := firstRevisionBefore(t, first.ResourceVersion)
	if _, err := cp.CompactNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.RestartAPIServer(ctx); err != nil {
		t.Fatalf("restarting the API server: %v", err)
	}

	t.Run("watch gets 410 Expired", func(t *testing.T) {
		w, err := configMaps.Watch(t.Context(), metav1.ListOptions{ResourceVersion: staleRV})
		if err != nil {
			t.Fatalf("watch from compacted revision: got error %v before the stream started, want an ERROR event", err)
		}
		defer w.Stop()
		event := nextEvent(t, w)
		if event.Type != watch.Error {
			t.Fatalf("first event is %s, want ERROR", describeEvent(event))
		}
		statusErr := apierrors.FromObject(event.Object)
		if !apierrors.IsResourceExpired(statusErr) {
			t.Errorf("error event %v: want reason Expired", statusErr)
		}
		if code := statusCode(statusErr); code != http.StatusGone {
			t.Errorf("error event code = %d, want 410", code)
		}
		if !strings.HasPrefix(statusErr.Error(), "too old resource version: ") {
			t.Errorf("error event message %q, want it to start with \"too old resource version: \"", statusErr.Error())
		}
	})

	t.Run("reflector relists", func(t *testing.T) {
		lw := &staleFirstList{
			ListerWatcher: cache.NewListWatchFromClient(cp.Clientset().CoreV1().RESTClient(), "configmaps", ns, fields.Everything()),
			staleRV:       staleRV,
		}
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		reflector := cache.NewReflector(lw, &corev1.ConfigMap{}, store, 0)
		reflectorCtx, stop := context.WithCancel(t.Context())
		defer stop()
		go reflector.RunWithContext(reflectorCtx)

		eventually(t, 30*time.Second, "the reflector to relist after its watch expired", func(context.Context) (bool, error) {
			return lw.lists.Load() >= 2, nil
		})
		createConfigMap(t, configMaps, "third", nil)
		eventually(t, 30*time.Second, "the reflector's store to hold all three objects", func(context.Context) (bool, error) {
			return len(store.ListKeys()) == 3, nil
		})
	})
}

// firstRevisionBefore returns the revision just below rv: watching from it
// replays rv itself.
func firstRevisionBefore(t *testing.T, rv string) string {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not an etcd revision: %v", rv, err)
	}
	return strconv.FormatInt(n-1, 10)
}

func statusCode(err error) int32 {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code
	}
	return 0
}

// staleFirstList hands the reflector one list stamped with a compacted
// resourceVersion, as if it had listed before the server restarted, so
// that its watch starts from history that no longer exists. Later calls
// pass through.
type staleFirstList struct {
	cache.ListerWatcher
	staleRV string
	lists   atomic.Int32
}

func (s *staleFirstList) List(options metav1.ListOptions) (runtime.Object, error) {
	obj, err := s.ListerWatcher.List(options)
	if err != nil {
		return nil, err
	}
	if s.lists.Add(1) == 1 {
		obj.(*corev1.ConfigMapList).ResourceVersion = s.staleRV
	}
	return obj, nil
}

// IsWatchListSemanticsUnSupported makes the reflector list and then watch,
// the path this test is about, instead of a streaming list.
func (s *staleFirstList) IsWatchListSemanticsUnSupported() bool { return true }

// TestWatchBookmarks: a watch that allows bookmarks gets one, carrying a
// resourceVersion at least that of the state it started from, before its
// timeout ends it. (kube-apiserver sends it right after the initial events
// of a watch from "" or "0"; an idle watch from an explicit
// resourceVersion may see none for a minute, so that case is not pinned.)
func TestWatchBookmarks(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	anchor := createConfigMap(t, configMaps, "anchor", nil)
	anchorRV, err := strconv.ParseInt(anchor.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", anchor.ResourceVersion, err)
	}

	w, err := configMaps.Watch(t.Context(), metav1.ListOptions{
		AllowWatchBookmarks: true,
		TimeoutSeconds:      ptr.To[int64](5),
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	if got := describeEvent(nextEvent(t, w)); got != "ADDED anchor" {
		t.Fatalf("first event %q, want ADDED anchor", got)
	}
	event, ok := <-w.ResultChan()
	if !ok {
		t.Fatal("watch ended without a bookmark")
	}
	if event.Type != watch.Bookmark {
		t.Fatalf("unexpected event %s before any bookmark", describeEvent(event))
	}
	cm, isConfigMap := event.Object.(*corev1.ConfigMap)
	if !isConfigMap {
		t.Fatalf("bookmark object is %T, want *v1.ConfigMap", event.Object)
	}
	rv, err := strconv.ParseInt(cm.ResourceVersion, 10, 64)
	if err != nil || rv < anchorRV {
		t.Fatalf("bookmark resourceVersion %q, want a revision >= %d", cm.ResourceVersion, anchorRV)
	}
	if cm.Name != "" || len(cm.Data) != 0 {
		t.Errorf("bookmark object carries more than a resourceVersion: %+v", cm)
	}
}

// TestWatchTimeoutEndsStream: timeoutSeconds closes the stream server-side.
func TestWatchTimeoutEndsStream(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	started := time.Now()
	w, err := configMaps.Watch(t.Context(), metav1.ListOptions{TimeoutSeconds: ptr.To[int64](1)})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	deadline := time.After(watchEventTimeout)
	for {
		select {
		case event, ok := <-w.ResultChan():
			if !ok {
				if elapsed := time.Since(started); elapsed < 900*time.Millisecond {
					t.Errorf("watch ended after %s, before its 1s timeout", elapsed)
				}
				return
			}
			if event.Type != watch.Bookmark {
				t.Errorf("unexpected event %s on an empty namespace", describeEvent(event))
			}
		case <-deadline:
			t.Fatalf("watch with timeoutSeconds=1 still open after %s", watchEventTimeout)
		}
	}
}

// TestWatchSendInitialEvents: a streaming list replays the current objects
// as ADDED and then marks the end with the initial-events-end bookmark.
func TestWatchSendInitialEvents(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	want := map[string]bool{}
	for i := range 5 {
		name := fmt.Sprintf("cm-%d", i)
		createConfigMap(t, configMaps, name, nil)
		want["ADDED "+name] = true
	}

	w, err := configMaps.Watch(t.Context(), metav1.ListOptions{
		SendInitialEvents:    ptr.To(true),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks:  true,
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	got := map[string]bool{}
	for {
		event := nextEvent(t, w)
		if event.Type == watch.Bookmark {
			cm := event.Object.(*corev1.ConfigMap)
			if cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
				continue
			}
			break
		}
		got[describeEvent(event)] = true
	}
	if len(got) != len(want) {
		t.Errorf("initial events %v, want %v", got, want)
	}
	for event := range want {
		if !got[event] {
			t.Errorf("missing initial event %q (got %v)", event, got)
		}
	}
}

// TestSelectors: label and field selectors filter lists, and on a watch an
// object that stops matching arrives as DELETED and one that starts
// matching as ADDED.
func TestSelectors(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	createConfigMap(t, configMaps, "red-1", map[string]string{"color": "red"})
	createConfigMap(t, configMaps, "red-2", map[string]string{"color": "red"})
	blue := createConfigMap(t, configMaps, "blue-1", map[string]string{"color": "blue"})

	listCases := []struct {
		name string
		opts metav1.ListOptions
		want []string
	}{
		{"label equality", metav1.ListOptions{LabelSelector: "color=red"}, []string{"red-1", "red-2"}},
		{"label set", metav1.ListOptions{LabelSelector: "color in (blue)"}, []string{"blue-1"}},
		{"label inequality", metav1.ListOptions{LabelSelector: "color!=red"}, []string{"blue-1"}},
		{"label exists", metav1.ListOptions{LabelSelector: "color"}, []string{"blue-1", "red-1", "red-2"}},
		{"field name", metav1.ListOptions{FieldSelector: "metadata.name=red-2"}, []string{"red-2"}},
		{"field name inequality", metav1.ListOptions{FieldSelector: "metadata.name!=red-2"}, []string{"blue-1", "red-1"}},
		{"label and field", metav1.ListOptions{LabelSelector: "color=red", FieldSelector: "metadata.name!=red-1"}, []string{"red-2"}},
	}
	for _, tc := range listCases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := configMaps.List(ctx, tc.opts)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, cm := range list.Items {
				got = append(got, cm.Name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("watch label selector", func(t *testing.T) {
		list, err := configMaps.List(ctx, metav1.ListOptions{LabelSelector: "color=blue"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		w, err := configMaps.Watch(ctx, metav1.ListOptions{LabelSelector: "color=blue", ResourceVersion: list.ResourceVersion})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		defer w.Stop()

		red, err := configMaps.Get(ctx, "red-1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		red.Labels["color"] = "blue"
		if _, err := configMaps.Update(ctx, red, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("relabelling red-1: %v", err)
		}
		if got := describeEvent(nextEvent(t, w)); got != "ADDED red-1" {
			t.Errorf("object entering the selection arrived as %q, want ADDED red-1", got)
		}

		blue.Labels["color"] = "green"
		if _, err := configMaps.Update(ctx, blue, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("relabelling blue-1: %v", err)
		}
		if got := describeEvent(nextEvent(t, w)); got != "DELETED blue-1" {
			t.Errorf("object leaving the selection arrived as %q, want DELETED blue-1", got)
		}

		createConfigMap(t, configMaps, "yellow-1", map[string]string{"color": "yellow"})
		createConfigMap(t, configMaps, "blue-2", map[string]string{"color": "blue"})
		if got := describeEvent(nextEvent(t, w)); got != "ADDED blue-2" {
			t.Errorf("next event %q, want ADDED blue-2 (yellow-1 does not match)", got)
		}
	})

	t.Run("watch field selector", func(t *testing.T) {
		w, err := configMaps.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=red-2"})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		defer w.Stop()
		if got := describeEvent(nextEvent(t, w)); got != "ADDED red-2" {
			t.Errorf("initial event %q, want ADDED red-2", got)
		}
		if err := configMaps.Delete(ctx, "red-2", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if got := describeEvent(nextEvent(t, w)); got != "DELETED red-2" {
			t.Errorf("event %q, want DELETED red-2", got)
		}
	})
}
