package nodeagent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestStaticPod(t *testing.T) {
	manifest := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - name: etcd\n    image: etcd\n")
	pod, err := staticPod(manifest, "/etc/manifests/etcd.yaml", "Node-1")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "etcd-node-1" || pod.Namespace != "default" || pod.Spec.NodeName != "Node-1" || pod.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("pod %s/%s on %q restartPolicy %q", pod.Namespace, pod.Name, pod.Spec.NodeName, pod.Spec.RestartPolicy)
	}
	if !isStaticPod(pod) || pod.Annotations[annotationConfigHash] != string(pod.UID) || len(pod.UID) != 32 {
		t.Errorf("annotations %v UID %q", pod.Annotations, pod.UID)
	}
	again, _ := staticPod(manifest, "/etc/manifests/etcd.yaml", "Node-1")
	edited, _ := staticPod(append(manifest, "    args: [--debug]\n"...), "/etc/manifests/etcd.yaml", "Node-1")
	elsewhere, _ := staticPod(manifest, "/etc/manifests/etcd.yaml", "node-2")
	if again.UID != pod.UID || edited.UID == pod.UID || elsewhere.UID == pod.UID {
		t.Errorf("UIDs: same manifest %s/%s, edited %s, other node %s", pod.UID, again.UID, edited.UID, elsewhere.UID)
	}
	for _, bad := range []string{"kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n", "apiVersion: v1\nkind: Pod\nspec: {}\n", "{not yaml"} {
		if _, err := staticPod([]byte(bad), "/m/bad.yaml", "n"); err == nil {
			t.Errorf("manifest %q decoded without error", bad)
		}
	}
}
