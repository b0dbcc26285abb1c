package endpoints

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured/unstructuredscheme"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"tower.dev/tower/apiserver/registry"
)

// fieldManagers track managedFields for one resource: one manager per way
// of writing it, because each records its subresource in the entries it
// writes and ignores the fields that path resets.
type fieldManagers struct {
	main   *managedfields.FieldManager
	status *managedfields.FieldManager
	scale  *managedfields.FieldManager
}

// forSubresource returns the manager for writes through subresource, or
// nil when the resource has no managed fields tracking for it.
func (f *fieldManagers) forSubresource(subresource string) *managedfields.FieldManager {
	if f == nil {
		return nil
	}
	switch subresource {
	case "":
		return f.main
	case "status":
		return f.status
	case "scale":
		return f.scale
	}
	return nil
}

// strategyDefaulter lets the field manager default an applied object with
// the resource's own defaulting, which is not registered in the scheme.
type strategyDefaulter struct{ strategy registry.Strategy }

func (d strategyDefaulter) Default(obj runtime.Object) { d.strategy.Default(obj) }

// newFieldManagers builds the managers of one resource. Fields that a
// write path resets (status on the main resource, everything but status
// through the status subresource) are not recorded as owned, as
// kube-apiserver's strategies declare with GetResetFields.
func newFieldManagers(scope *Scope, res *registry.Resource) (*fieldManagers, error) {
	if scope.TypeConverter == nil || (scope.Scheme == nil && scope.CustomResourceConvertor == nil) {
		return nil, nil
	}
	newManager := managedfields.NewDefaultFieldManager
	var convertor runtime.ObjectConvertor = scope.Scheme
	var creater runtime.ObjectCreater = scope.Scheme
	if scope.CustomResourceConvertor != nil {
		newManager = managedfields.NewDefaultCRDFieldManager
		convertor, creater = scope.CustomResourceConvertor, unstructuredscheme.NewUnstructuredCreator()
	}
	gvk := res.GroupVersionKind()
	apiVersion := fieldpath.APIVersion(gvk.GroupVersion().String())
	build := func(subresource string, reset *fieldpath.Set) (*managedfields.FieldManager, error) {
		var resetFields map[fieldpath.APIVersion]fieldpath.Filter
		if reset != nil {
			resetFields = map[fieldpath.APIVersion]fieldpath.Filter{apiVersion: fieldpath.NewExcludeSetFilter(reset)}
		}
		m, err := newManager(scope.TypeConverter, convertor, strategyDefaulter{res.Strategy}, creater,
			gvk, gvk.GroupVersion(), subresource, resetFields)
		if err != nil {
			return nil, fmt.Errorf("field manager for %s %s: %w", res.GroupResource(), subresource, err)
		}
		return m, nil
	}
	out := &fieldManagers{}
	var err error
	var mainReset *fieldpath.Set
	if res.Status != nil {
		mainReset = fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	}
	if out.main, err = build("", mainReset); err != nil {
		return nil, err
	}
	if res.Status != nil {
		statusReset := fieldpath.NewSet(fieldpath.MakePathOrDie("spec"))
		if out.status, err = build("status", statusReset); err != nil {
			return nil, err
		}
	}
	if res.Scale != nil {
		if out.scale, err = build("scale", nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// managerName is the fieldManager parameter or, as kube-apiserver does,
// the User-Agent up to its first slash ("kubectl", "kube-controller-manager").
func managerName(fieldManager, userAgent string) string {
	if fieldManager != "" {
		return fieldManager
	}
	prefix, _, _ := strings.Cut(userAgent, "/")
	var b bytes.Buffer
	for _, r := range prefix {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > metav1validation.FieldManagerMaxLength {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
