// Package envtest runs controller-runtime's envtest against Tower's own
// kube-apiserver and etcd (links to the tower binary), as a kubebuilder
// project's suite would: envtest starts them with its default flags,
// provisions its admin user, installs a CRD from a file, and a manager
// reconciles the custom objects.
package envtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/test/framework"
)

var gadgetGVK = schema.GroupVersionKind{Group: "envtest.tower.dev", Version: "v1", Kind: "Gadget"}

// assetsDir is KUBEBUILDER_ASSETS when set (make test points it at
// bin/k8s), otherwise a fresh build of tower with the links envtest runs.
func assetsDir(t *testing.T) string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	dir := t.TempDir()
	bin, err := framework.BuildTower(t.Context(), dir)
	if err != nil {
		t.Fatalf("build tower: %v", err)
	}
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
	}
	return dir
}

// startEnvironment starts env, logs how long it took to be ready with
// what it installs, and stops it when the test ends.
func startEnvironment(t *testing.T, env *envtest.Environment, installs string) *rest.Config {
	t.Helper()
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Logf("envtest start to ready with %s: %v", installs, time.Since(start))
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	return cfg
}

// startManager runs mgr until the test ends and returns the context it
// runs under.
func startManager(t *testing.T, mgr ctrl.Manager) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return ctx
}

func TestEnvtestReconcilesCustomResources(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir(t),
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "gadgets.yaml")}},
		ErrorIfCRDPathMissing: true,
	}
	cfg := startEnvironment(t, env, "one CRD")

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	gadget := &unstructured.Unstructured{}
	gadget.SetGroupVersionKind(gadgetGVK)
	c := mgr.GetClient()
	err = ctrl.NewControllerManagedBy(mgr).For(gadget).Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gadgetGVK)
		if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		size, _, _ := unstructured.NestedInt64(obj.Object, "spec", "size")
		if err := unstructured.SetNestedField(obj.Object, size, "status", "observedSize"); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, c.Status().Update(ctx, obj)
	}))
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	ctx := startManager(t, mgr)

	obj := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "g1", "namespace": "default"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	obj.SetGroupVersionKind(gadgetGVK)
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("create gadget: %v", err)
	}
	invalid := obj.DeepCopy()
	invalid.SetName("g0")
	invalid.SetResourceVersion("")
	_ = unstructured.SetNestedField(invalid.Object, int64(0), "spec", "size")
	if err := c.Create(ctx, invalid); err == nil {
		t.Errorf("created a gadget with size 0; the schema's minimum is 1")
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(gadgetGVK)
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "g1"}, got); err != nil {
			return false, err
		}
		observed, _, _ := unstructured.NestedInt64(got.Object, "status", "observedSize")
		return observed == 3, nil
	})
	if err != nil {
		t.Fatalf("waiting for the reconciler to set status.observedSize: %v", err)
	}
}
