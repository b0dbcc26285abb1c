package storage

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey is the key kube-apiserver uses to coordinate compaction
// between API servers; sharing it lets Tower and kube-apiserver instances
// share one etcd.
const compactRevKey = "compact_rev_key"

// StartCompactor compacts etcd's history every interval until ctx ends, the
// way kube-apiserver does: each tick records the current revision and
// compacts to the revision recorded at the previous tick, so history is kept
// for at least one interval. The compare-and-swap on compact_rev_key's
// version makes several API servers compact once per interval between them.
func StartCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	if interval <= 0 {
		return
	}
	go runCompactor(ctx, client, interval)
}

func runCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	log := logr.FromContextOrDiscard(ctx).WithName("compactor")
	// expectVersion is the version of compact_rev_key this server last saw;
	// rev is the revision recorded at the previous tick.
	var expectVersion, rev int64
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		var compacted int64
		var err error
		expectVersion, rev, compacted, err = compactOnce(ctx, client, expectVersion, rev)
		if err != nil {
			log.Error(err, "etcd compaction failed", "endpoints", client.Endpoints())
		} else if compacted > 0 {
			log.V(4).Info("compacted etcd history", "revision", compacted)
		}
		timer.Reset(interval)
	}
}

// compactOnce claims this interval's compaction by bumping compact_rev_key
// from expectVersion and, when it wins, compacts to rev (the revision the
// previous winner recorded). It returns the key's version and the revision
// to compact at the next tick.
func compactOnce(ctx context.Context, client *clientv3.Client, expectVersion, rev int64) (version, nextRev, compacted int64, err error) {
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(compactRevKey), "=", expectVersion)).
		Then(clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10))).
		Else(clientv3.OpGet(compactRevKey)).
		Commit()
	if err != nil {
		return expectVersion, rev, 0, fmt.Errorf("claim compaction: %w", err)
	}
	nextRev = resp.Header.Revision
	if !resp.Succeeded {
		// Another server compacted this interval; follow its version.
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return 0, nextRev, 0, nil
		}
		return kvs[0].Version, nextRev, 0, nil
	}
	version = expectVersion + 1
	if rev == 0 {
		return version, nextRev, 0, nil
	}
	if _, err := client.Compact(ctx, rev); err != nil {
		return version, nextRev, 0, fmt.Errorf("compact to revision %d: %w", rev, err)
	}
	return version, nextRev, rev, nil
}
