package pki

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WriteKubeconfig writes a kubeconfig at path with one cluster (server URL
// and CA), one user (client certificate and key, embedded so the file is
// self-contained) and one context named after the cluster, made current.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte, user, cluster string) error {
	config := clientcmdapi.NewConfig()
	config.Clusters[cluster] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: caPEM,
	}
	config.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	config.Contexts[cluster] = &clientcmdapi.Context{
		Cluster:  cluster,
		AuthInfo: user,
	}
	config.CurrentContext = cluster

	data, err := clientcmd.Write(*config)
	if err != nil {
		return fmt.Errorf("encoding kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating directory for kubeconfig: %w", err)
	}
	// The file holds a private key: owner-only, written atomically so a
	// client never reads half of it.
	return writeFileAtomic(path, data, 0o600)
}
