package pki

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestWriteKubeconfigAuthenticatesAgainstServer checks the whole chain a
// client uses: the kubeconfig's CA trusts the serving certificate and the
// server accepts the kubeconfig's client certificate.
func TestWriteKubeconfigAuthenticatesAgainstServer(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	servingCert, servingKey, err := ca.EnsureServingCert(dir, "apiserver", nil)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := ca.EnsureClientCert(dir, "admin", "admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(servingCert, servingKey)
	if err != nil {
		t.Fatal(err)
	}

	var seenUser string
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenUser = r.TLS.PeerCertificates[0].Subject.CommonName
		io.WriteString(w, "ok")
	}))
	server.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	server.StartTLS()
	defer server.Close()

	path := filepath.Join(dir, "nested", "admin.kubeconfig")
	if err := WriteKubeconfig(path, server.URL, ca.CertPEM, mustRead(t, clientCert), mustRead(t, clientKey), "admin", "tower"); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("kubeconfig permissions = %v, want 0600", perm)
	}

	loaded, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("loading kubeconfig: %v", err)
	}
	if loaded.CurrentContext != "tower" || loaded.Contexts["tower"].AuthInfo != "admin" {
		t.Fatalf("unexpected contexts: current=%q contexts=%v", loaded.CurrentContext, loaded.Contexts)
	}
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("building rest config: %v", err)
	}
	client, err := rest.HTTPClientFor(config)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(server.URL)
	if err != nil {
		t.Fatalf("request with kubeconfig credentials: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || seenUser != "admin" {
		t.Fatalf("status = %d, user = %q; want 200 and admin", resp.StatusCode, seenUser)
	}
}
