package integration

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"tower.dev/tower/test/framework"
)

// observedEvents records, per object name, what an informer delivered.
type observedEvents struct {
	mu     sync.Mutex
	byName map[string][]string
	total  int
}

func (o *observedEvents) record(obj any, format string, args ...any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		if tombstone, isTombstone := obj.(cache.DeletedFinalStateUnknown); isTombstone {
			o.add(tombstone.Key, "DELETE-TOMBSTONE")
			return
		}
		o.add(fmt.Sprintf("%T", obj), "UNEXPECTED-TYPE")
		return
	}
	o.add(cm.Name, fmt.Sprintf(format, args...))
}

func (o *observedEvents) add(name, event string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byName[name] = append(o.byName[name], event)
	o.total++
}

func (o *observedEvents) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

func (o *observedEvents) of(name string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.byName[name])
}

// TestInformerSeesEveryChangeInOrder creates, updates and deletes 1000
// ConfigMaps concurrently and checks that a shared informer delivers
// exactly add, update, delete for each, with the resourceVersions the
// server returned.
func TestInformerSeesEveryChangeInOrder(t *testing.T) {
	const objects = 1000
	const workers = 16
	ctx, cancel := context.WithCancel(t.Context())
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)

	factory := informers.NewSharedInformerFactoryWithOptions(controlPlane.Clientset(), 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().ConfigMaps().Informer()
	events := &observedEvents{byName: map[string][]string{}}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			events.record(obj, "ADD %s", resourceVersionOf(obj))
		},
		UpdateFunc: func(oldObj, newObj any) {
			events.record(newObj, "UPDATE %s->%s", resourceVersionOf(oldObj), resourceVersionOf(newObj))
		},
		DeleteFunc: func(obj any) {
			events.record(obj, "DELETE")
		},
	})
	if err != nil {
		t.Fatalf("adding event handler: %v", err)
	}
	factory.Start(ctx.Done())
	// Shutdown waits for the informers, which stop when ctx is cancelled.
	defer factory.Shutdown()
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer never synced")
	}

	name := func(i int) string { return fmt.Sprintf("cm-%04d", i) }
	createdRV := make([]string, objects)
	updatedRV := make([]string, objects)

	err = framework.InParallel(ctx, objects, workers, func(ctx context.Context, i int) error {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name(i)},
			Data:       map[string]string{"generation": "1"},
		}
		created, err := configMaps.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating %s: %w", cm.Name, err)
		}
		createdRV[i] = created.ResourceVersion
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "informer store to hold every created object", func(context.Context) (bool, error) {
		return len(informer.GetStore().List()) == objects, nil
	})

	err = framework.InParallel(ctx, objects, workers, func(ctx context.Context, i int) error {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name(i), ResourceVersion: createdRV[i]},
			Data:       map[string]string{"generation": "2", "index": strconv.Itoa(i)},
		}
		updated, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating %s: %w", cm.Name, err)
		}
		updatedRV[i] = updated.ResourceVersion
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "informer to see every update", func(context.Context) (bool, error) {
		return events.count() == 2*objects, nil
	})

	err = framework.InParallel(ctx, objects, workers, func(ctx context.Context, i int) error {
		if err := configMaps.Delete(ctx, name(i), metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("deleting %s: %w", name(i), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "informer store to empty", func(context.Context) (bool, error) {
		return len(informer.GetStore().List()) == 0 && events.count() >= 3*objects, nil
	})

	for i := range objects {
		want := []string{
			"ADD " + createdRV[i],
			"UPDATE " + createdRV[i] + "->" + updatedRV[i],
			"DELETE",
		}
		if got := events.of(name(i)); !slices.Equal(got, want) {
			t.Errorf("events for %s:\n got  %q\n want %q", name(i), got, want)
		}
	}
	if got := events.count(); got != 3*objects {
		t.Errorf("informer delivered %d events, want %d", got, 3*objects)
	}
}

func resourceVersionOf(obj any) string {
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		return cm.ResourceVersion
	}
	return "?"
}
