// Package cacher keeps an in-memory copy of one resource fed by a single
// etcd watch, and serves watches and most reads from it, as
// kube-apiserver's watch cache does: N watching clients cost one etcd watch.
package cacher

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/btree"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
)

const (
	// freshWait bounds how long a read asking for a resourceVersion the
	// cache has not reached yet waits before failing with "Too large
	// resource version", as kube-apiserver does.
	freshWait = 3 * time.Second
	// consistentReadWait bounds how long a consistent read waits for the
	// cache to catch up with etcd before it reads etcd instead.
	consistentReadWait = time.Second
	// readyWait bounds how long a request waits for the first list.
	readyWait = 5 * time.Second
	// progressRequestInterval paces RequestProgress calls while reads wait
	// for an idle resource's cache to catch up.
	progressRequestInterval = 100 * time.Millisecond
	// bookmarkInterval paces BOOKMARK events; one is sent only when the
	// cache's revision moved, and watchers drop those at a revision they
	// already reached through an event.
	bookmarkInterval = time.Second
	// relistBackoff spaces attempts to re-establish the list and watch.
	relistBackoff = time.Second
)

// entry is one cached object under its etcd key.
type entry struct {
	key    string
	object *storage.CachingObject
}

func entryLess(a, b *entry) bool { return a.key < b.key }

// Cacher is a storage.Interface whose reads and watches come from memory and
// whose writes go to the etcd store it wraps.
type Cacher struct {
	store       storage.Interface
	client      *clientv3.Client
	prefix      string
	newFunc     func() runtime.Object
	newListFunc func() runtime.Object
	log         logr.Logger

	mu      sync.RWMutex
	ready   bool
	objects *btree.BTreeG[*entry]
	// rev is the etcd revision the cached state reflects.
	rev     int64
	history *history
	// watchers is replaced, never modified, so the dispatcher can use a
	// snapshot without holding mu.
	watchers []*cacheWatcher
	// advanced is closed and replaced when rev moves while someone waits.
	advanced chan struct{}

	// waiters counts reads waiting for the cache to reach a revision; while
	// positive, progress is requested from etcd.
	waiters        atomic.Int64
	progressWanted chan struct{}
}

// New starts a cache of the objects under prefix, fed by one watch on store
// (the etcd store of the same resource). client is used to ask etcd for
// progress notifications so that consistent reads of idle resources are
// served from memory too. The cache runs until ctx ends.
func New(ctx context.Context, store storage.Interface, client *clientv3.Client, prefix string,
	newFunc, newListFunc func() runtime.Object) (storage.Interface, error) {
	if store == nil || client == nil {
		return nil, fmt.Errorf("cacher for %s: store and client are required", prefix)
	}
	c := &Cacher{
		store:          store,
		client:         client,
		prefix:         strings.TrimSuffix(prefix, "/") + "/",
		newFunc:        newFunc,
		newListFunc:    newListFunc,
		log:            logr.FromContextOrDiscard(ctx).WithName("cacher").WithValues("prefix", prefix),
		objects:        btree.NewG(32, entryLess),
		history:        newHistory(0),
		advanced:       make(chan struct{}),
		progressWanted: make(chan struct{}, 1),
	}
	go c.run(ctx)
	go c.requestProgressWhileWaited(ctx)
	return c, nil
}

// run keeps the cache in sync with etcd: list, then watch from the list's
// revision; on any watch failure start over.
func (c *Cacher) run(ctx context.Context) {
	for {
		err := c.listAndWatch(ctx)
		if ctx.Err() != nil {
			c.terminateAllWatchers()
			return
		}
		c.log.Info("watch cache lost its etcd watch, relisting", "err", err)
		c.terminateAllWatchers()
		select {
		case <-time.After(relistBackoff):
		case <-ctx.Done():
			return
		}
	}
}

