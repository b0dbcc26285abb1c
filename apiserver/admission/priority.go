package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"tower.dev/tower/apiserver/registry"
)

// Priority resolves a pod's priorityClassName (or the global default
// class) into spec.priority and spec.preemptionPolicy, refuses unknown
// class names, keeps PriorityClasses to one global default and protects
// the built-in classes from deletion.
type Priority struct {
	PriorityClasses Objects
}

// Admit implements Mutator.
func (p *Priority) Admit(ctx context.Context, a *Attributes) error {
	if !a.isPod() {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	switch a.Operation {
	case Update:
		// Priority is set once on create; an update that leaves it out
		// keeps it (validation refuses any other change).
		if old, ok := a.OldObject.(*corev1.Pod); ok {
			if pod.Spec.Priority == nil {
				pod.Spec.Priority = old.Spec.Priority
			}
			if pod.Spec.PreemptionPolicy == nil {
				pod.Spec.PreemptionPolicy = old.Spec.PreemptionPolicy
			}
		}
		return nil
	case Create:
		return p.resolve(ctx, a, pod)
	}
	return nil
}

func (p *Priority) resolve(ctx context.Context, a *Attributes, pod *corev1.Pod) error {
	var class *schedulingv1.PriorityClass
	if pod.Spec.PriorityClassName == "" {
		def, err := p.globalDefault(ctx)
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to get default priority class: %w", err))
		}
		class = def
	} else {
		class = &schedulingv1.PriorityClass{}
		err := p.PriorityClasses.Get(ctx, "", pod.Spec.PriorityClassName, class)
		if apierrors.IsNotFound(err) {
			return forbidden(a, fmt.Sprintf("no PriorityClass with name %v was found", pod.Spec.PriorityClassName))
		}
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to get PriorityClass with name %s: %w", pod.Spec.PriorityClassName, err))
		}
	}
	priority := int32(0)
	preempt := corev1.PreemptLowerPriority
	preemptionPolicy := &preempt
	if class != nil {
		pod.Spec.PriorityClassName = class.Name
		priority = class.Value
		preemptionPolicy = class.PreemptionPolicy
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return forbidden(a, fmt.Sprintf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, priority))
	}
	pod.Spec.Priority = &priority
	if preemptionPolicy != nil {
		if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != *preemptionPolicy {
			return forbidden(a, fmt.Sprintf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *pod.Spec.PreemptionPolicy, *preemptionPolicy))
		}
		pod.Spec.PreemptionPolicy = preemptionPolicy
	}
	return nil
}

// globalDefault is the global default class with the lowest value, or nil.
func (p *Priority) globalDefault(ctx context.Context) (*schedulingv1.PriorityClass, error) {
	list := &schedulingv1.PriorityClassList{}
	if err := p.PriorityClasses.List(ctx, "", list); err != nil {
		return nil, err
	}
	var def *schedulingv1.PriorityClass
	for i := range list.Items {
		pc := &list.Items[i]
		if pc.GlobalDefault && (def == nil || pc.Value < def.Value) {
			def = pc
		}
	}
	return def, nil
}

// Validate implements Validator for PriorityClasses.
func (p *Priority) Validate(ctx context.Context, a *Attributes) error {
	if a.Resource.Group != schedulingv1.GroupName || a.Resource.Resource != "priorityclasses" || a.Subresource != "" {
		return nil
	}
	switch a.Operation {
	case Delete:
		if registry.IsSystemPriorityClass(a.Name) {
			return forbidden(a, "this is a system priority class and cannot be deleted")
		}
	case Create, Update:
		pc, ok := a.Object.(*schedulingv1.PriorityClass)
		if !ok || !pc.GlobalDefault {
			return nil
		}
		def, err := p.globalDefault(ctx)
		if err != nil {
			return err
		}
		if def != nil && def.Name != pc.Name {
			return forbidden(a, fmt.Sprintf("PriorityClass %v is already marked as default. Only one default can exist", def.Name))
		}
	}
	return nil
}
