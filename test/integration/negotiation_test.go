package integration

import (
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestProtobufWatch: a client that negotiates protobuf gets its watch
// events as a protobuf stream.
func TestProtobufWatch(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	config := rest.CopyConfig(controlPlane.Config)
	config.ContentType = "application/vnd.kubernetes.protobuf"
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	configMaps := cs.CoreV1().ConfigMaps(ns)
	w, err := configMaps.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "proto"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatalf("create over protobuf: %v", err)
	}
	select {
	case event := <-w.ResultChan():
		cm, ok := event.Object.(*corev1.ConfigMap)
		if event.Type != watch.Added || !ok || cm.Name != "proto" || cm.Data["a"] != "1" {
			t.Fatalf("event %s %#v, want ADDED proto", event.Type, event.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}

	raw, err := cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("configmaps").Param("watch", "true").
		SetHeader("Accept", "application/vnd.kubernetes.protobuf").Param("timeoutSeconds", "1").Stream(ctx)
	if err != nil {
		t.Fatalf("raw watch: %v", err)
	}
	raw.Close()
}

// TestNegotiationErrors: unsupported Accept and Content-Type headers get
// 406 and 415 Statuses.
func TestNegotiationErrors(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	rc := controlPlane.Clientset().CoreV1().RESTClient()
	err := rc.Get().Namespace(ns).Resource("configmaps").SetHeader("Accept", "text/csv").Do(t.Context()).Error()
	if statusCode(err) != http.StatusNotAcceptable || !apierrors.IsNotAcceptable(err) {
		t.Errorf("Accept: text/csv: got %v, want 406 NotAcceptable", err)
	}
	err = rc.Post().Namespace(ns).Resource("configmaps").SetHeader("Content-Type", "text/plain").Body([]byte("x")).Do(t.Context()).Error()
	if statusCode(err) != http.StatusUnsupportedMediaType || !apierrors.IsUnsupportedMediaType(err) {
		t.Errorf("Content-Type: text/plain: got %v, want 415 UnsupportedMediaType", err)
	}
}
