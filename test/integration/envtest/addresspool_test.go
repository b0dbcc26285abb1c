package envtest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	networkv1alpha1 "tower.dev/tower/apis/network/v1alpha1"
	"tower.dev/tower/controllers/addresspool"
)

// repoRoot is where config/ lives, relative to this package.
var repoRoot = filepath.Join("..", "..", "..")

// TestAddressPools is the kubebuilder-style suite of Tower's own API
// group: envtest installs the CRD controller-gen wrote to config/crd, the
// schema and its CEL rule refuse bad pools with field paths, and the
// AddressPool reconciler keeps status.
func TestAddressPools(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := networkv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir(t),
		Scheme:                scheme,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{filepath.Join(repoRoot, "config", "crd", "bases")}},
		ErrorIfCRDPathMissing: true,
	}
	cfg := startEnvironment(t, env, "the AddressPool CRD")

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := (&addresspool.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		t.Fatalf("reconciler: %v", err)
	}
	ctx := startManager(t, mgr)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	pool := func(name string, addresses ...networkv1alpha1.AddressRange) *networkv1alpha1.AddressPool {
		return &networkv1alpha1.AddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       networkv1alpha1.AddressPoolSpec{Addresses: addresses},
		}
	}
	for _, tc := range []struct {
		name      string
		pool      *networkv1alpha1.AddressPool
		field     string
		inMessage string
	}{
		{"cel", pool("not-an-address", "192.0.2.0/28", "gateway"), "spec.addresses[1]", "must be a CIDR or a range of two addresses of one family joined by '-'"},
		{"mixed families", pool("mixed", "192.0.2.1-2001:db8::1"), "spec.addresses[0]", "must be a CIDR or a range"},
		{"min items", pool("empty", []networkv1alpha1.AddressRange{}...), "spec.addresses", "should have at least 1 items"},
	} {
		err := c.Create(ctx, tc.pool)
		var status apierrors.APIStatus
		if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
			t.Errorf("%s: create = %v, want Invalid with causes", tc.name, err)
			continue
		}
		found := false
		for _, cause := range status.Status().Details.Causes {
			found = found || (cause.Field == tc.field && strings.Contains(cause.Message, tc.inMessage))
		}
		if !found || !strings.Contains(err.Error(), tc.inMessage) {
			t.Errorf("%s: error %q (causes %+v) lacks %s: %q", tc.name, err, status.Status().Details.Causes, tc.field, tc.inMessage)
		}
	}

	lb := pool("lb", "192.0.2.0/28", "198.51.100.10-198.51.100.19")
	if err := c.Create(ctx, lb); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	if lb.Spec.AutoAssign == nil || !*lb.Spec.AutoAssign {
		t.Errorf("autoAssign = %v, want defaulted to true", lb.Spec.AutoAssign)
	}
	ready := waitForReady(t, c, "lb")
	if ready.Status != metav1.ConditionTrue || ready.Message != "26 addresses" {
		t.Errorf("Ready = %+v, want True with 26 addresses", ready)
	}

	// A range that ends before it starts passes the CEL syntax rule; the
	// reconciler reports it.
	backwards := pool("backwards", "198.51.100.30-198.51.100.20")
	if err := c.Create(ctx, backwards); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	if ready := waitForReady(t, c, "backwards"); ready.Status != metav1.ConditionFalse || ready.Reason != "InvalidAddresses" {
		t.Errorf("Ready = %+v, want False/InvalidAddresses", ready)
	}

	for _, name := range []string{"lb", "backwards"} {
		if err := c.Delete(ctx, &networkv1alpha1.AddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	}
}

// waitForReady waits until the reconciler has set the pool's Ready
// condition for its current generation, and returns it.
func waitForReady(t *testing.T, c client.Client, name string) metav1.Condition {
	t.Helper()
	var ready metav1.Condition
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		var pool networkv1alpha1.AddressPool
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &pool); err != nil {
			return false, err
		}
		cond := apimeta.FindStatusCondition(pool.Status.Conditions, addresspool.ConditionReady)
		if cond == nil || cond.ObservedGeneration != pool.Generation {
			return false, nil
		}
		ready = *cond
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for AddressPool %s to be reconciled: %v", name, err)
	}
	return ready
}
