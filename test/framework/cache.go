package framework

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// WaitForCached waits until a list served from the API server's watch
// cache (resourceVersion "0") satisfies ready. Admission plugins read
// LimitRanges, ResourceQuotas and webhook configurations from that cache,
// as kube-apiserver's read them from informers, so a test relying on one
// created a moment ago waits for it as an upstream client must.
func WaitForCached[L any](t testing.TB, list func(context.Context, metav1.ListOptions) (L, error), ready func(L) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := list(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, err
		}
		return ready(got), nil
	})
	if err != nil {
		t.Fatalf("waiting for the watch cache: %v", err)
	}
}
