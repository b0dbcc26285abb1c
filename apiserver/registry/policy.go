package registry

import (
	"context"
	"fmt"
	"slices"

	policyv1 "k8s.io/api/policy/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	policyV1                     = policyv1.SchemeGroupVersion
	unhealthyPodEvictionPolicies = []policyv1.UnhealthyPodEvictionPolicyType{policyv1.AlwaysAllow, policyv1.IfHealthyBudget}
)

func policySpecs() []spec {
	return []spec{
		{gv: policyV1, resource: "poddisruptionbudgets", kind: "PodDisruptionBudget", short: []string{"pdb"}, namespaced: true, prefix: "/registry/poddisruptionbudgets",
			newObj: func() runtime.Object { return &policyv1.PodDisruptionBudget{} }, newList: func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
			strategy: podDisruptionBudgetStrategy{namespacedStrategy(true)}, status: statusStrategy{validateStatus: validatePodDisruptionBudgetStatus}},
	}
}

// podDisruptionBudgetStrategy: the spec is mutable in policy/v1 and its
// changes move the generation, which the eviction handler compares with
// status.observedGeneration before trusting disruptionsAllowed.
type podDisruptionBudgetStrategy struct{ objectStrategy }

func (s podDisruptionBudgetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pdb := obj.(*policyv1.PodDisruptionBudget)
	return append(s.validateMeta(&pdb.ObjectMeta), validatePodDisruptionBudgetSpec(&pdb.Spec, specPath)...)
}

func (s podDisruptionBudgetStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pdb, oldPDB := obj.(*policyv1.PodDisruptionBudget), old.(*policyv1.PodDisruptionBudget)
	return append(s.validateMetaUpdate(&pdb.ObjectMeta, &oldPDB.ObjectMeta), validatePodDisruptionBudgetSpec(&pdb.Spec, specPath)...)
}

func (s podDisruptionBudgetStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pdb, ok := obj.(*policyv1.PodDisruptionBudget)
	if !ok {
		return nil, nil, fmt.Errorf("not a poddisruptionbudget: %T", obj)
	}
	return labels.Set(pdb.Labels), s.fieldsFor(&pdb.ObjectMeta, nil), nil
}

func validatePodDisruptionBudgetSpec(spec *policyv1.PodDisruptionBudgetSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(p, spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	errs = append(errs, validateIntOrPercent(spec.MinAvailable, p.Child("minAvailable"))...)
	errs = append(errs, validateNotOver100Percent(spec.MinAvailable, p.Child("minAvailable"))...)
	errs = append(errs, validateIntOrPercent(spec.MaxUnavailable, p.Child("maxUnavailable"))...)
	errs = append(errs, validateNotOver100Percent(spec.MaxUnavailable, p.Child("maxUnavailable"))...)
	errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	// Unlike most enums, an empty policy is "not supported" rather than "required".
	if policy := spec.UnhealthyPodEvictionPolicy; policy != nil && !slices.Contains(unhealthyPodEvictionPolicies, *policy) {
		errs = append(errs, field.NotSupported(p.Child("unhealthyPodEvictionPolicy"), *policy, unhealthyPodEvictionPolicies))
	}
	return errs
}

func validatePodDisruptionBudgetStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*policyv1.PodDisruptionBudget).Status
	p := field.NewPath("status")
	errs := metav1validation.ValidateConditions(st.Conditions, p.Child("conditions"))
	for name, v := range map[string]int32{
		"disruptionsAllowed": st.DisruptionsAllowed, "currentHealthy": st.CurrentHealthy,
		"desiredHealthy": st.DesiredHealthy, "expectedPods": st.ExpectedPods,
	} {
		errs = append(errs, validateNonNegative(int64(v), p.Child(name))...)
	}
	return errs
}
