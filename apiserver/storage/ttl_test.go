package storage_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/cacher"
	"tower.dev/tower/apiserver/storage/storagetest"
)

// countingLease counts the leases etcd grants through it.
type countingLease struct {
	clientv3.Lease
	grants atomic.Int64
}

func (l *countingLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	l.grants.Add(1)
	return l.Lease.Grant(ctx, ttl)
}

func newTTLStore(client *clientv3.Client, ttl time.Duration) storage.Interface {
	return storage.NewEtcdStore(client, storagetest.Codec(), storagetest.NewConfigMap, storagetest.NewConfigMapList,
		storagetest.Prefix, storage.WithTTL(ttl))
}

// leaseOf is the lease etcd holds key under (0 for none).
func leaseOf(t *testing.T, ctx context.Context, client *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	resp, err := client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%s: %d keys", key, len(resp.Kvs))
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// TestTTLBurstSharesLeases writes a burst of objects as kube-apiserver
// writes events (TTL one hour): each carries a lease of the TTL plus the
// one-minute reuse window, and the burst costs a lease per thousand
// objects (a few more only if the burst outlasts the window), not one per
// object.
func TestTTLBurstSharesLeases(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	counter := &countingLease{Lease: client.Lease}
	client.Lease = counter
	s := newTTLStore(client, time.Hour)

	const objects, writers = 3000, 32
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < objects; i += writers {
				cm := storagetest.ConfigMap("ns", fmt.Sprintf("ev-%05d", i), nil)
				if err := s.Create(ctx, storagetest.Key("ns", cm.Name), cm, &corev1.ConfigMap{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	resp, err := client.Get(ctx, storagetest.Prefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	perLease := map[clientv3.LeaseID]int{}
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			t.Fatalf("%s is stored without a lease", kv.Key)
		}
		perLease[clientv3.LeaseID(kv.Lease)]++
	}
	if len(resp.Kvs) != objects {
		t.Fatalf("%d objects stored, want %d", len(resp.Kvs), objects)
	}
	for id, n := range perLease {
		if n > 1000 {
			t.Errorf("lease %x holds %d objects, more than 1000", id, n)
		}
		ttl, err := client.TimeToLive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ttl.GrantedTTL != 3660 {
			t.Errorf("lease %x granted for %d s, want 3660 (an hour plus the reuse window)", id, ttl.GrantedTTL)
		}
	}
	grants := counter.grants.Load()
	// A lease serves at most a thousand writes and one reuse window.
	bound := int64(objects/1000) + 1 + int64(elapsed/time.Minute)
	t.Logf("%d objects in %s: %d lease grants, %d leases in use", objects, elapsed, grants, len(perLease))
	if grants != int64(len(perLease)) || grants > bound {
		t.Fatalf("%d lease grants for %d objects written in %s (%d leases in use), want at most %d",
			grants, objects, elapsed, len(perLease), bound)
	}
}

// TestTTLOnUpdateOnly shows that a store without a TTL attaches no lease
// and that an update through a store with one attaches it, as upstream
// renews an event's TTL on every write.
func TestTTLOnUpdateOnly(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	plain := storagetest.NewStore(client)
	key := storagetest.Key("ns", "a")
	mustCreate(t, ctx, plain, storagetest.ConfigMap("ns", "a", nil))
	if id := leaseOf(t, ctx, client, key); id != clientv3.NoLease {
		t.Fatalf("a store without a TTL stored the object with lease %x", id)
	}
	annotate := func(current runtime.Object) (runtime.Object, error) {
		cm := current.(*corev1.ConfigMap)
		cm.Annotations = map[string]string{"written": "again"}
		return cm, nil
	}
	if err := newTTLStore(client, time.Hour).GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, nil, annotate, nil); err != nil {
		t.Fatal(err)
	}
	if id := leaseOf(t, ctx, client, key); id == clientv3.NoLease {
		t.Fatal("the update through a store with a TTL attached no lease")
	}
}

// TestTTLExpiryIsDeletedForWatchers gives objects a two-second TTL and
// waits (generously) for etcd to expire them: the object is gone and both
// an etcd watch and a watch-cache watch report DELETED.
func TestTTLExpiryIsDeletedForWatchers(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	s := newTTLStore(client, 2*time.Second)
	cached, err := cacher.New(ctx, s, client, storagetest.Prefix, storagetest.NewConfigMap, storagetest.NewConfigMapList)
	if err != nil {
		t.Fatal(err)
	}
	revision, err := s.CurrentResourceVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watchers := map[string]watch.Interface{}
	for name, store := range map[string]storage.Interface{"etcd": s, "watch cache": cached} {
		w, err := store.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{ResourceVersion: fmt.Sprint(revision), Recursive: true})
		if err != nil {
			t.Fatalf("%s watch: %v", name, err)
		}
		defer w.Stop()
		watchers[name] = w
	}

	created := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "short-lived", nil))
	key := storagetest.Key("ns", "short-lived")
	if id := leaseOf(t, ctx, client, key); id == clientv3.NoLease {
		t.Fatal("created without a lease")
	}
	for name, w := range watchers {
		deadline := time.After(time.Minute)
		var got []eventSummary
	events:
		for {
			select {
			case e, ok := <-w.ResultChan():
				if !ok {
					t.Fatalf("%s watch closed after %+v", name, got)
				}
				got = append(got, summarize(t, e))
				if e.Type == watch.Deleted {
					break events
				}
			case <-deadline:
				t.Fatalf("%s watch: no DELETED within a minute of a 2 s TTL; got %+v", name, got)
			}
		}
		if len(got) != 2 || got[0] != (eventSummary{watch.Added, "short-lived", created.ResourceVersion}) || got[1].Name != "short-lived" {
			t.Fatalf("%s watch saw %+v, want ADDED then DELETED of short-lived", name, got)
		}
	}
	err = s.Get(ctx, key, storage.GetOptions{}, &corev1.ConfigMap{})
	if !storage.IsNotFound(err) {
		t.Fatalf("get after expiry: %v, want NotFound", err)
	}
}
