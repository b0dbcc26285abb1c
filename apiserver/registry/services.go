package registry

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

var (
	serviceTypes             = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort}
	sessionAffinities        = []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	ipFamilyPolicies         = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}
	ipFamilies               = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	internalTrafficPolicies  = []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
	externalTrafficPolicies  = []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
	maxClientIPAffinityInSec = int32(86400)
)

// serviceStrategy: ClusterIP and node port allocation happen in the HTTP
// layer; this strategy keeps what was allocated across updates that omit it
// (as `kubectl replace` does) and forbids changing it.
type serviceStrategy struct{ objectStrategy }

func newServiceStrategy() serviceStrategy {
	return serviceStrategy{objectStrategy{namespaced: true, nameFn: apimachineryvalidation.NameIsDNS1035Label}}
}

func (serviceStrategy) Default(obj runtime.Object) {
	svc := obj.(*corev1.Service)
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		if c := spec.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)}}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		if sp.Protocol == "" {
			sp.Protocol = corev1.ProtocolTCP
		}
		if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("") {
			sp.TargetPort = intstr.FromInt32(sp.Port)
		}
	}
	if externallyAccessible(svc) && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil && spec.Type != corev1.ServiceTypeExternalName {
		spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer {
		if spec.AllocateLoadBalancerNodePorts == nil {
			spec.AllocateLoadBalancerNodePorts = ptr.To(true)
		}
		for i, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" && ing.IPMode == nil {
				svc.Status.LoadBalancer.Ingress[i].IPMode = ptr.To(corev1.LoadBalancerIPModeVIP)
			}
		}
	}
}

func externallyAccessible(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort ||
		(svc.Spec.Type == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName
}

func isHeadless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

func (serviceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	svc := obj.(*corev1.Service)
	svc.Status = corev1.ServiceStatus{}
	normalizeClusterIPs(svc)
	initIPFamilies(svc)
}

func (serviceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	svc, oldSvc := obj.(*corev1.Service), old.(*corev1.Service)
	svc.Status = oldSvc.Status
	keepAllocatedValues(svc, oldSvc)
	normalizeClusterIPs(svc)
	dropTypeDependentFields(svc, oldSvc)
	initIPFamilies(svc)
}

// normalizeClusterIPs keeps the singular and plural cluster IP fields in
// step: either may be given, the other follows.
func normalizeClusterIPs(svc *corev1.Service) {
	spec := &svc.Spec
	if spec.ClusterIP != "" && len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if spec.ClusterIP == "" && len(spec.ClusterIPs) > 0 {
		spec.ClusterIP = spec.ClusterIPs[0]
	}
}

// keepAllocatedValues copies cluster IPs and node ports from the stored
// service when the update leaves them empty and the type still uses them.
func keepAllocatedValues(svc, oldSvc *corev1.Service) {
	if needsClusterIP(oldSvc) && needsClusterIP(svc) {
		if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIP = oldSvc.Spec.ClusterIP
			svc.Spec.ClusterIPs = oldSvc.Spec.ClusterIPs
		}
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = oldSvc.Spec.IPFamilies
		}
		if svc.Spec.IPFamilyPolicy == nil {
			svc.Spec.IPFamilyPolicy = oldSvc.Spec.IPFamilyPolicy
		}
	}
	if usesNodePorts(oldSvc) && usesNodePorts(svc) {
		for i := range svc.Spec.Ports {
			np := &svc.Spec.Ports[i]
			if np.NodePort != 0 {
				continue
			}
			for _, op := range oldSvc.Spec.Ports {
				if op.Port == np.Port && op.Protocol == np.Protocol && op.NodePort != 0 {
					np.NodePort = op.NodePort
					break
				}
			}
		}
	}
	if svc.Spec.HealthCheckNodePort == 0 && needsHealthCheck(svc) && needsHealthCheck(oldSvc) {
		svc.Spec.HealthCheckNodePort = oldSvc.Spec.HealthCheckNodePort
	}
}

func usesNodePorts(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort ||
		(svc.Spec.Type == corev1.ServiceTypeLoadBalancer && ptr.Deref(svc.Spec.AllocateLoadBalancerNodePorts, true))
}

