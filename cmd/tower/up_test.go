package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestDialHost(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1": "127.0.0.1",
		"0.0.0.0":   "127.0.0.1",
		"::":        "::1",
		"10.1.2.3":  "10.1.2.3",
		"":          "127.0.0.1",
	}
	for bind, want := range tests {
		if got := dialHost(bind); got != want {
			t.Errorf("dialHost(%q) = %q, want %q", bind, got, want)
		}
	}
}

func TestServingHostsSkipUnspecifiedAddress(t *testing.T) {
	for _, bind := range []string{"0.0.0.0", "::"} {
		for _, h := range servingHosts(bind) {
			if h == bind {
				t.Errorf("servingHosts(%q) includes the unspecified address", bind)
			}
		}
	}
	if hosts := servingHosts("10.1.2.3"); len(hosts) == 0 || hosts[0] != "10.1.2.3" {
		t.Errorf("servingHosts(10.1.2.3) = %v, want the bind address first", hosts)
	}
}

// TestUpRestartKeepsObjectsAndCertificates runs tower up twice on one data
// directory: objects created in the first run and the certificates issued
// for it must still be there in the second.
func TestUpRestartKeepsObjectsAndCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and the API server")
	}
	dataDir := t.TempDir()
	opts := &upOptions{DataDir: dataDir, BindAddress: "127.0.0.1", SecurePort: freePort(t)}
	kubeconfig := filepath.Join(dataDir, "admin.kubeconfig")

	var certBefore []byte
	runUpWhile(t, opts, func(ctx context.Context, out string) {
		if !strings.Contains(out, "Tower is up") || !strings.Contains(out, "export KUBECONFIG="+kubeconfig) {
			t.Errorf("unexpected greeting:\n%s", out)
		}
		client := clientFor(t, kubeconfig)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "survives-restart"}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating namespace: %v", err)
		}
		certBefore = readFile(t, filepath.Join(dataDir, "pki", "apiserver.crt"))
	})

	runUpWhile(t, opts, func(ctx context.Context, _ string) {
		client := clientFor(t, kubeconfig)
		if _, err := client.CoreV1().Namespaces().Get(ctx, "survives-restart", metav1.GetOptions{}); err != nil {
			t.Fatalf("namespace from the first run: %v", err)
		}
		if !bytes.Equal(certBefore, readFile(t, filepath.Join(dataDir, "pki", "apiserver.crt"))) {
			t.Errorf("serving certificate was reissued on restart")
		}
	})
}

// runUpWhile starts tower up, calls check once it reports ready, then stops
// it the way Ctrl-C does and requires a clean exit.
func runUpWhile(t *testing.T, opts *upOptions, check func(ctx context.Context, out string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runUp(runCtx, opts, "tower", out) }()

	kubeconfig := filepath.Join(opts.DataDir, "admin.kubeconfig")
	for !strings.Contains(out.String(), "Tower is up") {
		select {
		case err := <-done:
			t.Fatalf("tower up exited before ready: %v", err)
		case <-ctx.Done():
			t.Fatalf("tower up not ready: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := waitReady(ctx, kubeconfig); err != nil {
		t.Fatal(err)
	}
	check(ctx, out.String())

	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("tower up did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tower up did not stop within 30s of cancellation")
	}
}

func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// syncBuffer is written by tower up's goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
