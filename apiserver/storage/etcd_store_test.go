package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/storagetest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, ctx context.Context, s storage.Interface, cm *corev1.ConfigMap) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := s.Create(ctx, storagetest.Key(cm.Namespace, cm.Name), cm, out); err != nil {
		t.Fatalf("create %s/%s: %v", cm.Namespace, cm.Name, err)
	}
	return out
}

func TestCreateGet(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))

	created := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))
	if created.ResourceVersion == "" {
		t.Fatal("created object has no resourceVersion")
	}
	err := s.Create(ctx, storagetest.Key("ns", "a"), storagetest.ConfigMap("ns", "a", nil), &corev1.ConfigMap{})
	if !storage.IsExists(err) {
		t.Fatalf("second create: got %v, want KeyExists", err)
	}

	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, storagetest.Key("ns", "a"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion || got.Data["k"] != "v" {
		t.Fatalf("get returned %+v, want rv %s", got, created.ResourceVersion)
	}

	err = s.Get(ctx, storagetest.Key("ns", "missing"), storage.GetOptions{}, got)
	if !storage.IsNotFound(err) {
		t.Fatalf("get missing: got %v, want NotFound", err)
	}
	got = &corev1.ConfigMap{Data: map[string]string{"stale": "x"}}
	if err := s.Get(ctx, storagetest.Key("ns", "missing"), storage.GetOptions{IgnoreNotFound: true}, got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "" || got.Data != nil {
		t.Fatalf("IgnoreNotFound returned %+v, want a zero object", got)
	}

	err = s.Get(ctx, storagetest.Key("ns", "a"), storage.GetOptions{ResourceVersion: "999999"}, got)
	if !storage.IsTimeout(err) {
		t.Fatalf("get at a future revision: got %v, want Timeout", err)
	}
}

func setAnnotation(key, value string) storage.UpdateFunc {
	return func(current runtime.Object) (runtime.Object, error) {
		cm := current.(*corev1.ConfigMap)
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[key] = value
		return cm, nil
	}
}

func TestGuaranteedUpdate(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	key := storagetest.Key("ns", "a")
	created := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))

	updated := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdate(ctx, key, updated, false, nil, setAnnotation("x", "1"), nil); err != nil {
		t.Fatal(err)
	}
	if updated.ResourceVersion == created.ResourceVersion || updated.Annotations["x"] != "1" {
		t.Fatalf("update returned %+v", updated)
	}

	noop := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdate(ctx, key, noop, false, nil, setAnnotation("x", "1"), nil); err != nil {
		t.Fatal(err)
	}
	if noop.ResourceVersion != updated.ResourceVersion {
		t.Fatalf("no-op update wrote: rv %s, want %s", noop.ResourceVersion, updated.ResourceVersion)
	}

	// A stale cached copy must not win over the stored state.
	stale := created.DeepCopy()
	viaStale := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdate(ctx, key, viaStale, false, nil, setAnnotation("y", "2"), stale); err != nil {
		t.Fatal(err)
	}
	if viaStale.Annotations["x"] != "1" || viaStale.Annotations["y"] != "2" {
		t.Fatalf("update from stale cache lost data: %v", viaStale.Annotations)
	}

	wrongUID := types.UID("other")
	err := s.GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, &storage.Preconditions{UID: &wrongUID}, setAnnotation("z", "3"), nil)
	if storage.CodeOf(err) != storage.ErrCodePreconditionFailed {
		t.Fatalf("uid precondition: got %v", err)
	}
	var se *storage.Error
	errors.As(err, &se)
	if want := "Precondition failed: UID in precondition: other, UID in object meta: uid-a"; se.Message != want {
		t.Fatalf("message %q, want %q", se.Message, want)
	}
	oldRV := created.ResourceVersion
	err = s.GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, &storage.Preconditions{ResourceVersion: &oldRV}, setAnnotation("z", "3"), nil)
	if storage.CodeOf(err) != storage.ErrCodePreconditionFailed {
		t.Fatalf("resourceVersion precondition: got %v", err)
	}

	err = s.GuaranteedUpdate(ctx, storagetest.Key("ns", "missing"), &corev1.ConfigMap{}, false, nil, setAnnotation("z", "3"), nil)
	if !storage.IsNotFound(err) {
		t.Fatalf("update of missing key: got %v", err)
	}
	upserted := &corev1.ConfigMap{}
	err = s.GuaranteedUpdate(ctx, storagetest.Key("ns", "new"), upserted, true, nil, func(runtime.Object) (runtime.Object, error) {
		return storagetest.ConfigMap("ns", "new", nil), nil
	}, nil)
	if err != nil || upserted.ResourceVersion == "" {
		t.Fatalf("upsert: %v, %+v", err, upserted)
	}
}

func TestGuaranteedUpdateConcurrentWriters(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	key := storagetest.Key("ns", "counter")
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "counter", nil))

	const writers, increments = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range increments {
				err := s.GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, nil, func(current runtime.Object) (runtime.Object, error) {
					cm := current.(*corev1.ConfigMap)
					n, _ := strconv.Atoi(cm.Data["n"])
					cm.Data["n"] = strconv.Itoa(n + 1)
					return cm, nil
				}, nil)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, key, storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Data["n"] != strconv.Itoa(writers*increments) {
		t.Fatalf("counter = %s, want %d", got.Data["n"], writers*increments)
	}
}

func TestDelete(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	key := storagetest.Key("ns", "a")
	created := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))

	wrongUID := types.UID("other")
	err := s.Delete(ctx, key, &corev1.ConfigMap{}, &storage.Preconditions{UID: &wrongUID}, nil, nil)
	if storage.CodeOf(err) != storage.ErrCodePreconditionFailed {
		t.Fatalf("delete with wrong uid: got %v", err)
	}
	refuse := errors.New("refused")
	err = s.Delete(ctx, key, &corev1.ConfigMap{}, nil, func(context.Context, runtime.Object) error { return refuse }, nil)
	if !errors.Is(err, refuse) {
		t.Fatalf("validateDeletion error not returned: %v", err)
	}

	// Another write lands between the cached copy and the delete: the
	// validation must see the current object.
	var updated corev1.ConfigMap
	if err := s.GuaranteedUpdate(ctx, key, &updated, false, nil, setAnnotation("x", "1"), nil); err != nil {
		t.Fatal(err)
	}
	var validated []string
	deleted := &corev1.ConfigMap{}
	err = s.Delete(ctx, key, deleted, nil, func(_ context.Context, obj runtime.Object) error {
		validated = append(validated, obj.(*corev1.ConfigMap).ResourceVersion)
		return nil
	}, created.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if validated[len(validated)-1] != updated.ResourceVersion {
		t.Fatalf("validateDeletion last saw rv %v, want %s", validated, updated.ResourceVersion)
	}
	if deleted.Annotations["x"] != "1" || deleted.ResourceVersion == updated.ResourceVersion {
		t.Fatalf("deleted object %+v should be the last state at the deletion's revision", deleted)
	}
	if err := s.Delete(ctx, key, &corev1.ConfigMap{}, nil, nil, nil); !storage.IsNotFound(err) {
		t.Fatalf("second delete: got %v, want NotFound", err)
	}
}

func createMany(t *testing.T, ctx context.Context, s storage.Interface, namespace string, n int, labelsFor func(i int) map[string]string) {
	t.Helper()
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				cm := storagetest.ConfigMap(namespace, fmt.Sprintf("cm-%05d", i), labelsFor(i))
				if err := s.Create(ctx, storagetest.Key(namespace, cm.Name), cm, &corev1.ConfigMap{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
