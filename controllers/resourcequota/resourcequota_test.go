package resourcequota_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"tower.dev/tower/controllers/resourcequota"
	"tower.dev/tower/test/framework"
)

// TestUsageReleasedAfterDeletion: admission charges pods against the
// quota until it is full; once a pod and a configmap are deleted the
// controller recomputes status.used and the next pod is admitted.
func TestUsageReleasedAfterDeletion(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	cp := framework.Start(t)
	ctx := t.Context()
	cs := cp.Clientset()
	ns := cp.CreateNamespace(t)

	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := resourcequota.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	framework.RunManager(t, mgr)

	rq := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "small"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePods: resource.MustParse("2"), "count/configmaps": resource.MustParse("1"),
		}},
	}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, rq, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitForCached(t, cs.CoreV1().ResourceQuotas(ns).List, func(l *corev1.ResourceQuotaList) bool { return len(l.Items) == 1 })
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example"}}}}
	}
	for _, name := range []string{"a", "b"} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("c"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("third pod: %v, want Forbidden", err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	// Configmap deletions are not watched: the pod deletion, which comes
	// second, triggers the recompute that covers both.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "small", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pods, cms := got.Status.Used[corev1.ResourcePods], got.Status.Used["count/configmaps"]
		return pods.Value() == 1 && cms.Value() == 0, nil
	})
	if err != nil {
		t.Fatalf("usage not released after deletions: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("c"), metav1.CreateOptions{}); err != nil {
		t.Errorf("pod after release: %v", err)
	}
}
