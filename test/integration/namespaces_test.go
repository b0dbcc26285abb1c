package integration

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSystemNamespacesExist: the namespaces kube-apiserver creates at start.
func TestSystemNamespacesExist(t *testing.T) {
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		t.Run(name, func(t *testing.T) {
			ns, err := controlPlane.Clientset().CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get namespace %s: %v", name, err)
			}
			if ns.Status.Phase != "Active" {
				t.Errorf("namespace %s phase = %q, want Active", name, ns.Status.Phase)
			}
		})
	}
}
