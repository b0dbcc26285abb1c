package framework

import (
	"context"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
)

// RunManager starts mgr for the rest of the test and stops it (failing
// the test if it ended with an error) when the test ends.
func RunManager(t testing.TB, mgr ctrl.Manager) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}
