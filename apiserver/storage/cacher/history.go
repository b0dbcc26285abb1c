package cacher

import (
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
)

// event is one change of the cached state, shared by every watcher.
type event struct {
	typ watch.EventType
	key string
	rev int64
	// object is the new state; for DELETED the last state at the deletion's
	// revision; for BOOKMARK an empty object carrying rev.
	object *storage.CachingObject
	// prev is the state before the change, nil for ADDED.
	prev *storage.CachingObject

	// leaving is the DELETED object sent to watchers whose selector the
	// object left: prev's content at this event's revision, made once.
	leavingOnce sync.Once
	leaving     *storage.CachingObject
	leavingErr  error

	at time.Time
}

func (e *event) leavingObject() (*storage.CachingObject, error) {
	if e.typ == watch.Deleted {
		return e.object, nil
	}
	e.leavingOnce.Do(func() {
		obj := e.prev.DeepCopyObject()
		if err := storage.SetResourceVersion(obj, e.rev); err != nil {
			e.leavingErr = err
			return
		}
		e.leaving = storage.NewCachingObject(obj)
	})
	return e.leaving, e.leavingErr
}

// Sizing of the event history: it grows while it evicts events younger than
// historyMinAge, so that a watcher that briefly disconnects under heavy
// write load can resume without a relist.
const (
	historyInitialCapacity = 1024
	historyMaxCapacity     = 64 * 1024
	historyMinAge          = 75 * time.Second
)

// history is a ring buffer of recent events in revision order.
type history struct {
	events []*event
	start  int
	count  int
	// evictedRev is the newest revision no longer covered: a watch can
	// resume from any revision at or after it.
	evictedRev int64
}

func newHistory(listRev int64) *history {
	return &history{events: make([]*event, historyInitialCapacity), evictedRev: listRev}
}

func (h *history) at(i int) *event { return h.events[(h.start+i)%len(h.events)] }

func (h *history) add(e *event) {
	if h.count == len(h.events) {
		oldest := h.at(0)
		if len(h.events) < historyMaxCapacity && e.at.Sub(oldest.at) < historyMinAge {
			h.grow()
		} else {
			h.evictedRev = oldest.rev
			h.events[h.start] = nil
			h.start = (h.start + 1) % len(h.events)
			h.count--
		}
	}
	h.events[(h.start+h.count)%len(h.events)] = e
	h.count++
}

func (h *history) grow() {
	grown := make([]*event, 2*len(h.events))
	for i := range h.count {
		grown[i] = h.at(i)
	}
	h.events, h.start = grown, 0
}

// since returns the events after rev, or false when they were evicted.
func (h *history) since(rev int64) ([]*event, bool) {
	if rev < h.evictedRev {
		return nil, false
	}
	first := sort.Search(h.count, func(i int) bool { return h.at(i).rev > rev })
	out := make([]*event, 0, h.count-first)
	for i := first; i < h.count; i++ {
		out = append(out, h.at(i))
	}
	return out, true
}