func needsHealthCheck(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// dropTypeDependentFields clears what the old type had allocated and the
// new type cannot use, when the client left it unchanged.
func dropTypeDependentFields(svc, oldSvc *corev1.Service) {
	if needsClusterIP(oldSvc) && !needsClusterIP(svc) {
		if svc.Spec.ClusterIP == oldSvc.Spec.ClusterIP {
			svc.Spec.ClusterIP = ""
			svc.Spec.ClusterIPs = nil
		}
		svc.Spec.IPFamilies = nil
		svc.Spec.IPFamilyPolicy = nil
	}
	if usesNodePorts(oldSvc) && !usesNodePorts(svc) {
		for i := range svc.Spec.Ports {
			for _, op := range oldSvc.Spec.Ports {
				if op.Port == svc.Spec.Ports[i].Port && op.NodePort == svc.Spec.Ports[i].NodePort {
					svc.Spec.Ports[i].NodePort = 0
				}
			}
		}
	}
	if needsHealthCheck(oldSvc) && !needsHealthCheck(svc) && svc.Spec.HealthCheckNodePort == oldSvc.Spec.HealthCheckNodePort {
		svc.Spec.HealthCheckNodePort = 0
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		if oldSvc.Spec.Type == corev1.ServiceTypeLoadBalancer && ptr.Equal(svc.Spec.AllocateLoadBalancerNodePorts, oldSvc.Spec.AllocateLoadBalancerNodePorts) {
			svc.Spec.AllocateLoadBalancerNodePorts = nil
		}
	}
}

// initIPFamilies fills ipFamilyPolicy and ipFamilies for services that get
// cluster IPs. Tower's service network is single-stack IPv4 unless the
// client names an IPv6 address.
func initIPFamilies(svc *corev1.Service) {
	if !needsClusterIP(svc) {
		return
	}
	if svc.Spec.IPFamilyPolicy == nil {
		if isHeadless(svc) && len(svc.Spec.Selector) == 0 {
			svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		} else {
			svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		}
	}
	if len(svc.Spec.IPFamilies) > 0 {
		return
	}
	for _, ip := range svc.Spec.ClusterIPs {
		if addr, err := netip.ParseAddr(ip); err == nil {
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, familyOf(addr))
		}
	}
	if len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
}

func familyOf(addr netip.Addr) corev1.IPFamily {
	if addr.Is4() || addr.Is4In6() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

func (s serviceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	svc := obj.(*corev1.Service)
	return append(s.validateMeta(&svc.ObjectMeta), validateServiceSpec(svc)...)
}

func (s serviceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	svc, oldSvc := obj.(*corev1.Service), old.(*corev1.Service)
	errs := s.validateMetaUpdate(&svc.ObjectMeta, &oldSvc.ObjectMeta)
	errs = append(errs, validateServiceSpec(svc)...)
	specPath := field.NewPath("spec")
	if needsClusterIP(svc) && needsClusterIP(oldSvc) {
		for i, ip := range oldSvc.Spec.ClusterIPs {
			if i >= len(svc.Spec.ClusterIPs) {
				if i == 0 {
					errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), svc.Spec.ClusterIPs, "primary clusterIP can not be unset"))
				}
				break
			}
			if svc.Spec.ClusterIPs[i] != ip {
				errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(i), svc.Spec.ClusterIPs, "may not change once set"))
			}
		}
		if len(oldSvc.Spec.IPFamilies) > 0 && len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] != oldSvc.Spec.IPFamilies[0] {
			errs = append(errs, field.Invalid(specPath.Child("ipFamilies").Index(0), svc.Spec.IPFamilies[0], "may not change once set"))
		}
	}
	return errs
}

