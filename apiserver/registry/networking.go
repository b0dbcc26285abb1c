package registry

import (
	"context"
	"net/netip"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

const (
	maxEndpointsPerSlice = 1000
	maxPortsPerSlice     = 20000
	maxAddressesPerEP    = 100
)

var addressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}

// endpointSliceStrategy: generation moves whenever anything but metadata
// (or labels) changes; addressType is fixed.
type endpointSliceStrategy struct{ objectStrategy }

func (endpointSliceStrategy) Default(obj runtime.Object) {
	eps := obj.(*discoveryv1.EndpointSlice)
	for i := range eps.Ports {
		if eps.Ports[i].Name == nil {
			eps.Ports[i].Name = ptr.To("")
		}
		if eps.Ports[i].Protocol == nil {
			eps.Ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
		}
	}
}

func (endpointSliceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*discoveryv1.EndpointSlice).Generation = 1
}

func (endpointSliceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	eps, oldEPS := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	a, b := *eps, *oldEPS
	a.ObjectMeta, b.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
	a.TypeMeta, b.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	changed := !equality.Semantic.DeepEqual(a, b) || !equality.Semantic.DeepEqual(eps.Labels, oldEPS.Labels)
	bumpGeneration(eps, oldEPS, changed)
}

func (s endpointSliceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	eps := obj.(*discoveryv1.EndpointSlice)
	errs := s.validateMeta(&eps.ObjectMeta)
	errs = append(errs, validateEnum(eps.AddressType, addressTypes, field.NewPath("addressType"))...)
	errs = append(errs, validateSliceEndpoints(eps.Endpoints, eps.AddressType, field.NewPath("endpoints"))...)
	return append(errs, validateSlicePorts(eps.Ports, field.NewPath("ports"))...)
}

func validateSliceEndpoints(endpoints []discoveryv1.Endpoint, addressType discoveryv1.AddressType, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(endpoints) > maxEndpointsPerSlice {
		errs = append(errs, field.TooMany(p, len(endpoints), maxEndpointsPerSlice))
	}
	for i, ep := range endpoints {
		ap := p.Index(i).Child("addresses")
		if len(ep.Addresses) == 0 {
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		} else if len(ep.Addresses) > maxAddressesPerEP {
			errs = append(errs, field.TooMany(ap, len(ep.Addresses), maxAddressesPerEP))
		}
		for j, addr := range ep.Addresses {
			errs = append(errs, validateSliceAddress(addr, addressType, ap.Index(j))...)
		}
		if ep.Hostname != nil {
			errs = append(errs, validateDNSLabel(*ep.Hostname, p.Index(i).Child("hostname"))...)
		}
		if ep.NodeName != nil {
			errs = append(errs, validateDNSSubdomain(*ep.NodeName, p.Index(i).Child("nodeName"))...)
		}
	}
	return errs
}

func validateSliceAddress(addr string, addressType discoveryv1.AddressType, p *field.Path) field.ErrorList {
	switch addressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		errs := validation.IsValidIP(p, addr)
		if len(errs) > 0 {
			return errs
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return nil
		}
		if addressType == discoveryv1.AddressTypeIPv4 && !ip.Is4() {
			return field.ErrorList{field.Invalid(p, addr, "must be an IPv4 address")}
		}
		if addressType == discoveryv1.AddressTypeIPv6 && !ip.Is6() {
			return field.ErrorList{field.Invalid(p, addr, "must be an IPv6 address")}
		}
	case discoveryv1.AddressTypeFQDN:
		return validateDNSSubdomain(addr, p)
	}
	return nil
}

func validateSlicePorts(ports []discoveryv1.EndpointPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(ports) > maxPortsPerSlice {
		errs = append(errs, field.TooMany(p, len(ports), maxPortsPerSlice))
	}
	names := sets.New[string]()
	for i, port := range ports {
		pp := p.Index(i)
		if port.Name != nil && *port.Name != "" {
			errs = append(errs, validateDNSLabel(*port.Name, pp.Child("name"))...)
		}
		name := ptr.Deref(port.Name, "")
		if names.Has(name) {
			errs = append(errs, field.Duplicate(pp.Child("name"), name))
		}
		names.Insert(name)
		if port.Protocol == nil {
			errs = append(errs, field.Required(pp.Child("protocol"), ""))
		} else {
			errs = append(errs, validateProtocol(*port.Protocol, pp.Child("protocol"))...)
		}
		if port.Port != nil {
			errs = append(errs, validatePortNumber(*port.Port, pp.Child("port"))...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, invalidEach(pp.Child("appProtocol"), *port.AppProtocol, validation.IsQualifiedName(*port.AppProtocol))...)
		}
	}
	return errs
}

func (s endpointSliceStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	eps, oldEPS := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	errs := append(validateMetaAccessorUpdate(eps, oldEPS), s.Validate(ctx, obj)...)
	return append(errs, validateImmutable(eps.AddressType, oldEPS.AddressType, field.NewPath("addressType"))...)
}

// leaseStrategy: leases are written every few seconds by node agents and
// leader election; only the numbers need checking.
type leaseStrategy struct{ objectStrategy }

func (leaseStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (leaseStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s leaseStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	lease := obj.(*coordinationv1.Lease)
	errs := s.validateMeta(&lease.ObjectMeta)
	sp := field.NewPath("spec")
	if d := lease.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(sp.Child("leaseDurationSeconds"), *d, msgPositive))
	}
	errs = append(errs, validateNonNegativePtr(lease.Spec.LeaseTransitions, sp.Child("leaseTransitions"))...)
	if lease.Spec.Strategy != nil {
		errs = append(errs, invalidEach(sp.Child("strategy"), *lease.Spec.Strategy, validation.IsQualifiedName(string(*lease.Spec.Strategy)))...)
	}
	if lease.Spec.PreferredHolder != nil && lease.Spec.Strategy == nil {
		errs = append(errs, field.Forbidden(sp.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

func (s leaseStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}
