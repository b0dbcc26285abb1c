package storage

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// CachingObject wraps an immutable object shared by many watchers and
// remembers its serializations, so that every serializer encodes it once
// however many watch streams carry it. apimachinery's JSON, YAML and
// protobuf serializers recognise it through runtime.CacheableObject.
type CachingObject struct {
	object runtime.Object

	mu sync.Mutex
	// encodings maps a serializer's identifier to its result; the map is
	// replaced, never modified, so readers need no lock.
	encodings atomic.Pointer[map[runtime.Identifier]*encoding]
}

type encoding struct {
	once sync.Once
	data []byte
	err  error
}

var _ runtime.CacheableObject = &CachingObject{}
var _ runtime.Object = &CachingObject{}

// NewCachingObject wraps object, which nobody may modify afterwards.
func NewCachingObject(object runtime.Object) *CachingObject {
	return &CachingObject{object: object}
}

// CacheEncode writes the serialization encode produces for id, computing it
// only the first time.
func (o *CachingObject) CacheEncode(id runtime.Identifier, encode func(runtime.Object, io.Writer) error, w io.Writer) error {
	result := o.encodingFor(id)
	result.once.Do(func() {
		var buf bytes.Buffer
		// Encoders set the object's kind while they work: hand them a copy
		// so the shared object stays untouched.
		result.err = encode(o.GetObject(), &buf)
		result.data = buf.Bytes()
	})
	if result.err != nil {
		return result.err
	}
	if splice, ok := w.(runtime.Splice); ok {
		splice.Splice(result.data)
		return nil
	}
	_, err := w.Write(result.data)
	return err
}

func (o *CachingObject) encodingFor(id runtime.Identifier) *encoding {
	if m := o.encodings.Load(); m != nil {
		if result, ok := (*m)[id]; ok {
			return result
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.encodings.Load()
	if old != nil {
		if result, ok := (*old)[id]; ok {
			return result
		}
	}
	next := make(map[runtime.Identifier]*encoding, 2)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	result := &encoding{}
	next[id] = result
	o.encodings.Store(&next)
	return result
}

// GetObject returns a deep copy of the wrapped object, as
// runtime.CacheableObject requires.
func (o *CachingObject) GetObject() runtime.Object { return o.object.DeepCopyObject() }

// Object returns the shared wrapped object itself; callers must not modify
// it.
func (o *CachingObject) Object() runtime.Object { return o.object }

// GetObjectKind is the wrapped object's kind. Setting it would modify a
// shared object, so callers that need another kind must copy first.
func (o *CachingObject) GetObjectKind() schema.ObjectKind { return o.object.GetObjectKind() }

// DeepCopyObject returns a copy of the wrapped object (not of the wrapper),
// ready to be modified.
func (o *CachingObject) DeepCopyObject() runtime.Object { return o.object.DeepCopyObject() }
