package endpoints

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// TestUnstructuredResponsesEncodeAsTheJSONSerializer: the shortcut for
// custom objects writes exactly the bytes the JSON serializer writes,
// HTML-escaped characters, numbers and nesting included.
func TestUnstructuredResponsesEncodeAsTheJSONSerializer(t *testing.T) {
	widget := func(name string) map[string]any {
		return map[string]any{
			"apiVersion": "example.com/v1", "kind": "Widget",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"a": "<b>&"}},
			"spec":     map[string]any{"size": int64(3), "ratio": 0.5, "tags": []any{"x", nil, true}, "text": "line\n\"quoted\" \u2028"},
		}
	}
	objects := []runtime.Object{
		&unstructured.Unstructured{Object: widget("one")},
		&unstructured.UnstructuredList{
			Object: map[string]any{"apiVersion": "example.com/v1", "kind": "WidgetList", "metadata": map[string]any{"resourceVersion": "7", "continue": "a<b"}},
			Items:  []unstructured.Unstructured{{Object: widget("one")}, {Object: widget("two")}},
		},
		&unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "WidgetList"}},
	}
	serializer := json.NewSerializerWithOptions(json.DefaultMetaFactory, nil, nil, json.SerializerOptions{})
	out := output{info: runtime.SerializerInfo{MediaType: runtime.ContentTypeJSON, Serializer: serializer}}
	for _, obj := range objects {
		var want, got bytes.Buffer
		if err := serializer.Encode(obj, &want); err != nil {
			t.Fatal(err)
		}
		if err := responseEncoder(out, obj).Encode(obj, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%T:\n got %s\nwant %s", obj, got.Bytes(), want.Bytes())
		}
	}
}
