package storage

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeGranter records the TTLs it grants and numbers the leases.
type fakeGranter struct {
	ttls []int64
	err  error
}

func (g *fakeGranter) Grant(_ context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	if g.err != nil {
		return nil, g.err
	}
	g.ttls = append(g.ttls, ttl)
	return &clientv3.LeaseGrantResponse{ID: clientv3.LeaseID(len(g.ttls)), TTL: ttl}, nil
}

func TestReuseWindow(t *testing.T) {
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{time.Hour, 60 * time.Second},
		{10 * time.Minute, 30 * time.Second},
		{100 * time.Second, 5 * time.Second},
		{30 * time.Second, time.Second},
		{2 * time.Second, 0},
	} {
		if got := reuseWindow(tc.ttl); got != tc.want {
			t.Errorf("reuseWindow(%s) = %s, want %s", tc.ttl, got, tc.want)
		}
	}
}

func TestLeaseReuse(t *testing.T) {
	type write struct {
		// at is the time of the write after the first one.
		at        time.Duration
		ttl       time.Duration
		wantLease clientv3.LeaseID
	}
	for _, tc := range []struct {
		name       string
		writes     []write
		wantGrants []int64
	}{{
		name: "writes within the window share the first lease, stretched by the window",
		writes: []write{
			{0, time.Hour, 1}, {time.Second, time.Hour, 1}, {59 * time.Second, time.Hour, 1},
		},
		wantGrants: []int64{3660},
	}, {
		name:       "a write one window after the grant gets a new lease",
		writes:     []write{{0, time.Hour, 1}, {60 * time.Second, time.Hour, 2}, {61 * time.Second, time.Hour, 2}},
		wantGrants: []int64{3660, 3660},
	}, {
		name:       "a lease that would end before a longer TTL is not reused",
		writes:     []write{{0, time.Hour, 1}, {time.Second, 2 * time.Hour, 2}},
		wantGrants: []int64{3660, 7260},
	}, {
		name:       "a lease that would outlive a shorter TTL by more than its window is not reused",
		writes:     []write{{0, 2 * time.Hour, 1}, {time.Second, time.Hour, 2}},
		wantGrants: []int64{7260, 3660},
	}, {
		name:       "a short TTL has no window: every write a new lease",
		writes:     []write{{0, 2 * time.Second, 1}, {0, 2 * time.Second, 2}, {time.Second, 2 * time.Second, 3}},
		wantGrants: []int64{2, 2, 2},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGranter{}
			l := newLeaseReuser(g)
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, w := range tc.writes {
				l.now = func() time.Time { return start.Add(w.at) }
				got, err := l.lease(context.Background(), w.ttl)
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if got != w.wantLease {
					t.Errorf("write %d at +%s: lease %d, want %d", i, w.at, got, w.wantLease)
				}
			}
			if !slices.Equal(g.ttls, tc.wantGrants) {
				t.Errorf("granted TTLs %v, want %v", g.ttls, tc.wantGrants)
			}
		})
	}
}

func TestLeaseServesAtMostMaxObjects(t *testing.T) {
	g := &fakeGranter{}
	l := newLeaseReuser(g)
	now := time.Now()
	l.now = func() time.Time { return now }
	counts := map[clientv3.LeaseID]int{}
	for range 2*maxObjectsPerLease + 1 {
		id, err := l.lease(context.Background(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		counts[id]++
	}
	want := map[clientv3.LeaseID]int{1: maxObjectsPerLease, 2: maxObjectsPerLease, 3: 1}
	if !maps.Equal(counts, want) {
		t.Fatalf("%d leases for %d writes, want %v objects per lease", len(counts), 2*maxObjectsPerLease+1, want)
	}
}

func TestLeaseForgottenAndGrantFailure(t *testing.T) {
	g := &fakeGranter{}
	l := newLeaseReuser(g)
	ctx := context.Background()
	first, err := l.lease(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l.forget(first + 1) // another lease: no effect
	if again, _ := l.lease(ctx, time.Hour); again != first {
		t.Fatalf("lease %d after forgetting another one, want %d", again, first)
	}
	l.forget(first)
	if fresh, _ := l.lease(ctx, time.Hour); fresh == first {
		t.Fatalf("forgotten lease %d handed out again", first)
	}

	g.err = errors.New("etcd down")
	l.forget(clientv3.LeaseID(len(g.ttls)))
	if _, err := l.lease(ctx, time.Hour); !errors.Is(err, g.err) {
		t.Fatalf("grant failure: got %v, want it wrapped", err)
	}
}