func (c *Cacher) listAndWatch(ctx context.Context) error {
	list := c.newListFunc()
	if err := c.store.GetList(ctx, c.prefix, storage.ListOptions{Recursive: true}, list); err != nil {
		return fmt.Errorf("list %s: %w", c.prefix, err)
	}
	listRev, err := listRevision(list)
	if err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return fmt.Errorf("extract list: %w", err)
	}
	objects := btree.NewG(32, entryLess)
	for _, item := range items {
		key, err := c.keyOf(item)
		if err != nil {
			return err
		}
		objects.ReplaceOrInsert(&entry{key: key, object: storage.NewCachingObject(item)})
	}

	c.mu.Lock()
	c.objects = objects
	c.history = newHistory(listRev)
	c.rev = listRev
	c.ready = true
	c.signalAdvancedLocked()
	c.mu.Unlock()

	w, err := c.store.Watch(ctx, c.prefix, storage.ListOptions{
		ResourceVersion: fmt.Sprint(listRev),
		Recursive:       true,
		ProgressNotify:  true,
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", c.prefix, err)
	}
	defer w.Stop()

	bookmarks := time.NewTicker(bookmarkInterval)
	defer bookmarks.Stop()
	lastBookmarkRev := listRev
	for {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("etcd watch closed")
			}
			if err := c.processEvent(e); err != nil {
				return err
			}
		case <-bookmarks.C:
			c.mu.RLock()
			rev, watchers := c.rev, c.watchers
			c.mu.RUnlock()
			if rev > lastBookmarkRev {
				if err := c.dispatchBookmark(rev, watchers); err != nil {
					return err
				}
				lastBookmarkRev = rev
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func listRevision(list runtime.Object) (int64, error) {
	accessor, err := meta.ListAccessor(list)
	if err != nil {
		return 0, fmt.Errorf("list object %T: %w", list, err)
	}
	rev, err := storage.ParseResourceVersion(accessor.GetResourceVersion())
	return int64(rev), err
}

// keyOf derives an object's etcd key the way the registry lays keys out.
func (c *Cacher) keyOf(obj runtime.Object) (string, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return "", fmt.Errorf("cached object %T has no metadata: %w", obj, err)
	}
	if ns := accessor.GetNamespace(); ns != "" {
		return c.prefix + ns + "/" + accessor.GetName(), nil
	}
	return c.prefix + accessor.GetName(), nil
}

// signalAdvancedLocked wakes reads waiting for the revision to move.
func (c *Cacher) signalAdvancedLocked() {
	if c.waiters.Load() > 0 {
		close(c.advanced)
		c.advanced = make(chan struct{})
	}
}

func (c *Cacher) processEvent(e watch.Event) error {
	switch e.Type {
	case watch.Error:
		return fmt.Errorf("etcd watch failed: %v", e.Object)
	case watch.Bookmark:
		rev, err := storage.ObjectResourceVersion(e.Object)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if rev > c.rev {
			c.rev = rev
			c.signalAdvancedLocked()
		}
		c.mu.Unlock()
		return nil
	}

	key, err := c.keyOf(e.Object)
	if err != nil {
		return err
	}
	rev, err := storage.ObjectResourceVersion(e.Object)
	if err != nil {
		return err
	}
	ev := &event{key: key, rev: rev, object: storage.NewCachingObject(e.Object), at: time.Now()}

	c.mu.Lock()
	previous, existed := c.objects.Get(&entry{key: key})
	if existed {
		ev.prev = previous.object
	}
	switch {
	case e.Type == watch.Deleted && !existed:
		// Nothing cached to delete: only the revision moves.
		c.rev = rev
		c.signalAdvancedLocked()
		c.mu.Unlock()
		return nil
	case e.Type == watch.Deleted:
		ev.typ = watch.Deleted
		c.objects.Delete(&entry{key: key})
	case existed:
		ev.typ = watch.Modified
		c.objects.ReplaceOrInsert(&entry{key: key, object: ev.object})
	default:
		ev.typ = watch.Added
		c.objects.ReplaceOrInsert(&entry{key: key, object: ev.object})
	}
	c.history.add(ev)
	c.rev = rev
	watchers := c.watchers
	c.signalAdvancedLocked()
	c.mu.Unlock()

	c.dispatch(ev, watchers)
	return nil
}

// dispatchBudget is how long one event may wait, in total, for watchers
// whose buffers are full before those watchers are closed.
const dispatchBudget = 100 * time.Millisecond

// dispatch hands ev to every watcher of its key. A watcher that cannot keep
// up is closed (its client watches again from its last revision) rather
// than allowed to hold up the others.
func (c *Cacher) dispatch(ev *event, watchers []*cacheWatcher) {
	var blocked []*cacheWatcher
	for _, w := range watchers {
		if !w.wants(ev.key) {
			continue
		}
		select {
		case w.input <- ev:
		case <-w.done:
		default:
			blocked = append(blocked, w)
		}
	}
	if len(blocked) == 0 {
		return
	}
	budget := time.NewTimer(dispatchBudget)
	defer budget.Stop()
	expired := false
	for _, w := range blocked {
		if !expired {
			select {
			case w.input <- ev:
				continue
			case <-w.done:
				continue
			case <-budget.C:
				expired = true
			}
		}
		select {
		case w.input <- ev:
		case <-w.done:
		default:
			c.log.V(2).Info("closing a watcher that does not keep up", "key", w.key)
			w.terminate()
		}
	}
}

func (c *Cacher) dispatchBookmark(rev int64, watchers []*cacheWatcher) error {
	obj, err := storage.BookmarkObject(c.newFunc, rev, false)
	if err != nil {
		return err
	}
	ev := &event{typ: watch.Bookmark, rev: rev, object: storage.NewCachingObject(obj)}
	for _, w := range watchers {
		if !w.bookmarks {
			continue
		}
		// Bookmarks are hints: a full buffer just skips one.
		select {
		case w.input <- ev:
		default:
		}
	}
	return nil
}

func (c *Cacher) terminateAllWatchers() {
	c.mu.Lock()
	watchers := c.watchers
	c.watchers = nil
	c.mu.Unlock()
	for _, w := range watchers {
		w.closeDone()
	}
}

func (c *Cacher) removeWatcher(w *cacheWatcher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, other := range c.watchers {
		if other == w {
			next := make([]*cacheWatcher, 0, len(c.watchers)-1)
			next = append(next, c.watchers[:i]...)
			c.watchers = append(next, c.watchers[i+1:]...)
			return
		}
	}
}

// requestProgressWhileWaited asks etcd for a progress notification on the
// cache's watch stream while reads wait for the cache to reach a revision:
// an idle resource gets no events, and only the notification tells the
// cache that it is current. Each read that starts waiting asks for a
// request of its own (reads arriving together share one), since a
// notification answers only requests sent after the read learnt its
// revision; reads still waiting are asked for again every
// progressRequestInterval.
func (c *Cacher) requestProgressWhileWaited(ctx context.Context) {
	watchCtx := storage.WatchContext(ctx)
	for {
		var retry <-chan time.Time
		if c.waiters.Load() > 0 {
			retry = time.After(progressRequestInterval)
		}
		select {
		case <-c.progressWanted:
		case <-retry:
		case <-ctx.Done():
			return
		}
		if c.waiters.Load() == 0 {
			continue
		}
		if err := c.client.RequestProgress(watchCtx); err != nil && ctx.Err() == nil {
			c.log.V(2).Info("etcd progress request failed", "err", err)
		}
	}
}

// waitUntilFresh blocks until the cache reflects at least rev, for at most
// timeout.
func (c *Cacher) waitUntilFresh(ctx context.Context, rev int64, timeout time.Duration) error {
	c.mu.RLock()
	current, ready := c.rev, c.ready
	c.mu.RUnlock()
	if ready && current >= rev {
		return nil
	}
	c.waiters.Add(1)
	defer c.waiters.Add(-1)
	select {
	case c.progressWanted <- struct{}{}:
	default:
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.RLock()
		current, ready = c.rev, c.ready
		advanced := c.advanced
		c.mu.RUnlock()
		if ready && current >= rev {
			return nil
		}
		select {
		case <-advanced:
		case <-timer.C:
			if !ready {
				return storage.NewError(storage.ErrCodeTimeout, c.prefix, "the watch cache is not ready yet")
			}
			err := storage.NewError(storage.ErrCodeTimeout, c.prefix, "Too large resource version: %d, current: %d", rev, current)
			err.CurrentRevision = uint64(current)
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the watch cache: %w", ctx.Err())
		}
	}
}

func (c *Cacher) isReady() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready
}

