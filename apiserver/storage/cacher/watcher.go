package cacher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
)

const (
	// watcherInputBuffer is how many events a watcher may lag behind the
	// cache before the dispatcher starts waiting for it (and then closes it).
	watcherInputBuffer = 256
	// watcherResultBuffer smooths the hand-off to the HTTP writer.
	watcherResultBuffer = 16
)

// cacheWatcher is one client's watch on the cache. The dispatcher feeds it
// shared events; its goroutine filters them with the client's selectors and
// hands them to the client.
type cacheWatcher struct {
	cacher    *Cacher
	key       string
	recursive bool
	pred      storage.SelectionPredicate
	bookmarks bool

	input    chan *event
	result   chan watch.Event
	done     chan struct{}
	doneOnce sync.Once

	// What the client gets before live events: a snapshot of the cached
	// objects (for a watch from "now") or the buffered events after the
	// requested revision, then the initial-events-end bookmark if asked.
	initial          *btree.BTreeG[*entry]
	replay           []*event
	initialEventsEnd *storage.CachingObject
	// lastRev is the revision the client has been brought up to.
	lastRev int64
}

func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

// Stop ends the watch; the result channel closes soon after.
func (w *cacheWatcher) Stop() { w.terminate() }

func (w *cacheWatcher) terminate() {
	w.closeDone()
	w.cacher.removeWatcher(w)
}

func (w *cacheWatcher) closeDone() { w.doneOnce.Do(func() { close(w.done) }) }

func (w *cacheWatcher) wants(key string) bool {
	if w.recursive {
		return strings.HasPrefix(key, w.key)
	}
	return key == w.key
}

