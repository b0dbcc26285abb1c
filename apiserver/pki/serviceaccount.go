package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// ServiceAccountKeyFile is the service-account signing key's file name, as
// kubeadm names it.
const ServiceAccountKeyFile = "sa.key"

// EnsureServiceAccountKey returns the path of the service-account token
// signing key in dir, creating an ECDSA P-256 key on first use. The key is
// kept across restarts: replacing it would invalidate every issued token.
func EnsureServiceAccountKey(dir string) (string, error) {
	path := filepath.Join(dir, ServiceAccountKeyFile)
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil {
			if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
				return path, nil
			}
		}
		return "", fmt.Errorf("%s exists but holds no PKCS#8 private key", path)
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating service account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding service account key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
