package integration

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"
)

// TestMetadataWatch: a metadata-only watch (what controller-runtime's
// metadata informers and the garbage collector use) gets
// PartialObjectMetadata for every event, bookmarks included.
func TestMetadataWatch(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	createConfigMap(t, controlPlane.Clientset().CoreV1().ConfigMaps(ns), "meta", map[string]string{"app": "meta"})
	client, err := metadata.NewForConfig(controlPlane.Config)
	if err != nil {
		t.Fatalf("metadata client: %v", err)
	}
	w, err := client.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace(ns).Watch(t.Context(), metav1.ListOptions{
		ResourceVersion:     "0",
		AllowWatchBookmarks: true,
		TimeoutSeconds:      ptr.To[int64](4),
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	var sawAdded, sawBookmark bool
	for !sawBookmark {
		event := nextEvent(t, w)
		partial, ok := event.Object.(*metav1.PartialObjectMetadata)
		if !ok {
			t.Fatalf("%s event carries %T, want *v1.PartialObjectMetadata", event.Type, event.Object)
		}
		switch event.Type {
		case watch.Added:
			sawAdded = partial.Name == "meta" && partial.Labels["app"] == "meta"
		case watch.Bookmark:
			sawBookmark = partial.ResourceVersion != ""
		default:
			t.Fatalf("unexpected %s event for %s", event.Type, partial.Name)
		}
	}
	if !sawAdded {
		t.Error("the existing ConfigMap did not arrive as ADDED metadata before the bookmark")
	}
}
