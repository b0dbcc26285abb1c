// Package apiextensions serves apiextensions.k8s.io/v1
// CustomResourceDefinitions and the custom resources they define: the CRD
// resource itself (strategy over k8s.io/apiextensions-apiserver's
// validation), a controller that accepts names, establishes CRDs and
// deletes their objects when they go away, and the per-version handlers of
// custom resources (unstructured objects validated, pruned and defaulted
// with the apiextensions-apiserver schema libraries).
package apiextensions

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/registry"
)

// CRDResource describes apiextensions.k8s.io/v1 customresourcedefinitions
// as kube-apiserver serves them.
func CRDResource() (*registry.Resource, error) {
	converter, err := newInternalConverter()
	if err != nil {
		return nil, err
	}
	return &registry.Resource{
		GroupVersionResource: apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"),
		Kind:                 "CustomResourceDefinition",
		SingularName:         "customresourcedefinition",
		ShortNames:           []string{"crd", "crds"},
		Categories:           []string{"api-extensions"},
		Verbs:                []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		StoragePrefix:        "/registry/apiextensions.k8s.io/customresourcedefinitions",
		New:                  func() runtime.Object { return &apiextensionsv1.CustomResourceDefinition{} },
		NewList:              func() runtime.Object { return &apiextensionsv1.CustomResourceDefinitionList{} },
		Strategy:             crdStrategy{converter},
		Status:               crdStatusStrategy{converter},
	}, nil
}

// internalConverter turns v1 CRDs into the internal type that
// apiextensions-apiserver's validation works on.
type internalConverter struct{ scheme *runtime.Scheme }

func newInternalConverter() (internalConverter, error) {
	scheme := runtime.NewScheme()
	if err := apiextensions.AddToScheme(scheme); err != nil {
		return internalConverter{}, fmt.Errorf("register internal apiextensions types: %w", err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return internalConverter{}, fmt.Errorf("register apiextensions/v1 types: %w", err)
	}
	return internalConverter{scheme: scheme}, nil
}

func (c internalConverter) internal(obj runtime.Object) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	if err := c.scheme.Convert(obj, out, nil); err != nil {
		return nil, fmt.Errorf("convert %T to the internal CustomResourceDefinition: %w", obj, err)
	}
	return out, nil
}

// validate converts and runs check, reporting a conversion failure as an
// internal error on the whole object.
func (c internalConverter) validate(obj, old runtime.Object, check func(obj, old *apiextensions.CustomResourceDefinition) field.ErrorList) field.ErrorList {
	in, err := c.internal(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	var oldIn *apiextensions.CustomResourceDefinition
	if old != nil {
		if oldIn, err = c.internal(old); err != nil {
			return field.ErrorList{field.InternalError(nil, err)}
		}
	}
	return check(in, oldIn)
}

type crdStrategy struct{ converter internalConverter }

func (crdStrategy) Default(obj runtime.Object) {
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(obj.(*apiextensionsv1.CustomResourceDefinition))
}

// PrepareForCreate clears status, records the storage version as stored
// and adds the cleanup finalizer. kube-apiserver adds that finalizer only
// when the CRD is deleted; Tower's generic delete has no per-type hook, so
// the finalizer is present from the start and kept on update.
func (crdStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	crd.Generation = 1
	recordStorageVersion(crd)
	if !slices.Contains(crd.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer)
	}
}

func (crdStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	oldCRD := old.(*apiextensionsv1.CustomResourceDefinition)
	crd.Status = oldCRD.Status
	if !equality.Semantic.DeepEqual(crd.Spec, oldCRD.Spec) {
		crd.Generation = oldCRD.Generation + 1
	}
	recordStorageVersion(crd)
	if crd.DeletionTimestamp == nil && slices.Contains(oldCRD.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer) &&
		!slices.Contains(crd.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, apiextensionsv1.CustomResourceCleanupFinalizer)
	}
}

// recordStorageVersion adds the current storage version to
// status.storedVersions, as objects may now be written in it.
func recordStorageVersion(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			if !slices.Contains(crd.Status.StoredVersions, v.Name) {
				crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
			}
			return
		}
	}
}

func (s crdStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return s.converter.validate(obj, nil, func(crd, _ *apiextensions.CustomResourceDefinition) field.ErrorList {
		return validation.ValidateCustomResourceDefinition(ctx, crd)
	})
}

func (s crdStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return s.converter.validate(obj, old, func(crd, oldCRD *apiextensions.CustomResourceDefinition) field.ErrorList {
		return validation.ValidateCustomResourceDefinitionUpdate(ctx, crd, oldCRD)
	})
}

func (crdStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return nil, nil, fmt.Errorf("not a CustomResourceDefinition: %T", obj)
	}
	return labels.Set(crd.Labels), registry.ObjectMetaFields(crd, false), nil
}

type crdStatusStrategy struct{ converter internalConverter }

// PrepareForUpdate keeps everything but status from the stored CRD.
func (crdStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	oldCRD := old.(*apiextensionsv1.CustomResourceDefinition)
	status := crd.Status
	managedFields := crd.ManagedFields
	*crd = *oldCRD.DeepCopy()
	crd.Status = status
	crd.ManagedFields = managedFields
}

func (s crdStatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return s.converter.validate(obj, old, func(crd, oldCRD *apiextensions.CustomResourceDefinition) field.ErrorList {
		return validation.ValidateUpdateCustomResourceDefinitionStatus(ctx, crd, oldCRD)
	})
}
