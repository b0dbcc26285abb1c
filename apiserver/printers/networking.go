package printers

import (
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func endpointSliceColumns() []metav1.TableColumnDefinition {
	doc := discoveryv1.EndpointSlice{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "AddressType", Type: "string", Description: doc["addressType"]},
		{Name: "Ports", Type: "string", Description: doc["ports"]},
		{Name: "Endpoints", Type: "string", Description: doc["endpoints"]},
		ageColumn(),
	}
}

func endpointSliceCells(slice *discoveryv1.EndpointSlice, now time.Time) []any {
	var ports preview
	for _, port := range slice.Ports {
		switch {
		case port.Port != nil:
			ports.add(strconv.Itoa(int(*port.Port)))
		case port.Name != nil:
			ports.add(*port.Name)
		default:
			// A port without number or name means "all ports".
			ports.add("*")
		}
	}
	var addresses preview
	for _, endpoint := range slice.Endpoints {
		for _, address := range endpoint.Addresses {
			addresses.add(address)
		}
	}
	return []any{
		slice.Name,
		string(slice.AddressType),
		orUnset(ports.String()),
		orUnset(addresses.String()),
		age(slice.CreationTimestamp, now),
	}
}

func leaseColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Holder", Type: "string", Description: coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]},
		ageColumn(),
	}
}

func leaseCells(lease *coordinationv1.Lease, now time.Time) []any {
	var holder string
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	return []any{lease.Name, holder, age(lease.CreationTimestamp, now)}
}
