package integration

import (
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// twoContainerDeployment is a two-container Deployment selecting app=<name>.
func twoContainerDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "web", Image: "web:1", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}},
					{Name: "sidecar", Image: "sidecar:1"},
				}},
			},
		},
	}
}

// TestStrategicMergePatch: lists merge by their patch keys, `$patch:
// delete` removes an element, `$retainKeys` clears the other fields, and
// bad patches get kube-apiserver's codes.
func TestStrategicMergePatch(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	deployments := controlPlane.Clientset().AppsV1().Deployments(ns)

	cases := []struct {
		name  string
		patch string
		check func(t *testing.T, d *appsv1.Deployment)
	}{
		{
			name:  "containers merge by name",
			patch: `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"sidecar:2"}]}}}}`,
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers
				if len(c) != 2 || c[0].Image != "web:1" || c[1].Image != "sidecar:2" {
					t.Errorf("containers = %+v, want web:1 kept and sidecar:2", c)
				}
			},
		},
		{
			name:  "env merges by name inside a container",
			patch: `{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"C","value":"3"}]}]}}}}`,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if env := d.Spec.Template.Spec.Containers[0].Env; len(env) != 3 {
					t.Errorf("env = %+v, want A, B and C", env)
				}
			},
		},
		{
			name:  "$patch delete removes a container",
			patch: `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}`,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if c := d.Spec.Template.Spec.Containers; len(c) != 1 || c[0].Name != "web" {
					t.Errorf("containers = %+v, want only web", c)
				}
			},
		},
		{
			name:  "$retainKeys drops rollingUpdate",
			patch: `{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}`,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
					t.Errorf("strategy = %+v, want Recreate without rollingUpdate", d.Spec.Strategy)
				}
			},
		},
		{
			name:  "labels merge as a map",
			patch: `{"metadata":{"labels":{"tier":"front"}}}`,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Labels["tier"] != "front" {
					t.Errorf("labels = %v, want tier=front", d.Labels)
				}
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			name := "smp-" + string(rune('a'+i))
			if _, err := deployments.Create(ctx, twoContainerDeployment(name), metav1.CreateOptions{}); err != nil {
				t.Fatalf("create: %v", err)
			}
			patched, err := deployments.Patch(ctx, name, types.StrategicMergePatchType, []byte(tc.patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatalf("patch: %v", err)
			}
			tc.check(t, patched)
			stored, err := deployments.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			tc.check(t, stored)
		})
	}

	t.Run("configmap data", func(t *testing.T) {
		ctx := t.Context()
		configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "smp"}, Data: map[string]string{"a": "1"}}
		if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v", err)
		}
		patched, err := configMaps.Patch(ctx, "smp", types.StrategicMergePatchType, []byte(`{"data":{"b":"2"}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("patch: %v", err)
		}
		if patched.Data["a"] != "1" || patched.Data["b"] != "2" {
			t.Errorf("data = %v, want a=1 and b=2", patched.Data)
		}
	})

	if _, err := deployments.Create(t.Context(), twoContainerDeployment("bad"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	errorCases := []struct {
		name      string
		patchType types.PatchType
		patch     string
		wantCode  int32
	}{
		{"malformed JSON", types.StrategicMergePatchType, `{"spec":`, http.StatusBadRequest},
		{"not an object", types.StrategicMergePatchType, `[1,2]`, http.StatusBadRequest},
		{"malformed merge patch", types.MergePatchType, `{"spec"`, http.StatusBadRequest},
		{"malformed JSON patch", types.JSONPatchType, `{"op":"add"}`, http.StatusBadRequest},
		{"immutable selector", types.StrategicMergePatchType, `{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}`, http.StatusUnprocessableEntity},
		{"invalid value", types.MergePatchType, `{"spec":{"replicas":-1}}`, http.StatusUnprocessableEntity},
		{"wrong type", types.StrategicMergePatchType, `{"spec":{"replicas":"three"}}`, http.StatusUnprocessableEntity},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := deployments.Patch(t.Context(), "bad", tc.patchType, []byte(tc.patch), metav1.PatchOptions{})
			if code := statusCode(err); code != tc.wantCode {
				t.Errorf("code = %d, want %d (error %v)", code, tc.wantCode, err)
			}
		})
	}

	t.Run("unsupported patch type", func(t *testing.T) {
		err := controlPlane.Clientset().AppsV1().RESTClient().Patch("application/x-bogus").Namespace(ns).
			Resource("deployments").Name("bad").Body([]byte(`{}`)).Do(t.Context()).Error()
		if !apierrors.IsUnsupportedMediaType(err) {
			t.Fatalf("got %v, want 415", err)
		}
		want := "the body of the request was in an unknown format - accepted media types include: " +
			"application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
		if msg := err.(apierrors.APIStatus).Status().Message; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})
}
