package admission

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// countingStore counts the namespace reads PodSecurity makes.
type countingStore struct {
	*memoryStore
	gets int
}

func (s *countingStore) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	s.gets++
	return s.memoryStore.Get(ctx, key, opts, out)
}

func TestPodSecurityJudgesOnlyPodsNamespacesAndWorkloads(t *testing.T) {
	restricted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	privileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i",
		SecurityContext: &corev1.SecurityContext{Privileged: new(true)}}}}}
	tests := []struct {
		name       string
		resource   *registry.Resource
		object     runtime.Object
		wantReads  bool
		wantDenied bool
	}{
		{name: "pod", resource: podsResource, object: privileged, wantReads: true, wantDenied: true},
		{name: "deployment", resource: &registry.Resource{GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("deployments"), Kind: "Deployment", Namespaced: true},
			object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns"}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: privileged.Spec}}}, wantReads: true},
		{name: "configmap", resource: &registry.Resource{GroupVersionResource: corev1.SchemeGroupVersion.WithResource("configmaps"), Kind: "ConfigMap", Namespaced: true},
			object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}}},
		{name: "cluster-scoped custom resource", resource: &registry.Resource{GroupVersionResource: corev1.SchemeGroupVersion.WithResource("widgets"), Kind: "Widget"},
			object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			namespaces := newObjects("/ns", corev1.Resource("namespaces"), restricted)
			store := &countingStore{memoryStore: namespaces.Store.(*memoryStore)}
			namespaces.Store = store
			plugin, err := NewPodSecurity(namespaces, newObjects("/pods", corev1.Resource("pods")))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := meta.Accessor(tt.object)
			err = plugin.Validate(t.Context(), &Attributes{Operation: Create, Resource: tt.resource, Namespace: m.GetNamespace(), Name: m.GetName(), Object: tt.object})
			if (err != nil) != tt.wantDenied {
				t.Errorf("Validate = %v, want denied %v", err, tt.wantDenied)
			}
			if (store.gets > 0) != tt.wantReads {
				t.Errorf("%d namespace reads, want some: %v", store.gets, tt.wantReads)
			}
		})
	}
}
