package manager

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"tower.dev/tower/test/framework"
)

// TestProfilingOnMetricsListener checks that --profiling serves the
// runtime profiles beside /metrics, and that without it they are absent.
func TestProfilingOnMetricsListener(t *testing.T) {
	cp := framework.Start(t)
	for _, c := range []struct {
		profiling bool
		want      int
	}{
		{profiling: true, want: http.StatusOK},
		{profiling: false, want: http.StatusNotFound},
	} {
		addr := freeLoopbackAddress(t)
		mgr, err := newManager(cp.Config, Common{MetricsBindAddress: addr, Profiling: c.profiling}, "profiling-test", cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
			want := c.want
			if path == "/metrics" {
				want = http.StatusOK
			}
			var got int
			// The listener opens once the manager has started.
			err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				resp, err := http.Get(fmt.Sprintf("http://%s%s", addr, path))
				if err != nil {
					return false, nil
				}
				resp.Body.Close()
				got = resp.StatusCode
				return true, nil
			})
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if got != want {
				t.Errorf("profiling=%v: GET %s = %d, want %d", c.profiling, path, got, want)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// freeLoopbackAddress returns a loopback address with a port nothing
// listens on at the moment.
func freeLoopbackAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
