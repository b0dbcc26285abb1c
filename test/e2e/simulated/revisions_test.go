package simulated

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// historyRow is one REVISION line of `kubectl rollout history`.
var historyRow = regexp.MustCompile(`(?m)^(\d+)\s`)

// rolloutHistory runs `kubectl rollout history` for obj and returns the
// revision numbers it lists.
func rolloutHistory(t *testing.T, ns, obj string) []string {
	t.Helper()
	out := kubectl(t, "rollout", "history", obj, "-n", ns)
	var revisions []string
	for _, m := range historyRow.FindAllStringSubmatch(out, -1) {
		revisions = append(revisions, m[1])
	}
	return revisions
}

// expectHistory checks the revisions `kubectl rollout history` lists.
func expectHistory(t *testing.T, ns, obj string, want ...string) {
	t.Helper()
	if got := rolloutHistory(t, ns, obj); !slices.Equal(got, want) {
		t.Fatalf("rollout history of %s lists revisions %v, want %v", obj, got, want)
	}
}

// expectRevisionImage checks `kubectl rollout history --revision=N` shows
// the template with image.
func expectRevisionImage(t *testing.T, ns, obj, revision, image string) {
	t.Helper()
	out := kubectl(t, "rollout", "history", obj, "-n", ns, "--revision="+revision)
	if !regexp.MustCompile(`Image:\s+` + regexp.QuoteMeta(image) + `\n`).MatchString(out) {
		t.Fatalf("rollout history %s --revision=%s does not show image %s:\n%s", obj, revision, image, out)
	}
}

// expectControllerRevisions checks the namespace holds want revisions, all
// controlled by owner and labelled with their hash.
func expectControllerRevisions(t *testing.T, ns string, owner metav1.Object, want int) {
	t.Helper()
	eventually(t, rolloutTimeout, fmt.Sprintf("%d controllerrevisions", want), func(ctx context.Context) (bool, error) {
		list, err := cluster.clientset.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, cr := range list.Items {
			if !metav1.IsControlledBy(&cr, owner) || cr.Labels[appsv1.ControllerRevisionHashLabelKey] == "" {
				return false, fmt.Errorf("controllerrevision %s: owners %v labels %v", cr.Name, cr.OwnerReferences, cr.Labels)
			}
		}
		return len(list.Items) == want, nil
	})
}

// imagesByPod maps each live pod of the namespace to its image.
func imagesByPod(ctx context.Context, ns string) (map[string]string, error) {
	pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	images := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			images[p.Name] = p.Spec.Containers[0].Image
		}
	}
	return images, nil
}

// allImages waits until every live pod runs image and there are want of
// them, Running and Ready.
func allImages(t *testing.T, ns, image string, want int) {
	t.Helper()
	eventually(t, rolloutTimeout, fmt.Sprintf("%d ready pods of %s", want, image), func(ctx context.Context) (bool, error) {
		images, err := imagesByPod(ctx, ns)
		if err != nil {
			return false, err
		}
		running, err := runningPods(ctx, ns)
		if err != nil {
			return false, err
		}
		for _, got := range images {
			if got != image {
				return false, nil
			}
		}
		return len(images) == want && len(running) == want, nil
	})
}

// observed waits until a controller has seen the object's latest spec.
func observed(t *testing.T, description string, generations func(ctx context.Context) (int64, int64, error)) {
	t.Helper()
	eventually(t, rolloutTimeout, description+" observed", func(ctx context.Context) (bool, error) {
		generation, observedGeneration, err := generations(ctx)
		return err == nil && observedGeneration >= generation, err
	})
}

// daemonWatcher follows a DaemonSet's pods during a surge rollout and
// records every moment a node had no ready pod or more nodes than maxSurge
// had two pods.
type daemonWatcher struct {
	mu         sync.Mutex
	maxSurged  int
	violations []string
}

func watchDaemonRollout(t *testing.T, ns string, maxSurge int) (*daemonWatcher, func()) {
	t.Helper()
	w := &daemonWatcher{}
	stop := watchPods(t, ns, &w.mu, func(pods map[string]*corev1.Pod, rv string) {
		w.check(pods, rv, maxSurge)
	})
	return w, stop
}

