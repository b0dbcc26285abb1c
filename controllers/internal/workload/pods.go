package workload

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IsPodActive is true for a pod that is neither finished nor being deleted:
// the pods a controller counts towards its replicas.
func IsPodActive(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded &&
		pod.Status.Phase != corev1.PodFailed &&
		pod.DeletionTimestamp == nil
}

// IsPodTerminal is true once the pod's containers will never run again.
func IsPodTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// PodCondition returns the pod's condition of type t, or nil.
func PodCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady is true when the pod's Ready condition is True.
func IsPodReady(pod *corev1.Pod) bool {
	c := PodCondition(pod, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodAvailable is true when the pod has been ready for at least
// minReadySeconds at now.
func IsPodAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := PodCondition(pod, corev1.PodReady)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	minReady := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && !c.LastTransitionTime.Add(minReady).After(now)
}

// AvailableIn is how long until a ready pod becomes available, or zero when
// it already is or is not ready at all.
func AvailableIn(pod *corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	c := PodCondition(pod, corev1.PodReady)
	if c == nil || c.Status != corev1.ConditionTrue || minReadySeconds == 0 {
		return 0
	}
	wait := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
	if wait < 0 {
		return 0
	}
	return wait
}

// ControllerRef is the owner reference with controller=true, or nil.
func ControllerRef(obj metav1.Object) *metav1.OwnerReference {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return &ref
		}
	}
	return nil
}

// NewControllerRef is the owner reference a controller puts on what it
// creates: it controls the object and blocks the owner's foreground
// deletion until the object is gone.
func NewControllerRef(owner metav1.Object, apiVersion, kind string) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{
		APIVersion:         apiVersion,
		Kind:               kind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}
