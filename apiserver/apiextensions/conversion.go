package apiextensions

import (
	"fmt"
	"io"
	"maps"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// crConverters are the two faces of one CRD's converter, as
// apiextensions-apiserver's CRConverterFactory makes it for the CRD's
// conversion strategy (None relabels apiVersion, Webhook sends a
// ConversionReview): safe copies its input, unsafe may modify it.
type crConverters struct {
	safe, unsafe runtime.ObjectConvertor
}

// storageCodec stores custom resources as JSON in the storage version and
// reads them back as the served version, as kube-apiserver's CRD storage
// codec does: a stored object is pruned and defaulted with the schema of
// the version it was stored in, converted, then pruned with the served
// version's schema; a written object is converted to the storage version
// and pruned with its schema. Objects already in the wanted version are
// not converted, so the storage version never calls a webhook.
type storageCodec struct {
	served, stored schema.GroupVersion
	// schemas holds every version's schema, by version name: objects
	// stored in an earlier storage version are read with theirs.
	schemas    map[string]*crSchema
	converters crConverters
}

func (c *storageCodec) Encode(obj runtime.Object, w io.Writer) error {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("custom resource storage cannot encode %T", obj)
	}
	stored := &unstructured.Unstructured{Object: maps.Clone(u.Object)}
	if from := u.GroupVersionKind().GroupVersion(); !from.Empty() && from != c.stored {
		converted, err := c.convert(c.converters.safe, u, c.stored)
		if err != nil {
			return err
		}
		stored = converted
	}
	stored.SetAPIVersion(c.stored.String())
	return unstructured.UnstructuredJSONScheme.Encode(stored, w)
}

func (c *storageCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := unstructured.UnstructuredJSONScheme.Decode(data, defaults, &unstructured.Unstructured{})
	if err != nil {
		return nil, gvk, fmt.Errorf("decode stored custom resource: %w", err)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, gvk, fmt.Errorf("decoded custom resource is %T", obj)
	}
	from := u.GroupVersionKind().GroupVersion()
	if s, ok := c.schemas[from.Version]; ok && from.Group == c.served.Group {
		s.normalize(u.Object)
	}
	if from != c.served {
		// The decoded object is this codec's own: convert it in place.
		if u, err = c.convert(c.converters.unsafe, u, c.served); err != nil {
			return nil, gvk, err
		}
	}
	if target, ok := into.(*unstructured.Unstructured); ok {
		target.Object = u.Object
		return target, gvk, nil
	}
	return u, gvk, nil
}

// convert converts obj to version to and prunes the result with that
// version's schema.
func (c *storageCodec) convert(converter runtime.ObjectConvertor, obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
	out, err := converter.ConvertToVersion(obj, to)
	if err != nil {
		return nil, conversionFailure(err)
	}
	converted, ok := out.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("conversion of %s to %s returned %T", obj.GroupVersionKind(), to, out)
	}
	if s, ok := c.schemas[to.Version]; ok {
		s.prune(converted.Object)
	}
	return converted, nil
}

// conversionFailure is the error a client sees when a custom resource
// cannot be converted (a failing or unreachable conversion webhook):
// kube-apiserver passes the converter's error through unclassified, which
// reaches the client as a 500 with no reason and the converter's message.
func conversionFailure(err error) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusInternalServerError,
		Reason:  metav1.StatusReasonUnknown,
		Message: err.Error(),
	}}
}

// StoresConverted: a write through a version other than the storage
// version is answered with what was stored, read back through the served
// version, as kube-apiserver answers it.
func (c *storageCodec) StoresConverted() bool { return c.served != c.stored }

func (c *storageCodec) Identifier() runtime.Identifier {
	return runtime.Identifier("tower-custom-resource-json-" + c.served.String() + "-stored-as-" + c.stored.String())
}
