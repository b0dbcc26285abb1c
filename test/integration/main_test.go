// Package integration runs client-go and controller-runtime against a real
// Tower API server on a real embedded etcd. One control plane serves the
// whole test binary; every test works in a namespace of its own.
package integration

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"

	"tower.dev/tower/test/framework"
)

// controlPlane is shared by every test in the package; TestMain sets it
// once before any test runs.
var controlPlane *framework.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// controller-runtime complains loudly when its global logger is never set.
	ctrl.SetLogger(logr.Discard())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := framework.New(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	controlPlane = cp
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// eventually polls condition until it holds or timeout passes, failing the
// test with the last error or the description.
func eventually(t *testing.T, timeout time.Duration, description string, condition func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, timeout, true, condition)
	if err != nil {
		t.Fatalf("waiting for %s: %v", description, err)
	}
}
