package scheduler

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Requests a container without any is taken to use, for scoring only,
// as upstream's non-zero defaults: otherwise such pods would all pile
// onto one node.
const (
	defaultMilliCPURequest = 100
	defaultMemoryRequest   = 200 * 1024 * 1024
)

// hostPort is one port a pod binds on its node.
type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

// podUsage is what one pod takes from its node, and what other pods'
// inter-pod affinity and topology spread look at.
type podUsage struct {
	node        string
	uid         types.UID
	namespace   string
	labels      labels.Set
	terminating bool
	// affinity is the pod's inter-pod terms, nil when it has none.
	affinity *podAffinity
	// requests are the pod's non-zero effective requests, init
	// containers, sidecars and overhead included, in the order failure
	// messages list them.
	requests []amount
	// nonZeroCPU and nonZeroMemory count containers without requests
	// at the defaults, for scoring.
	nonZeroCPU, nonZeroMemory int64
	ports                     []hostPort
}

func usageOf(pod *corev1.Pod, node string) *podUsage {
	u := &podUsage{
		node:        node,
		uid:         pod.UID,
		namespace:   pod.Namespace,
		labels:      pod.Labels,
		terminating: pod.DeletionTimestamp != nil,
		affinity:    newPodAffinity(pod),
		requests:    amounts(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})),
	}
	nonZero := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		NonMissingContainerRequests: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(defaultMemoryRequest, resource.BinarySI),
		},
	})
	u.nonZeroCPU = nonZero.Cpu().MilliValue()
	u.nonZeroMemory = nonZero.Memory().Value()
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				u.ports = append(u.ports, hostPort{ip: p.HostIP, protocol: protocolOrTCP(p.Protocol), port: p.HostPort})
			}
		}
	}
	return u
}

// amount is a quantity of one resource, in milli-units for cpu and units
// for everything else.
type amount struct {
	name  corev1.ResourceName
	value int64
}

