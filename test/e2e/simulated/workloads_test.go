package simulated

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

const rolloutTimeout = 60 * time.Second

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// runningPods lists the namespace's pods that are Running and Ready.
func runningPods(ctx context.Context, ns string) ([]corev1.Pod, error) {
	pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && isReady(&p) && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// rolloutWatcher follows every pod event of a namespace and remembers the
// worst moments of a rollout: the most pods at once and the fewest ready.
type rolloutWatcher struct {
	mu         sync.Mutex
	maxPods    int
	minReady   int
	violations []string
}

func watchRollout(t *testing.T, ns string, replicas, maxSurge, maxUnavailable int) (*rolloutWatcher, func()) {
	t.Helper()
	w := &rolloutWatcher{minReady: replicas}
	stop := watchPods(t, ns, &w.mu, func(pods map[string]*corev1.Pod, rv string) {
		w.check(pods, rv, replicas, maxSurge, maxUnavailable)
	})
	return w, stop
}

// watchPods follows every pod event of a namespace from a fresh list and
// calls check, holding mu, with the pods as they are at each event's
// resourceVersion. The returned function ends the watch.
func watchPods(t *testing.T, ns string, mu *sync.Mutex, check func(pods map[string]*corev1.Pod, rv string)) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	list, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*corev1.Pod{}
	for i := range list.Items {
		pods[list.Items[i].Name] = &list.Items[i]
	}
	watcher, err := cluster.clientset.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range watcher.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(pods, pod.Name)
			} else {
				pods[pod.Name] = pod
			}
			check(pods, pod.ResourceVersion)
			mu.Unlock()
		}
	}()
	return func() { cancel(); watcher.Stop(); <-done }
}

// check counts, at one resourceVersion, the pods that are not terminating
// (the ones a Deployment counts) and the ready ones among them.
func (w *rolloutWatcher) check(pods map[string]*corev1.Pod, rv string, replicas, maxSurge, maxUnavailable int) {
	total, ready := 0, 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		total++
		if isReady(p) {
			ready++
		}
	}
	w.maxPods = max(w.maxPods, total)
	w.minReady = min(w.minReady, ready)
	if total > replicas+maxSurge {
		w.violations = append(w.violations, fmt.Sprintf("rv %s: %d pods > %d+%d", rv, total, replicas, maxSurge))
	}
	if ready < replicas-maxUnavailable {
		w.violations = append(w.violations, fmt.Sprintf("rv %s: %d ready < %d-%d", rv, ready, replicas, maxUnavailable))
	}
}

func podImages(ctx context.Context, ns string) (map[string]int, error) {
	pods, err := runningPods(ctx, ns)
	if err != nil {
		return nil, err
	}
	images := map[string]int{}
	for _, p := range pods {
		images[p.Spec.Containers[0].Image]++
	}
	return images, nil
}

