package admission

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	resourcehelper "k8s.io/component-helpers/resource"
)

// limitRangerAnnotation records on a pod which defaults LimitRanger set.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// LimitRanger applies the namespace's LimitRanges to new pods: container
// defaults (default, defaultRequest) first, then the min, max and
// maxLimitRequestRatio bounds per container and per pod, with
// kube-apiserver's messages. Pod updates are not checked: the fields it
// looks at cannot change.
type LimitRanger struct {
	LimitRanges Objects
	lookup      liveLookup
}

func (l *LimitRanger) limitRanges(ctx context.Context, a *Attributes) ([]corev1.LimitRange, *corev1.Pod, error) {
	if !a.isPod() || a.Operation != Create {
		return nil, nil, nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil, nil, nil
	}
	list := &corev1.LimitRangeList{}
	if err := l.lookup.list(ctx, l.LimitRanges, a.Namespace, list); err != nil {
		return nil, nil, err
	}
	return list.Items, pod, nil
}

// Admit implements Mutator: container defaults.
func (l *LimitRanger) Admit(ctx context.Context, a *Attributes) error {
	ranges, pod, err := l.limitRanges(ctx, a)
	if err != nil || pod == nil {
		return err
	}
	for i := range ranges {
		defaults := containerDefaults(&ranges[i])
		if len(defaults.Limits) == 0 && len(defaults.Requests) == 0 {
			continue
		}
		var notes []string
		for i := range pod.Spec.Containers {
			notes = applyContainerDefaults(&pod.Spec.Containers[i], defaults, "container", notes)
		}
		for i := range pod.Spec.InitContainers {
			notes = applyContainerDefaults(&pod.Spec.InitContainers[i], defaults, "init container", notes)
		}
		if len(notes) > 0 {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
		}
	}
	return nil
}

// Validate implements Validator: the bounds.
func (l *LimitRanger) Validate(ctx context.Context, a *Attributes) error {
	ranges, pod, err := l.limitRanges(ctx, a)
	if err != nil || pod == nil {
		return err
	}
	for i := range ranges {
		if err := validatePodLimits(&ranges[i], pod); err != nil {
			return forbidden(a, err.Error())
		}
	}
	return nil
}

// containerDefaults are the Container items' default limits and requests.
func containerDefaults(lr *corev1.LimitRange) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		for name, q := range item.Default {
			out.Limits[name] = q.DeepCopy()
		}
		for name, q := range item.DefaultRequest {
			out.Requests[name] = q.DeepCopy()
		}
	}
	return out
}

// applyContainerDefaults fills the resources a container leaves out and
// notes what it set, in the annotation's words.
func applyContainerDefaults(c *corev1.Container, defaults corev1.ResourceRequirements, kind string, notes []string) []string {
	fill := func(list *corev1.ResourceList, from corev1.ResourceList) []string {
		var set []string
		for name, q := range from {
			if _, ok := (*list)[name]; ok {
				continue
			}
			if *list == nil {
				*list = corev1.ResourceList{}
			}
			(*list)[name] = q.DeepCopy()
			set = append(set, string(name))
		}
		sort.Strings(set)
		return set
	}
	if set := fill(&c.Resources.Requests, defaults.Requests); len(set) > 0 {
		notes = append(notes, fmt.Sprintf("%s request for %s %s", strings.Join(set, ", "), kind, c.Name))
	}
	if set := fill(&c.Resources.Limits, defaults.Limits); len(set) > 0 {
		notes = append(notes, fmt.Sprintf("%s limit for %s %s", strings.Join(set, ", "), kind, c.Name))
	}
	return notes
}

// validatePodLimits checks every Container item against each container
// and init container, and every Pod item against the pod's effective
// requests and limits.
func validatePodLimits(lr *corev1.LimitRange, pod *corev1.Pod) error {
	var errs []error
	check := func(limitType corev1.LimitType, item corev1.LimitRangeItem, requests, limits corev1.ResourceList) {
		for name, q := range item.Min {
			errs = appendErr(errs, minConstraint(limitType, name, q, requests, limits))
		}
		for name, q := range item.Max {
			errs = appendErr(errs, maxConstraint(limitType, name, q, requests, limits))
		}
		for name, q := range item.MaxLimitRequestRatio {
			errs = appendErr(errs, limitRequestRatioConstraint(limitType, name, q, requests, limits))
		}
	}
	for _, item := range lr.Spec.Limits {
		switch item.Type {
		case corev1.LimitTypeContainer:
			for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
				for i := range containers {
					check(item.Type, item, containers[i].Resources.Requests, containers[i].Resources.Limits)
				}
			}
		case corev1.LimitTypePod:
			opts := resourcehelper.PodResourcesOptions{}
			check(item.Type, item, resourcehelper.PodRequests(pod, opts), resourcehelper.PodLimits(pod, opts))
		}
	}
	return utilerrors.NewAggregate(errs)
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// compared returns request, limit and bound as milli-units when that
// cannot overflow, whole units otherwise.
func compared(request, limit, bound resource.Quantity) (int64, int64, int64) {
	r, l, b := request.Value(), limit.Value(), bound.Value()
	if r <= resource.MaxMilliValue && l <= resource.MaxMilliValue && b <= resource.MaxMilliValue {
		return request.MilliValue(), limit.MilliValue(), bound.MilliValue()
	}
	return r, l, b
}

func minConstraint(limitType corev1.LimitType, name corev1.ResourceName, bound resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, b := compared(req, lim, bound)
	switch {
	case !hasReq:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, limitType, bound.String())
	case r < b:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, limitType, bound.String(), req.String())
	case hasLim && l < b:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, limitType, bound.String(), lim.String())
	}
	return nil
}

func maxConstraint(limitType corev1.LimitType, name corev1.ResourceName, bound resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, b := compared(req, lim, bound)
	switch {
	case !hasLim:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, limitType, bound.String())
	case l > b:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, limitType, bound.String(), lim.String())
	case hasReq && r > b:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, limitType, bound.String(), req.String())
	}
	return nil
}

func limitRequestRatioConstraint(limitType corev1.LimitType, name corev1.ResourceName, bound resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, _ := compared(req, lim, bound)
	if !hasReq || r == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, limitType, bound.String())
	}
	if !hasLim || l == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, limitType, bound.String())
	}
	ratio := float64(l) / float64(r)
	observed, maxRatio := ratio, float64(bound.Value())
	if bound.Value() <= resource.MaxMilliValue {
		observed, maxRatio = ratio*1000, float64(bound.MilliValue())
	}
	if observed > maxRatio {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, limitType, bound.String(), ratio)
	}
	return nil
}
