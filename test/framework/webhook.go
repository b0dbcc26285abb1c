package framework

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"tower.dev/tower/apiserver/pki"
)

// WebhookServer is an HTTPS server on loopback with a certificate authority
// of its own, the way admission and conversion webhooks run: the API server
// must verify it with CABundle.
type WebhookServer struct {
	// URL is the server's base URL (https://127.0.0.1:port).
	URL string
	// CABundle is the PEM of the CA that signed the serving certificate.
	CABundle []byte
}

// StartWebhookServer serves handler over TLS until the test ends. The
// certificate names loopback plus extraHosts (a Service's DNS names, for
// webhooks reached through a Service).
func StartWebhookServer(t testing.TB, handler http.Handler, extraHosts ...string) *WebhookServer {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("webhook CA: %v", err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "webhook", append([]string{"127.0.0.1", "localhost"}, extraHosts...))
	if err != nil {
		t.Fatalf("webhook serving certificate: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load webhook serving certificate: %v", err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &WebhookServer{URL: srv.URL, CABundle: ca.CertPEM}
}
