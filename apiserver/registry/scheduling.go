package registry

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var schedulingV1 = schedulingv1.SchemeGroupVersion

// The priority class limits of kube-apiserver: user classes stay at or
// below HighestUserDefinablePriority; the system- prefix is reserved for
// the built-in classes.
const (
	HighestUserDefinablePriority = int32(1000000000)
	systemPriorityClassPrefix    = "system-"
)

// SystemPriorityClasses are the classes every cluster has from the first
// start, as kube-apiserver creates them.
func SystemPriorityClasses() []*schedulingv1.PriorityClass {
	preempt := corev1.PreemptLowerPriority
	return []*schedulingv1.PriorityClass{
		{
			ObjectMeta:       metav1.ObjectMeta{Name: "system-node-critical"},
			Value:            2*HighestUserDefinablePriority + 1000,
			Description:      "Used for system critical pods that must not be moved from their current node.",
			PreemptionPolicy: &preempt,
		},
		{
			ObjectMeta:       metav1.ObjectMeta{Name: "system-cluster-critical"},
			Value:            2 * HighestUserDefinablePriority,
			Description:      "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
			PreemptionPolicy: &preempt,
		},
	}
}

func schedulingSpecs() []spec {
	return []spec{
		{gv: schedulingV1, resource: "priorityclasses", kind: "PriorityClass", short: []string{"pc"}, prefix: "/registry/priorityclasses",
			newObj: func() runtime.Object { return &schedulingv1.PriorityClass{} }, newList: func() runtime.Object { return &schedulingv1.PriorityClassList{} },
			strategy: priorityClassStrategy{objectStrategy{}}},
	}
}

// priorityClassStrategy: value and preemptionPolicy are fixed at creation;
// system- names belong to the built-in classes.
type priorityClassStrategy struct{ objectStrategy }

func (priorityClassStrategy) Default(obj runtime.Object) {
	pc := obj.(*schedulingv1.PriorityClass)
	if pc.PreemptionPolicy == nil {
		preempt := corev1.PreemptLowerPriority
		pc.PreemptionPolicy = &preempt
	}
}

func (s priorityClassStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pc := obj.(*schedulingv1.PriorityClass)
	errs := s.validateMeta(&pc.ObjectMeta)
	if strings.HasPrefix(pc.Name, systemPriorityClassPrefix) {
		if err := checkSystemPriorityClass(pc); err != nil {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				"priority class names with '"+systemPriorityClassPrefix+"' prefix are reserved for system use only. error: "+err.Error()))
		}
	} else if pc.Value > HighestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"), fmt.Sprintf("maximum allowed value of a user defined priority is %v", HighestUserDefinablePriority)))
	}
	if pc.PreemptionPolicy != nil {
		errs = append(errs, validateEnum(*pc.PreemptionPolicy, []corev1.PreemptionPolicy{corev1.PreemptLowerPriority, corev1.PreemptNever}, field.NewPath("preemptionPolicy"))...)
	}
	return errs
}

func (s priorityClassStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	pc, oldPC := obj.(*schedulingv1.PriorityClass), old.(*schedulingv1.PriorityClass)
	errs := validateMetaAccessorUpdate(obj, old)
	if pc.Value != oldPC.Value {
		errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
	}
	errs = append(errs, validateImmutable(pc.PreemptionPolicy, oldPC.PreemptionPolicy, field.NewPath("preemptionPolicy"))...)
	return errs
}

// checkSystemPriorityClass accepts a system- class only as it is built in.
func checkSystemPriorityClass(pc *schedulingv1.PriorityClass) error {
	for _, system := range SystemPriorityClasses() {
		if system.Name != pc.Name {
			continue
		}
		if system.Value != pc.Value {
			return fmt.Errorf("value of %v PriorityClass must be %v", system.Name, system.Value)
		}
		if system.GlobalDefault != pc.GlobalDefault {
			return fmt.Errorf("globalDefault of %v PriorityClass must be %v", system.Name, system.GlobalDefault)
		}
		return nil
	}
	return fmt.Errorf("%v is not a known system priority class", pc.Name)
}

// IsSystemPriorityClass reports whether name is a built-in class.
func IsSystemPriorityClass(name string) bool {
	for _, system := range SystemPriorityClasses() {
		if system.Name == name {
			return true
		}
	}
	return false
}
