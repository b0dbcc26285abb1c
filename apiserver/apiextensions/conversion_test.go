package apiextensions

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/conversion"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// twoVersionCRD serves v1, whose spec has a and old (defaulted), and v2,
// the storage version, whose spec has a and new.
func twoVersionCRD() *apiextensionsv1.CustomResourceDefinition {
	version := func(name string, fields map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: name == "v2",
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type:       "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: fields}},
			}},
		}
	}
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "things.codec.tower.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "codec.tower.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Singular: "thing", Kind: "Thing", ListKind: "ThingList"},
			Scope: apiextensionsv1.ClusterScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				version("v1", map[string]apiextensionsv1.JSONSchemaProps{
					"a":   str,
					"old": {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"from-v1-default"`)}},
				}),
				version("v2", map[string]apiextensionsv1.JSONSchemaProps{
					"a":   str,
					"new": {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"from-v2-default"`)}},
				}),
			},
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter},
		},
	}
}

// failingConverter refuses every conversion, as a failing webhook does.
type failingConverter struct{ runtime.ObjectConvertor }

func (failingConverter) ConvertToVersion(runtime.Object, runtime.GroupVersioner) (runtime.Object, error) {
	return nil, errors.New("conversion webhook for codec.tower.dev/v2, Kind=Thing failed: refused")
}

func newTestCodec(t *testing.T, served string, converters *crConverters) *storageCodec {
	t.Helper()
	crd := twoVersionCRD()
	ic, err := newInternalConverter()
	if err != nil {
		t.Fatal(err)
	}
	internal, err := ic.internal(crd)
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]*crSchema{}
	for _, v := range crd.Spec.Versions {
		if schemas[v.Name], err = newCRSchema(internal, v.Name); err != nil {
			t.Fatal(err)
		}
	}
	if converters == nil {
		factory, err := conversion.NewCRConverterFactory(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		safe, unsafe, err := factory.NewConverter(crd)
		if err != nil {
			t.Fatal(err)
		}
		converters = &crConverters{safe: safe, unsafe: unsafe}
	}
	return &storageCodec{
		served:     schema.GroupVersion{Group: "codec.tower.dev", Version: served},
		stored:     schema.GroupVersion{Group: "codec.tower.dev", Version: "v2"},
		schemas:    schemas,
		converters: *converters,
	}
}

func thing(version string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "codec.tower.dev/" + version, "kind": "Thing",
		"metadata": map[string]any{"name": "t"}, "spec": spec,
	}}
}

// TestStorageCodecNoneConversion: with the None strategy, objects are
// stored in the storage version pruned by its schema, and read back
// defaulted by the schema of the version they were stored in, relabelled
// and pruned by the served version's schema, as kube-apiserver does.
func TestStorageCodecNoneConversion(t *testing.T) {
	tests := []struct {
		name, served string
		// stored is what is in etcd; write, when set, is encoded first
		// and must produce stored.
		write    *unstructured.Unstructured
		stored   *unstructured.Unstructured
		wantRead map[string]any
	}{{
		name:     "v1 write stored as v2 without v1's fields",
		served:   "v1",
		write:    thing("v1", map[string]any{"a": "x", "old": "kept-in-v1"}),
		stored:   thing("v2", map[string]any{"a": "x"}),
		wantRead: map[string]any{"a": "x"},
	}, {
		name:     "v2 read defaults with the v2 schema",
		served:   "v2",
		stored:   thing("v2", map[string]any{"a": "x"}),
		wantRead: map[string]any{"a": "x", "new": "from-v2-default"},
	}, {
		name:     "v1 read defaults in v2, then prunes what v1 does not know",
		served:   "v1",
		stored:   thing("v2", map[string]any{"a": "x"}),
		wantRead: map[string]any{"a": "x"},
	}, {
		name:     "object stored in an earlier storage version read as v2",
		served:   "v2",
		stored:   thing("v1", map[string]any{"a": "x", "unknown": "dropped"}),
		wantRead: map[string]any{"a": "x"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codec := newTestCodec(t, tt.served, nil)
			data, err := json.Marshal(tt.stored.Object)
			if err != nil {
				t.Fatal(err)
			}
			if tt.write != nil {
				before := tt.write.DeepCopy()
				var buf bytes.Buffer
				if err := codec.Encode(tt.write, &buf); err != nil {
					t.Fatalf("encode: %v", err)
				}
				stored := map[string]any{}
				if err := json.Unmarshal(buf.Bytes(), &stored); err != nil {
					t.Fatal(err)
				}
				if !equality.Semantic.DeepEqual(stored, tt.stored.Object) {
					t.Errorf("stored %v, want %v", stored, tt.stored.Object)
				}
				if !equality.Semantic.DeepEqual(before, tt.write) {
					t.Errorf("encode modified its input: %v", tt.write.Object)
				}
				data = buf.Bytes()
			}
			into := &unstructured.Unstructured{}
			obj, _, err := codec.Decode(data, nil, into)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got := obj.(*unstructured.Unstructured)
			if got.GetAPIVersion() != "codec.tower.dev/"+tt.served || !equality.Semantic.DeepEqual(got.Object["spec"], tt.wantRead) {
				t.Errorf("read %v, want %s with spec %v", got.Object, tt.served, tt.wantRead)
			}
		})
	}
}

// TestStorageCodecConversionFailure: a refused conversion reaches the
// client as kube-apiserver sends it, a 500 with no reason and the
// converter's message, on reads and on writes.
func TestStorageCodecConversionFailure(t *testing.T) {
	codec := newTestCodec(t, "v1", &crConverters{safe: failingConverter{}, unsafe: failingConverter{}})
	want := "conversion webhook for codec.tower.dev/v2, Kind=Thing failed: refused"
	check := func(op string, err error) {
		t.Helper()
		var status apierrors.APIStatus
		if !errors.As(err, &status) {
			t.Fatalf("%s: got %v, want a status error", op, err)
		}
		s := status.Status()
		if s.Code != http.StatusInternalServerError || s.Reason != metav1.StatusReasonUnknown || s.Message != want {
			t.Errorf("%s: got %d %q %q, want 500, no reason, %q", op, s.Code, s.Reason, s.Message, want)
		}
	}
	_, _, err := codec.Decode([]byte(`{"apiVersion":"codec.tower.dev/v2","kind":"Thing","metadata":{"name":"t"}}`), nil, &unstructured.Unstructured{})
	check("decode", err)
	check("encode", codec.Encode(thing("v1", map[string]any{"a": "x"}), &bytes.Buffer{}))
}
