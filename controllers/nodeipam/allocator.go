package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
)

// ErrFull is returned when every subnet of the cluster CIDR is taken.
var ErrFull = errors.New("no pod CIDR left in the cluster CIDR")

// Allocator hands out the subnets of one cluster CIDR, one per node, and
// remembers which node holds which so a deletion can release it.
type Allocator struct {
	cluster  *net.IPNet
	maskSize int
	count    int

	mu     sync.Mutex
	used   map[int]string
	byNode map[string]int
	// next is where the search for a free subnet starts, so that released
	// subnets are not handed out again at once.
	next int
}

// NewAllocator divides clusterCIDR into subnets of maskSize bits.
func NewAllocator(clusterCIDR string, maskSize int) (*Allocator, error) {
	_, cluster, err := net.ParseCIDR(clusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", clusterCIDR, err)
	}
	ones, bits := cluster.Mask.Size()
	if maskSize < ones || maskSize > bits {
		return nil, fmt.Errorf("node CIDR mask size %d must be between the cluster CIDR's %d and %d", maskSize, ones, bits)
	}
	if maskSize-ones > 30 {
		return nil, fmt.Errorf("node CIDR mask size %d splits %s into more than 2^30 subnets", maskSize, cluster)
	}
	return &Allocator{
		cluster:  cluster,
		maskSize: maskSize,
		count:    1 << (maskSize - ones),
		used:     map[int]string{},
		byNode:   map[string]int{},
	}, nil
}

// Occupy records that node holds cidr (read from its spec). A CIDR outside
// the cluster CIDR or of another size is not ours to track; a subnet
// another node holds is refused.
func (a *Allocator) Occupy(node, cidr string) (bool, error) {
	index, ok := a.indexOf(cidr)
	if !ok {
		return false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if holder, taken := a.used[index]; taken && holder != node {
		return false, fmt.Errorf("pod CIDR %s of node %s is already held by node %s", cidr, node, holder)
	}
	a.used[index] = node
	a.byNode[node] = index
	return true, nil
}

// Allocate returns node's subnet, choosing a free one if it has none.
func (a *Allocator) Allocate(node string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if index, ok := a.byNode[node]; ok {
		return a.subnet(index).String(), nil
	}
	for i := 0; i < a.count; i++ {
		index := (a.next + i) % a.count
		if _, taken := a.used[index]; taken {
			continue
		}
		a.used[index] = node
		a.byNode[node] = index
		a.next = (index + 1) % a.count
		return a.subnet(index).String(), nil
	}
	return "", ErrFull
}

// Release frees the subnet node held, if any.
func (a *Allocator) Release(node string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if index, ok := a.byNode[node]; ok {
		delete(a.used, index)
		delete(a.byNode, node)
	}
}

func (a *Allocator) subnet(index int) *net.IPNet {
	bits := len(a.cluster.IP) * 8
	base := new(big.Int).SetBytes(a.cluster.IP)
	offset := new(big.Int).Lsh(big.NewInt(int64(index)), uint(bits-a.maskSize))
	ip := new(big.Int).Add(base, offset).FillBytes(make([]byte, len(a.cluster.IP)))
	return &net.IPNet{IP: net.IP(ip), Mask: net.CIDRMask(a.maskSize, bits)}
}

// indexOf finds which subnet cidr is, if it is exactly one of ours.
func (a *Allocator) indexOf(cidr string) (int, bool) {
	ip, network, err := net.ParseCIDR(cidr)
	if err != nil || !a.cluster.Contains(ip) {
		return 0, false
	}
	ones, bits := network.Mask.Size()
	if ones != a.maskSize || bits != len(a.cluster.IP)*8 {
		return 0, false
	}
	ipBytes := network.IP
	if len(a.cluster.IP) == net.IPv4len {
		ipBytes = ipBytes.To4()
	}
	offset := new(big.Int).Sub(new(big.Int).SetBytes(ipBytes), new(big.Int).SetBytes(a.cluster.IP))
	return int(offset.Rsh(offset, uint(bits-a.maskSize)).Int64()), true
}
