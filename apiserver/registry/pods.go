package registry

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podStrategy: pods track generation (spec changes bump it), start Pending
// with a computed QoS class, and allow only a few spec fields to change.
type podStrategy struct{ objectStrategy }

var _ GracefulDeleter = podStrategy{}

func newPodStrategy() podStrategy { return podStrategy{namespacedStrategy(true)} }

func (podStrategy) Default(obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	defaultPodSpec(&pod.Spec)
	defaultPodOnly(pod)
}

func (podStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	pod.Generation = 1
	defaultTolerationSeconds(&pod.Spec)
	pod.Status = corev1.PodStatus{
		Phase:    corev1.PodPending,
		QOSClass: podQOSClass(&pod.Spec),
	}
	if len(pod.Spec.SchedulingGates) > 0 {
		pod.Status.Conditions = []corev1.PodCondition{{
			Type:    corev1.PodScheduled,
			Status:  corev1.ConditionFalse,
			Reason:  corev1.PodReasonSchedulingGated,
			Message: "Scheduling is blocked due to non-empty scheduling gates",
		}}
	}
}

func (podStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	pod.Status = oldPod.Status
	bumpGeneration(pod, oldPod, !equality.Semantic.DeepEqual(pod.Spec, oldPod.Spec))
}

func (s podStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	errs := s.validateMeta(&pod.ObjectMeta)
	return append(errs, validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
}

func (s podStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	errs := s.validateMetaUpdate(&pod.ObjectMeta, &oldPod.ObjectMeta)
	errs = append(errs, validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
	return append(errs, validatePodSpecUpdate(&pod.Spec, &oldPod.Spec, field.NewPath("spec"))...)
}

func (s podStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("not a pod: %T", obj)
	}
	podIP := ""
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	} else {
		podIP = pod.Status.PodIP
	}
	return labels.Set(pod.Labels), s.fieldsFor(&pod.ObjectMeta, fields.Set{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}), nil
}

// CheckGracefulDelete picks the grace period: the request's, else the
// pod's terminationGracePeriodSeconds; zero for pods that never ran on a
// node or have already finished. It returns false (delete now) when the
// resulting period is zero; a negative period is raised to 1s.
func (podStrategy) CheckGracefulDelete(_ context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool {
	if options == nil {
		return false
	}
	pod := obj.(*corev1.Pod)
	var period int64
	switch {
	case options.GracePeriodSeconds != nil:
		period = *options.GracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	options.GracePeriodSeconds = &period
	return period > 0
}

// updatablePodSpecFields is the list kube-apiserver prints when a pod update
// touches anything else.
const updatablePodSpecFields = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// validatePodSpecUpdate enforces pod spec immutability: only images,
// activeDeadlineSeconds (shortened), added tolerations, removed scheduling
// gates (and node selector/affinity additions while gated) may change.
func validatePodSpecUpdate(spec, oldSpec *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.Containers) != len(oldSpec.Containers) || len(spec.InitContainers) != len(oldSpec.InitContainers) {
		return append(errs, podSpecForbidden(spec, oldSpec, p))
	}
	if v := spec.ActiveDeadlineSeconds; v != nil {
		if *v < 0 || *v > math.MaxInt32 {
			return append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *v, validation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if oldSpec.ActiveDeadlineSeconds != nil && *oldSpec.ActiveDeadlineSeconds < *v {
			return append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *v, "must be less than or equal to previous value"))
		}
	} else if oldSpec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), spec.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
	}
	errs = append(errs, validateOnlyAddedTolerations(spec.Tolerations, oldSpec.Tolerations, p.Child("tolerations"))...)
	errs = append(errs, validateSchedulingGatesUpdate(spec.SchedulingGates, oldSpec.SchedulingGates, p.Child("schedulingGates"))...)

	// Undo every allowed change; whatever still differs was not allowed.
	munged := spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = oldSpec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = oldSpec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = oldSpec.ActiveDeadlineSeconds
	munged.Tolerations = oldSpec.Tolerations
	munged.SchedulingGates = oldSpec.SchedulingGates
	munged.EphemeralContainers = oldSpec.EphemeralContainers
	if oldSpec.TerminationGracePeriodSeconds != nil && *oldSpec.TerminationGracePeriodSeconds < 0 &&
		spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = oldSpec.TerminationGracePeriodSeconds
	}
	if len(oldSpec.SchedulingGates) > 0 {
		// Gated pods may gain node constraints before they are scheduled.
		munged.NodeSelector = oldSpec.NodeSelector
		munged.Affinity = oldSpec.Affinity
	}
	if !equality.Semantic.DeepEqual(munged, oldSpec) {
		errs = append(errs, podSpecForbidden(munged, oldSpec, p))
	}
	return errs
}

