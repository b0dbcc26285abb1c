package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/storagetest"
)

// TestCompactorsShareCompaction runs two compactors (two API servers) on one
// etcd and checks that old history goes away while the latest interval's
// stays readable.
func TestCompactorsShareCompaction(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	first, err := client.Put(ctx, "/registry/x", "0")
	if err != nil {
		t.Fatal(err)
	}

	compactCtx, stop := context.WithCancel(ctx)
	defer stop()
	const interval = 200 * time.Millisecond
	storage.StartCompactor(compactCtx, client, interval)
	storage.StartCompactor(compactCtx, client, interval)

	deadline := time.Now().Add(20 * time.Second)
	for i := 1; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("revision of the first write still readable after 20s")
		}
		if _, err := client.Put(ctx, "/registry/x", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		_, err := client.Get(ctx, "/registry/x", clientv3.WithRev(first.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()

	// Each compaction went to the revision recorded one interval earlier:
	// the newest revision is never compacted away.
	latest, err := client.Put(ctx, "/registry/x", "last")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(ctx, "/registry/x", clientv3.WithRev(latest.Header.Revision-1)); err != nil {
		t.Fatalf("recent history compacted: %v", err)
	}
	key, err := client.Get(ctx, "compact_rev_key")
	if err != nil || len(key.Kvs) != 1 {
		t.Fatalf("compact_rev_key: %v %v", err, key.Kvs)
	}
}