func (w *cacheWatcher) send(ctx context.Context, e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-w.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (w *cacheWatcher) run(ctx context.Context) {
	defer close(w.result)
	defer w.terminate()

	if !w.sendInitialState(ctx) {
		return
	}
	for _, e := range w.replay {
		if !w.deliver(ctx, e) {
			return
		}
	}
	w.replay = nil
	beforeDeadline := w.deadlineBookmark(ctx)
	for {
		select {
		case e := <-w.input:
			if !w.deliver(ctx, e) {
				return
			}
		case <-beforeDeadline:
			beforeDeadline = nil
			if !w.sendBookmark(ctx) {
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// deadlineLead is how long before a watch's deadline the final bookmark
// goes out, so that the client resumes from a fresh revision (as
// kube-apiserver does).
const deadlineLead = 2 * time.Second

// deadlineBookmark fires shortly before the watch's deadline when the
// client asked for bookmarks.
func (w *cacheWatcher) deadlineBookmark(ctx context.Context) <-chan time.Time {
	deadline, ok := ctx.Deadline()
	if !w.bookmarks || !ok {
		return nil
	}
	wait := time.Until(deadline) - deadlineLead
	if wait < 0 {
		wait = time.Until(deadline) / 2
	}
	return time.After(wait)
}

func (w *cacheWatcher) sendBookmark(ctx context.Context) bool {
	obj, err := storage.BookmarkObject(w.cacher.newFunc, w.lastRev, false)
	if err != nil {
		w.send(ctx, storage.StatusEvent(err))
		return false
	}
	return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: storage.NewCachingObject(obj)})
}

func (w *cacheWatcher) sendInitialState(ctx context.Context) bool {
	if w.initial != nil {
		ok := true
		w.initial.AscendGreaterOrEqual(&entry{key: w.key}, func(e *entry) bool {
			if !w.wants(e.key) {
				// Past the watched prefix or key.
				return false
			}
			match, err := w.pred.Matches(e.object.Object())
			if err != nil {
				w.send(ctx, storage.StatusEvent(err))
				ok = false
				return false
			}
			if match && !w.send(ctx, watch.Event{Type: watch.Added, Object: e.object}) {
				ok = false
				return false
			}
			return w.recursive
		})
		w.initial = nil
		if !ok {
			return false
		}
	}
	if w.initialEventsEnd != nil {
		if !w.send(ctx, watch.Event{Type: watch.Bookmark, Object: w.initialEventsEnd}) {
			return false
		}
		w.initialEventsEnd = nil
	}
	return true
}

// deliver sends the client what e means to it, if anything.
func (w *cacheWatcher) deliver(ctx context.Context, e *event) bool {
	if e.rev <= w.lastRev {
		return true
	}
	w.lastRev = e.rev
	if e.typ == watch.Bookmark {
		return !w.bookmarks || w.send(ctx, watch.Event{Type: watch.Bookmark, Object: e.object})
	}
	out, ok, err := w.convert(e)
	if err != nil {
		w.send(ctx, storage.StatusEvent(err))
		return false
	}
	return !ok || w.send(ctx, out)
}

// convert applies the selectors to the old and new state: an object that
// enters the selection is ADDED, one that leaves it is DELETED.
func (w *cacheWatcher) convert(e *event) (watch.Event, bool, error) {
	if w.pred.Empty() {
		return watch.Event{Type: e.typ, Object: e.object}, true, nil
	}
	if e.typ == watch.Deleted {
		match, err := w.pred.Matches(e.object.Object())
		return watch.Event{Type: watch.Deleted, Object: e.object}, match, err
	}
	curMatches, err := w.pred.Matches(e.object.Object())
	if err != nil {
		return watch.Event{}, false, err
	}
	oldMatches := false
	if e.prev != nil {
		if oldMatches, err = w.pred.Matches(e.prev.Object()); err != nil {
			return watch.Event{}, false, err
		}
	}
	switch {
	case curMatches && oldMatches:
		return watch.Event{Type: watch.Modified, Object: e.object}, true, nil
	case curMatches:
		return watch.Event{Type: watch.Added, Object: e.object}, true, nil
	case oldMatches:
		leaving, err := e.leavingObject()
		return watch.Event{Type: watch.Deleted, Object: leaving}, err == nil, err
	default:
		return watch.Event{}, false, nil
	}
}

// errWatcher is a watch whose only event is an ERROR, the way
// kube-apiserver reports failures after the watch was accepted (a watch
// from a revision older than the cache is a 200 stream with a 410 ERROR).
type errWatcher struct{ result chan watch.Event }

func newErrWatcher(err error) watch.Interface {
	result := make(chan watch.Event, 1)
	result <- storage.StatusEvent(err)
	close(result)
	return &errWatcher{result: result}
}

func (w *errWatcher) ResultChan() <-chan watch.Event { return w.result }
func (w *errWatcher) Stop()                          {}

// Watch serves a watch from the cache; see storage.Interface.Watch.
//   - resourceVersion "" or "0" (without sendInitialEvents): the cached
//     state as ADDED events, then changes (kube-apiserver serves the legacy
//     unset case from its cache too).
//   - sendInitialEvents=true: waits until the cache is at least at the
//     requested revision (the current etcd revision for ""), then the state
//     as ADDED events and a BOOKMARK annotated k8s.io/initial-events-end.
//   - resourceVersion N: the buffered changes after N, then live ones; N
//     older than the buffer yields an ERROR event with a 410 Expired Status.
func (c *Cacher) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	rev, err := storage.ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if opts.Recursive && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	if !strings.HasPrefix(key, c.prefix) {
		return nil, fmt.Errorf("key %q is not under the resource prefix %q", key, c.prefix)
	}
	if err := c.waitUntilFresh(ctx, 0, readyWait); err != nil {
		return nil, err
	}

	sendInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	startRev := int64(rev)
	if opts.ResourceVersion == "" && opts.SendInitialEvents != nil {
		current, err := c.store.CurrentResourceVersion(ctx)
		if err != nil {
			return newErrWatcher(err), nil
		}
		startRev = int64(current)
	}
	if sendInitial {
		if err := c.waitUntilFresh(ctx, startRev, freshWait); err != nil {
			return newErrWatcher(err), nil
		}
	}

	w := &cacheWatcher{
		cacher:    c,
		key:       key,
		recursive: opts.Recursive,
		pred:      opts.Predicate,
		bookmarks: opts.ProgressNotify,
		input:     make(chan *event, watcherInputBuffer),
		result:    make(chan watch.Event, watcherResultBuffer),
		done:      make(chan struct{}),
	}

	c.mu.Lock()
	switch {
	case sendInitial || (opts.SendInitialEvents == nil && rev == 0):
		w.initial = c.objects.Clone()
		w.lastRev = c.rev
		if sendInitial {
			bookmark, err := storage.BookmarkObject(c.newFunc, c.rev, true)
			if err != nil {
				c.mu.Unlock()
				return nil, err
			}
			w.initialEventsEnd = storage.NewCachingObject(bookmark)
		}
	case opts.ResourceVersion == "0":
		w.lastRev = c.rev
	case startRev > c.rev:
		// Ahead of the cache: nothing to replay, later events only.
		w.lastRev = startRev
	default:
		events, ok := c.history.since(startRev)
		if !ok {
			evicted := c.history.evictedRev
			c.mu.Unlock()
			return newErrWatcher(storage.NewError(storage.ErrCodeResourceVersionTooOld, key,
				"too old resource version: %d (%d)", startRev, evicted)), nil
		}
		w.replay = events
		w.lastRev = startRev
	}
	next := make([]*cacheWatcher, len(c.watchers), len(c.watchers)+1)
	copy(next, c.watchers)
	c.watchers = append(next, w)
	c.mu.Unlock()

	go w.run(ctx)
	return w, nil
}
