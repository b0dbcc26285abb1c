package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease reuse follows kube-apiserver's etcd3 lease manager: granting a lease
// is a raft write and every live lease costs etcd memory and expiry checks,
// so writes close together share one lease whose TTL is stretched by the
// reuse window. An object then lives between ttl and ttl+window after its
// last write, never less than ttl.
const (
	// maxLeaseReuse caps the reuse window.
	maxLeaseReuse = 60 * time.Second
	// leaseReuseFraction of the TTL is the window for short TTLs.
	leaseReuseFraction = 0.05
	// maxObjectsPerLease bounds how many writes one lease serves, so that
	// its expiry deletes a bounded number of keys at once.
	maxObjectsPerLease = 1000
)

// leaseGranter is the part of etcd's lease API the reuser needs.
type leaseGranter interface {
	Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error)
}

// leaseReuser hands out etcd leases for writes that must expire after a
// TTL, reusing the last granted lease while it still outlives the request.
type leaseReuser struct {
	granter leaseGranter
	// now is the clock; tests replace it.
	now func() time.Time

	mu sync.Mutex
	id clientv3.LeaseID
	// expires is when the cached lease ends, by the local clock at grant.
	expires time.Time
	// attached counts the writes the cached lease has served.
	attached int
}

func newLeaseReuser(granter leaseGranter) *leaseReuser {
	return &leaseReuser{granter: granter, now: time.Now}
}

// reuseWindow is how much longer than ttl a new lease lives, so that it can
// serve the writes of that window.
func reuseWindow(ttl time.Duration) time.Duration {
	return min(time.Duration(leaseReuseFraction*float64(ttl)).Truncate(time.Second), maxLeaseReuse)
}

// lease returns a lease that ends no sooner than ttl from now (whole
// seconds, as etcd grants them).
func (l *leaseReuser) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	window := reuseWindow(ttl)
	l.attached++
	// The cached lease outlives this write's TTL, and does not outlive it
	// by more than one window (a lease granted for a longer TTL is not
	// used to hold this object).
	outlives := now.Add(ttl).Before(l.expires)
	recent := !now.Add(ttl + window).Before(l.expires)
	if l.id != clientv3.NoLease && outlives && recent && l.attached <= maxObjectsPerLease {
		return l.id, nil
	}
	granted := ttl + window
	resp, err := l.granter.Grant(ctx, int64(granted/time.Second))
	if err != nil {
		return clientv3.NoLease, fmt.Errorf("grant a lease of %s: %w", granted, err)
	}
	l.id, l.expires, l.attached = resp.ID, now.Add(granted), 1
	return l.id, nil
}

// forget drops the cached lease id when etcd no longer knows it (revoked
// by someone else), so that the next write is granted a new one.
func (l *leaseReuser) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id == id {
		l.id, l.expires, l.attached = clientv3.NoLease, time.Time{}, 0
	}
}
