package registry

import (
	"context"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// objectStrategy is the behaviour most types share: status is owned by the
// status subresource, generation follows spec, and metadata is validated as
// ObjectMeta. Per-type strategies embed it and override what differs.
type objectStrategy struct {
	namespaced bool
	// tracksGeneration: metadata.generation starts at 1 and moves with spec.
	tracksGeneration bool
	// nameFn validates metadata.name; DNS-1123 subdomain when nil.
	nameFn apimachineryvalidation.ValidateNameFunc
}

var metadataPath = field.NewPath("metadata")

func namespacedStrategy(tracksGeneration bool) objectStrategy {
	return objectStrategy{namespaced: true, tracksGeneration: tracksGeneration}
}

func (s objectStrategy) Default(runtime.Object) {}

func (s objectStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	resetField(obj, "Status")
	if s.tracksGeneration {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetGeneration(1)
		}
	}
}

func (s objectStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	copyField(obj, old, "Status")
	if !s.tracksGeneration {
		return
	}
	newMeta, err1 := meta.Accessor(obj)
	oldMeta, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	changed := !equality.Semantic.DeepEqual(fieldValue(obj, "Spec"), fieldValue(old, "Spec"))
	bumpGeneration(newMeta, oldMeta, changed)
}

func (s objectStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(metadataPath, err)}
	}
	return apimachineryvalidation.ValidateObjectMetaAccessor(m, s.namespaced, s.nameFunc(), metadataPath)
}

func (s objectStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

func (s objectStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	return labels.Set(m.GetLabels()), ObjectMetaFields(m, s.namespaced), nil
}

func (s objectStrategy) nameFunc() apimachineryvalidation.ValidateNameFunc {
	if s.nameFn != nil {
		return s.nameFn
	}
	return apimachineryvalidation.NameIsDNSSubdomain
}

// validateMeta checks metadata of a typed object on create.
func (s objectStrategy) validateMeta(m *metav1.ObjectMeta) field.ErrorList {
	return apimachineryvalidation.ValidateObjectMeta(m, s.namespaced, s.nameFunc(), metadataPath)
}

// validateMetaUpdate checks metadata of a typed object on update: the
// immutable parts (name, namespace, uid, creationTimestamp) and the create
// rules for the rest.
func (s objectStrategy) validateMetaUpdate(newMeta, oldMeta *metav1.ObjectMeta) field.ErrorList {
	errs := apimachineryvalidation.ValidateObjectMetaUpdate(newMeta, oldMeta, metadataPath)
	return append(errs, s.validateMeta(newMeta)...)
}

// fieldsFor returns the metadata selectable fields merged with extra.
func (s objectStrategy) fieldsFor(m *metav1.ObjectMeta, extra fields.Set) fields.Set {
	f := ObjectMetaFields(m, s.namespaced)
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func validateMetaAccessorUpdate(obj, old runtime.Object) field.ErrorList {
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(metadataPath, err)}
	}
	oldMeta, err := meta.Accessor(old)
	if err != nil {
		return field.ErrorList{field.InternalError(metadataPath, err)}
	}
	return apimachineryvalidation.ValidateObjectMetaAccessorUpdate(newMeta, oldMeta, metadataPath)
}

// bumpGeneration makes the new generation the stored one, plus one when the
// tracked content changed. Clients cannot set generation themselves.
func bumpGeneration(newMeta, oldMeta metav1.Object, changed bool) {
	gen := oldMeta.GetGeneration()
	if changed {
		gen++
	}
	newMeta.SetGeneration(gen)
}

// ObjectMetaFields are the selectable fields every object has.
func ObjectMetaFields(m metav1Object, namespaced bool) fields.Set {
	f := fields.Set{"metadata.name": m.GetName()}
	if namespaced {
		f["metadata.namespace"] = m.GetNamespace()
	}
	return f
}

type metav1Object interface {
	GetName() string
	GetNamespace() string
}

// statusStrategy is the common status subresource rule: a status write may
// change status (and metadata other than what ResetObjectMetaForStatus-style
// types protect); spec and generation always come from the stored object.
type statusStrategy struct {
	// keepsLabels: labels too come from the stored object (deployments).
	keepsLabels bool
	// validateStatus checks the new status; optional.
	validateStatus func(obj, old runtime.Object) field.ErrorList
}

func (s statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	copyField(obj, old, "Spec")
	newMeta, err1 := meta.Accessor(obj)
	oldMeta, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	newMeta.SetGeneration(oldMeta.GetGeneration())
	if s.keepsLabels {
		newMeta.SetLabels(oldMeta.GetLabels())
	}
}

func (s statusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	errs := validateMetaAccessorUpdate(obj, old)
	if s.validateStatus != nil {
		errs = append(errs, s.validateStatus(obj, old)...)
	}
	return errs
}

// fieldValue returns the named top-level struct field of obj, or nil.
func fieldValue(obj runtime.Object, name string) any {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() {
		return nil
	}
	return f.Interface()
}

// copyField copies the named top-level struct field from src to dst.
func copyField(dst, src runtime.Object, name string) {
	d := reflect.ValueOf(dst).Elem().FieldByName(name)
	s := reflect.ValueOf(src).Elem().FieldByName(name)
	if d.IsValid() && s.IsValid() && d.CanSet() {
		d.Set(s)
	}
}

// resetField sets the named top-level struct field to its zero value.
func resetField(obj runtime.Object, name string) {
	f := reflect.ValueOf(obj).Elem().FieldByName(name)
	if f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}