func (w *daemonWatcher) check(pods map[string]*corev1.Pod, rv string, maxSurge int) {
	live, ready := map[string]int{}, map[string]int{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		node := daemonNode(p)
		live[node]++
		if isReady(p) {
			ready[node]++
		}
	}
	surged := 0
	for _, n := range live {
		if n > 1 {
			surged++
		}
	}
	w.maxSurged = max(w.maxSurged, surged)
	if surged > maxSurge {
		w.violations = append(w.violations, fmt.Sprintf("rv %s: %d nodes run two pods, maxSurge %d", rv, surged, maxSurge))
	}
	for _, node := range cluster.sim.NodeNames() {
		if ready[node] == 0 {
			w.violations = append(w.violations, fmt.Sprintf("rv %s: node %s has no ready pod with maxUnavailable 0", rv, node))
		}
	}
}

// daemonNode is the node a daemon pod runs on or is pinned to by its
// required node affinity on metadata.name.
func daemonNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, req := range term.MatchFields {
				if len(req.Values) == 1 {
					return req.Values[0]
				}
			}
		}
	}
	return ""
}

// recreate deletes a StatefulSet's pod with kubectl and returns its
// successor once that is Ready.
func recreate(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	old, err := cluster.clientset.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "delete", "pod", name, "-n", ns)
	var successor *corev1.Pod
	eventually(t, rolloutTimeout, name+" recreated", func(ctx context.Context) (bool, error) {
		pod, err := cluster.clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		successor = pod
		return pod.UID != old.UID && isReady(pod), nil
	})
	return successor
}

