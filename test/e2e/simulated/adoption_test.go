package simulated

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestOrphanedPodsAreAdopted: after `kubectl delete --cascade=orphan`, a
// DaemonSet or StatefulSet created again with the same selector adopts the
// pods its predecessor left, as upstream's controllers do, instead of
// starting new ones beside them.
func TestOrphanedPodsAreAdopted(t *testing.T) {
	labels := map[string]string{"app": "adoptee"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "adoptee:1"}}},
	}
	tests := []struct {
		kind   string
		create func(ctx context.Context, ns string) (types.UID, error)
	}{
		{kind: "daemonset", create: func(ctx context.Context, ns string) (types.UID, error) {
			ds := &appsv1.DaemonSet{
				ObjectMeta: metav1.ObjectMeta{Name: "adoptee"},
				Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
			}
			created, err := cluster.clientset.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}},
		{kind: "statefulset", create: func(ctx context.Context, ns string) (types.UID, error) {
			sts := &appsv1.StatefulSet{
				ObjectMeta: metav1.ObjectMeta{Name: "adoptee"},
				Spec: appsv1.StatefulSetSpec{
					Replicas: ptr.To[int32](2), ServiceName: "adoptee",
					Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template,
				},
			}
			created, err := cluster.clientset.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			ns := cluster.cp.CreateNamespace(t)
			if _, err := tt.create(t.Context(), ns); err != nil {
				t.Fatal(err)
			}
			kubectl(t, "rollout", "status", tt.kind+"/adoptee", "-n", ns, "--timeout=60s")
			before := podOwners(t, ns)
			if len(before) == 0 {
				t.Fatalf("the %s runs no pods", tt.kind)
			}

			kubectl(t, "delete", tt.kind+"/adoptee", "-n", ns, "--cascade=orphan")
			eventually(t, 30*time.Second, "pods orphaned", func(context.Context) (bool, error) {
				for _, owner := range podOwners(t, ns) {
					if owner != "" {
						return false, nil
					}
				}
				return true, nil
			})

			uid, err := tt.create(t.Context(), ns)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the new "+tt.kind+" controls the old pods", func(context.Context) (bool, error) {
				for _, owner := range podOwners(t, ns) {
					if owner != uid {
						return false, nil
					}
				}
				return true, nil
			})
			kubectl(t, "rollout", "status", tt.kind+"/adoptee", "-n", ns, "--timeout=60s")
			if after := podOwners(t, ns); !slices.Equal(slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before))) {
				t.Errorf("pods after adoption %v, want the orphans %v and no others", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
			}
		})
	}
}

// podOwners maps each pod UID of the namespace to its controller's UID
// ("" for an orphan).
func podOwners(t *testing.T, ns string) map[types.UID]types.UID {
	t.Helper()
	pods, err := cluster.clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[types.UID]types.UID{}
	for _, pod := range pods.Items {
		owners[pod.UID] = ""
		if ref := metav1.GetControllerOf(&pod); ref != nil {
			owners[pod.UID] = ref.UID
		}
	}
	return owners
}
