package apiextensions

import (
	"context"
	"fmt"
	"maps"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	"tower.dev/tower/apiserver/registry"
)

var metadataPath = field.NewPath("metadata")

// crSchema is what serving one version of a custom resource needs from its
// CRD's schema.
type crSchema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	// rules holds the x-kubernetes-validations; nil when there are none.
	rules *cel.Validator
}

func newCRSchema(internalCRD *apiextensions.CustomResourceDefinition, version string) (*crSchema, error) {
	validation, err := apiextensions.GetSchemaForVersion(internalCRD, version)
	if err != nil {
		return nil, fmt.Errorf("schema of version %s: %w", version, err)
	}
	if validation == nil || validation.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("version %s has no schema", version)
	}
	structural, err := structuralschema.NewStructural(validation.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("structural schema of version %s: %w", version, err)
	}
	// Defaults inside the schema are not pruned by the validation of the
	// CRD itself, and pruning works on a copy the CRD object does not share.
	structural = structural.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(structural); err != nil {
		return nil, fmt.Errorf("prune defaults of version %s: %w", version, err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(validation.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("schema validator of version %s: %w", version, err)
	}
	return &crSchema{
		structural: structural,
		validator:  validator,
		rules:      cel.NewValidator(structural, true, celconfig.PerCallLimit),
	}, nil
}

// normalize drops fields the schema does not know and fills defaults, as
// kube-apiserver does to every request body and every object it reads
// from etcd.
func (s *crSchema) normalize(obj map[string]any) {
	pruning.Prune(obj, s.structural, true)
	structuraldefaulting.Default(obj, s.structural)
}

// prune drops what the schema does not know and nulls it does not allow,
// as kube-apiserver does to an object converted to this version (which is
// not defaulted again).
func (s *crSchema) prune(obj map[string]any) {
	pruning.Prune(obj, s.structural, true)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, s.structural)
}

// validate checks obj (and, for updates, its transition from old) against
// the schema, the list-type markers, embedded objects' metadata and the
// CEL rules.
func (s *crSchema) validate(ctx context.Context, obj, old map[string]any) field.ErrorList {
	var errs field.ErrorList
	if old == nil {
		errs = apiservervalidation.ValidateCustomResource(nil, obj, s.validator)
	} else {
		errs = apiservervalidation.ValidateCustomResourceUpdate(nil, obj, old, s.validator)
	}
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, s.structural, true)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	if s.rules != nil && len(errs) == 0 {
		var oldObj any
		if old != nil {
			oldObj = old
		}
		ruleErrs, _ := s.rules.Validate(ctx, nil, s.structural, obj, oldObj, celconfig.RuntimeCELCostBudget)
		errs = append(errs, ruleErrs...)
	}
	return errs
}

// customResourceStrategy holds the rules of one served version.
type customResourceStrategy struct {
	namespaced bool
	schema     *crSchema
	// statusEnabled: the status subresource owns .status.
	statusEnabled bool
}

func unstructuredContent(obj runtime.Object) map[string]any {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	return u.Object
}

