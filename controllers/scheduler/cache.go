package scheduler

import (
	"math/rand/v2"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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

// podUsage is what one pod takes from its node.
type podUsage struct {
	node string
	// requests are the pod's effective requests, init containers,
	// sidecars and overhead included.
	requests corev1.ResourceList
	// nonZeroCPU and nonZeroMemory count containers without requests
	// at the defaults, for scoring.
	nonZeroCPU, nonZeroMemory int64
	ports                     []hostPort
}

func usageOf(pod *corev1.Pod, node string) *podUsage {
	u := &podUsage{node: node, requests: resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})}
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

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// nodeInfo is a node and the sum of what its pods request.
type nodeInfo struct {
	node *corev1.Node
	// requested is in milli-units for cpu and units for everything else.
	requested                 map[corev1.ResourceName]int64
	nonZeroCPU, nonZeroMemory int64
	pods                      int
	ports                     map[hostPort]int
}

func newNodeInfo() *nodeInfo {
	return &nodeInfo{requested: map[corev1.ResourceName]int64{}, ports: map[hostPort]int{}}
}

func quantityValue(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func (n *nodeInfo) add(u *podUsage, sign int64) {
	for name, q := range u.requests {
		n.requested[name] += sign * quantityValue(name, q)
	}
	n.nonZeroCPU += sign * u.nonZeroCPU
	n.nonZeroMemory += sign * u.nonZeroMemory
	n.pods += int(sign)
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
	// names is the sorted node list, rebuilt when nodes come and go.
	names []string
	// next is where the next placement starts looking in names.
	next int
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{nodes: map[string]*nodeInfo{}, pods: map[types.UID]*podUsage{}}
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
	info.node = node
	if !known {
		c.rebuildNames()
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
	info.node = nil
	if info.pods == 0 {
		delete(c.nodes, name)
	}
	c.rebuildNames()
}

// rebuildNames lists the nodes pods can go to, in a stable order.
func (c *Cache) rebuildNames() {
	c.names = c.names[:0]
	for name, info := range c.nodes {
		if info.node != nil {
			c.names = append(c.names, name)
		}
	}
	sort.Strings(c.names)
}

// SetPod records a pod as the informer shows it: bound and running pods
// use capacity, finished or unbound ones do not.
func (c *Cache) SetPod(pod *corev1.Pod) {
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		c.RemovePod(pod.UID)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pods[pod.UID]; ok && old.node == pod.Spec.NodeName {
		// Assumed or already counted; requests of a bound pod do not
		// change (in-place resize is not counted here).
		return
	}
	c.setLocked(pod.UID, usageOf(pod, pod.Spec.NodeName))
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
	if info, ok := c.nodes[u.node]; ok {
		info.add(u, -1)
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
	n := len(c.names)
	if n == 0 {
		return "", &FitError{}
	}
	want := numFeasibleNodesToFind(n)
	fitErr := &FitError{NumAllNodes: n, reasons: map[string]int{}}
	best, bestScore := "", int64(-1)
	found, checked, ties := 0, 0, 0
	for ; checked < n && found < want; checked++ {
		name := c.names[(c.next+checked)%n]
		info := c.nodes[name]
		if f := filter(p, info); f != nil {
			for _, r := range f.reasons {
				fitErr.reasons[r]++
			}
			if !f.resolvable {
				fitErr.notHelpful++
			}
			continue
		}
		found++
		switch s := score(p, info); {
		case s > bestScore:
			best, bestScore, ties = name, s, 1
		case s == bestScore:
			// Equal nodes share the load: each tie wins with
			// probability 1/ties, as upstream's selectHost.
			ties++
			if rand.IntN(ties) == 0 {
				best = name
			}
		}
	}
	// The next pod starts where this one stopped, so that sampling
	// covers every node over time.
	c.next = (c.next + checked) % n
	if best == "" {
		return "", fitErr
	}
	u := *p.usage
	u.node = best
	c.setLocked(p.pod.UID, &u)
	return best, nil
}
