package admission

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// memoryStore is a storage.Interface over a map that serves the reads the
// plugins make; the other methods are not used by these tests.
type memoryStore struct {
	storage.Interface
	objects map[string]runtime.Object
}

func newObjects(prefix string, gr schema.GroupResource, objs ...runtime.Object) Objects {
	s := &memoryStore{objects: map[string]runtime.Object{}}
	o := Objects{Store: s, KeyPrefix: prefix, Resource: gr}
	for _, obj := range objs {
		m, _ := meta.Accessor(obj)
		s.objects[o.key(m.GetNamespace(), m.GetName())] = obj
	}
	return o
}

func (s *memoryStore) Get(_ context.Context, key string, _ storage.GetOptions, out runtime.Object) error {
	obj, ok := s.objects[key]
	if !ok {
		return storage.NewError(storage.ErrCodeKeyNotFound, key, "not found")
	}
	copyInto(obj, out)
	return nil
}

func (s *memoryStore) GetList(_ context.Context, key string, _ storage.ListOptions, list runtime.Object) error {
	var items []runtime.Object
	for k, obj := range s.objects {
		if strings.HasPrefix(k, key) {
			items = append(items, obj.DeepCopyObject())
		}
	}
	return meta.SetList(list, items)
}

// copyInto copies a stored object into out, which has the same type.
func copyInto(from, out runtime.Object) {
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(from.DeepCopyObject()).Elem())
}

var podsResource = &registry.Resource{GroupVersionResource: corev1.SchemeGroupVersion.WithResource("pods"), Kind: "Pod", Namespaced: true}

func podAttributes(op Operation, pod, old *corev1.Pod) *Attributes {
	a := &Attributes{Operation: op, Resource: podsResource, Namespace: "ns", Name: pod.Name, Object: pod}
	if old != nil {
		a.OldObject = old
	}
	return a
}

func testPod(containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "c"}}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: containers}}
}

// checkErr fails the test unless err is a Forbidden with message want (or
// nil when want is empty); it reports whether the test should go on.
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("err = %v, want Forbidden %q", err, want)
	}
	return false
}
