package server

import (
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// storageCodec writes built-in objects as Kubernetes protobuf, as
// kube-apiserver stores them, and gives decoded objects their apiVersion and
// kind so that the watch cache can hand them out without copying.
type storageCodec struct {
	serializer runtime.Serializer
	gvk        schema.GroupVersionKind
}

func newStorageCodec(scheme *runtime.Scheme, gvk schema.GroupVersionKind) runtime.Codec {
	return &storageCodec{serializer: protobuf.NewSerializer(scheme, scheme), gvk: gvk}
}

// Encode writes obj; the store passes objects it owns, so setting the kind
// for the protobuf envelope is safe.
func (c *storageCodec) Encode(obj runtime.Object, w io.Writer) error {
	if obj.GetObjectKind().GroupVersionKind() != c.gvk {
		obj.GetObjectKind().SetGroupVersionKind(c.gvk)
	}
	return c.serializer.Encode(obj, w)
}

func (c *storageCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := c.serializer.Decode(data, defaults, into)
	if err != nil {
		return nil, gvk, err
	}
	obj.GetObjectKind().SetGroupVersionKind(c.gvk)
	return obj, gvk, nil
}

func (c *storageCodec) Identifier() runtime.Identifier { return c.serializer.Identifier() }
