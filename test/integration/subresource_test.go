package integration

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func newDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
				},
			},
		},
	}
}

// TestStatusSubresource: writes to the main resource ignore status, writes
// to /status ignore everything but status, and metadata.generation counts
// spec changes only.
func TestStatusSubresource(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	deployments := controlPlane.Clientset().AppsV1().Deployments(ns)

	created := newDeployment("web")
	created.Status.Replicas = 7
	d, err := deployments.Create(ctx, created, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if d.Generation != 1 {
		t.Errorf("generation after create = %d, want 1", d.Generation)
	}
	if d.Status.Replicas != 0 {
		t.Errorf("create kept status.replicas=%d, want status reset", d.Status.Replicas)
	}

	// Status written through /status sticks; a spec change there does not.
	d.Status.Replicas = 3
	d.Status.ObservedGeneration = 1
	d.Spec.Replicas = ptr.To[int32](9)
	d, err = deployments.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status: %v", err)
	}
	if d.Status.Replicas != 3 {
		t.Errorf("status.replicas after /status update = %d, want 3", d.Status.Replicas)
	}
	if *d.Spec.Replicas != 1 {
		t.Errorf("spec.replicas after /status update = %d, want 1 (spec is ignored there)", *d.Spec.Replicas)
	}
	if d.Generation != 1 {
		t.Errorf("generation after /status update = %d, want 1", d.Generation)
	}

	// A spec change on the main resource bumps generation and keeps status.
	d.Spec.Replicas = ptr.To[int32](2)
	d.Status.Replicas = 100
	d, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("spec.replicas after update = %d, want 2", *d.Spec.Replicas)
	}
	if d.Status.Replicas != 3 {
		t.Errorf("status.replicas after main update = %d, want 3 (status is ignored there)", d.Status.Replicas)
	}
	if d.Generation != 2 {
		t.Errorf("generation after spec change = %d, want 2", d.Generation)
	}

	// Metadata-only changes leave generation alone.
	d.Labels = map[string]string{"tier": "frontend"}
	d, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update labels: %v", err)
	}
	if d.Generation != 2 {
		t.Errorf("generation after label change = %d, want 2", d.Generation)
	}

	stored, err := deployments.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if stored.Status.Replicas != 3 || *stored.Spec.Replicas != 2 || stored.Generation != 2 {
		t.Errorf("stored spec.replicas=%d status.replicas=%d generation=%d, want 2, 3, 2",
			*stored.Spec.Replicas, stored.Status.Replicas, stored.Generation)
	}
}
