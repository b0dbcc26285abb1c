package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLoadOrCreateCAReusesExistingFiles(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	if !first.Cert.IsCA {
		t.Fatalf("CA certificate is not marked as a CA")
	}
	second, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("loading CA: %v", err)
	}
	if !bytes.Equal(first.CertPEM, second.CertPEM) {
		t.Fatalf("second call created a new CA instead of reusing the one on disk")
	}
	info, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatalf("stat ca.key: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("ca.key permissions = %v, want 0600", perm)
	}
}

func TestLoadOrCreateCARefusesIncompleteDirectory(t *testing.T) {
	for _, keep := range []string{"ca.crt", "ca.key"} {
		t.Run(keep, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreateCA(dir); err != nil {
				t.Fatalf("creating CA: %v", err)
			}
			for _, f := range []string{"ca.crt", "ca.key"} {
				if f != keep {
					if err := os.Remove(filepath.Join(dir, f)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := LoadOrCreateCA(dir); err == nil {
				t.Fatalf("LoadOrCreateCA succeeded with only %s present", keep)
			}
		})
	}
}

func TestEnsureServingCertChainsToCAForEveryHost(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureServingCert(dir, "apiserver", []string{"tower.example", "10.1.2.3"})
	if err != nil {
		t.Fatalf("EnsureServingCert: %v", err)
	}
	cert := mustLoadLeaf(t, certFile, keyFile)

	hosts := append(slices.Clone(DefaultServingHosts), "tower.example", "10.1.2.3")
	for _, host := range hosts {
		t.Run(host, func(t *testing.T) {
			_, err := cert.Verify(x509.VerifyOptions{
				DNSName:   host,
				Roots:     ca.Pool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Fatalf("verify for %s: %v", host, err)
			}
		})
	}
	if err := cert.VerifyHostname("elsewhere.example"); err == nil {
		t.Fatalf("certificate unexpectedly valid for an unrequested host")
	}
}

func TestEnsureServingCertReuse(t *testing.T) {
	tests := []struct {
		name        string
		secondHosts []string
		// otherCA: the second call uses a different CA in the same dir.
		otherCA   bool
		wantReuse bool
	}{
		{name: "same hosts", secondHosts: []string{"a.example"}, wantReuse: true},
		{name: "subset of hosts", secondHosts: nil, wantReuse: true},
		{name: "new host", secondHosts: []string{"a.example", "b.example"}, wantReuse: false},
		{name: "different CA", secondHosts: []string{"a.example"}, otherCA: true, wantReuse: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := mustCA(t, filepath.Join(dir, "ca"))
			certFile, _, err := ca.EnsureServingCert(dir, "apiserver", []string{"a.example"})
			if err != nil {
				t.Fatalf("first EnsureServingCert: %v", err)
			}
			before := mustRead(t, certFile)

			second := ca
			if tt.otherCA {
				second = mustCA(t, filepath.Join(dir, "other-ca"))
			}
			certFile, keyFile, err := second.EnsureServingCert(dir, "apiserver", tt.secondHosts)
			if err != nil {
				t.Fatalf("second EnsureServingCert: %v", err)
			}
			after := mustRead(t, certFile)
			if reused := bytes.Equal(before, after); reused != tt.wantReuse {
				t.Fatalf("reused = %v, want %v", reused, tt.wantReuse)
			}
			cert := mustLoadLeaf(t, certFile, keyFile)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: second.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Fatalf("certificate does not chain to the CA of the second call: %v", err)
			}
		})
	}
}

func TestEnsureClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureClientCert(dir, "admin", "admin", []string{"system:masters"})
	if err != nil {
		t.Fatalf("EnsureClientCert: %v", err)
	}
	cert := mustLoadLeaf(t, certFile, keyFile)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify for client auth: %v", err)
	}
	if cert.Subject.CommonName != "admin" || !slices.Equal(cert.Subject.Organization, []string{"system:masters"}) {
		t.Fatalf("subject = %v, want CN=admin O=system:masters", cert.Subject)
	}

	before := mustRead(t, certFile)
	if _, _, err := ca.EnsureClientCert(dir, "admin", "admin", []string{"system:masters"}); err != nil {
		t.Fatalf("second EnsureClientCert: %v", err)
	}
	if !bytes.Equal(before, mustRead(t, certFile)) {
		t.Fatalf("unchanged identity did not reuse the certificate")
	}

	if _, _, err := ca.EnsureClientCert(dir, "admin", "admin", []string{"system:masters", "ops"}); err != nil {
		t.Fatalf("third EnsureClientCert: %v", err)
	}
	cert = mustLoadLeaf(t, certFile, keyFile)
	if !sameSet(cert.Subject.Organization, []string{"system:masters", "ops"}) {
		t.Fatalf("groups change was not applied: O = %v", cert.Subject.Organization)
	}
}

func TestEnsureLeafReplacesCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "admin.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureClientCert(dir, "admin", "admin", nil)
	if err != nil {
		t.Fatalf("EnsureClientCert over corrupt files: %v", err)
	}
	mustLoadLeaf(t, certFile, keyFile)
}

func mustCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	return ca
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mustLoadLeaf loads a pair, failing when the key does not match.
func mustLoadLeaf(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("loading %s: %v", certFile, err)
	}
	block, _ := pem.Decode(mustRead(t, certFile))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pair.Certificate[0], cert.Raw) {
		t.Fatalf("unexpected certificate chain in %s", certFile)
	}
	return cert
}

func TestCACertFileMatchesMemory(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	if !bytes.Equal(mustRead(t, ca.CertFile), ca.CertPEM) {
		t.Fatalf("CertFile %s does not hold the CA certificate", ca.CertFile)
	}
}

func TestEnsureServiceAccountKeyIsKept(t *testing.T) {
	dir := t.TempDir()
	first, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || string(before) != string(after) {
		t.Error("the service account key changed between starts")
	}
}