// UnknownFields lists the fields pruning would drop from obj.
func (s customResourceStrategy) UnknownFields(obj runtime.Object) []string {
	content := unstructuredContent(obj)
	if content == nil {
		return nil
	}
	return pruning.PruneWithOptions(runtime.DeepCopyJSON(content), s.schema.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
}

func (s customResourceStrategy) Default(obj runtime.Object) {
	if content := unstructuredContent(obj); content != nil {
		s.schema.normalize(content)
	}
}

// PrepareForCreate: custom resources always track generation, and with a
// status subresource a create may not set status.
func (s customResourceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	u := obj.(*unstructured.Unstructured)
	if s.statusEnabled {
		delete(u.Object, "status")
	}
	u.SetGeneration(1)
}

// PrepareForUpdate keeps the stored status when the status subresource owns
// it and bumps generation when anything but metadata (and status) changed.
func (s customResourceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	u := obj.(*unstructured.Unstructured)
	oldU := old.(*unstructured.Unstructured)
	if s.statusEnabled {
		if status, ok := oldU.Object["status"]; ok {
			u.Object["status"] = status
		} else {
			delete(u.Object, "status")
		}
	}
	if !equality.Semantic.DeepEqual(withoutMetadata(u.Object, s.statusEnabled), withoutMetadata(oldU.Object, s.statusEnabled)) {
		u.SetGeneration(oldU.GetGeneration() + 1)
	} else {
		u.SetGeneration(oldU.GetGeneration())
	}
}

// withoutMetadata is the content whose change bumps generation.
func withoutMetadata(content map[string]any, dropStatus bool) map[string]any {
	out := maps.Clone(content)
	delete(out, "metadata")
	if dropStatus {
		delete(out, "status")
	}
	return out
}

func (s customResourceStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	u := obj.(*unstructured.Unstructured)
	errs := apimachineryvalidation.ValidateObjectMetaAccessor(u, s.namespaced, apimachineryvalidation.NameIsDNSSubdomain, metadataPath)
	return append(errs, s.schema.validate(ctx, u.Object, nil)...)
}

func (s customResourceStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	u := obj.(*unstructured.Unstructured)
	oldU := old.(*unstructured.Unstructured)
	errs := apimachineryvalidation.ValidateObjectMetaAccessorUpdate(u, oldU, metadataPath)
	errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessor(u, s.namespaced, apimachineryvalidation.NameIsDNSSubdomain, metadataPath)...)
	return append(errs, s.schema.validate(ctx, u.Object, oldU.Object)...)
}

func (s customResourceStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil, fmt.Errorf("not an unstructured object: %T", obj)
	}
	return labels.Set(u.GetLabels()), registry.ObjectMetaFields(u, s.namespaced), nil
}

// customResourceStatusStrategy: a status write changes status only; the
// rest of the object (managedFields aside) is the stored one.
type customResourceStatusStrategy struct {
	schema *crSchema
}

func (customResourceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	u := obj.(*unstructured.Unstructured)
	status, hasStatus := u.Object["status"]
	managedFields := u.GetManagedFields()
	u.Object = old.(*unstructured.Unstructured).DeepCopy().Object
	u.SetManagedFields(managedFields)
	if hasStatus {
		u.Object["status"] = status
	} else {
		delete(u.Object, "status")
	}
}

func (s customResourceStatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	u := obj.(*unstructured.Unstructured)
	oldU := old.(*unstructured.Unstructured)
	errs := apimachineryvalidation.ValidateObjectMetaAccessorUpdate(u, oldU, metadataPath)
	return append(errs, s.schema.validate(ctx, u.Object, oldU.Object)...)
}

// newCustomResource describes one served version of a CRD as a registry
// resource, with the names the CRD's status accepted.
func newCustomResource(crd *apiextensionsv1.CustomResourceDefinition, version *apiextensionsv1.CustomResourceDefinitionVersion, s *crSchema) *registry.Resource {
	names := crd.Status.AcceptedNames
	gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: names.Kind}
	listGVK := gvk.GroupVersion().WithKind(names.ListKind)
	namespaced := crd.Spec.Scope == apiextensionsv1.NamespaceScoped
	res := &registry.Resource{
		GroupVersionResource: gvk.GroupVersion().WithResource(names.Plural),
		Kind:                 names.Kind,
		SingularName:         names.Singular,
		ShortNames:           names.ShortNames,
		Categories:           names.Categories,
		Namespaced:           namespaced,
		Verbs:                []string{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"},
		StoragePrefix:        "/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural,
		New: func() runtime.Object {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			return u
		},
		NewList: func() runtime.Object {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(listGVK)
			return l
		},
		Strategy: customResourceStrategy{namespaced: namespaced, schema: s, statusEnabled: version.Subresources != nil && version.Subresources.Status != nil},
	}
	if sub := version.Subresources; sub != nil {
		if sub.Status != nil {
			res.Status = customResourceStatusStrategy{schema: s}
		}
		if sub.Scale != nil {
			res.Scale = &registry.ScaleSubresource{
				SpecReplicasPath:   sub.Scale.SpecReplicasPath,
				StatusReplicasPath: sub.Scale.StatusReplicasPath,
			}
			if sub.Scale.LabelSelectorPath != nil {
				res.Scale.LabelSelectorPath = *sub.Scale.LabelSelectorPath
			}
		}
	}
	return res
}
