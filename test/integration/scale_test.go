package integration

import (
	"net/http"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestScaleSubresource: deployments/scale reads and writes spec.replicas
// as an autoscaling/v1 Scale through GET, PUT and PATCH, with the
// selector in status and upstream's validation and conflicts.
func TestScaleSubresource(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	deployments := controlPlane.Clientset().AppsV1().Deployments(ns)
	if _, err := deployments.Create(ctx, twoContainerDeployment("scaled"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	scale, err := deployments.GetScale(ctx, "scaled", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	if scale.Spec.Replicas != 1 || scale.Status.Selector != "app=scaled" || scale.Name != "scaled" {
		t.Fatalf("scale = %+v, want 1 replica and selector app=scaled", scale)
	}

	scale.Spec.Replicas = 3
	updated, err := deployments.UpdateScale(ctx, "scaled", scale, metav1.UpdateOptions{FieldManager: "scaler"})
	if err != nil {
		t.Fatalf("update scale: %v", err)
	}
	if updated.Spec.Replicas != 3 {
		t.Errorf("updated scale replicas = %d, want 3", updated.Spec.Replicas)
	}
	d, err := deployments.Get(ctx, "scaled", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if *d.Spec.Replicas != 3 || d.Generation != 2 {
		t.Errorf("deployment replicas %d generation %d, want 3 and 2", *d.Spec.Replicas, d.Generation)
	}
	if got := managers(d.ManagedFields); len(got) != 2 || got[1] != "scaler/Update/scale" {
		t.Errorf("managers = %v, want the scaler recorded with subresource scale", got)
	}

	result := &autoscalingv1.Scale{}
	err = controlPlane.Clientset().AppsV1().RESTClient().Patch(types.MergePatchType).Namespace(ns).Resource("deployments").
		Name("scaled").SubResource("scale").Body([]byte(`{"spec":{"replicas":5}}`)).Do(ctx).Into(result)
	if err != nil {
		t.Fatalf("patch scale: %v", err)
	}
	if result.Spec.Replicas != 5 {
		t.Errorf("scale patch answered %+v, want 5 replicas", result)
	}

	stale := scale.DeepCopy()
	stale.Spec.Replicas = 2
	if _, err := deployments.UpdateScale(ctx, "scaled", stale, metav1.UpdateOptions{}); statusCode(err) != http.StatusConflict {
		t.Errorf("stale scale update: got %v, want 409", err)
	}
	negative := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "scaled"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}
	_, err = deployments.UpdateScale(ctx, "scaled", negative, metav1.UpdateOptions{})
	if statusCode(err) != http.StatusUnprocessableEntity {
		t.Fatalf("negative scale: got %v, want 422", err)
	}
	if want := `Scale.autoscaling "scaled" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	if _, err := controlPlane.Clientset().AppsV1().ReplicaSets(ns).GetScale(ctx, "missing", metav1.GetOptions{}); statusCode(err) != http.StatusNotFound {
		t.Errorf("scale of a missing replicaset: got %v, want 404", err)
	}
	if _, err := controlPlane.Clientset().AppsV1().StatefulSets(ns).GetScale(ctx, "missing", metav1.GetOptions{}); statusCode(err) != http.StatusNotFound {
		t.Errorf("scale of a missing statefulset: got %v, want 404", err)
	}
}