// TestDeploymentLifecycle walks a Deployment through kubectl as a user
// would: create 50 replicas, roll out a new image within maxSurge and
// maxUnavailable, undo, and delete.
func TestDeploymentLifecycle(t *testing.T) {
	const replicas, maxSurge, maxUnavailable = 50, 13, 12 // 25% of 50, rounded up and down
	ns := cluster.cp.CreateNamespace(t)
	kubectl(t, "create", "deployment", "web", "--image=example", "--replicas=50", "-n", ns)

	eventually(t, rolloutTimeout, "50 running pods", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, ns)
		return len(pods) == replicas, err
	})
	pods, err := runningPods(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	ips := map[string]bool{}
	for _, p := range pods {
		perNode[p.Spec.NodeName]++
		if p.Status.PodIP == "" || ips[p.Status.PodIP] {
			t.Errorf("pod %s has missing or duplicate IP %q", p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = true
	}
	if len(perNode) != nodeCount {
		t.Errorf("pods spread over %d nodes, want all %d: %v", len(perNode), nodeCount, perNode)
	}
	t.Logf("50 replicas per node: %v", perNode)
	kubectl(t, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")

	w, stop := watchRollout(t, ns, replicas, maxSurge, maxUnavailable)
	kubectl(t, "set", "image", "deployment/web", "example=example:v2", "-n", ns)
	kubectl(t, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
	eventually(t, rolloutTimeout, "every pod on example:v2", func(ctx context.Context) (bool, error) {
		images, err := podImages(ctx, ns)
		return images["example:v2"] == replicas && len(images) == 1, err
	})
	stop()
	if len(w.violations) > 0 {
		t.Errorf("rollout broke maxSurge/maxUnavailable %d times, first: %s", len(w.violations), w.violations[0])
	}
	t.Logf("rollout: at most %d pods (limit %d), at least %d ready (limit %d)", w.maxPods, replicas+maxSurge, w.minReady, replicas-maxUnavailable)
	if w.maxPods <= replicas {
		t.Errorf("rollout never surged (max %d pods): the watcher saw nothing", w.maxPods)
	}

	kubectl(t, "rollout", "undo", "deployment/web", "-n", ns)
	kubectl(t, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
	eventually(t, rolloutTimeout, "every pod back on example", func(ctx context.Context) (bool, error) {
		images, err := podImages(ctx, ns)
		return images["example"] == replicas && len(images) == 1, err
	})
	d, err := cluster.clientset.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Annotations["deployment.kubernetes.io/revision"]; got != "3" {
		t.Errorf("revision after undo = %q, want 3", got)
	}
	assertDeploymentConditions(t, d)
	history := kubectl(t, "rollout", "history", "deployment/web", "-n", ns)
	if !strings.Contains(history, "2 ") || !strings.Contains(history, "3 ") {
		t.Errorf("rollout history lacks revisions 2 and 3:\n%s", history)
	}

	kubectl(t, "delete", "deployment", "web", "-n", ns)
	eventually(t, rolloutTimeout, "replicasets and pods collected", func(ctx context.Context) (bool, error) {
		rss, err := cluster.clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return len(rss.Items) == 0 && len(pods.Items) == 0, err
	})
}

func assertDeploymentConditions(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	want := map[appsv1.DeploymentConditionType]string{
		appsv1.DeploymentAvailable:   "MinimumReplicasAvailable",
		appsv1.DeploymentProgressing: "NewReplicaSetAvailable",
	}
	for _, c := range d.Status.Conditions {
		if reason, ok := want[c.Type]; ok {
			if c.Reason != reason || c.Status != corev1.ConditionTrue {
				t.Errorf("condition %s = %s/%s, want True/%s", c.Type, c.Status, c.Reason, reason)
			}
			delete(want, c.Type)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v in %+v", want, d.Status.Conditions)
	}
}

// TestRecreateAndScale checks the Recreate strategy never overlaps
// templates, and that scaling adds and removes pods.
func TestRecreateAndScale(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	replicas := int32(4)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
		},
	}
	if _, err := cluster.clientset.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "deployment/db", "-n", ns, "--timeout=60s")

	list, err := cluster.clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := cluster.clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	kubectl(t, "set", "image", "deployment/db", "db=db:2", "-n", ns)
	live := map[string]string{}
	for _, p := range list.Items {
		live[p.Name] = p.Spec.Containers[0].Image
	}
	deadline := time.After(rolloutTimeout)
	for done := false; !done; {
		select {
		case ev := <-watcher.ResultChan():
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(live, pod.Name)
			} else {
				live[pod.Name] = pod.Spec.Containers[0].Image
			}
			images := map[string]int{}
			for _, image := range live {
				images[image]++
			}
			if images["db:1"] > 0 && images["db:2"] > 0 {
				t.Fatalf("Recreate ran both templates at once: %v", images)
			}
			done = images["db:2"] == int(replicas) && images["db:1"] == 0
		case <-deadline:
			t.Fatalf("Recreate rollout did not finish: %v", live)
		}
	}

	kubectl(t, "patch", "deployment/db", "-n", ns, "-p", `{"spec":{"replicas":7}}`)
	eventually(t, rolloutTimeout, "7 pods", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, ns)
		return len(pods) == 7, err
	})
	kubectl(t, "patch", "deployment/db", "-n", ns, "-p", `{"spec":{"replicas":2}}`)
	eventually(t, rolloutTimeout, "2 pods", func(ctx context.Context) (bool, error) {
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 2, err
	})
}

// TestNamespaceDeletion deletes a namespace full of objects and waits for
// it to empty and disappear; it also checks what every namespace gets.
func TestNamespaceDeletion(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	eventually(t, 30*time.Second, "default serviceaccount and kube-root-ca.crt", func(ctx context.Context) (bool, error) {
		_, saErr := cluster.clientset.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		cm, cmErr := cluster.clientset.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return saErr == nil && cmErr == nil && strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE"), nil
	})
	kubectl(t, "create", "deployment", "app", "--image=app", "--replicas=5", "-n", ns)
	kubectl(t, "create", "configmap", "settings", "--from-literal=a=b", "-n", ns)
	kubectl(t, "create", "secret", "generic", "token", "--from-literal=t=x", "-n", ns)
	eventually(t, rolloutTimeout, "5 running pods", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, ns)
		return len(pods) == 5, err
	})
	kubectl(t, "delete", "namespace", ns, "--wait=false")
	eventually(t, rolloutTimeout, "namespace gone", func(ctx context.Context) (bool, error) {
		_, err := cluster.clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	// The namespace goes only after its content: nothing may be left
	// behind under its name.
	apps, core := cluster.clientset.AppsV1(), cluster.clientset.CoreV1()
	lists := map[string]func(context.Context, metav1.ListOptions) (int, error){
		"deployments": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := apps.Deployments(ns).List(ctx, o)
			return len(l.Items), err
		},
		"replicasets": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := apps.ReplicaSets(ns).List(ctx, o)
			return len(l.Items), err
		},
		"pods": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := core.Pods(ns).List(ctx, o)
			return len(l.Items), err
		},
		"configmaps": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := core.ConfigMaps(ns).List(ctx, o)
			return len(l.Items), err
		},
		"secrets": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := core.Secrets(ns).List(ctx, o)
			return len(l.Items), err
		},
		"serviceaccounts": func(ctx context.Context, o metav1.ListOptions) (int, error) {
			l, err := core.ServiceAccounts(ns).List(ctx, o)
			return len(l.Items), err
		},
	}
	for kind, list := range lists {
		if n, err := list(t.Context(), metav1.ListOptions{}); err != nil || n > 0 {
			t.Errorf("%d %s left in deleted namespace %s (err %v)", n, kind, ns, err)
		}
	}
}
