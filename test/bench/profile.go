package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// profiler takes CPU and allocation profiles of the components while a
// phase runs, from their /debug/pprof/ endpoints, into dir.
type profiler struct {
	dir     string
	seconds int

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// profileSource fetches one /debug/pprof/ path (with its query) from a
// component.
type profileSource func(ctx context.Context, path string) ([]byte, error)

// apiServerProfiles reads the API server's profiles with the
// benchmark's (admin) client.
func apiServerProfiles(cs kubernetes.Interface) profileSource {
	return func(ctx context.Context, path string) ([]byte, error) {
		return cs.CoreV1().RESTClient().Get().RequestURI(path).DoRaw(ctx)
	}
}

// listenerProfiles reads a manager's profiles from its metrics listener.
func listenerProfiles(addr string) profileSource {
	return func(ctx context.Context, path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return nil, err
		}
		// The listener opens a moment after the manager starts.
		var resp *http.Response
		err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			resp, err = http.DefaultClient.Do(req)
			return err == nil, nil
		})
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
		}
		return body, nil
	}
}

// capture starts a CPU and an allocation profile of component over the
// next p.seconds, in the background; wait collects them. A nil profiler
// does nothing.
func (p *profiler) capture(ctx context.Context, component string, source profileSource) {
	if p == nil {
		return
	}
	seconds := strconv.Itoa(p.seconds)
	for kind, path := range map[string]string{
		"cpu":    "/debug/pprof/profile?seconds=" + seconds,
		"allocs": "/debug/pprof/allocs?seconds=" + seconds,
	} {
		p.wg.Go(func() {
			data, err := source(ctx, path)
			if err == nil {
				file := filepath.Join(p.dir, component+"-"+kind+".pprof")
				err = os.WriteFile(file, data, 0o600)
			}
			if err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Errorf("%s profile of %s: %w", kind, component, err))
				p.mu.Unlock()
			}
		})
	}
}

// wait returns once every profile started is written.
func (p *profiler) wait() error {
	if p == nil {
		return nil
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// freeLoopbackAddress returns a loopback address whose port nothing
// listens on at the moment, for a component's metrics listener.
func freeLoopbackAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