func validateServiceSpec(svc *corev1.Service) field.ErrorList {
	spec := &svc.Spec
	sp := field.NewPath("spec")
	errs := validateEnum(spec.Type, serviceTypes, sp.Child("type"))
	errs = append(errs, validateEnum(spec.SessionAffinity, sessionAffinities, sp.Child("sessionAffinity"))...)
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		c := spec.SessionAffinityConfig
		tp := sp.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds")
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			errs = append(errs, field.Required(tp, ""))
		} else if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPAffinityInSec {
			errs = append(errs, field.Invalid(tp, t, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinityInSec)))
		}
	} else if spec.SessionAffinityConfig != nil {
		errs = append(errs, field.Invalid(sp.Child("sessionAffinityConfig"), spec.SessionAffinityConfig, fmt.Sprintf("must not be set when session affinity is %s", spec.SessionAffinity)))
	}

	if spec.Type == corev1.ServiceTypeExternalName {
		if spec.ClusterIP != "" || len(spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(sp.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(sp.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(sp.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		name := spec.ExternalName
		if len(name) > 0 && name[len(name)-1] == '.' {
			name = name[:len(name)-1]
		}
		if name == "" {
			errs = append(errs, field.Required(sp.Child("externalName"), ""))
		} else {
			errs = append(errs, validateDNSSubdomain(name, sp.Child("externalName"))...)
		}
	} else {
		errs = append(errs, validateClusterIPs(svc, sp)...)
	}

	if len(spec.Ports) == 0 && !isHeadless(svc) && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	errs = append(errs, validateServicePorts(svc, sp.Child("ports"))...)
	errs = append(errs, metav1validation.ValidateLabels(spec.Selector, sp.Child("selector"))...)
	for i, ip := range spec.ExternalIPs {
		errs = append(errs, validation.IsValidIP(sp.Child("externalIPs").Index(i), ip)...)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && isHeadless(svc) {
		errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), spec.ClusterIPs, "may not be set to 'None' for LoadBalancer services"))
	}
	if spec.Type == corev1.ServiceTypeNodePort && isHeadless(svc) {
		errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), spec.ClusterIPs, "may not be set to 'None' for NodePort services"))
	}

	if externallyAccessible(svc) {
		errs = append(errs, validateEnum(spec.ExternalTrafficPolicy, externalTrafficPolicies, sp.Child("externalTrafficPolicy"))...)
	} else if spec.ExternalTrafficPolicy != "" {
		errs = append(errs, field.Invalid(sp.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
	}
	if spec.HealthCheckNodePort != 0 && !needsHealthCheck(svc) {
		errs = append(errs, field.Invalid(sp.Child("healthCheckNodePort"), spec.HealthCheckNodePort, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
	}
	if spec.Type != corev1.ServiceTypeExternalName {
		if spec.InternalTrafficPolicy == nil {
			errs = append(errs, field.Required(sp.Child("internalTrafficPolicy"), ""))
		} else {
			errs = append(errs, validateEnum(*spec.InternalTrafficPolicy, internalTrafficPolicies, sp.Child("internalTrafficPolicy"))...)
		}
	}
	if spec.AllocateLoadBalancerNodePorts != nil && spec.Type != corev1.ServiceTypeLoadBalancer {
		errs = append(errs, field.Forbidden(sp.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		errs = append(errs, field.Required(sp.Child("allocateLoadBalancerNodePorts"), ""))
	}
	return errs
}

func validateClusterIPs(svc *corev1.Service, sp *field.Path) field.ErrorList {
	spec := &svc.Spec
	var errs field.ErrorList
	if spec.ClusterIP != "" && len(spec.ClusterIPs) > 0 && spec.ClusterIPs[0] != spec.ClusterIP {
		errs = append(errs, field.Invalid(sp.Child("clusterIPs"), spec.ClusterIPs, "first value must match `clusterIP`"))
	}
	if len(spec.ClusterIPs) > 2 {
		errs = append(errs, field.Invalid(sp.Child("clusterIPs"), spec.ClusterIPs, "may only hold up to 2 values"))
	}
	for i, ip := range spec.ClusterIPs {
		ipPath := sp.Child("clusterIPs").Index(i)
		if ip == corev1.ClusterIPNone {
			if i != 0 || len(spec.ClusterIPs) > 1 {
				errs = append(errs, field.Invalid(ipPath, ip, "'None' must be the first and only value"))
			}
			continue
		}
		errs = append(errs, validation.IsValidIP(ipPath, ip)...)
	}
	if len(spec.ClusterIPs) == 2 {
		a, errA := netip.ParseAddr(spec.ClusterIPs[0])
		b, errB := netip.ParseAddr(spec.ClusterIPs[1])
		if errA == nil && errB == nil && familyOf(a) == familyOf(b) {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(1), spec.ClusterIPs, "may specify no more than one IP for each IP family"))
		}
	}
	if spec.IPFamilyPolicy != nil {
		errs = append(errs, validateEnum(*spec.IPFamilyPolicy, ipFamilyPolicies, sp.Child("ipFamilyPolicy"))...)
		if *spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack && len(spec.ClusterIPs) > 1 {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs"), spec.ClusterIPs, "must be 'SingleStack' when specifying more than one IP"))
		}
	}
	seen := sets.New[corev1.IPFamily]()
	for i, f := range spec.IPFamilies {
		fp := sp.Child("ipFamilies").Index(i)
		errs = append(errs, validateEnum(f, ipFamilies, fp)...)
		if seen.Has(f) {
			errs = append(errs, field.Duplicate(fp, f))
		}
		seen.Insert(f)
	}
	if len(spec.IPFamilies) > 2 {
		errs = append(errs, field.Invalid(sp.Child("ipFamilies"), spec.IPFamilies, "may specify no more than one IP for each IP family"))
	}
	for i, ip := range spec.ClusterIPs {
		if i >= len(spec.IPFamilies) || ip == corev1.ClusterIPNone {
			continue
		}
		if addr, err := netip.ParseAddr(ip); err == nil && familyOf(addr) != spec.IPFamilies[i] {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(i), spec.ClusterIPs, fmt.Sprintf("expected an %s value as indicated by `ipFamilies[%d]`", spec.IPFamilies[i], i)))
		}
	}
	return errs
}

func validateServicePorts(svc *corev1.Service, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	seen := sets.New[string]()
	requireName := len(svc.Spec.Ports) > 1
	for i, port := range svc.Spec.Ports {
		pp := p.Index(i)
		if port.Name == "" {
			if requireName {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			}
		} else {
			errs = append(errs, validateDNSLabel(port.Name, pp.Child("name"))...)
			if names.Has(port.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names.Insert(port.Name)
		}
		errs = append(errs, validatePortNumber(port.Port, pp.Child("port"))...)
		errs = append(errs, validateProtocol(port.Protocol, pp.Child("protocol"))...)
		errs = append(errs, validatePortNumOrName(port.TargetPort, pp.Child("targetPort"))...)
		if port.AppProtocol != nil {
			errs = append(errs, invalidEach(pp.Child("appProtocol"), *port.AppProtocol, validation.IsQualifiedName(*port.AppProtocol))...)
		}
		if port.NodePort != 0 {
			if !usesNodePorts(svc) && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", svc.Spec.Type)))
			} else {
				errs = append(errs, validatePortNumber(port.NodePort, pp.Child("nodePort"))...)
			}
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if seen.Has(key) {
			errs = append(errs, field.Duplicate(pp, key))
		}
		seen.Insert(key)
	}
	return errs
}

func (s serviceStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil, fmt.Errorf("not a service: %T", obj)
	}
	return labels.Set(svc.Labels), s.fieldsFor(&svc.ObjectMeta, fields.Set{
		"spec.clusterIP": svc.Spec.ClusterIP,
		"spec.type":      string(svc.Spec.Type),
	}), nil
}

// serviceStatusStrategy: load balancer controllers write status only.
type serviceStatusStrategy struct{}

func (serviceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	svc, oldSvc := obj.(*corev1.Service), old.(*corev1.Service)
	svc.Spec = oldSvc.Spec
}

func (serviceStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	svc := obj.(*corev1.Service)
	errs := validateMetaAccessorUpdate(obj, old)
	ip := field.NewPath("status", "loadBalancer", "ingress")
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			errs = append(errs, validation.IsValidIP(ip.Index(i).Child("ip"), ing.IP)...)
		}
		if ing.Hostname != "" {
			errs = append(errs, validateDNSSubdomain(ing.Hostname, ip.Index(i).Child("hostname"))...)
		}
		if ing.IPMode != nil && ing.IP == "" {
			errs = append(errs, field.Forbidden(ip.Index(i).Child("ipMode"), "may not be specified when `ip` is not set"))
		}
	}
	return errs
}
