package integration

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
)

// TestCreateOnUpdate: a PUT of a missing object creates it for the types
// upstream allows (leases, endpoints, ...) and is NotFound for the others.
func TestCreateOnUpdate(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "put-created", Namespace: ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("me")},
	}
	var code int
	result := cs.CoordinationV1().RESTClient().Put().Namespace(ns).Resource("leases").Name(lease.Name).
		Body(lease).Do(ctx).StatusCode(&code)
	if err := result.Error(); err != nil || code != 201 {
		t.Fatalf("PUT of a missing lease: code %d, err %v; want 201", code, err)
	}
	if _, err := cs.CoordinationV1().Leases(ns).Get(ctx, lease.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("lease created by PUT: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "put-missing", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("PUT of a missing configmap: %v, want NotFound", err)
	}
}

// TestDeleteResponses: deleting a pod answers with the pod (upstream's
// ReturnDeletedObject), deleting a configmap with a Success Status.
func TestDeleteResponses(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "deleted", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	createConfigMap(t, cs.CoreV1().ConfigMaps(ns), "deleted", nil)
	decode := func(resource string) runtime.Object {
		t.Helper()
		body, err := cs.CoreV1().RESTClient().Delete().Namespace(ns).Resource(resource).Name("deleted").
			SetHeader("Accept", "application/json").Do(ctx).Raw()
		if err != nil {
			t.Fatalf("delete %s: %v", resource, err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			t.Fatalf("decode delete response for %s: %v", resource, err)
		}
		return obj
	}
	if got, ok := decode("pods").(*corev1.Pod); !ok || got.Name != "deleted" {
		t.Errorf("pod delete answered %T, want the Pod", got)
	}
	status, ok := decode("configmaps").(*metav1.Status)
	if !ok || status.Status != metav1.StatusSuccess || status.Details == nil || status.Details.Kind != "configmaps" {
		t.Errorf("configmap delete answered %#v, want a Success Status naming configmaps", status)
	}
}