func podSpecForbidden(spec, oldSpec *corev1.PodSpec, p *field.Path) *field.Error {
	return field.Forbidden(p, fmt.Sprintf("pod updates may not change fields other than %s\n%s", updatablePodSpecFields, cmp.Diff(*oldSpec, *spec)))
}

// validateOnlyAddedTolerations: existing tolerations stay, except that a
// NoExecute toleration's seconds may shrink.
func validateOnlyAddedTolerations(tolerations, oldTolerations []corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, old := range oldTolerations {
		found := false
		oldCopy := old
		oldCopy.TolerationSeconds = nil
		for _, t := range tolerations {
			tCopy := t
			tCopy.TolerationSeconds = nil
			if !equality.Semantic.DeepEqual(tCopy, oldCopy) {
				continue
			}
			if old.TolerationSeconds == nil || (t.TolerationSeconds != nil && *t.TolerationSeconds <= *old.TolerationSeconds) || t.TolerationSeconds == old.TolerationSeconds {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds"))
			return errs
		}
	}
	return errs
}

func validateSchedulingGatesUpdate(gates, oldGates []corev1.PodSchedulingGate, p *field.Path) field.ErrorList {
	if len(oldGates) == 0 && len(gates) > 0 {
		return field.ErrorList{field.Forbidden(p, "only deletion is allowed, but found new scheduling gate")}
	}
	old := sets.New[string]()
	for _, g := range oldGates {
		old.Insert(g.Name)
	}
	for i, g := range gates {
		if !old.Has(g.Name) {
			return field.ErrorList{field.Forbidden(p.Index(i), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name))}
		}
	}
	return nil
}

// podQOSClass computes the QoS class from the CPU and memory requests and
// limits of all containers (or the pod-level resources when set).
func podQOSClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	isQOSResource := func(name corev1.ResourceName) bool {
		return name == corev1.ResourceCPU || name == corev1.ResourceMemory
	}
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	add := func(list corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if cur, ok := list[name]; ok {
			q.Add(cur)
		}
		list[name] = q
	}
	if r := spec.Resources; r != nil && (len(r.Requests) > 0 || len(r.Limits) > 0) {
		for name, q := range r.Requests {
			if isQOSResource(name) && q.Sign() > 0 {
				add(requests, name, q)
			}
		}
		for name, q := range r.Limits {
			if isQOSResource(name) && q.Sign() > 0 {
				add(limits, name, q)
			}
		}
		return qosFromTotals(requests, limits, len(limits) == 2)
	}
	guaranteed := true
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for name, q := range c.Resources.Requests {
			if isQOSResource(name) && q.Sign() > 0 {
				add(requests, name, q)
			}
		}
		found := 0
		for name, q := range c.Resources.Limits {
			if isQOSResource(name) && q.Sign() > 0 {
				found++
				add(limits, name, q)
			}
		}
		if found != 2 {
			guaranteed = false
		}
	}
	return qosFromTotals(requests, limits, guaranteed)
}

func qosFromTotals(requests, limits corev1.ResourceList, limitsComplete bool) corev1.PodQOSClass {
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if limitsComplete {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				return corev1.PodQOSBurstable
			}
		}
		if len(requests) == len(limits) {
			return corev1.PodQOSGuaranteed
		}
	}
	return corev1.PodQOSBurstable
}

