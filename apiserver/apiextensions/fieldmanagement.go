package apiextensions

import (
	"fmt"
	"maps"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
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