// amounts lists list's non-zero quantities: cpu, memory, ephemeral
// storage, then the rest by name.
func amounts(list corev1.ResourceList) []amount {
	out := make([]amount, 0, len(list))
	for name, q := range list {
		if v := quantityValue(name, q); v != 0 {
			out = append(out, amount{name, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return resourceOrder(out[i].name) < resourceOrder(out[j].name) })
	return out
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// nodeInfo is a node and the sum of what its pods request.
type nodeInfo struct {
	node *corev1.Node
	// name, unschedulable and taints repeat the node's, so that the
	// filters, which run over hundreds of nodes per pod, read them
	// without reaching into the Node.
	name          string
	unschedulable bool
	taints        []corev1.Taint
	// allocatable is the node's, converted once per node update as
	// requested is; maxPods is -1 when the node sets no pod limit.
	allocatable        map[corev1.ResourceName]int64
	allocCPU, allocMem int64
	maxPods            int64
	// requested is in milli-units for cpu and units for everything else;
	// requestedCPU and requestedMem repeat its two most asked for entries
	// for the fit check.
	requested                  map[corev1.ResourceName]int64
	requestedCPU, requestedMem int64
	nonZeroCPU, nonZeroMemory  int64
	pods                       int
	ports                      map[hostPort]int
	// podSet holds the pods counted here, by UID.
	podSet map[types.UID]*podUsage
}

func newNodeInfo() *nodeInfo {
	return &nodeInfo{requested: map[corev1.ResourceName]int64{}, ports: map[hostPort]int{}, podSet: map[types.UID]*podUsage{}}
}

func quantityValue(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// setNode records node and converts its allocatable resources.
func (n *nodeInfo) setNode(node *corev1.Node) {
	n.node = node
	n.name = node.Name
	n.unschedulable = node.Spec.Unschedulable
	n.taints = node.Spec.Taints
	n.allocatable = make(map[corev1.ResourceName]int64, len(node.Status.Allocatable))
	for name, q := range node.Status.Allocatable {
		n.allocatable[name] = quantityValue(name, q)
	}
	n.allocCPU = n.allocatable[corev1.ResourceCPU]
	n.allocMem = n.allocatable[corev1.ResourceMemory]
	n.maxPods = -1
	if pods, ok := n.allocatable[corev1.ResourcePods]; ok {
		n.maxPods = pods
	}
}

func (n *nodeInfo) add(u *podUsage, sign int64) {
	for _, a := range u.requests {
		n.requested[a.name] += sign * a.value
	}
	n.requestedCPU = n.requested[corev1.ResourceCPU]
	n.requestedMem = n.requested[corev1.ResourceMemory]
	n.nonZeroCPU += sign * u.nonZeroCPU
	n.nonZeroMemory += sign * u.nonZeroMemory
	n.pods += int(sign)
	if sign > 0 {
		n.podSet[u.uid] = u
	} else {
		delete(n.podSet, u.uid)
	}
	for _, p := range u.ports {
		n.ports[p] += int(sign)
		if n.ports[p] <= 0 {
			delete(n.ports, p)
		}
	}
}

// Cache is the scheduler's view of node usage: bound pods as the informer
// reports them, plus pods this scheduler has just bound (assumed) that the
// informer has not shown yet, so the next decision already counts them.
type Cache struct {
	mu    sync.Mutex
	nodes map[string]*nodeInfo
	pods  map[types.UID]*podUsage
	// withAffinity holds the pods with inter-pod terms of their own, the
	// only ones whose terms can concern an incoming pod.
	withAffinity map[types.UID]*podUsage
	// namespaces holds every namespace's labels, for namespace
	// selectors in affinity terms.
	namespaces map[string]labels.Set
	// ordered lists the known nodes sorted by name, kept in step as
	// nodes come and go, so placement walks them without map lookups.
	ordered []*nodeInfo
	// next is where the next placement starts looking in names.
	next int
	// candidates and rawScores are place's scratch lists of fitting
	// nodes and of one plugin's scores for them.
	candidates []candidate
	rawScores  []int64
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		nodes:        map[string]*nodeInfo{},
		pods:         map[types.UID]*podUsage{},
		withAffinity: map[types.UID]*podUsage{},
		namespaces:   map[string]labels.Set{},
	}
}

// SetNamespace records a namespace's labels.
func (c *Cache) SetNamespace(ns *corev1.Namespace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.namespaces[ns.Name] = ns.Labels
}

// RemoveNamespace forgets a namespace.
func (c *Cache) RemoveNamespace(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.namespaces, name)
}

// SetNode adds or refreshes a node.
func (c *Cache) SetNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info, ok := c.nodes[node.Name]
	if !ok {
		info = newNodeInfo()
		c.nodes[node.Name] = info
	}
	known := info.node != nil
	info.setNode(node)
	if !known {
		c.insertOrdered(info)
	}
}

// RemoveNode forgets a node; pods still bound to it stay counted until
// they go, in case it comes back.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info, ok := c.nodes[name]
	if !ok {
		return
	}
	if i, found := c.orderedIndex(name); found {
		c.ordered = slices.Delete(c.ordered, i, i+1)
	}
	info.node = nil
	if info.pods == 0 {
		delete(c.nodes, name)
	}
}

// insertOrdered adds a node that just became known to the ordered list,
// in its place by name: a sort per node would make the initial sync of a
// large cluster quadratic.
func (c *Cache) insertOrdered(info *nodeInfo) {
	i, _ := c.orderedIndex(info.name)
	c.ordered = slices.Insert(c.ordered, i, info)
}

// orderedIndex finds name in the ordered list, or where it would go.
func (c *Cache) orderedIndex(name string) (int, bool) {
	return slices.BinarySearchFunc(c.ordered, name, func(info *nodeInfo, name string) int {
		return strings.Compare(info.name, name)
	})
}

