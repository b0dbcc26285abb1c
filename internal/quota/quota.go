// Package quota says what objects cost against a ResourceQuota: the
// resource names an object uses (pods, requests.cpu, count/deployments.apps,
// ...), which quotas an object falls under, and the arithmetic on
// ResourceLists. The ResourceQuota admission plugin (charging new objects)
// and the resourcequota controller (recomputing usage after deletions)
// share it, so both count the same way.
package quota

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
	resourcehelper "k8s.io/component-helpers/resource"
)

// objectCountPrefix names the generic per-resource object counts.
const objectCountPrefix = "count/"

// legacyCounts are the core resources that also have an unprefixed count
// name (pods, services, ...).
var legacyCounts = map[string]bool{
	"pods": true, "services": true, "configmaps": true, "secrets": true,
	"replicationcontrollers": true, "resourcequotas": true, "persistentvolumeclaims": true,
}

// computeResources are the pod resource names that every container must
// state when a quota limits them.
var computeResources = []corev1.ResourceName{
	corev1.ResourceCPU, corev1.ResourceMemory,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
}

var (
	pods     = schema.GroupResource{Resource: "pods"}
	services = schema.GroupResource{Resource: "services"}
)

// ObjectCountName is count/<resource> for core resources and
// count/<resource>.<group> otherwise.
func ObjectCountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName(objectCountPrefix + gr.Resource)
	}
	return corev1.ResourceName(objectCountPrefix + gr.Resource + "." + gr.Group)
}

// Usage is what obj, an object of resource gr, costs. Pods that have
// finished (or whose deletion grace period has passed at now) still count
// as count/pods but no longer as pods or compute resources.
func Usage(gr schema.GroupResource, obj any, now time.Time) corev1.ResourceList {
	one := resource.MustParse("1")
	usage := corev1.ResourceList{ObjectCountName(gr): one}
	switch gr {
	case pods:
		if pod, ok := obj.(*corev1.Pod); ok && podActive(pod, now) {
			usage[corev1.ResourcePods] = one
			Add(usage, podComputeUsage(pod))
		}
	case services:
		usage[corev1.ResourceServices] = one
		if svc, ok := obj.(*corev1.Service); ok {
			Add(usage, serviceUsage(svc))
		}
	default:
		if gr.Group == "" && legacyCounts[gr.Resource] {
			usage[corev1.ResourceName(gr.Resource)] = one
		}
	}
	return usage
}

// podActive: finished pods and pods past their deletion grace period no
// longer hold compute resources.
func podActive(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		end := pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)
		if now.After(end) {
			return false
		}
	}
	return true
}

// podComputeUsage is the pod's effective requests and limits (init
// containers and overhead included) under their quota names.
func podComputeUsage(pod *corev1.Pod) corev1.ResourceList {
	opts := resourcehelper.PodResourcesOptions{}
	return computeUsage(resourcehelper.PodRequests(pod, opts), resourcehelper.PodLimits(pod, opts))
}

func computeUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range requests {
		switch {
		case name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage:
			out[name] = q.DeepCopy()
			out[corev1.ResourceName("requests."+string(name))] = q.DeepCopy()
		default:
			out[corev1.ResourceName("requests."+string(name))] = q.DeepCopy()
		}
	}
	for name, q := range limits {
		if name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage {
			out[corev1.ResourceName("limits."+string(name))] = q.DeepCopy()
		}
	}
	return out
}

// serviceUsage counts node ports and load balancers.
func serviceUsage(svc *corev1.Service) corev1.ResourceList {
	out := corev1.ResourceList{}
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		out[corev1.ResourceServicesLoadBalancers] = resource.MustParse("1")
		if svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts {
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(svc.Spec.Ports)), resource.DecimalSI)
		}
	case corev1.ServiceTypeNodePort:
		out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(svc.Spec.Ports)), resource.DecimalSI)
	}
	return out
}

// ResourcesFor are the resources whose objects must be counted to know a
// quota's usage of the named resources.
func ResourcesFor(names []corev1.ResourceName) []schema.GroupResource {
	var out []schema.GroupResource
	add := func(gr schema.GroupResource) {
		if !slices.Contains(out, gr) {
			out = append(out, gr)
		}
	}
	for _, name := range names {
		s := string(name)
		switch {
		case strings.HasPrefix(s, objectCountPrefix):
			resourceName, group, _ := strings.Cut(strings.TrimPrefix(s, objectCountPrefix), ".")
			add(schema.GroupResource{Group: group, Resource: resourceName})
		case legacyCounts[s]:
			add(schema.GroupResource{Resource: s})
		case strings.HasPrefix(s, "services."):
			add(services)
		case strings.HasPrefix(s, "requests.") || strings.HasPrefix(s, "limits.") ||
			name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage:
			add(pods)
		}
	}
	return out
}

