package apiextensions

import (
	"fmt"
	"maps"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// newTypeConverter knows the structure of every version of crd's custom
// resources, for managedFields and server-side apply: the OpenAPI v3
// schemas apiextensions-apiserver's builder makes from the structural
// schema (with the defaults and list-type/map-keys markers that decide how
// applied lists merge), as kube-apiserver builds them for its CRD handlers.
func newTypeConverter(crd *apiextensionsv1.CustomResourceDefinition) (managedfields.TypeConverter, error) {
	schemas := map[string]*spec.Schema{}
	for _, version := range crd.Spec.Versions {
		doc, err := builder.BuildOpenAPIV3(crd, version.Name, builder.Options{})
		if err != nil {
			return nil, fmt.Errorf("OpenAPI schema of version %s: %w", version.Name, err)
		}
		if doc.Components != nil {
			maps.Copy(schemas, doc.Components.Schemas)
		}
	}
	converter, err := managedfields.NewTypeConverter(schemas, crd.Spec.PreserveUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("type converter: %w", err)
	}
	return converter, nil
}

// versionConverter converts custom resources between their CRD's versions
// as the None conversion strategy does, by relabelling apiVersion. Field
// management uses it for managedFields entries recorded through another
// version. It never modifies its input.
type versionConverter struct {
	versions map[schema.GroupVersion]bool
}

var _ runtime.ObjectConvertor = versionConverter{}

func newVersionConverter(crd *apiextensionsv1.CustomResourceDefinition) versionConverter {
	c := versionConverter{versions: map[schema.GroupVersion]bool{}}
	for _, v := range crd.Spec.Versions {
		c.versions[schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}] = true
	}
	return c
}

func (c versionConverter) Convert(in, out, _ any) error {
	inObj, ok := in.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("cannot convert %T: not a custom resource", in)
	}
	outObj, ok := out.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("cannot convert into %T: not a custom resource", out)
	}
	converted, err := c.ConvertToVersion(inObj, outObj.GroupVersionKind().GroupVersion())
	if err != nil {
		return err
	}
	outObj.Object = converted.(*unstructured.Unstructured).Object
	return nil
}

func (c versionConverter) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	from := in.GetObjectKind().GroupVersionKind()
	to, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{from})
	if !ok || !c.versions[to.GroupVersion()] || !c.versions[from.GroupVersion()] {
		return nil, fmt.Errorf("cannot convert %s to %v", from, target)
	}
	apiVersion := to.GroupVersion().String()
	switch obj := in.(type) {
	case *unstructured.Unstructured:
		out := obj.DeepCopy()
		out.SetAPIVersion(apiVersion)
		return out, nil
	case *unstructured.UnstructuredList:
		out := obj.DeepCopy()
		out.SetAPIVersion(apiVersion)
		for i := range out.Items {
			out.Items[i].SetAPIVersion(apiVersion)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert %T: not a custom resource", in)
}

func (versionConverter) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}
