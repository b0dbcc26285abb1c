package admission

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/storage"
)

// NodePortRange is kube-apiserver's default --service-node-port-range.
const (
	nodePortMin = 30000
	nodePortMax = 32767
)

// ServiceAllocator assigns cluster IPs and node ports to Services and
// refuses ones already taken. It learns what is taken from the stored
// Services on first use and keeps the set in memory after that.
type ServiceAllocator struct {
	Services  storage.Interface
	KeyPrefix string
	// Range is the service CIDR; its first address belongs to the
	// kubernetes service.
	Range netip.Prefix

	mu        sync.Mutex
	loaded    bool
	ips       map[netip.Addr]bool
	nodePorts map[int32]bool
	nextIP    netip.Addr
	nextPort  int32
}

// KubernetesServiceIP is the first address of the range, reserved for the
// default/kubernetes service.
func (s *ServiceAllocator) KubernetesServiceIP() netip.Addr {
	return s.Range.Masked().Addr().Next()
}

// Admit implements Interface.
func (s *ServiceAllocator) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Group != "" || a.Resource.Resource != "services" || a.Subresource != "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(ctx); err != nil {
		return err
	}
	switch a.Operation {
	case Create:
		svc, ok := a.Object.(*corev1.Service)
		if !ok {
			return nil
		}
		return s.allocate(svc, nil, a.DryRun)
	case Update:
		svc, ok1 := a.Object.(*corev1.Service)
		old, ok2 := a.OldObject.(*corev1.Service)
		if !ok1 || !ok2 {
			return nil
		}
		return s.allocate(svc, old, a.DryRun)
	case Delete:
		if old, ok := a.OldObject.(*corev1.Service); ok && !a.DryRun {
			s.release(old)
		}
	}
	return nil
}

func (s *ServiceAllocator) load(ctx context.Context) error {
	if s.loaded {
		return nil
	}
	list := &corev1.ServiceList{}
	if err := s.Services.GetList(ctx, s.KeyPrefix+"/", storage.ListOptions{Recursive: true}, list); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("list services for IP allocation: %w", err))
	}
	s.ips = map[netip.Addr]bool{s.KubernetesServiceIP(): true}
	s.nodePorts = map[int32]bool{}
	for i := range list.Items {
		s.mark(&list.Items[i])
	}
	s.nextIP = s.KubernetesServiceIP().Next()
	s.nextPort = nodePortMin
	s.loaded = true
	return nil
}

func (s *ServiceAllocator) mark(svc *corev1.Service) {
	for _, ip := range svc.Spec.ClusterIPs {
		if addr, err := netip.ParseAddr(ip); err == nil {
			s.ips[addr] = true
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			s.nodePorts[p.NodePort] = true
		}
	}
}

func (s *ServiceAllocator) release(svc *corev1.Service) {
	for _, ip := range svc.Spec.ClusterIPs {
		if addr, err := netip.ParseAddr(ip); err == nil {
			delete(s.ips, addr)
		}
	}
	for _, p := range svc.Spec.Ports {
		delete(s.nodePorts, p.NodePort)
	}
}

// allocate fills clusterIP and node ports of a new or changed Service.
func (s *ServiceAllocator) allocate(svc, old *corev1.Service, dryRun bool) error {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	if svc.Spec.Type != corev1.ServiceTypeExternalName && old == nil {
		switch {
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
		case svc.Spec.ClusterIP == "":
			ip, ok := s.freeIP()
			if !ok {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full"))
			}
			svc.Spec.ClusterIP = ip.String()
			svc.Spec.ClusterIPs = []string{ip.String()}
		default:
			addr, err := netip.ParseAddr(svc.Spec.ClusterIP)
			switch {
			case err != nil:
				// Validation reports the malformed address.
			case !s.Range.Contains(addr):
				errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), svc.Spec.ClusterIP,
					fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", addr, addr, s.Range)))
			case s.ips[addr]:
				errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), svc.Spec.ClusterIP,
					fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", addr)))
			}
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			policy := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &policy
		}
	}
	needsNodePorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	ownPorts := map[int32]bool{}
	if old != nil {
		for _, p := range old.Spec.Ports {
			ownPorts[p.NodePort] = true
		}
	}
	taken := map[int32]bool{}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if !needsNodePorts {
			continue
		}
		switch {
		case p.NodePort == 0:
			port, ok := s.freeNodePort(taken)
			if !ok {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range is full"))
			}
			p.NodePort = port
		case p.NodePort < nodePortMin || p.NodePort > nodePortMax:
			errs = append(errs, field.Invalid(specPath.Child("ports").Index(i).Child("nodePort"), p.NodePort,
				fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", nodePortMin, nodePortMax)))
		case (s.nodePorts[p.NodePort] && !ownPorts[p.NodePort]) || taken[p.NodePort]:
			errs = append(errs, field.Invalid(specPath.Child("ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated"))
		}
		taken[p.NodePort] = true
	}
	if len(errs) > 0 {
		name := ""
		if m, err := meta.Accessor(svc); err == nil {
			name = m.GetName()
		}
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), name, errs)
	}
	if !dryRun {
		if old != nil {
			s.release(old)
		}
		s.mark(svc)
	}
	return nil
}

// freeIP walks the range from where the last allocation stopped.
func (s *ServiceAllocator) freeIP() (netip.Addr, bool) {
	size := rangeSize(s.Range)
	ip := s.nextIP
	for i := int64(0); i < size; i++ {
		if !s.Range.Contains(ip) || isBroadcast(ip, s.Range) {
			ip = s.KubernetesServiceIP()
		}
		if !s.ips[ip] {
			s.nextIP = ip.Next()
			return ip, true
		}
		ip = ip.Next()
	}
	return netip.Addr{}, false
}

func (s *ServiceAllocator) freeNodePort(taken map[int32]bool) (int32, bool) {
	port := s.nextPort
	for i := 0; i <= nodePortMax-nodePortMin; i++ {
		if port > nodePortMax {
			port = nodePortMin
		}
		if !s.nodePorts[port] && !taken[port] {
			s.nextPort = port + 1
			return port, true
		}
		port++
	}
	return 0, false
}

func rangeSize(p netip.Prefix) int64 {
	bits := p.Addr().BitLen() - p.Bits()
	if bits > 62 {
		return 1 << 62
	}
	return new(big.Int).Lsh(big.NewInt(1), uint(bits)).Int64()
}

func isBroadcast(ip netip.Addr, p netip.Prefix) bool {
	return ip.Is4() && p.Contains(ip) && !p.Contains(ip.Next())
}
