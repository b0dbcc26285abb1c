package framework

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/pki"
)

// credentials are the files a control plane and its admin client need.
type credentials struct {
	caCert                  string
	servingCert, servingKey string
	adminCert, adminKey     string
}

// loopbackHosts are the names the serving certificate must cover for
// clients that dial the loopback listener.
var loopbackHosts = []string{"127.0.0.1", "::1", "localhost"}

// createCredentials makes a CA in dir, a serving certificate for loopback
// and an admin client certificate.
func createCredentials(dir string) (credentials, error) {
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return credentials{}, fmt.Errorf("creating CA: %w", err)
	}
	servingCert, servingKey, err := ca.EnsureServingCert(dir, "apiserver", loopbackHosts)
	if err != nil {
		return credentials{}, fmt.Errorf("creating serving certificate: %w", err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(dir, "admin", AdminUser, []string{AdminGroup})
	if err != nil {
		return credentials{}, fmt.Errorf("creating admin client certificate: %w", err)
	}
	return credentials{
		caCert:      ca.CertFile,
		servingCert: servingCert,
		servingKey:  servingKey,
		adminCert:   adminCert,
		adminKey:    adminKey,
	}, nil
}

// writeAdminKubeconfig writes a self-contained kubeconfig for the admin.
func writeAdminKubeconfig(path, host string, creds credentials) error {
	var pems [3][]byte
	for i, file := range []string{creds.caCert, creds.adminCert, creds.adminKey} {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("reading %s for the kubeconfig: %w", file, err)
		}
		pems[i] = data
	}
	if err := pki.WriteKubeconfig(path, host, pems[0], pems[1], pems[2], AdminUser, "tower"); err != nil {
		return fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	return nil
}

// writeServiceAccountKey creates the token signing key kube-apiserver
// insists on, even when nothing uses tokens.
func writeServiceAccountKey(path string) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generating service account key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("writing service account key: %w", err)
	}
	return path, nil
}

// ConfigFor returns a client configuration that authenticates as user in
// groups with a client certificate from the control plane's CA, as a
// component or node with that identity would: for tests of what an
// identity may do.
func (cp *ControlPlane) ConfigFor(user string, groups ...string) (*rest.Config, error) {
	dir := filepath.Join(cp.Dir, "pki")
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return nil, fmt.Errorf("loading CA: %w", err)
	}
	certFile, keyFile, err := ca.EnsureClientCert(filepath.Join(dir, "clients"), strings.ReplaceAll(user, ":", "_"), user, groups)
	if err != nil {
		return nil, fmt.Errorf("client certificate for %s: %w", user, err)
	}
	return &rest.Config{
		Host:            cp.Config.Host,
		TLSClientConfig: rest.TLSClientConfig{CAFile: ca.CertFile, CertFile: certFile, KeyFile: keyFile},
		QPS:             -1,
	}, nil
}
