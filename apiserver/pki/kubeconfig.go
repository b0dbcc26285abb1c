package pki

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ClusterName names the cluster (and context) in the kubeconfigs Tower
// writes for its components.
const ClusterName = "tower"

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

// WriteClientKubeconfig issues (or reuses) the client certificate
// dir/<name>.{crt,key} for user in groups and writes a self-contained
// kubeconfig at path that presents it to server: the file a component
// runs with (kubeadm's admin.conf, scheduler.conf, kubelet.conf).
func (ca *CA) WriteClientKubeconfig(path, server, dir, name, user string, groups []string) error {
	certFile, keyFile, err := ca.EnsureClientCert(dir, name, user, groups)
	if err != nil {
		return fmt.Errorf("client certificate for %s: %w", user, err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("reading %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("reading %s: %w", keyFile, err)
	}
	if err := WriteKubeconfig(path, server, ca.CertPEM, certPEM, keyPEM, user, ClusterName); err != nil {
		return fmt.Errorf("writing kubeconfig for %s: %w", user, err)
	}
	return nil
}
