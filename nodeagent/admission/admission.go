// Package admission decides whether a node may run a pod bound to it, as
// kubelet's predicate admit handler does before it starts anything: the
// pod must fit in what the node has left, match the node's labels,
// tolerate its NoExecute taints and not need a taken host port. A pod
// refused here is failed with upstream's reason and message, not run.
//
// The package is pure logic over API objects, shared by the node agent
// and the simulated nodes.
package admission

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Reasons a pod is rejected with (its status.reason and the event's), as
// kubelet names them. Insufficient resources are "OutOf" + the resource
// name (OutOfcpu, OutOfmemory, OutOfephemeral-storage, OutOfpods, ...).
const (
	ReasonOSSelectorMismatch                 = "PodOSSelectorNodeLabelDoesNotMatch"
	ReasonOSNotSupported                     = "PodOSNotSupported"
	ReasonSupplementalGroupsPolicyNotSupport = "SupplementalGroupsPolicyNotSupported"
	ReasonNodeAffinity                       = "NodeAffinity"
	ReasonNodeName                           = "NodeName"
	ReasonNodePorts                          = "NodePorts"
	ReasonTaintToleration                    = "TaintToleration"
	outOfPrefix                              = "OutOf"
)

// The scheduler plugins' failure descriptions kubelet quotes in its
// "Predicate <name> failed: <description>" messages.
const (
	describeNodeAffinity = "node(s) didn't match Pod's node affinity/selector"
	describeNodeName     = "node(s) didn't match the requested node name"
	describeNodePorts    = "node(s) didn't have free ports for the requested pod ports"
	describeTaints       = "node(s) had taints that the pod didn't tolerate"
)

// RejectedMessagePrefix starts the status message of a rejected pod; the
// event carries the message without it.
const RejectedMessagePrefix = "Pod was rejected: "

// Result is the decision about one pod.
type Result struct {
	Admit bool
	// Reason and Message explain a rejection, as kubelet words them.
	Reason  string
	Message string
}

// Admit decides whether node may run pod next to admitted, the pods it
// already runs that have not finished (pod itself is not among them).
// Like kubelet it reports the first reason that applies, in kubelet's
// order. static marks a pod of the node's manifests directory, which is
// not held to the node's taints.
func Admit(node *corev1.Node, pod *corev1.Pod, admitted []*corev1.Pod, static bool) Result {
	if os, ok := pod.Labels[corev1.LabelOSStable]; ok && os != runtime.GOOS {
		return reject(ReasonOSSelectorMismatch, "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
	}
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != runtime.GOOS {
		return reject(ReasonOSNotSupported, "Failed to admit pod as the OS field doesn't match node OS")
	}
	if strictSupplementalGroups(pod) && !nodeSupportsStrictSupplementalGroups(node) {
		return reject(ReasonSupplementalGroupsPolicyNotSupport,
			fmt.Sprintf("SupplementalGroupsPolicy=%s is not supported in this node", corev1.SupplementalGroupsPolicyStrict))
	}
	if short := insufficient(node, pod, admitted); short != nil {
		return reject(outOfPrefix+string(short.name), short.message())
	}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); err != nil || !ok {
		return rejectPredicate(ReasonNodeAffinity, describeNodeAffinity)
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		return rejectPredicate(ReasonNodeName, describeNodeName)
	}
	if hostPortTaken(pod, admitted) {
		return rejectPredicate(ReasonNodePorts, describeNodePorts)
	}
	if !static {
		_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, pod.Spec.Tolerations,
			func(t *corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoExecute }, true)
		if untolerated {
			return rejectPredicate(ReasonTaintToleration, describeTaints)
		}
	}
	return Result{Admit: true}
}

func reject(reason, message string) Result {
	return Result{Reason: reason, Message: message}
}

func rejectPredicate(name, description string) Result {
	return reject(name, fmt.Sprintf("Predicate %s failed: %s", name, description))
}

// RejectedStatus is the status of a rejected pod: Failed, with the reason
// and the message prefixed as kubelet's, the QoS class kept and the start
// time set (kubelet's status manager sets it on the first status).
func RejectedStatus(pod *corev1.Pod, result Result, now metav1.Time) corev1.PodStatus {
	status := corev1.PodStatus{
		Phase:     corev1.PodFailed,
		Reason:    result.Reason,
		Message:   RejectedMessagePrefix + result.Message,
		QOSClass:  pod.Status.QOSClass,
		StartTime: pod.Status.StartTime,
	}
	if status.StartTime == nil {
		status.StartTime = &now
	}
	return status
}

