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
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	networkv1alpha1 "tower.dev/tower/apis/network/v1alpha1"
	"tower.dev/tower/controllers/addresspool"
	webhookv1alpha1 "tower.dev/tower/internal/webhook/network/v1alpha1"
)

// repoRoot is where config/ lives, relative to this package.
var repoRoot = filepath.Join("..", "..", "..")

// TestAddressPools is the kubebuilder-style suite of Tower's own API
// group: envtest installs the CRD controller-gen wrote to config/crd and
// the validating webhook it wrote to config/webhook (pointed at the
// manager's webhook server); the schema, its CEL rule and the overlap
// webhook refuse bad pools with field paths, and the AddressPool
// reconciler keeps status.
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
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(repoRoot, "config", "webhook")}},
		ErrorIfCRDPathMissing: true,
	}
	cfg := startEnvironment(t, env, "the AddressPool CRD and webhook")

	hook := env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:        scheme,
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir}),
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := (&addresspool.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		t.Fatalf("reconciler: %v", err)
	}
	if err := webhookv1alpha1.SetupAddressPoolWebhookWithManager(mgr); err != nil {
		t.Fatalf("webhook: %v", err)
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
	// The API server sees the webhook configuration envtest created
	// through its watch cache, and the manager's server starts a moment
	// after; wait until a pool overlapping itself is refused by the
	// webhook, removing any an earlier attempt stored.
	denied := `admission webhook "vaddresspool-v1alpha1.network.tower.dev" denied the request`
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		self := pool("self", "198.51.100.0/24", "198.51.100.7-198.51.100.8")
		err := c.Create(ctx, self)
		if err == nil {
			return false, c.Delete(ctx, self)
		}
		return strings.Contains(err.Error(), denied), nil
	})
	if err != nil {
		t.Fatalf("the overlap webhook never refused a pool: %v", err)
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

	for _, tc := range []struct {
		name      string
		pool      *networkv1alpha1.AddressPool
		field     string
		inMessage string
	}{
		{"cel", pool("not-an-address", "192.0.2.0/28", "gateway"), "spec.addresses[1]", "must be a CIDR or a range of two addresses of one family joined by '-'"},
		{"mixed families", pool("mixed", "192.0.2.1-2001:db8::1"), "spec.addresses[0]", "must be a CIDR or a range"},
		{"min items", pool("empty", []networkv1alpha1.AddressRange{}...), "spec.addresses", "should have at least 1 items"},
		{"overlaps another pool", pool("clash", "203.0.113.0/24", "192.0.2.10-192.0.2.20"), "spec.addresses[1]", denied + `: AddressPool.network.tower.dev "clash" is invalid: spec.addresses[1]: Invalid value: "192.0.2.10-192.0.2.20": overlaps 192.0.2.0/28 of AddressPool lb`},
		{"overlaps itself", pool("self", "198.51.100.0/24", "198.51.100.7-198.51.100.8"), "spec.addresses[1]", "overlaps 198.51.100.0/24 of this pool"},
		{"backwards", pool("backwards", "198.51.100.30-198.51.100.20"), "spec.addresses[0]", `range "198.51.100.30-198.51.100.20" ends before it starts`},
	} {
		expectInvalid(t, c.Create(ctx, tc.pool), tc.name, tc.field, tc.inMessage)
	}

	// Updates pass the webhook too, and the reconciler follows the spec.
	other := pool("other", "203.0.113.0/24")
	if err := c.Create(ctx, other); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	// (Merge patches: the reconciler writes status meanwhile.)
	unchanged := other.DeepCopy()
	other.Spec.Addresses = append(other.Spec.Addresses, "192.0.2.15/32")
	expectInvalid(t, c.Patch(ctx, other, client.MergeFrom(unchanged)), "update into another pool", "spec.addresses[1]", "overlaps 192.0.2.0/28 of AddressPool lb")
	other.Spec.Addresses = []networkv1alpha1.AddressRange{"203.0.113.0/24", "192.0.2.16/32"}
	if err := c.Patch(ctx, other, client.MergeFrom(unchanged)); err != nil {
		t.Fatalf("update pool: %v", err)
	}
	if ready := waitForReady(t, c, "other"); ready.Status != metav1.ConditionTrue || ready.Message != "257 addresses" {
		t.Errorf("Ready = %+v, want True with 257 addresses", ready)
	}

	for _, name := range []string{"lb", "other"} {
		if err := c.Delete(ctx, &networkv1alpha1.AddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	}
}

// expectInvalid checks that err is an Invalid status naming field among
// its causes and carrying inMessage, as the client sees it.
func expectInvalid(t *testing.T, err error, what, field, inMessage string) {
	t.Helper()
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		t.Errorf("%s: %v, want Invalid with causes", what, err)
		return
	}
	found := false
	for _, cause := range status.Status().Details.Causes {
		found = found || cause.Field == field
	}
	if !found || !strings.Contains(err.Error(), inMessage) {
		t.Errorf("%s: error %q (causes %+v) lacks %s: %q", what, err, status.Status().Details.Causes, field, inMessage)
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