// TestDaemonSetRevisions rolls a DaemonSet forward with maxSurge while a
// watcher checks every node keeps a ready pod and at most maxSurge nodes
// run two; then `kubectl rollout history|undo` through its
// ControllerRevisions, OnDelete, and revisionHistoryLimit.
func TestDaemonSetRevisions(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	surge, unavailable := intstr.FromInt32(1), intstr.FromInt32(0)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
	created, err := cluster.clientset.AppsV1().DaemonSets(ns).Create(t.Context(), ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	allImages(t, ns, "agent:1", nodeCount)
	expectControllerRevisions(t, ns, created, 1)
	expectHistory(t, ns, "daemonset/agent", "1")

	w, stop := watchDaemonRollout(t, ns, 1)
	kubectl(t, "set", "image", "daemonset/agent", "agent=agent:2", "-n", ns)
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	allImages(t, ns, "agent:2", nodeCount)
	stop()
	if len(w.violations) > 0 {
		t.Errorf("surge rollout broke its limits %d times, first: %s", len(w.violations), w.violations[0])
	}
	if w.maxSurged == 0 {
		t.Error("the rollout never ran two pods on a node: the watcher saw no surge")
	}
	expectHistory(t, ns, "daemonset/agent", "1", "2")
	expectRevisionImage(t, ns, "daemonset/agent", "1", "agent:1")
	expectRevisionImage(t, ns, "daemonset/agent", "2", "agent:2")

	kubectl(t, "rollout", "undo", "daemonset/agent", "-n", ns)
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	allImages(t, ns, "agent:1", nodeCount)
	// The undone template's revision is renumbered, not copied.
	expectControllerRevisions(t, ns, created, 2)
	expectHistory(t, ns, "daemonset/agent", "2", "3")
	kubectl(t, "rollout", "undo", "daemonset/agent", "-n", ns, "--to-revision=2")
	kubectl(t, "rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
	allImages(t, ns, "agent:2", nodeCount)
	expectHistory(t, ns, "daemonset/agent", "3", "4")

	// OnDelete: a new template replaces only the pods the user deletes.
	kubectl(t, "patch", "daemonset/agent", "-n", ns, "-p", `{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`)
	kubectl(t, "set", "image", "daemonset/agent", "agent=agent:3", "-n", ns)
	daemonSetGenerations := func(ctx context.Context) (int64, int64, error) {
		got, err := cluster.clientset.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return 0, 0, err
		}
		return got.Generation, got.Status.ObservedGeneration, nil
	}
	observed(t, "OnDelete template", daemonSetGenerations)
	images, err := imagesByPod(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for name, image := range images {
		if image != "agent:2" {
			t.Fatalf("OnDelete replaced pod %s with %s before it was deleted", name, image)
		}
		victim = name
	}
	kubectl(t, "delete", "pod", victim, "-n", ns)
	eventually(t, rolloutTimeout, "one pod replaced at agent:3", func(ctx context.Context) (bool, error) {
		got, err := cluster.clientset.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := got.Status
		return s.UpdatedNumberScheduled == 1 && s.NumberAvailable == nodeCount && s.ObservedGeneration == got.Generation, nil
	})

	// revisionHistoryLimit 0 drops every revision no pod runs (agent:1's).
	expectControllerRevisions(t, ns, created, 3)
	kubectl(t, "patch", "daemonset/agent", "-n", ns, "-p", `{"spec":{"revisionHistoryLimit":0}}`)
	expectControllerRevisions(t, ns, created, 2)
	expectHistory(t, ns, "daemonset/agent", "4", "5")

	// Foreground deletion waits for the pods and revisions it owns.
	kubectl(t, "delete", "daemonset/agent", "-n", ns, "--cascade=foreground", "--timeout=60s")
	expectCollected(t, ns)
}

// expectCollected waits until the namespace has no pods and no
// controllerrevisions left: the garbage collector took what the deleted
// workload owned.
func expectCollected(t *testing.T, ns string) {
	t.Helper()
	eventually(t, rolloutTimeout, "pods and controllerrevisions collected", func(ctx context.Context) (bool, error) {
		revisions, err := cluster.clientset.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return len(revisions.Items) == 0 && len(pods.Items) == 0, err
	})
}

// TestStatefulSetRevisions rolls a StatefulSet through a partitioned
// update, `kubectl rollout history|undo` and OnDelete, checking the
// pods' revisions and the status revisions and counts at each step.
func TestStatefulSetRevisions(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](3),
			ServiceName:         "db",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
		},
	}
	created, err := cluster.clientset.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
	allImages(t, ns, "db:1", 3)
	expectControllerRevisions(t, ns, created, 1)
	status := func(ctx context.Context) (*appsv1.StatefulSet, error) {
		return cluster.clientset.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	}
	first, err := status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rev1 := first.Status.CurrentRevision
	if rev1 == "" || rev1 != first.Status.UpdateRevision {
		t.Fatalf("status after create: %+v", first.Status)
	}
	expectPods := func(want map[string]string) {
		t.Helper()
		eventually(t, rolloutTimeout, fmt.Sprintf("pods %v", want), func(ctx context.Context) (bool, error) {
			pods, err := cluster.clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			got := map[string]string{}
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && isReady(&p) {
					got[p.Name] = p.Spec.Containers[0].Image + "@" + p.Labels[appsv1.ControllerRevisionHashLabelKey]
				}
			}
			for name, image := range want {
				if !strings.HasPrefix(got[name], image+"@") {
					return false, nil
				}
			}
			return len(got) == len(want), nil
		})
	}

	// A partitioned update reaches only the ordinals at or above it; a
	// pod below it comes back at the current revision.
	kubectl(t, "patch", "statefulset/db", "-n", ns, "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}`)
	kubectl(t, "set", "image", "statefulset/db", "db=db:2", "-n", ns)
	out := kubectl(t, "rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
	if !strings.Contains(out, "partitioned roll out complete: 1 new pods have been updated") {
		t.Errorf("rollout status with partition 2:\n%s", out)
	}
	expectPods(map[string]string{"db-0": "db:1", "db-1": "db:1", "db-2": "db:2"})
	replaced := recreate(t, ns, "db-0")
	if replaced.Spec.Containers[0].Image != "db:1" || replaced.Labels[appsv1.ControllerRevisionHashLabelKey] != rev1 {
		t.Errorf("db-0 recreated with %s at revision %q, want db:1 at the current %q", replaced.Spec.Containers[0].Image, replaced.Labels[appsv1.ControllerRevisionHashLabelKey], rev1)
	}
	eventually(t, rolloutTimeout, "status of the partitioned update", func(ctx context.Context) (bool, error) {
		got, err := status(ctx)
		if err != nil {
			return false, err
		}
		s := got.Status
		return s.CurrentRevision == rev1 && s.UpdateRevision != rev1 && s.CurrentReplicas == 2 && s.UpdatedReplicas == 1 && s.ReadyReplicas == 3, nil
	})

	kubectl(t, "patch", "statefulset/db", "-n", ns, "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)
	kubectl(t, "rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
	allImages(t, ns, "db:2", 3)
	eventually(t, rolloutTimeout, "update complete", func(ctx context.Context) (bool, error) {
		got, err := status(ctx)
		if err != nil {
			return false, err
		}
		s := got.Status
		return s.CurrentRevision == s.UpdateRevision && s.CurrentRevision != rev1 && s.CurrentReplicas == 3 && s.UpdatedReplicas == 3, nil
	})
	expectHistory(t, ns, "statefulset/db", "1", "2")
	expectRevisionImage(t, ns, "statefulset/db", "1", "db:1")
	expectRevisionImage(t, ns, "statefulset/db", "2", "db:2")

	kubectl(t, "rollout", "undo", "statefulset/db", "-n", ns)
	kubectl(t, "rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
	allImages(t, ns, "db:1", 3)
	expectControllerRevisions(t, ns, created, 2)
	expectHistory(t, ns, "statefulset/db", "2", "3")
	eventually(t, rolloutTimeout, "rolled back to the first revision's name", func(ctx context.Context) (bool, error) {
		got, err := status(ctx)
		return err == nil && got.Status.CurrentRevision == rev1 && got.Status.UpdateRevision == rev1, err
	})

	// OnDelete: only deleted pods are replaced, and currentRevision stays.
	kubectl(t, "patch", "statefulset/db", "-n", ns, "-p", `{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`)
	kubectl(t, "set", "image", "statefulset/db", "db=db:3", "-n", ns)
	observed(t, "OnDelete template", func(ctx context.Context) (int64, int64, error) {
		got, err := status(ctx)
		if err != nil {
			return 0, 0, err
		}
		return got.Generation, got.Status.ObservedGeneration, nil
	})
	expectPods(map[string]string{"db-0": "db:1", "db-1": "db:1", "db-2": "db:1"})
	if replaced := recreate(t, ns, "db-1"); replaced.Spec.Containers[0].Image != "db:3" {
		t.Errorf("db-1 recreated with %s under OnDelete, want db:3", replaced.Spec.Containers[0].Image)
	}
	expectPods(map[string]string{"db-0": "db:1", "db-1": "db:3", "db-2": "db:1"})
	eventually(t, rolloutTimeout, "OnDelete status", func(ctx context.Context) (bool, error) {
		got, err := status(ctx)
		if err != nil {
			return false, err
		}
		s := got.Status
		return s.CurrentRevision == rev1 && s.UpdateRevision != rev1 && s.UpdatedReplicas == 1 && s.CurrentReplicas == 2, nil
	})

	kubectl(t, "delete", "statefulset/db", "-n", ns)
	expectCollected(t, ns)
}

// TestDeploymentRolloutHistory checks `kubectl rollout history
// --revision=N` and `rollout undo --to-revision=N` on a Deployment.
func TestDeploymentRolloutHistory(t *testing.T) {
	ns := cluster.cp.CreateNamespace(t)
	kubectl(t, "create", "deployment", "app", "--image=app:v1", "--replicas=2", "-n", ns)
	kubectl(t, "rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
	for _, image := range []string{"app:v2", "app:v3"} {
		kubectl(t, "set", "image", "deployment/app", "app="+image, "-n", ns)
		kubectl(t, "rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
	}
	expectHistory(t, ns, "deployment/app", "1", "2", "3")
	expectRevisionImage(t, ns, "deployment/app", "1", "app:v1")
	expectRevisionImage(t, ns, "deployment/app", "2", "app:v2")

	kubectl(t, "rollout", "undo", "deployment/app", "-n", ns, "--to-revision=1")
	kubectl(t, "rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
	allImages(t, ns, "app:v1", 2)
	expectHistory(t, ns, "deployment/app", "2", "3", "4")
	expectRevisionImage(t, ns, "deployment/app", "4", "app:v1")

	out, err := runKubectl("rollout", "undo", "deployment/app", "-n", ns, "--to-revision=9")
	if err == nil || !strings.Contains(out+err.Error(), "unable to find specified revision 9 in history") {
		t.Fatalf("undo to a missing revision: err %v\n%s", err, out)
	}
}
