package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// watchResultBuffer absorbs bursts between the etcd stream and a slow reader.
const watchResultBuffer = 100

// watchTooOldMessage is kube-apiserver's message for a watch from a
// compacted revision served by etcd.
const watchTooOldMessage = "The resourceVersion for the provided watch is too old."

// WatchContext prepares the context of every etcd watch Tower opens. Watches
// and RequestProgress calls share a gRPC stream only when their contexts
// carry the same metadata, so progress requests must use it too.
func WatchContext(ctx context.Context) context.Context {
	return clientv3.WithRequireLeader(ctx)
}

// StatusEvent builds the ERROR watch event kube-apiserver sends for err.
func StatusEvent(err error) watch.Event {
	return watch.Event{Type: watch.Error, Object: StatusForError(err)}
}

// StatusForError describes a storage error as the Status a watch ERROR
// event carries.
func StatusForError(err error) *metav1.Status {
	status := &metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
	var se *Error
	if errors.As(err, &se) {
		status.Message = se.Message
	}
	switch CodeOf(err) {
	case ErrCodeResourceVersionTooOld:
		status.Code, status.Reason = http.StatusGone, metav1.StatusReasonExpired
	case ErrCodeTimeout:
		status.Code, status.Reason = http.StatusGatewayTimeout, metav1.StatusReasonTimeout
	case ErrCodeInvalidResourceVersion, ErrCodeInvalidContinue:
		status.Code, status.Reason = http.StatusBadRequest, metav1.StatusReasonBadRequest
	default:
		status.Code, status.Reason = http.StatusInternalServerError, metav1.StatusReasonInternalError
	}
	return status
}

// BookmarkObject is the object of a BOOKMARK event: an empty object with
// only its resourceVersion set.
func BookmarkObject(newFunc func() runtime.Object, rev int64, initialEventsEnd bool) (runtime.Object, error) {
	obj := newFunc()
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("bookmark object: %w", err)
	}
	if err := SetResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	if initialEventsEnd {
		accessor.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return obj, nil
}

// etcdWatcher translates one etcd watch into Kubernetes watch events.
type etcdWatcher struct {
	store     *etcdStore
	key       string
	opts      ListOptions
	result    chan watch.Event
	cancel    context.CancelFunc
	stopOnce  sync.Once
	recursive bool
}

func (s *etcdStore) Watch(ctx context.Context, key string, opts ListOptions) (watch.Interface, error) {
	if opts.Recursive {
		prefix, err := s.listPrefix(key, true)
		if err != nil {
			return nil, err
		}
		key = prefix
	} else if err := s.checkKey(key); err != nil {
		return nil, err
	}
	rev, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &etcdWatcher{
		store:     s,
		key:       key,
		opts:      opts,
		result:    make(chan watch.Event, watchResultBuffer),
		cancel:    cancel,
		recursive: opts.Recursive,
	}
	go w.run(ctx, int64(rev))
	return w, nil
}

func (w *etcdWatcher) Stop() { w.stopOnce.Do(w.cancel) }

func (w *etcdWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *etcdWatcher) send(ctx context.Context, event watch.Event) bool {
	select {
	case w.result <- event:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *etcdWatcher) sendError(ctx context.Context, err error) {
	w.send(ctx, StatusEvent(err))
}

func (w *etcdWatcher) run(ctx context.Context, rev int64) {
	defer close(w.result)
	defer w.cancel()

	initial := rev == 0
	if w.opts.SendInitialEvents != nil {
		initial = *w.opts.SendInitialEvents
	}
	if initial {
		listRev, ok := w.sendInitialEvents(ctx, rev)
		if !ok {
			return
		}
		rev = listRev
	}

	watchOpts := []clientv3.OpOption{clientv3.WithRev(rev + 1), clientv3.WithPrevKV()}
	if w.recursive {
		watchOpts = append(watchOpts, clientv3.WithPrefix())
	}
	if w.opts.ProgressNotify {
		watchOpts = append(watchOpts, clientv3.WithProgressNotify())
	}
	for resp := range w.store.client.Watch(WatchContext(ctx), w.key, watchOpts...) {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				w.sendError(ctx, NewError(ErrCodeResourceVersionTooOld, w.key, watchTooOldMessage))
			} else {
				w.sendError(ctx, fmt.Errorf("watch %s: %w", w.key, err))
			}
			return
		}
		if resp.IsProgressNotify() {
			if w.opts.ProgressNotify && !w.sendBookmark(ctx, resp.Header.Revision, false) {
				return
			}
			continue
		}
		for _, e := range resp.Events {
			event, ok, err := w.translate(e)
			if err != nil {
				w.sendError(ctx, err)
				return
			}
			if ok && !w.send(ctx, event) {
				return
			}
		}
	}
	if ctx.Err() == nil {
		w.sendError(ctx, fmt.Errorf("etcd watch on %s closed", w.key))
	}
}

