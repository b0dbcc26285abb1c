package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

// TestInflightLimit sends 2000 list requests from 200 concurrent clients
// at a server that admits 4 reads at a time: the excess gets 429 with
// Retry-After, nothing fails otherwise, and health checks keep answering.
func TestInflightLimit(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte("load-token,loader,2001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := framework.Start(t, framework.WithServerOptions(func(o *server.Options) {
		o.TokenAuthFile = tokens
		o.MaxRequestsInflight = 4
		o.MaxMutatingRequestsInflight = 2
	}))
	ctx := context.Background()
	if _, err := cp.Clientset().RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "loader-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "loader"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: cp.Config.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	get := func(path string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, cp.Config.Host+path, nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer load-token")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}
	rssBefore := processRSS(t)
	rssPeak := sampleRSS(t)
	const clients, perClient = 200, 10
	var ok, throttled, other atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	healthDone := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stop:
				healthDone <- worst
				return
			default:
			}
			start := time.Now()
			if code, _, err := get("/readyz"); err != nil || code != http.StatusOK {
				t.Errorf("/readyz under load: %d %v", code, err)
			}
			worst = max(worst, time.Since(start))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				code, retryAfter, err := get("/api/v1/namespaces/default/configmaps")
				switch {
				case err != nil:
					other.Add(1)
				case code == http.StatusOK:
					ok.Add(1)
				case code == http.StatusTooManyRequests && retryAfter == "1":
					throttled.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	worstHealth := <-healthDone
	peak := rssPeak()
	t.Logf("%d requests in %s: %d ok, %d throttled (429), %d other; slowest /readyz %s",
		clients*perClient, elapsed, ok.Load(), throttled.Load(), other.Load(), worstHealth)
	// The server runs in the test process (with its etcd and the 200
	// clients), so this is an upper bound on the server's own RSS.
	t.Logf("process RSS: %d MiB before, %d MiB peak, %d MiB after", rssBefore>>10, peak>>10, processRSS(t)>>10)
	if throttled.Load() == 0 {
		t.Error("no request was throttled above the in-flight limit")
	}
	if ok.Load() == 0 || other.Load() != 0 {
		t.Errorf("ok=%d other=%d, want some ok and no other outcome", ok.Load(), other.Load())
	}
}

// processRSS is this process's resident set in KiB (VmRSS).
func processRSS(t *testing.T) int64 {
	t.Helper()
	kb, err := readRSS()
	if err != nil {
		t.Skipf("cannot measure RSS: %v", err)
	}
	return kb
}

func readRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// sampleRSS samples the RSS every 20ms until the returned function is
// called, which returns the highest sample in KiB.
func sampleRSS(t *testing.T) func() int64 {
	first := processRSS(t)
	stop := make(chan struct{})
	peak := make(chan int64)
	go func() {
		highest := first
		ticker := time.NewTicker(20 * time.Millisecond)
		defer ticker.Stop()
		for {
			if kb, err := readRSS(); err == nil {
				highest = max(highest, kb)
			}
			select {
			case <-stop:
				peak <- highest
				return
			case <-ticker.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		return <-peak
	}
}
