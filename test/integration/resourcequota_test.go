package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/test/framework"
)

// TestResourceQuotaConcurrentCreates: 50 pods created at once against a
// quota of 5 pods: exactly 5 are admitted, the other 45 get 403 "exceeded
// quota", and the quota's status.used ends at 5.
func TestResourceQuotaConcurrentCreates(t *testing.T) {
	const limit, creates = 5, 50
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	rq := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(limit, resource.DecimalSI)}},
	}
	created, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, rq, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if used := created.Status.Used[corev1.ResourcePods]; used.Value() != 0 || created.Status.Hard.Pods().Value() != limit {
		t.Fatalf("new quota status = %+v, want used pods=0 hard pods=%d", created.Status, limit)
	}
	framework.WaitForCached(t, cs.CoreV1().ResourceQuotas(ns).List, func(l *corev1.ResourceQuotaList) bool { return len(l.Items) == 1 })

	var mu sync.Mutex
	var admitted int
	refusals := map[string]int{}
	var wg sync.WaitGroup
	for i := range creates {
		wg.Go(func() {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, newPod(fmt.Sprintf("p%02d", i)), metav1.CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case apierrors.IsForbidden(err):
				_, msg, _ := strings.Cut(err.Error(), "is forbidden: ")
				refusals[msg]++
			default:
				t.Errorf("create p%02d: %v", i, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d concurrent creates against pods=%d: %d admitted, refusals %v", creates, limit, admitted, refusals)
	want := fmt.Sprintf("exceeded quota: pods, requested: pods=1, used: pods=%d, limited: pods=%d", limit, limit)
	if admitted != limit || refusals[want] != creates-limit {
		t.Errorf("admitted %d, refusals %v; want %d admitted and %d × %q", admitted, refusals, limit, creates-limit, want)
	}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != limit {
		t.Errorf("stored pods: %d (%v), want %d", len(list.Items), err, limit)
	}
	got, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
	if used := got.Status.Used[corev1.ResourcePods]; err != nil || used.Value() != limit {
		t.Errorf("status.used = %v (%v), want pods=%d", got.Status.Used, err, limit)
	}
}

// TestResourceQuotaUsage: a quota created over existing objects counts
// them; compute resources are summed and must be stated by every
// container; object counts cover other resources.
func TestResourceQuotaUsage(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	q := resource.MustParse
	createConfigMap(t, cs.CoreV1().ConfigMaps(ns), "before", nil)
	rq := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "compute"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceRequestsCPU: q("1"), corev1.ResourceLimitsMemory: q("1Gi"),
			"count/configmaps": q("2"),
		}},
	}
	created, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, rq, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if used := created.Status.Used["count/configmaps"]; used.Value() != 1 {
		t.Errorf("quota created over one configmap: used %v", created.Status.Used)
	}
	framework.WaitForCached(t, cs.CoreV1().ResourceQuotas(ns).List, func(l *corev1.ResourceQuotaList) bool { return len(l.Items) == 1 })
	createConfigMap(t, cs.CoreV1().ConfigMaps(ns), "second", nil)
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "third"}}, metav1.CreateOptions{})
	wantForbidden(t, err, `configmaps "third" is forbidden: exceeded quota: compute, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2`)

	_, err = cs.CoreV1().Pods(ns).Create(ctx, newPod("unstated"), metav1.CreateOptions{})
	wantForbidden(t, err, `pods "unstated" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c`)

	sized := func(name, cpu string) *corev1.Pod {
		return newPod(name, corev1.Container{Name: "c", Image: "example", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q(cpu)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: q("256Mi")},
		}})
	}
	createPod(t, cs, ns, sized("a", "600m"))
	_, err = cs.CoreV1().Pods(ns).Create(ctx, sized("b", "500m"), metav1.CreateOptions{})
	wantForbidden(t, err, `pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1`)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, sized("dry", "400m"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run pod that fits: %v", err)
	}
	createPod(t, cs, ns, sized("c", "400m"))
	got, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "compute", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cpu, mem := got.Status.Used[corev1.ResourceRequestsCPU], got.Status.Used[corev1.ResourceLimitsMemory]; cpu.String() != "1" || mem.String() != "512Mi" {
		t.Errorf("status.used = %v, want requests.cpu=1 limits.memory=512Mi (the dry run not charged)", got.Status.Used)
	}
}
