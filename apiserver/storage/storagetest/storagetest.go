// Package storagetest provides a real etcd and ConfigMap fixtures for the
// storage and cacher tests.
package storagetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/embedded"
)

// Prefix is where the ConfigMap fixtures live.
const Prefix = "/registry/configmaps"

// StartEtcd runs an embedded etcd for the test and returns a client to it.
func StartEtcd(t testing.TB) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(server.Close)
	client, err := storage.NewClient(ctx, storage.ClientConfig{Endpoints: server.Endpoints()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// Codec stores core/v1 objects as Kubernetes protobuf, as the API server does.
func Codec() runtime.Codec {
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	return serializer.NewCodecFactory(scheme.Scheme).CodecForVersions(pb, pb, corev1.SchemeGroupVersion, corev1.SchemeGroupVersion)
}

// NewConfigMap and NewConfigMapList are the store's newFunc and newListFunc.
func NewConfigMap() runtime.Object     { return &corev1.ConfigMap{} }
func NewConfigMapList() runtime.Object { return &corev1.ConfigMapList{} }

// NewStore is an etcd store of ConfigMaps under Prefix.
func NewStore(client *clientv3.Client) storage.Interface {
	return storage.NewEtcdStore(client, Codec(), NewConfigMap, NewConfigMapList, Prefix)
}

// Key is the etcd key of a ConfigMap.
func Key(namespace, name string) string {
	return fmt.Sprintf("%s/%s/%s", Prefix, namespace, name)
}

// ConfigMap builds a ConfigMap with the given labels.
func ConfigMap(namespace, name string, lbls map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("uid-" + name), Labels: lbls},
		Data:       map[string]string{"k": "v"},
	}
}

// GetAttrs is the ConfigMap attribute function selectors use.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return nil, nil, fmt.Errorf("not a ConfigMap: %T", obj)
	}
	return labels.Set(cm.Labels), fields.Set{"metadata.name": cm.Name, "metadata.namespace": cm.Namespace}, nil
}

// LabelPredicate selects ConfigMaps by a label selector string.
func LabelPredicate(t testing.TB, selector string) storage.SelectionPredicate {
	t.Helper()
	sel, err := labels.Parse(selector)
	if err != nil {
		t.Fatal(err)
	}
	return storage.SelectionPredicate{Label: sel, Field: fields.Everything(), GetAttrs: GetAttrs}
}
