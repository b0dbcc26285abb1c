package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
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

func TestServingHosts(t *testing.T) {
	serviceIP := netip.MustParseAddr("10.0.0.1")
	for _, bind := range []string{"0.0.0.0", "::"} {
		hosts := servingHosts(bind, serviceIP)
		if slices.Contains(hosts, bind) {
			t.Errorf("servingHosts(%q) includes the unspecified address", bind)
		}
		if !slices.Contains(hosts, "10.0.0.1") {
			t.Errorf("servingHosts(%q) = %v, want the kubernetes service IP", bind, hosts)
		}
		for _, addr := range hostAddresses() {
			if !slices.Contains(hosts, addr) {
				t.Errorf("servingHosts(%q) = %v, want this host's address %s", bind, hosts, addr)
			}
		}
	}
	if hosts := servingHosts("10.1.2.3", serviceIP); len(hosts) == 0 || hosts[0] != "10.1.2.3" {
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

// TestUpRunsComponentsAsTheirOwnIdentities checks that tower up gives
// every component its own identity and that the bootstrap policy, the
// Node authorizer and NodeRestriction let each do its job: a Deployment's
// pods are created (controller manager), bound (scheduler) and reported
// Running by simulated nodes writing as system:node:<name>.
func TestUpRunsComponentsAsTheirOwnIdentities(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and the API server")
	}
	dataDir := t.TempDir()
	opts := &upOptions{DataDir: dataDir, BindAddress: "127.0.0.1", SecurePort: freePort(t), Controllers: []string{"*"}, SimulatedNodes: 2}
	runUpWhile(t, opts, func(ctx context.Context, _ string) {
		for kubeconfig, want := range map[string]string{
			"admin.kubeconfig":              "admin",
			"controller-manager.kubeconfig": "system:kube-controller-manager",
			"scheduler.kubeconfig":          "system:kube-scheduler",
		} {
			who, err := clientFor(t, filepath.Join(dataDir, kubeconfig)).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("whoami with %s: %v", kubeconfig, err)
			}
			if who.Status.UserInfo.Username != want {
				t.Errorf("%s authenticates as %q, want %q", kubeconfig, who.Status.UserInfo.Username, want)
			}
		}
		admin := clientFor(t, filepath.Join(dataDir, "admin.kubeconfig"))
		deployment := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: metav1.NamespaceDefault},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "tower.dev/test/echo:v1"}}},
				},
			},
		}
		if _, err := admin.AppsV1().Deployments(metav1.NamespaceDefault).Create(ctx, deployment, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var running int
		for running < 2 {
			pods, err := admin.CoreV1().Pods(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				t.Fatal(err)
			}
			running = 0
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Spec.NodeName, "sim-node-") {
					running++
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d of 2 pods running on simulated nodes: %v", running, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
		for _, name := range []string{"sim-node-0", "sim-node-1"} {
			lease, err := admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != name {
				t.Errorf("lease of %s: %v %+v", name, err, lease)
			}
			block, _ := pem.Decode(readFile(t, filepath.Join(dataDir, "pki", "simulated-nodes", name+".crt")))
			if block == nil {
				t.Fatalf("no certificate for %s", name)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != "system:node:"+name || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
				t.Errorf("%s's certificate names %v", name, cert.Subject)
			}
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
