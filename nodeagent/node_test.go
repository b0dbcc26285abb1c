package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"tower.dev/tower/nodeagent/podnet"
)

// testNetwork is a pod network whose plugins are never run: ensurePodCIDR
// only configures it.
func testNetwork(t *testing.T, initial string) *podnet.Network {
	t.Helper()
	bin := t.TempDir()
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.WriteFile(filepath.Join(bin, plugin), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	network, err := podnet.New(podnet.Config{BinDir: bin, StateDir: t.TempDir(), PodCIDR: initial, Bridge: "test0"})
	if err != nil {
		t.Fatal(err)
	}
	return network
}

func TestEnsurePodCIDR(t *testing.T) {
	for _, tc := range []struct {
		name              string
		flag, initial     string
		nodeCIDR          string
		assignAfterCreate string
		want              string
	}{
		{name: "node IPAM's subnet wins over the flag", flag: "10.244.0.0/24", nodeCIDR: "10.128.3.0/24", want: "10.128.3.0/24"},
		{name: "the flag without IPAM", flag: "10.244.0.0/24", want: "10.244.0.0/24"},
		{name: "a subnet of the last run gives way to the node's", initial: "10.128.1.0/24", nodeCIDR: "10.128.2.0/24", want: "10.128.2.0/24"},
		{name: "no flag waits for IPAM", assignAfterCreate: "10.128.7.0/24", want: "10.128.7.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{PodCIDR: tc.nodeCIDR}}
			client := fake.NewClientset(node)
			a := &Agent{cfg: Config{NodeName: "n1", PodCIDR: tc.flag, RootDir: t.TempDir()}, client: client, network: testNetwork(t, tc.initial)}
			if tc.assignAfterCreate != "" {
				go func() {
					time.Sleep(2 * podCIDRPollInterval)
					node := node.DeepCopy()
					node.Spec.PodCIDR = tc.assignAfterCreate
					_, _ = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
				}()
			}
			if err := a.ensurePodCIDR(ctx); err != nil {
				t.Fatal(err)
			}
			if got := a.network.PodCIDR(); got != tc.want {
				t.Errorf("pod CIDR %q, want %q", got, tc.want)
			}
			recorded, err := os.ReadFile(filepath.Join(a.cfg.RootDir, "network", podCIDRFile))
			if err != nil || string(recorded) != tc.want+"\n" {
				t.Errorf("recorded %q (%v), want %q", recorded, err, tc.want)
			}
		})
	}
}
