package integration

import (
	"bytes"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// protobufPrefix starts every protobuf-encoded object kube-apiserver keeps
// in etcd.
var protobufPrefix = []byte("k8s\x00")

// TestStoredState reads the object's etcd key directly: it is stored as
// protobuf under /registry/configmaps/<namespace>/<name>, and its
// resourceVersion is the key's mod revision, after create and after update.
func TestStoredState(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	key := "/registry/configmaps/" + ns + "/x"

	cm, err := configMaps.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Data:       map[string]string{"stored": "yes"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	checkStored := func(t *testing.T, cm *corev1.ConfigMap) {
		t.Helper()
		resp, err := controlPlane.EtcdClient.Get(ctx, key)
		if err != nil {
			t.Fatalf("etcd get %s: %v", key, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("etcd key %s: %d values, want 1", key, len(resp.Kvs))
		}
		kv := resp.Kvs[0]
		if !bytes.HasPrefix(kv.Value, protobufPrefix) {
			t.Errorf("stored value starts with %q, want the protobuf prefix %q", kv.Value[:min(len(kv.Value), 8)], protobufPrefix)
		}
		if got := strconv.FormatInt(kv.ModRevision, 10); got != cm.ResourceVersion {
			t.Errorf("etcd mod revision %s, object resourceVersion %s: want equal", got, cm.ResourceVersion)
		}
		if !bytes.Contains(kv.Value, []byte(cm.Data["stored"])) {
			t.Errorf("stored value does not contain the data %q", cm.Data["stored"])
		}
	}
	checkStored(t, cm)

	cm.Data["stored"] = "updated"
	cm, err = configMaps.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	checkStored(t, cm)
}