// sendInitialEvents lists the current state (at least at minRev) as ADDED
// events and returns the revision of that state.
func (w *etcdWatcher) sendInitialEvents(ctx context.Context, minRev int64) (int64, bool) {
	list := w.store.newListFunc()
	opts := ListOptions{
		ResourceVersion:      fmt.Sprint(minRev),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		Predicate:            SelectionPredicate{Label: w.opts.Predicate.Label, Field: w.opts.Predicate.Field, GetAttrs: w.opts.Predicate.GetAttrs},
		Recursive:            w.recursive,
	}
	if err := w.store.GetList(ctx, w.key, opts, list); err != nil {
		w.sendError(ctx, err)
		return 0, false
	}
	listRev, err := listResourceVersion(list)
	if err != nil {
		w.sendError(ctx, err)
		return 0, false
	}
	objs, err := meta.ExtractList(list)
	if err != nil {
		w.sendError(ctx, fmt.Errorf("extract initial list: %w", err))
		return 0, false
	}
	for _, obj := range objs {
		if !w.send(ctx, watch.Event{Type: watch.Added, Object: obj}) {
			return 0, false
		}
	}
	if w.opts.SendInitialEvents != nil && *w.opts.SendInitialEvents && !w.sendBookmark(ctx, listRev, true) {
		return 0, false
	}
	return listRev, true
}

func listResourceVersion(list runtime.Object) (int64, error) {
	accessor, err := meta.ListAccessor(list)
	if err != nil {
		return 0, fmt.Errorf("list object %T: %w", list, err)
	}
	rev, err := ParseResourceVersion(accessor.GetResourceVersion())
	return int64(rev), err
}

func (w *etcdWatcher) sendBookmark(ctx context.Context, rev int64, initialEventsEnd bool) bool {
	obj, err := BookmarkObject(w.store.newFunc, rev, initialEventsEnd)
	if err != nil {
		w.sendError(ctx, err)
		return false
	}
	return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: obj})
}

// translate turns one etcd event into at most one watch event, applying the
// predicate to the old and new state.
func (w *etcdWatcher) translate(e *clientv3.Event) (watch.Event, bool, error) {
	pred := w.opts.Predicate
	rev := e.Kv.ModRevision
	if e.Type == mvccpb.DELETE {
		if e.PrevKv == nil {
			return watch.Event{}, false, nil
		}
		// A deleted object carries the deletion's revision.
		old, err := w.store.decode(e.PrevKv.Value, rev)
		if err != nil {
			return watch.Event{}, false, err
		}
		ok, err := pred.Matches(old)
		return watch.Event{Type: watch.Deleted, Object: old}, ok, err
	}
	cur, err := w.store.decode(e.Kv.Value, rev)
	if err != nil {
		return watch.Event{}, false, err
	}
	if e.IsCreate() || e.PrevKv == nil {
		ok, err := pred.Matches(cur)
		return watch.Event{Type: watch.Added, Object: cur}, ok, err
	}
	if pred.Empty() {
		return watch.Event{Type: watch.Modified, Object: cur}, true, nil
	}
	curMatches, err := pred.Matches(cur)
	if err != nil {
		return watch.Event{}, false, err
	}
	old, err := w.store.decode(e.PrevKv.Value, rev)
	if err != nil {
		return watch.Event{}, false, err
	}
	oldMatches, err := pred.Matches(old)
	if err != nil {
		return watch.Event{}, false, err
	}
	switch {
	case curMatches && oldMatches:
		return watch.Event{Type: watch.Modified, Object: cur}, true, nil
	case curMatches:
		return watch.Event{Type: watch.Added, Object: cur}, true, nil
	case oldMatches:
		return watch.Event{Type: watch.Deleted, Object: old}, true, nil
	default:
		return watch.Event{}, false, nil
	}
}