// ByCreation orders pods as kubelet admits a batch of them: oldest
// first; pods created in the same second by namespace and name, so that
// the outcome does not depend on the order they arrived in.
func ByCreation(a, b *corev1.Pod) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

func strictSupplementalGroups(pod *corev1.Pod) bool {
	sc := pod.Spec.SecurityContext
	return sc != nil && sc.SupplementalGroupsPolicy != nil && *sc.SupplementalGroupsPolicy == corev1.SupplementalGroupsPolicyStrict
}

func nodeSupportsStrictSupplementalGroups(node *corev1.Node) bool {
	f := node.Status.Features
	return f != nil && f.SupplementalGroupsPolicy != nil && *f.SupplementalGroupsPolicy
}

// shortage is one resource the node has too little of.
type shortage struct {
	name                      corev1.ResourceName
	requested, used, capacity int64
}

func (s *shortage) message() string {
	return fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
		s.name, s.requested, s.used, s.capacity)
}

// insufficient is the first resource the node lacks for pod, in the
// scheduler's order (pods, cpu, memory, ephemeral storage, then the
// others by name), or nil. cpu is counted in millicores, everything else
// in units. Extended resources the node does not have at all are not
// checked, as kubelet leaves them to cluster-level allocators.
func insufficient(node *corev1.Node, pod *corev1.Pod, admitted []*corev1.Pod) *shortage {
	allocatable := node.Status.Allocatable
	if capacity := allocatable.Pods().Value(); int64(len(admitted))+1 > capacity {
		return &shortage{name: corev1.ResourcePods, requested: 1, used: int64(len(admitted)), capacity: capacity}
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	used := corev1.ResourceList{}
	for _, p := range admitted {
		for name, q := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}) {
			sum := used[name]
			sum.Add(q)
			used[name] = sum
		}
	}
	names := make([]corev1.ResourceName, 0, len(requests))
	for name := range requests {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b corev1.ResourceName) int {
		return cmp.Or(cmp.Compare(resourceRank(a), resourceRank(b)), strings.Compare(string(a), string(b)))
	})
	for _, name := range names {
		if name == corev1.ResourcePods {
			continue
		}
		if _, known := allocatable[name]; !known && isExtendedResource(name) {
			continue
		}
		want := amount(name, requests[name])
		if want <= 0 {
			continue
		}
		have, inUse := amount(name, allocatable[name]), amount(name, used[name])
		if want > have-inUse {
			return &shortage{name: name, requested: want, used: inUse, capacity: have}
		}
	}
	return nil
}

func resourceRank(name corev1.ResourceName) int {
	switch name {
	case corev1.ResourceCPU:
		return 0
	case corev1.ResourceMemory:
		return 1
	case corev1.ResourceEphemeralStorage:
		return 2
	}
	return 3
}

func amount(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// isExtendedResource tells extended resources (example.com/gpu) from the
// native ones (cpu, hugepages-2Mi, kubernetes.io/...), as the API does.
func isExtendedResource(name corev1.ResourceName) bool {
	s := string(name)
	if !strings.Contains(s, "/") || strings.Contains(s, corev1.ResourceDefaultNamespacePrefix) ||
		strings.HasPrefix(s, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+s)) == 0
}

// hostPortTaken reports whether pod asks for a host port another admitted
// pod holds: same protocol and port, and the same address or either one
// the wildcard.
func hostPortTaken(pod *corev1.Pod, admitted []*corev1.Pod) bool {
	wanted := hostPorts(pod)
	if len(wanted) == 0 {
		return false
	}
	for _, other := range admitted {
		for _, held := range hostPorts(other) {
			for _, want := range wanted {
				if held.port == want.port && held.protocol == want.protocol &&
					(held.ip == want.ip || isWildcard(held.ip) || isWildcard(want.ip)) {
					return true
				}
			}
		}
	}
	return false
}

type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

// hostPorts are the host ports of the pod's containers and sidecars (the
// init containers that keep running), as the scheduler counts them.
func hostPorts(pod *corev1.Pod) []hostPort {
	running := slices.Clone(pod.Spec.Containers)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			running = append(running, c)
		}
	}
	var ports []hostPort
	for _, c := range running {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, hostPort{ip: p.HostIP, protocol: cmp.Or(p.Protocol, corev1.ProtocolTCP), port: p.HostPort})
			}
		}
	}
	return ports
}

func isWildcard(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
