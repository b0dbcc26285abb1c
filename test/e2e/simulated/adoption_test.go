package simulated

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
			// The new owner's cache may still have shown the pods owned by
			// the old one when it first synced (as upstream's can), so it
			// may have started a spare pod; it must remove it again and
			// keep the adopted ones.
			want := slices.Sorted(maps.Keys(before))
			eventually(t, 30*time.Second, fmt.Sprintf("only the adopted pods %v remain", want), func(context.Context) (bool, error) {
				return slices.Equal(slices.Sorted(maps.Keys(podOwners(t, ns))), want), nil
			})
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

// TestOrphanWakesItsOwner: an orphan pod that matches a settled owner's
// selector is, by itself, enough for that owner to adopt it and, having
// one pod too many, remove a pod, as upstream's controllers do on an
// orphan's creation. Nothing else about the owner changes meanwhile.
func TestOrphanWakesItsOwner(t *testing.T) {
	labels := map[string]string{"app": "stray"}
	selector := &metav1.LabelSelector{MatchLabels: labels}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "stray:1"}}},
	}
	orphan := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: *template.Spec.DeepCopy()}
	}
	tests := []struct {
		kind string
		// keep is how many pods the owner runs.
		keep   int
		create func(ctx context.Context, ns string) (types.UID, error)
		// orphan is the pod to offer, given the owner's pods.
		orphan func(owned []corev1.Pod) *corev1.Pod
	}{
		{kind: "replicaset", keep: 2, create: func(ctx context.Context, ns string) (types.UID, error) {
			rs := &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: "stray"},
				Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: selector, Template: template},
			}
			created, err := cluster.clientset.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}, orphan: func([]corev1.Pod) *corev1.Pod { return orphan("stray-orphan") }},
		{kind: "statefulset", keep: 2, create: func(ctx context.Context, ns string) (types.UID, error) {
			sts := &appsv1.StatefulSet{
				ObjectMeta: metav1.ObjectMeta{Name: "stray"},
				Spec: appsv1.StatefulSetSpec{
					Replicas: ptr.To[int32](2), ServiceName: "stray", Selector: selector, Template: template,
				},
			}
			created, err := cluster.clientset.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}, orphan: func([]corev1.Pod) *corev1.Pod { return orphan("stray-5") }},
		{kind: "daemonset", keep: nodeCount, create: func(ctx context.Context, ns string) (types.UID, error) {
			ds := &appsv1.DaemonSet{
				ObjectMeta: metav1.ObjectMeta{Name: "stray"},
				Spec:       appsv1.DaemonSetSpec{Selector: selector, Template: template},
			}
			created, err := cluster.clientset.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}, orphan: func(owned []corev1.Pod) *corev1.Pod {
			// A second pod on a node the DaemonSet already covers.
			pod := orphan("stray-orphan")
			pod.Spec.NodeName = owned[0].Spec.NodeName
			return pod
		}},
		{kind: "job", keep: 1, create: func(ctx context.Context, ns string) (types.UID, error) {
			job := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "stray"},
				Spec: batchv1.JobSpec{
					ManualSelector: ptr.To(true), Selector: selector,
					Parallelism: ptr.To[int32](1), Completions: ptr.To[int32](1),
					Template: *template.DeepCopy(),
				},
			}
			job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			created, err := cluster.clientset.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return created.UID, nil
		}, orphan: func([]corev1.Pod) *corev1.Pod {
			pod := orphan("stray-orphan")
			pod.Spec.RestartPolicy = corev1.RestartPolicyNever
			return pod
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			ns := cluster.cp.CreateNamespace(t)
			uid, err := tt.create(t.Context(), ns)
			if err != nil {
				t.Fatal(err)
			}
			var owned []corev1.Pod
			eventually(t, 60*time.Second, fmt.Sprintf("the %s runs %d ready pods", tt.kind, tt.keep), func(ctx context.Context) (bool, error) {
				running, err := runningPods(ctx, ns)
				owned = running
				return err == nil && len(running) == tt.keep && podsControlledBy(running, uid), err
			})

			var mu sync.Mutex
			var adopted bool
			stray := tt.orphan(owned)
			stop := watchPods(t, ns, &mu, func(pods map[string]*corev1.Pod, _ string) {
				if pod, ok := pods[stray.Name]; ok && podsControlledBy([]corev1.Pod{*pod}, uid) {
					adopted = true
				}
			})
			defer stop()
			if _, err := cluster.clientset.CoreV1().Pods(ns).Create(t.Context(), stray, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the orphan adopted", func(context.Context) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				return adopted, nil
			})
			eventually(t, 30*time.Second, fmt.Sprintf("the %s back to %d pods, all its own", tt.kind, tt.keep), func(ctx context.Context) (bool, error) {
				pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, err
				}
				var live []corev1.Pod
				for _, pod := range pods.Items {
					if pod.DeletionTimestamp == nil {
						live = append(live, pod)
					}
				}
				return len(live) == tt.keep && podsControlledBy(live, uid), nil
			})
		})
	}
}

// podsControlledBy is true when every pod's controller is uid.
func podsControlledBy(pods []corev1.Pod, uid types.UID) bool {
	for i := range pods {
		if ref := metav1.GetControllerOf(&pods[i]); ref == nil || ref.UID != uid {
			return false
		}
	}
	return true
}
