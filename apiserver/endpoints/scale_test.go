package endpoints

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/registry"
)

func TestScaleOf(t *testing.T) {
	replicas := int32(3)
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1", ResourceVersion: "7"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{"app": "web"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}},
			},
		},
		Status: appsv1.DeploymentStatus{Replicas: 2},
	}
	custom := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": "ns"},
		"spec":     map[string]any{"size": int64(4)},
		"status":   map[string]any{"size": int64(1), "selector": "app=w"},
	}}
	cases := []struct {
		name                       string
		desc                       *registry.ScaleSubresource
		obj                        runtime.Object
		wantSpec, wantStatus       int32
		wantSelector, wantName, rv string
	}{
		{"deployment with a structured selector", &registry.ScaleSubresource{
			SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ".spec.selector",
		}, deployment, 3, 2, "app=web,tier in (a,b)", "web", "7"},
		{"custom resource with a string selector", &registry.ScaleSubresource{
			SpecReplicasPath: ".spec.size", StatusReplicasPath: ".status.size", LabelSelectorPath: ".status.selector",
		}, custom, 4, 1, "app=w", "w", ""},
		{"no selector path", &registry.ScaleSubresource{
			SpecReplicasPath: ".spec.size", StatusReplicasPath: ".status.missing",
		}, custom, 4, 0, "", "w", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scale, err := scaleOf(tc.desc, tc.obj)
			if err != nil {
				t.Fatalf("scaleOf: %v", err)
			}
			if scale.Spec.Replicas != tc.wantSpec || scale.Status.Replicas != tc.wantStatus || scale.Status.Selector != tc.wantSelector {
				t.Errorf("scale spec %d status %d selector %q, want %d %d %q",
					scale.Spec.Replicas, scale.Status.Replicas, scale.Status.Selector, tc.wantSpec, tc.wantStatus, tc.wantSelector)
			}
			if scale.Name != tc.wantName || scale.ResourceVersion != tc.rv || scale.Kind != "Scale" || scale.APIVersion != "autoscaling/v1" {
				t.Errorf("scale meta %+v %+v", scale.TypeMeta, scale.ObjectMeta)
			}
		})
	}
}
