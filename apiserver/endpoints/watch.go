package endpoints

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
)

func (q *request) watch(ctx context.Context) {
	opts, pred, err := q.listOptions()
	if err != nil {
		q.fail(err)
		return
	}
	if q.info.Name != "" {
		pred.Field = fields.AndSelectors(pred.Field, fields.OneTermEqualSelector("metadata.name", q.info.Name))
	}
	out, err := negotiateOutput(q.r, q.scope.Codecs)
	if err != nil {
		q.fail(err)
		return
	}
	if out.info.StreamSerializer == nil || out.as == asPartialObjectMetadataList {
		q.fail(newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
			fmt.Sprintf("no stream serializer for %s", out.info.MediaType)))
		return
	}
	timeout := q.watchTimeout(opts)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	w, err := q.Store.Watch(ctx, q.listKey(), storage.ListOptions{
		ResourceVersion:      opts.ResourceVersion,
		ResourceVersionMatch: opts.ResourceVersionMatch,
		Predicate:            pred,
		Recursive:            true,
		ProgressNotify:       opts.AllowWatchBookmarks,
		SendInitialEvents:    opts.SendInitialEvents,
	})
	if err != nil {
		q.fail(apiError(err, q.gr(), ""))
		return
	}
	defer w.Stop()
	q.stream(ctx, w, out)
}

// watchTimeout is timeoutSeconds, or a random duration between
// MinRequestTimeout and twice that so that clients do not reconnect in
// lockstep.
func (q *request) watchTimeout(opts *metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	minimum := q.scope.MinRequestTimeout
	if minimum <= 0 {
		minimum = 30 * time.Minute
	}
	return minimum + time.Duration(rand.Int64N(int64(minimum)))
}

// stream writes watch events until the watch ends, the client leaves or
// the timeout passes.
func (q *request) stream(ctx context.Context, w watch.Interface, out output) {
	flusher, _ := q.w.(http.Flusher)
	streamInfo := out.info.StreamSerializer
	contentType := out.info.MediaType
	if out.info.MediaType == "application/vnd.kubernetes.protobuf" {
		contentType = "application/vnd.kubernetes.protobuf;stream=watch"
	}
	q.w.Header().Set("Content-Type", contentType)
	q.w.Header().Set("Transfer-Encoding", "chunked")
	q.w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	frames := streamInfo.Framer.NewFrameWriter(q.w)
	encoder := streaming.NewEncoder(frames, streamInfo.Serializer)
	plainJSON := out.info.MediaType == runtime.ContentTypeJSON && !out.pretty
	var buf bytes.Buffer
	var frame []byte
	for {
		select {
		case <-ctx.Done():
			return
		case event, ok := <-w.ResultChan():
			if !ok {
				return
			}
			obj, err := q.watchObject(ctx, event, out)
			if err != nil {
				status := statusFor(err)
				status.SetGroupVersionKind(statusGVK)
				event, obj = watch.Event{Type: watch.Error, Object: status}, status
			}
			buf.Reset()
			if err := out.info.Serializer.Encode(obj, &buf); err != nil {
				return
			}
			if plainJSON {
				// The envelope is fixed text around the object: writing it
				// directly saves a reflective marshal per event and watcher.
				frame = appendJSONWatchEvent(frame[:0], event.Type, buf.Bytes())
				if _, err := q.w.Write(frame); err != nil {
					return
				}
			} else if err := encoder.Encode(&metav1.WatchEvent{Type: string(event.Type), Object: runtime.RawExtension{Raw: buf.Bytes()}}); err != nil {
				return
			}
			if flusher != nil && len(w.ResultChan()) == 0 {
				flusher.Flush()
			}
		}
	}
}

// appendJSONWatchEvent appends one line of a JSON watch stream, the same
// bytes the JSON serializer writes for a metav1.WatchEvent.
func appendJSONWatchEvent(dst []byte, typ watch.EventType, object []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","object":`...)
	dst = append(dst, bytes.TrimRight(object, "\n")...)
	return append(dst, "}\n"...)
}

// watchObject prepares an event's object for the wire without touching
// the shared object the watch cache handed out.
func (q *request) watchObject(ctx context.Context, event watch.Event, out output) (runtime.Object, error) {
	obj := event.Object
	if status, ok := obj.(*metav1.Status); ok {
		if status.Kind == "" {
			status = status.DeepCopy()
			status.SetGroupVersionKind(statusGVK)
		}
		return status, nil
	}
	if obj.GetObjectKind().GroupVersionKind().Empty() {
		obj = obj.DeepCopyObject()
		setKind(obj, q.Resource)
	}
	if out.as == asObject || (event.Type == watch.Bookmark && out.as == asTable) {
		return obj, nil
	}
	if co, ok := obj.(runtime.CacheableObject); ok {
		obj = co.GetObject()
	}
	return represent(ctx, q.r, q.scope.Parameters, out.as, obj)
}