// Matches reports whether a quota's scopes cover obj. Scoped quotas only
// ever cover pods.
func Matches(rq *corev1.ResourceQuota, gr schema.GroupResource, obj any) bool {
	if len(rq.Spec.Scopes) == 0 && rq.Spec.ScopeSelector == nil {
		return true
	}
	pod, ok := obj.(*corev1.Pod)
	if gr != pods || !ok {
		return false
	}
	for _, scope := range rq.Spec.Scopes {
		if !podInScope(pod, corev1.ScopedResourceSelectorRequirement{ScopeName: scope, Operator: corev1.ScopeSelectorOpExists}) {
			return false
		}
	}
	if rq.Spec.ScopeSelector != nil {
		for _, req := range rq.Spec.ScopeSelector.MatchExpressions {
			if !podInScope(pod, req) {
				return false
			}
		}
	}
	return true
}

func podInScope(pod *corev1.Pod, req corev1.ScopedResourceSelectorRequirement) bool {
	switch req.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0
	case corev1.ResourceQuotaScopeNotTerminating:
		return pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 0
	case corev1.ResourceQuotaScopeBestEffort:
		return bestEffort(pod)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !bestEffort(pod)
	case corev1.ResourceQuotaScopePriorityClass:
		switch req.Operator {
		case corev1.ScopeSelectorOpExists:
			return pod.Spec.PriorityClassName != ""
		case corev1.ScopeSelectorOpDoesNotExist:
			return pod.Spec.PriorityClassName == ""
		case corev1.ScopeSelectorOpIn:
			return slices.Contains(req.Values, pod.Spec.PriorityClassName)
		case corev1.ScopeSelectorOpNotIn:
			return !slices.Contains(req.Values, pod.Spec.PriorityClassName)
		}
	}
	return false
}

// bestEffort: no container requests or limits cpu or memory.
func bestEffort(pod *corev1.Pod) bool {
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range containers {
			for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				for name := range list {
					if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
						return false
					}
				}
			}
		}
	}
	return true
}

// PodConstraints refuses a pod that leaves out compute resources that the
// quota limits: every container must state them, as upstream has always
// required.
func PodConstraints(limited []corev1.ResourceName, pod *corev1.Pod) error {
	missing := map[corev1.ResourceName][]string{}
	for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range containers {
			stated := computeUsage(c.Resources.Requests, c.Resources.Limits)
			for _, name := range limited {
				if _, ok := stated[name]; !ok && slices.Contains(computeResources, name) && !slices.Contains(missing[name], c.Name) {
					missing[name] = append(missing[name], c.Name)
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, 0, len(missing))
	for name := range missing {
		names = append(names, string(name))
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		containers := missing[corev1.ResourceName(name)]
		sort.Strings(containers)
		parts = append(parts, fmt.Sprintf("%s for: %s", name, strings.Join(containers, ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(parts, "; "))
}

// Used computes a quota's status.used: the cost of the objects it
// covers, listed per resource by list, for every resource it limits (zero
// where nothing is used).
func Used(rq *corev1.ResourceQuota, now time.Time, list func(gr schema.GroupResource) ([]any, error)) (corev1.ResourceList, error) {
	names := Names(rq.Spec.Hard)
	used := corev1.ResourceList{}
	for _, gr := range ResourcesFor(names) {
		objs, err := list(gr)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if Matches(rq, gr, obj) {
				Add(used, Usage(gr, obj, now))
			}
		}
	}
	out := Mask(used, names)
	for _, name := range names {
		if _, ok := out[name]; !ok {
			out[name] = Zero()
		}
	}
	return out, nil
}

// Zero is the quantity of a resource nothing uses.
func Zero() resource.Quantity { return *resource.NewQuantity(0, resource.DecimalSI) }

// Add adds b into a.
func Add(a, b corev1.ResourceList) {
	for name, q := range b {
		sum := a[name]
		sum.Add(q)
		a[name] = sum
	}
}

// Subtract takes b from a, never below zero.
func Subtract(a, b corev1.ResourceList) {
	for name, q := range b {
		diff, ok := a[name]
		if !ok {
			continue
		}
		diff.Sub(q)
		if diff.Sign() < 0 {
			diff = *resource.NewQuantity(0, q.Format)
		}
		a[name] = diff
	}
}

// Mask keeps the entries of list named in names.
func Mask(list corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, name := range names {
		if q, ok := list[name]; ok {
			out[name] = q.DeepCopy()
		}
	}
	return out
}

// Names are the list's resource names, sorted.
func Names(list corev1.ResourceList) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(list))
	for name := range list {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Exceeded names the resources where used is above hard.
func Exceeded(used, hard corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, name := range Names(used) {
		q := used[name]
		if limit, ok := hard[name]; ok && q.Cmp(limit) > 0 {
			out = append(out, name)
		}
	}
	return out
}

// Equal reports whether two lists hold the same quantities.
func Equal(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, q := range a {
		other, ok := b[name]
		if !ok || q.Cmp(other) != 0 {
			return false
		}
	}
	return true
}

// String prints a list as upstream's quota errors do: name=value pairs,
// sorted, comma-separated.
func String(list corev1.ResourceList) string {
	parts := make([]string, 0, len(list))
	for _, name := range Names(list) {
		q := list[name]
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	return strings.Join(parts, ",")
}