// podStatusStrategy: the kubelet's writes. Spec, deletionTimestamp and
// ownerReferences stay as stored; observedGeneration and qosClass are not
// lost when an older writer omits them.
type podStatusStrategy struct{}

func (podStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	pod.Spec = oldPod.Spec
	pod.Generation = oldPod.Generation
	pod.DeletionTimestamp = oldPod.DeletionTimestamp
	pod.OwnerReferences = oldPod.OwnerReferences
	if pod.Status.QOSClass == "" {
		pod.Status.QOSClass = oldPod.Status.QOSClass
	}
	if pod.Status.ObservedGeneration == 0 {
		pod.Status.ObservedGeneration = oldPod.Status.ObservedGeneration
	}
	oldGenerations := map[corev1.PodConditionType][]int64{}
	for _, c := range oldPod.Status.Conditions {
		oldGenerations[c.Type] = append(oldGenerations[c.Type], c.ObservedGeneration)
	}
	for i, c := range pod.Status.Conditions {
		gens := oldGenerations[c.Type]
		if len(gens) == 0 {
			continue
		}
		oldGenerations[c.Type] = gens[1:]
		if c.ObservedGeneration == 0 {
			pod.Status.Conditions[i].ObservedGeneration = gens[0]
		}
	}
}

func (podStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	errs := validateMetaAccessorUpdate(pod, oldPod)
	sp := field.NewPath("status")
	if isTerminal(oldPod.Status.Phase) && pod.Status.Phase != oldPod.Status.Phase {
		errs = append(errs, field.Forbidden(sp.Child("phase"), fmt.Sprintf("cannot transition from terminal phase %s to %s", oldPod.Status.Phase, pod.Status.Phase)))
	}
	if pod.Status.NominatedNodeName != "" {
		errs = append(errs, validateDNSSubdomain(pod.Status.NominatedNodeName, sp.Child("nominatedNodeName"))...)
	}
	errs = append(errs, validatePodIPs(pod.Status.PodIPs, sp.Child("podIPs"))...)
	for i, ip := range pod.Status.HostIPs {
		errs = append(errs, validation.IsValidIP(sp.Child("hostIPs").Index(i).Child("ip"), ip.IP)...)
	}
	errs = append(errs, validateNoRestartAfterTermination(pod, oldPod, sp.Child("containerStatuses"))...)
	errs = append(errs, validateNonNegative(pod.Status.ObservedGeneration, sp.Child("observedGeneration"))...)
	return errs
}

func isTerminal(phase corev1.PodPhase) bool {
	return phase == corev1.PodSucceeded || phase == corev1.PodFailed
}

func validatePodIPs(ips []corev1.PodIP, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, ip := range ips {
		ipPath := p.Index(i).Child("ip")
		errs = append(errs, validation.IsValidIP(ipPath, ip.IP)...)
		if seen.Has(ip.IP) {
			errs = append(errs, field.Duplicate(ipPath, ip.IP))
		}
		seen.Insert(ip.IP)
	}
	if len(ips) > 2 {
		errs = append(errs, field.TooMany(p, len(ips), 2))
	}
	return errs
}

// validateNoRestartAfterTermination: with restartPolicy Never a terminated
// container stays terminated.
func validateNoRestartAfterTermination(pod, oldPod *corev1.Pod, p *field.Path) field.ErrorList {
	if oldPod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		return nil
	}
	terminated := map[string]bool{}
	for _, cs := range oldPod.Status.ContainerStatuses {
		terminated[cs.Name] = cs.State.Terminated != nil
	}
	var errs field.ErrorList
	for i, cs := range pod.Status.ContainerStatuses {
		if terminated[cs.Name] && cs.State.Terminated == nil {
			errs = append(errs, field.Forbidden(p.Index(i).Child("state"), fmt.Sprintf("may not be transitioned to non-terminated state: terminated container %s attempted illegal transition to non-terminated state", strings.TrimSpace(cs.Name))))
		}
	}
	return errs
}
