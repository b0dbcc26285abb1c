// Package servicepods is what the endpoints and endpointslice controllers
// share: which pods back a Service, which Services select a pod, and how a
// Service port's targetPort resolves on a pod.
package servicepods

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Selected returns the pods in svc's namespace that svc's selector picks
// and that have an IP and have not finished.
func Selected(ctx context.Context, c client.Reader, svc *corev1.Service) ([]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(svc.Namespace), client.MatchingLabels(svc.Spec.Selector)); err != nil {
		return nil, fmt.Errorf("listing pods for service %s: %w", svc.Name, err)
	}
	var out []*corev1.Pod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.PodIP == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, pod)
	}
	return out, nil
}

// ServicesForPod maps a pod event to the Services in its namespace whose
// selector matches it.
func ServicesForPod(c client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		var services corev1.ServiceList
		if err := c.List(ctx, &services, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, svc := range services.Items {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(obj.GetLabels())) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}})
			}
		}
		return reqs
	})
}

// TargetPort resolves a service port's targetPort on pod: a number as is,
// a name through the pod's container ports. ok is false when the name is
// not found.
func TargetPort(pod *corev1.Pod, port corev1.ServicePort) (int32, bool) {
	switch {
	case port.TargetPort.Type == intstr.String && port.TargetPort.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == port.TargetPort.StrVal && cp.Protocol == port.Protocol {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case port.TargetPort.IntVal != 0:
		return port.TargetPort.IntVal, true
	}
	return port.Port, true
}

// Ready is the pod's Ready condition; serving ignores termination, as
// EndpointSlice's serving condition does.
func Ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