// SetPod records a pod as the informer shows it: bound and running pods
// use capacity, finished or unbound ones do not. It reports whether the
// pod is new to the cache or changed in a way other pods' affinity and
// spreading can see; confirming an assumed pod is no change.
func (c *Cache) SetPod(pod *corev1.Pod) bool {
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		c.RemovePod(pod.UID)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pods[pod.UID]; ok && old.node == pod.Spec.NodeName &&
		old.terminating == (pod.DeletionTimestamp != nil) && maps.Equal(old.labels, labels.Set(pod.Labels)) {
		// Assumed or already counted; requests of a bound pod do not
		// change (in-place resize is not counted here), but labels and
		// deletion matter to affinity and spreading.
		return false
	}
	c.setLocked(pod.UID, usageOf(pod, pod.Spec.NodeName))
	return true
}

// RemovePod returns a pod's usage to its node.
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

func (c *Cache) setLocked(uid types.UID, u *podUsage) {
	c.removeLocked(uid)
	c.pods[uid] = u
	if u.affinity != nil {
		c.withAffinity[uid] = u
	}
	info, ok := c.nodes[u.node]
	if !ok {
		// The pod's node is not known yet; count it once it shows up.
		info = newNodeInfo()
		c.nodes[u.node] = info
	}
	info.add(u, 1)
}

func (c *Cache) removeLocked(uid types.UID) {
	u, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	delete(c.withAffinity, uid)
	if info, ok := c.nodes[u.node]; ok {
		info.add(u, -1)
	}
}

// nodeOf returns the node u is counted on, nil when that node is gone or
// not known yet. The caller holds c.mu.
func (c *Cache) nodeOf(u *podUsage) *corev1.Node {
	if info, ok := c.nodes[u.node]; ok {
		return info.node
	}
	return nil
}

// eachPod calls f for every pod counted on a known node. The caller
// holds c.mu.
func (c *Cache) eachPod(f func(*corev1.Node, *podUsage)) {
	for _, info := range c.ordered {
		for _, u := range info.podSet {
			f(info.node, u)
		}
	}
}

// Has reports whether pod is counted on some node, bound or assumed.
func (c *Cache) Has(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pods[uid]
	return ok
}

// place picks a node for p and assumes the pod there, or explains why no
// node fits. Decisions are serialised by the cache lock, so two pods never
// take the same free capacity.
func (c *Cache) place(p *podSpec) (string, *FitError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.ordered)
	if n == 0 {
		return "", &FitError{}
	}
	st := c.preFilter(p)
	want := numFeasibleNodesToFind(n)
	fitErr := &FitError{NumAllNodes: n, reasons: map[string]int{}}
	candidates := c.candidates[:0]
	checked := 0
	for ; checked < n && len(candidates) < want; checked++ {
		info := c.ordered[(c.next+checked)%n]
		if f := c.filter(p, st, info); f != nil {
			for _, r := range f.reasons {
				fitErr.reasons[r]++
			}
			if !f.resolvable {
				fitErr.notHelpful++
			}
			continue
		}
		candidates = append(candidates, candidate{name: info.name, info: info})
	}
	c.candidates = candidates
	// The next pod starts where this one stopped, so that sampling
	// covers every node over time.
	c.next = (c.next + checked) % n
	if len(candidates) == 0 {
		return "", fitErr
	}
	best := candidates[0].name
	if len(candidates) > 1 {
		c.score(p, candidates)
		best = selectHost(candidates)
	}
	u := *p.usage
	u.node = best
	c.setLocked(p.pod.UID, &u)
	return best, nil
}

// selectHost returns the best scored candidate; equal ones share the
// load, each winning with probability 1/ties, as upstream's selectHost.
// One draw picks among the ties, where upstream draws once per tie to the
// same effect.
func selectHost(candidates []candidate) string {
	bestScore, ties := int64(math.MinInt64), 0
	for _, cand := range candidates {
		switch {
		case cand.score > bestScore:
			bestScore, ties = cand.score, 1
		case cand.score == bestScore:
			ties++
		}
	}
	pick := rand.IntN(ties)
	for _, cand := range candidates {
		if cand.score == bestScore {
			if pick == 0 {
				return cand.name
			}
			pick--
		}
	}
	return ""
}
