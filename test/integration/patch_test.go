package integration

import (
	"maps"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestPatch: JSON merge patch and JSON patch apply to a ConfigMap.
func TestPatch(t *testing.T) {
	cases := []struct {
		name      string
		patchType types.PatchType
		patch     string
		want      map[string]string
	}{
		{"merge patch adds", types.MergePatchType, `{"data":{"b":"2"}}`, map[string]string{"a": "1", "b": "2"}},
		{"merge patch removes with null", types.MergePatchType, `{"data":{"a":null}}`, map[string]string{}},
		{"json patch adds", types.JSONPatchType, `[{"op":"add","path":"/data/c","value":"3"}]`, map[string]string{"a": "1", "c": "3"}},
		{"json patch replaces", types.JSONPatchType, `[{"op":"replace","path":"/data/a","value":"9"}]`, map[string]string{"a": "9"}},
		{"json patch test and remove", types.JSONPatchType, `[{"op":"test","path":"/data/a","value":"1"},{"op":"remove","path":"/data/a"}]`, map[string]string{}},
	}
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			name := "patched-" + string(rune('a'+i))
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"a": "1"}}
			if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create: %v", err)
			}
			patched, err := configMaps.Patch(ctx, name, tc.patchType, []byte(tc.patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatalf("patch: %v", err)
			}
			if !maps.Equal(patched.Data, tc.want) {
				t.Errorf("data after patch = %v, want %v", patched.Data, tc.want)
			}
		})
	}

	t.Run("json patch failing test op", func(t *testing.T) {
		ctx := t.Context()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "guarded"}, Data: map[string]string{"a": "1"}}
		if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v", err)
		}
		_, err := configMaps.Patch(ctx, "guarded", types.JSONPatchType,
			[]byte(`[{"op":"test","path":"/data/a","value":"2"},{"op":"remove","path":"/data/a"}]`), metav1.PatchOptions{})
		if err == nil {
			t.Fatal("patch with a failing test op succeeded")
		}
		if code := statusCode(err); code != http.StatusUnprocessableEntity {
			t.Errorf("code = %d, want 422 (error %v)", code, err)
		}
	})
}
