package admission

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/storage"
)

// laggingStore answers watch-cache reads (resourceVersion "0") from cached
// and consistent reads from stored, and counts the consistent ones.
type laggingStore struct {
	storage.Interface
	cached, stored  *memoryStore
	consistentLists int
}

func (s *laggingStore) GetList(ctx context.Context, key string, opts storage.ListOptions, list runtime.Object) error {
	if opts.ResourceVersion == "0" {
		return s.cached.GetList(ctx, key, opts, list)
	}
	s.consistentLists++
	return s.stored.GetList(ctx, key, opts, list)
}

func TestLiveLookup(t *testing.T) {
	quota := func(name string) *corev1.ResourceQuota {
		return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	}
	tests := []struct {
		name   string
		cached []runtime.Object
		stored []runtime.Object
		// lookups are made this far apart.
		interval       time.Duration
		wantNames      []string
		wantConsistent int
	}{
		{name: "the cache has them", cached: []runtime.Object{quota("a")}, stored: []runtime.Object{quota("a")},
			wantNames: []string{"a"}, wantConsistent: 0},
		{name: "created a moment ago, not yet cached", stored: []runtime.Object{quota("new")},
			wantNames: []string{"new"}, wantConsistent: 1},
		{name: "none anywhere: one read per TTL", interval: liveLookupTTL / 3,
			wantConsistent: 1},
		{name: "an expired answer is read again", interval: liveLookupTTL, stored: []runtime.Object{quota("b")},
			wantNames: []string{"b"}, wantConsistent: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &laggingStore{cached: newObjects("/q", corev1.Resource("resourcequotas"), tt.cached...).Store.(*memoryStore),
				stored: newObjects("/q", corev1.Resource("resourcequotas"), tt.stored...).Store.(*memoryStore)}
			objects := Objects{Store: store, KeyPrefix: "/q", Resource: corev1.Resource("resourcequotas")}
			now := time.Unix(0, 0)
			lookup := &liveLookup{now: func() time.Time { return now }}
			for range 3 {
				list := &corev1.ResourceQuotaList{}
				if err := lookup.list(t.Context(), objects, "ns", list); err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, item := range list.Items {
					names = append(names, item.Name)
				}
				if len(names) != len(tt.wantNames) || (len(names) > 0 && names[0] != tt.wantNames[0]) {
					t.Fatalf("listed %v, want %v", names, tt.wantNames)
				}
				now = now.Add(tt.interval)
			}
			if store.consistentLists != tt.wantConsistent {
				t.Errorf("%d consistent reads over 3 lookups, want %d", store.consistentLists, tt.wantConsistent)
			}
		})
	}
}
