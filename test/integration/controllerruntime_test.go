package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/test/framework"
)

// TestControllerRuntimeManager: a manager with a cache scoped to the test's
// namespace starts, syncs, and a reconciler is called for every object.
func TestControllerRuntimeManager(t *testing.T) {
	const objects = 10
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)

	mgr := framework.NewNamespacedManager(t, controlPlane.Config, ns)

	var mu sync.Mutex
	reconciled := map[string]bool{}
	err := ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			var cm corev1.ConfigMap
			if err := mgr.GetClient().Get(ctx, req.NamespacedName, &cm); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			mu.Lock()
			reconciled[cm.Name] = true
			mu.Unlock()
			return reconcile.Result{}, nil
		}))
	if err != nil {
		t.Fatalf("building controller: %v", err)
	}

	mgrCtx, stop := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stop()
		select {
		case err := <-mgrDone:
			if err != nil {
				t.Errorf("manager returned: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop")
		}
	}()

	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("manager cache never synced")
	}

	for i := range objects {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)}}
		if err := mgr.GetClient().Create(ctx, cm); err != nil {
			t.Fatalf("creating %s: %v", cm.Name, err)
		}
	}
	eventually(t, 30*time.Second, "every object to be reconciled", func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(reconciled) == objects, nil
	})

	var cached corev1.ConfigMap
	if err := mgr.GetClient().Get(ctx, types.NamespacedName{Namespace: ns, Name: "cm-0"}, &cached); err != nil {
		t.Errorf("reading through the cache: %v", err)
	}
}