// cachedCopy returns a private copy of the cached object at key, or nil.
func (c *Cacher) cachedCopy(key string) runtime.Object {
	c.mu.RLock()
	found, ok := c.objects.Get(&entry{key: key})
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	return found.object.DeepCopyObject()
}

func (c *Cacher) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	return c.store.Create(ctx, key, obj, out)
}

func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, _ runtime.Object) error {
	return c.store.GuaranteedUpdate(ctx, key, out, ignoreNotFound, preconditions, tryUpdate, c.cachedCopy(key))
}

func (c *Cacher) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, _ runtime.Object) error {
	return c.store.Delete(ctx, key, out, preconditions, validateDeletion, c.cachedCopy(key))
}

func (c *Cacher) CurrentResourceVersion(ctx context.Context) (uint64, error) {
	return c.store.CurrentResourceVersion(ctx)
}

// Get serves resourceVersion "0" and minimum-version reads from memory; a
// consistent read ("") goes to etcd, as in kube-apiserver.
func (c *Cacher) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	if opts.ResourceVersion == "" || !c.isReady() {
		return c.store.Get(ctx, key, opts, out)
	}
	rev, err := storage.ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return err
	}
	if err := c.waitUntilFresh(ctx, int64(rev), freshWait); err != nil {
		return err
	}
	obj := c.cachedCopy(key)
	if obj == nil {
		if opts.IgnoreNotFound {
			return storage.ZeroInto(out)
		}
		return storage.NewError(storage.ErrCodeKeyNotFound, key, "not found")
	}
	return storage.SetInto(out, obj)
}

