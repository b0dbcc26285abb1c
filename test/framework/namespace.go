package framework

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxNamespacePrefix keeps generated namespace names well under the 63
// character DNS label limit once the server appends its random suffix.
const maxNamespacePrefix = 40

// CreateNamespace creates a namespace named after the test, so tests that
// share a control plane never see each other's objects. It also creates the
// namespace's default ServiceAccount unless a running controller manager
// already did, so pods are admitted either way.
func (cp *ControlPlane) CreateNamespace(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())}}
	created, err := cp.clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace for %s: %v", t.Name(), err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	_, err = cp.clientset.CoreV1().ServiceAccounts(created.Name).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the default service account in %s: %v", created.Name, err)
	}
	return created.Name
}

// namespacePrefix turns a test name into a valid GenerateName prefix.
func namespacePrefix(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if len(prefix) > maxNamespacePrefix {
		prefix = strings.TrimRight(prefix[:maxNamespacePrefix], "-")
	}
	if prefix == "" {
		prefix = "test"
	}
	return prefix + "-"
}
