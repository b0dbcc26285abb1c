package registry

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	rbacV1           = rbacv1.SchemeGroupVersion
	authorizationV1  = authorizationv1.SchemeGroupVersion
	authenticationV1 = authenticationv1.SchemeGroupVersion
)

// rbacSpecs are the rbac.authorization.k8s.io/v1 resources.
func rbacSpecs() []spec {
	return []spec{
		{gv: rbacV1, resource: "clusterrolebindings", kind: "ClusterRoleBinding", prefix: "/registry/clusterrolebindings",
			newObj: func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} },
			strategy: clusterRoleBindingStrategy{rbacObjectStrategy(false)}},
		{gv: rbacV1, resource: "clusterroles", kind: "ClusterRole", prefix: "/registry/clusterroles",
			newObj: func() runtime.Object { return &rbacv1.ClusterRole{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleList{} },
			strategy: clusterRoleStrategy{rbacObjectStrategy(false)}},
		{gv: rbacV1, resource: "rolebindings", kind: "RoleBinding", namespaced: true, prefix: "/registry/rolebindings",
			newObj: func() runtime.Object { return &rbacv1.RoleBinding{} }, newList: func() runtime.Object { return &rbacv1.RoleBindingList{} },
			strategy: roleBindingStrategy{rbacObjectStrategy(true)}},
		{gv: rbacV1, resource: "roles", kind: "Role", namespaced: true, prefix: "/registry/roles",
			newObj: func() runtime.Object { return &rbacv1.Role{} }, newList: func() runtime.Object { return &rbacv1.RoleList{} },
			strategy: roleStrategy{rbacObjectStrategy(true)}},
	}
}

// reviewSpecs are the authentication.k8s.io and authorization.k8s.io
// reviews: create-only and never stored.
func reviewSpecs() []spec {
	create := []string{"create"}
	review := func(gv schema.GroupVersion, resource, kind string, namespaced bool, newObj func() runtime.Object) spec {
		return spec{gv: gv, resource: resource, kind: kind, namespaced: namespaced, newObj: newObj, newList: newObj,
			strategy: reviewStrategy{objectStrategy{namespaced: namespaced}}, verbs: create, notStored: true}
	}
	return []spec{
		review(authenticationV1, "selfsubjectreviews", "SelfSubjectReview", false, func() runtime.Object { return &authenticationv1.SelfSubjectReview{} }),
		review(authenticationV1, "tokenreviews", "TokenReview", false, func() runtime.Object { return &authenticationv1.TokenReview{} }),
		review(authorizationV1, "localsubjectaccessreviews", "LocalSubjectAccessReview", true, func() runtime.Object { return &authorizationv1.LocalSubjectAccessReview{} }),
		review(authorizationV1, "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} }),
		review(authorizationV1, "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} }),
		review(authorizationV1, "subjectaccessreviews", "SubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SubjectAccessReview{} }),
	}
}

// reviewStrategy: reviews are answered, not stored; their spec is checked
// by the review handler.
type reviewStrategy struct{ objectStrategy }

func (reviewStrategy) Default(runtime.Object)                                           {}
func (reviewStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (reviewStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (reviewStrategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (reviewStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}

// rbacObjectStrategy: RBAC names are path segments ("system:node" is
// valid) and the types have no status.
func rbacObjectStrategy(namespaced bool) objectStrategy {
	return objectStrategy{namespaced: namespaced, nameFn: path.ValidatePathSegmentName}
}

type roleStrategy struct{ objectStrategy }

func (roleStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (roleStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s roleStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	r := obj.(*rbacv1.Role)
	return append(s.validateMeta(&r.ObjectMeta), validateRules(r.Rules, true)...)
}

func (s roleStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

type clusterRoleStrategy struct{ objectStrategy }

func (clusterRoleStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (clusterRoleStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s clusterRoleStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	r := obj.(*rbacv1.ClusterRole)
	errs := append(s.validateMeta(&r.ObjectMeta), validateRules(r.Rules, false)...)
	if r.AggregationRule != nil {
		p := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(r.AggregationRule.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i, sel := range r.AggregationRule.ClusterRoleSelectors {
			if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
				errs = append(errs, field.Invalid(p.Index(i), sel, err.Error()))
			}
		}
	}
	return errs
}

func (s clusterRoleStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

// validateRules applies upstream's policy rule checks.
func validateRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range rules {
		p := field.NewPath("rules").Index(i)
		if len(rule.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(rule.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(rule.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(rule.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

type roleBindingStrategy struct{ objectStrategy }

func (roleBindingStrategy) Default(obj runtime.Object) {
	b := obj.(*rbacv1.RoleBinding)
	defaultRoleRef(&b.RoleRef)
	defaultSubjects(b.Subjects)
}
func (roleBindingStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (roleBindingStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s roleBindingStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	b := obj.(*rbacv1.RoleBinding)
	errs := s.validateMeta(&b.ObjectMeta)
	errs = append(errs, validateRoleRef(b.RoleRef, "Role", "ClusterRole")...)
	return append(errs, validateSubjects(b.Subjects, true)...)
}

func (s roleBindingStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	errs := append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
	return append(errs, validateRoleRefUpdate(obj.(*rbacv1.RoleBinding).RoleRef, old.(*rbacv1.RoleBinding).RoleRef)...)
}

type clusterRoleBindingStrategy struct{ objectStrategy }

func (clusterRoleBindingStrategy) Default(obj runtime.Object) {
	b := obj.(*rbacv1.ClusterRoleBinding)
	defaultRoleRef(&b.RoleRef)
	defaultSubjects(b.Subjects)
}
func (clusterRoleBindingStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (clusterRoleBindingStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s clusterRoleBindingStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	b := obj.(*rbacv1.ClusterRoleBinding)
	errs := s.validateMeta(&b.ObjectMeta)
	errs = append(errs, validateRoleRef(b.RoleRef, "ClusterRole")...)
	return append(errs, validateSubjects(b.Subjects, false)...)
}

func (s clusterRoleBindingStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	errs := append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
	return append(errs, validateRoleRefUpdate(obj.(*rbacv1.ClusterRoleBinding).RoleRef, old.(*rbacv1.ClusterRoleBinding).RoleRef)...)
}

func defaultRoleRef(ref *rbacv1.RoleRef) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
}

func defaultSubjects(subjects []rbacv1.Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}

func validateRoleRef(ref rbacv1.RoleRef, kinds ...string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(p.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kindOK := false
	for _, k := range kinds {
		kindOK = kindOK || ref.Kind == k
	}
	if !kindOK {
		errs = append(errs, field.NotSupported(p.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range path.ValidatePathSegmentName(ref.Name, false) {
			errs = append(errs, field.Invalid(p.Child("name"), ref.Name, msg))
		}
	}
	return errs
}

func validateRoleRefUpdate(ref, old rbacv1.RoleRef) field.ErrorList {
	if equality.Semantic.DeepEqual(ref, old) {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
}

func validateSubjects(subjects []rbacv1.Subject, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, s := range subjects {
		p := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if !namespaced && s.Namespace == "" {
				errs = append(errs, field.Required(p.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	return errs
}
