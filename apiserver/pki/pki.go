// Package pki keeps a cluster's certificate authority and the certificates
// it signs on disk: the API server's serving certificate, client
// certificates (whose subject is the Kubernetes identity: CN = user,
// O = groups) and the kubeconfig files that carry them.
//
// Every Ensure function is idempotent: files that exist and are still valid
// for what is asked are reused, so restarting on the same directory keeps
// the same identities and kubeconfigs keep working.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	caCertFileName = "ca.crt"
	caKeyFileName  = "ca.key"

	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore: a certificate this close to expiry is replaced rather
	// than reused, so a restart never hands out one about to lapse.
	renewBefore = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so clients with a slightly slow clock
	// accept a freshly issued certificate.
	clockSkew = time.Hour
)

// DefaultServingHosts are the names every API server certificate carries:
// loopback, and the in-cluster names of the `kubernetes` Service.
var DefaultServingHosts = []string{
	"localhost",
	"127.0.0.1",
	"::1",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// CA is a certificate authority whose key is held in memory.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	// CertFile is where the CA certificate lives on disk, the path to
	// pass as an API server's --client-ca-file or a client's CA file.
	CertFile string
	key      crypto.Signer
}

// LoadOrCreateCA reads dir/ca.crt and dir/ca.key, or creates a new CA there
// when neither exists. A directory holding only one of the two is an error:
// silently replacing a CA would invalidate every certificate it signed.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, caCertFileName)
	keyPath := filepath.Join(dir, caKeyFileName)
	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, err
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return loadCA(certPath, keyPath)
	case certExists || keyExists:
		return nil, fmt.Errorf("incomplete CA in %s: need both %s and %s", dir, caCertFileName, caKeyFileName)
	}
	return createCA(dir, certPath, keyPath)
}

func loadCA(certPath, keyPath string) (*CA, error) {
	pair, err := loadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading CA: %w", err)
	}
	if !pair.cert.IsCA {
		return nil, fmt.Errorf("loading CA: %s is not a CA certificate", certPath)
	}
	if time.Now().After(pair.cert.NotAfter) {
		return nil, fmt.Errorf("loading CA: %s expired at %s", certPath, pair.cert.NotAfter)
	}
	return &CA{Cert: pair.cert, CertPEM: pair.certPEM, CertFile: certPath, key: pair.key}, nil
}

func createCA(dir, certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("tower-ca@%d", now.Unix())},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	certPEM, keyPEM, err := encodePair(der, key)
	if err != nil {
		return nil, err
	}
	if err := writePair(dir, certPath, keyPath, certPEM, keyPEM); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, CertFile: certPath, key: key}, nil
}

// EnsureServingCert returns dir/<name>.crt and dir/<name>.key, a TLS server
// certificate signed by ca for DefaultServingHosts plus hosts (DNS names or
// IP addresses). Existing files are reused when they are signed by ca, valid
// for every requested host and not close to expiry.
func (ca *CA) EnsureServingCert(dir, name string, hosts []string) (certFile, keyFile string, err error) {
	allHosts := dedupe(append(slices.Clone(DefaultServingHosts), hosts...))
	template := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range allHosts {
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	reusable := func(cert *x509.Certificate) bool {
		for _, h := range allHosts {
			if cert.VerifyHostname(h) != nil {
				return false
			}
		}
		return true
	}
	return ca.ensureLeaf(dir, name, template, x509.ExtKeyUsageServerAuth, reusable)
}

// EnsureClientCert returns dir/<name>.crt and dir/<name>.key, a TLS client
// certificate signed by ca that the API server maps to the given user and
// groups. Existing files are reused when they carry exactly that identity.
func (ca *CA) EnsureClientCert(dir, name, user string, groups []string) (certFile, keyFile string, err error) {
	template := &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: slices.Clone(groups)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	reusable := func(cert *x509.Certificate) bool {
		return cert.Subject.CommonName == user && sameSet(cert.Subject.Organization, groups)
	}
	return ca.ensureLeaf(dir, name, template, x509.ExtKeyUsageClientAuth, reusable)
}

// ensureLeaf reuses dir/<name>.{crt,key} when they chain to ca for usage and
// satisfy reusable, and otherwise issues a fresh pair from template.
func (ca *CA) ensureLeaf(dir, name string, template *x509.Certificate, usage x509.ExtKeyUsage, reusable func(*x509.Certificate) bool) (string, string, error) {
	certFile := filepath.Join(dir, name+".crt")
	keyFile := filepath.Join(dir, name+".key")
	ok, err := ca.existingLeafUsable(certFile, keyFile, usage, reusable)
	if err != nil {
		return "", "", err
	}
	if ok {
		return certFile, keyFile, nil
	}
	certPEM, keyPEM, err := ca.issue(template)
	if err != nil {
		return "", "", fmt.Errorf("issuing %s certificate: %w", name, err)
	}
	if err := writePair(dir, certFile, keyFile, certPEM, keyPEM); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// existingLeafUsable reports whether the pair on disk can be kept. Missing,
// unreadable or mismatched files are not errors: they are simply replaced.
func (ca *CA) existingLeafUsable(certFile, keyFile string, usage x509.ExtKeyUsage, reusable func(*x509.Certificate) bool) (bool, error) {
	certExists, err := fileExists(certFile)
	if err != nil {
		return false, err
	}
	keyExists, err := fileExists(keyFile)
	if err != nil {
		return false, err
	}
	if !certExists || !keyExists {
		return false, nil
	}
	pair, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return false, nil
	}
	if time.Until(pair.cert.NotAfter) < renewBefore {
		return false, nil
	}
	if _, err := pair.cert.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		return false, nil
	}
	return reusable(pair.cert), nil
}

// issue signs a new key pair for template (subject, SANs and usages are
// taken from it; validity and serial are set here).
func (ca *CA) issue(template *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	leaf := *template
	leaf.SerialNumber = serial
	leaf.NotBefore = now.Add(-clockSkew)
	leaf.NotAfter = now.Add(leafValidity)
	if leaf.NotAfter.After(ca.Cert.NotAfter) {
		leaf.NotAfter = ca.Cert.NotAfter
	}
	leaf.KeyUsage = x509.KeyUsageDigitalSignature
	leaf.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, &leaf, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate: %w", err)
	}
	return encodePair(der, key)
}

// Pool returns a certificate pool holding only the CA, for verifying peers.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

type keyPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

func loadKeyPair(certPath, keyPath string) (*keyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	// X509KeyPair also checks that the key belongs to the certificate.
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing %s and %s: %w", certPath, keyPath, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key in %s cannot sign", keyPath)
	}
	return &keyPair{cert: pair.Leaf, certPEM: certPEM, key: signer}, nil
}

func encodePair(certDER []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writePair writes the key before the certificate, each atomically, so a
// crash never leaves a new certificate next to an old key.
func writePair(dir, certPath, keyPath string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, certPEM, 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("checking %s: %w", path, err)
	}
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}

func dedupe(values []string) []string {
	seen := make(map[string]bool, len(values))
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(dedupe(sortedCopy(a)), dedupe(sortedCopy(b)))
}

func sortedCopy(values []string) []string {
	out := slices.Clone(values)
	slices.Sort(out)
	return out
}
