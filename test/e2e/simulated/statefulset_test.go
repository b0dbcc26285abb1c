package simulated

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// TestStatefulSetOrderedReady watches a three-replica StatefulSet come up:
// web-0, web-1, web-2 are created in that order, each only after the one
// before is Ready; a rolling update replaces them all and scaling down
// removes the highest ordinals.
func TestStatefulSetOrderedReady(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	watcher, err := cluster.clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](3),
			ServiceName: "web",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ready := map[string]bool{}
	var created []string
	timeout := time.After(60 * time.Second)
	for len(created) < 3 || !ready["web-2"] {
		select {
		case ev := <-watcher.ResultChan():
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Added {
				if want := fmt.Sprintf("web-%d", len(created)); pod.Name != want {
					t.Fatalf("created %s after %v, want %s", pod.Name, created, want)
				}
				if len(created) > 0 && !ready[created[len(created)-1]] {
					t.Fatalf("created %s before %s was ready", pod.Name, created[len(created)-1])
				}
				created = append(created, pod.Name)
			}
			ready[pod.Name] = pod.DeletionTimestamp == nil && isReady(pod)
		case <-timeout:
			t.Fatalf("timed out: created %v, ready %v", created, ready)
		}
	}
	kubectl(t, "rollout", "status", "statefulset/web", "-n", ns, "--timeout=60s")

	kubectl(t, "set", "image", "statefulset/web", "web=web:2", "-n", ns)
	kubectl(t, "rollout", "status", "statefulset/web", "-n", ns, "--timeout=60s")
	images, err := podImages(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if images["web:2"] != 3 || len(images) != 1 {
		t.Fatalf("images after rolling update = %v, want 3 pods of web:2", images)
	}

	kubectl(t, "scale", "statefulset/web", "--replicas=1", "-n", ns)
	eventually(t, 60*time.Second, "scale down to web-0", func(ctx context.Context) (bool, error) {
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 1 && pods.Items[0].Name == "web-0", nil
	})
}

// TestStatefulSetMaxUnavailable: a rolling update of a Parallel
// StatefulSet with maxUnavailable 2 takes two pods down at once (the
// controller deletes both in one pass, before either can come back) and
// never more, until every pod runs the new template.
func TestStatefulSetMaxUnavailable(t *testing.T) {
	const replicas, maxUnavailable = 4, 2
	ns := cluster.cp.CreateNamespace(t)
	labels := map[string]string{"app": "kv"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kv", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](replicas),
			ServiceName:         "kv",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(maxUnavailable))},
			},
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kv", Image: "kv:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "statefulset/kv", "-n", ns, "--timeout=60s")
	allImages(t, ns, "kv:1", replicas)

	var mu sync.Mutex
	mostDown := 0
	stop := watchPods(t, ns, &mu, func(pods map[string]*corev1.Pod, _ string) {
		ready := 0
		for _, pod := range pods {
			if pod.DeletionTimestamp == nil && isReady(pod) {
				ready++
			}
		}
		mostDown = max(mostDown, replicas-ready)
	})
	kubectl(t, "set", "image", "statefulset/kv", "kv=kv:2", "-n", ns)
	kubectl(t, "rollout", "status", "statefulset/kv", "-n", ns, "--timeout=60s")
	allImages(t, ns, "kv:2", replicas)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if mostDown != maxUnavailable {
		t.Errorf("at most %d pods were down at once during the update, want exactly maxUnavailable = %d", mostDown, maxUnavailable)
	}
}
