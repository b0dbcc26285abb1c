package endpoints

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestAppendJSONWatchEvent: the hand-written envelope is byte for byte what
// the JSON stream serializer writes for the same event.
func TestAppendJSONWatchEvent(t *testing.T) {
	serializer := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{})
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b", ResourceVersion: "7"},
		Data:       map[string]string{"k": "v \"quoted\"\n"},
	}
	for _, typ := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted, watch.Bookmark} {
		var object bytes.Buffer
		if err := serializer.Encode(cm, &object); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		encoder := streaming.NewEncoder(json.Framer.NewFrameWriter(&want), serializer)
		if err := encoder.Encode(&metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: object.Bytes()}}); err != nil {
			t.Fatal(err)
		}
		if got := appendJSONWatchEvent(nil, typ, object.Bytes()); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s:\n got %q\nwant %q", typ, got, want.Bytes())
		}
	}
}