// listFromEtcd reports the lists the cache cannot answer: continuations
// and exact past revisions.
func listFromEtcd(opts storage.ListOptions) bool {
	switch opts.ResourceVersionMatch {
	case metav1.ResourceVersionMatchExact:
		return true
	case metav1.ResourceVersionMatchNotOlderThan:
		return false
	case "":
		if opts.Predicate.Continue != "" {
			return true
		}
		// Legacy exact read: a paged list at a given resourceVersion.
		return opts.Predicate.Limit > 0 && opts.ResourceVersion != "" && opts.ResourceVersion != "0"
	default:
		return true
	}
}

// GetList serves lists from memory, including consistent ones (the cache
// first catches up with etcd's current revision, as kube-apiserver's
// ConsistentListFromCache does). Items are struct copies of the cached
// objects: their maps and slices are shared with the cache and must not
// be modified.
func (c *Cacher) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	if listFromEtcd(opts) || !c.isReady() {
		return c.store.GetList(ctx, key, opts, listObj)
	}
	rev, err := storage.ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return err
	}
	if opts.ResourceVersion == "" {
		current, err := c.store.CurrentResourceVersion(ctx)
		if err != nil {
			return err
		}
		if err := c.waitUntilFresh(ctx, int64(current), consistentReadWait); err != nil {
			if storage.IsTimeout(err) {
				return c.store.GetList(ctx, key, opts, listObj)
			}
			return err
		}
	} else if err := c.waitUntilFresh(ctx, int64(rev), freshWait); err != nil {
		return err
	}

	keyPrefix := key
	if opts.Recursive && !strings.HasSuffix(keyPrefix, "/") {
		keyPrefix += "/"
	}
	entries, listRev := c.snapshot(keyPrefix, opts.Recursive)
	return c.fillList(entries, listRev, keyPrefix, opts, listObj)
}

// snapshot returns the cached entries under keyPrefix (or at the exact key)
// and the revision they reflect.
func (c *Cacher) snapshot(keyPrefix string, recursive bool) ([]*entry, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !recursive {
		found, ok := c.objects.Get(&entry{key: keyPrefix})
		if !ok {
			return nil, c.rev
		}
		return []*entry{found}, c.rev
	}
	entries := make([]*entry, 0, c.objects.Len())
	c.objects.AscendGreaterOrEqual(&entry{key: keyPrefix}, func(e *entry) bool {
		if !strings.HasPrefix(e.key, keyPrefix) {
			return false
		}
		entries = append(entries, e)
		return true
	})
	return entries, c.rev
}

func (c *Cacher) fillList(entries []*entry, listRev int64, keyPrefix string, opts storage.ListOptions, listObj runtime.Object) error {
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return fmt.Errorf("list object %T: %w", listObj, err)
	}
	items := reflect.ValueOf(itemsPtr).Elem()
	byValue := items.Type().Elem().Kind() == reflect.Struct

	pred := opts.Predicate
	limit := pred.Limit
	if opts.ResourceVersion == "0" || !opts.Recursive {
		// "Any" lists from the cache are never paged, as in kube-apiserver.
		limit = 0
	}
	selected := make([]*entry, 0, len(entries))
	hasMore := false
	for i, e := range entries {
		if !pred.Empty() {
			ok, err := pred.Matches(e.object.Object())
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		selected = append(selected, e)
		if limit > 0 && int64(len(selected)) >= limit {
			hasMore = i < len(entries)-1
			break
		}
	}

	out := reflect.MakeSlice(items.Type(), len(selected), len(selected))
	for i, e := range selected {
		v := reflect.ValueOf(e.object.Object())
		if byValue {
			out.Index(i).Set(v.Elem())
		} else {
			out.Index(i).Set(reflect.ValueOf(e.object.DeepCopyObject()))
		}
	}
	items.Set(out)

	accessor, err := meta.ListAccessor(listObj)
	if err != nil {
		return fmt.Errorf("list object %T: %w", listObj, err)
	}
	accessor.SetResourceVersion(fmt.Sprint(listRev))
	accessor.SetContinue("")
	accessor.SetRemainingItemCount(nil)
	if hasMore {
		last := selected[len(selected)-1].key
		token, err := storage.EncodeContinue(last+"\x00", keyPrefix, listRev)
		if err != nil {
			return err
		}
		accessor.SetContinue(token)
		if pred.Empty() {
			remaining := int64(len(entries)) - limit
			accessor.SetRemainingItemCount(&remaining)
		}
	}
	return nil
}
