package node_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/utils/ptr"

	"tower.dev/tower/nodeagent"
	"tower.dev/tower/test/framework"
	"tower.dev/tower/test/images/imagebuild"
)

// TestPodStreaming covers what kubectl streams through the API server to
// the agent besides logs: port-forward (kubectl's WebSocket tunnel and
// SPDY), exec over SPDY, attach and cp.
func TestPodStreaming(t *testing.T) {
	n := startNodeWith(t, nodeSetup{
		controlPlane: []framework.Option{withKubeletClientCertificate(t)},
		agent:        func(c *nodeagent.Config) { c.NodeIP = "127.0.0.1" },
	})
	namespace := createNamespace(t, n.client, "streaming")
	n.createPod(t, namespace, "web", imagebuild.EchoImage, nil)
	n.createPod(t, namespace, "shell", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		// The busybox image has no /tmp for kubectl cp.
		p.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /tmp && exec sleep 3600"}
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	})
	for _, name := range []string{"web", "shell"} {
		n.waitPod(t, namespace, name, 60*time.Second, "Running", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning
		})
	}

	portForwardURL := n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name("web").SubResource("portforward").URL()
	spdyDialer := func(t *testing.T) httpstream.Dialer {
		transport, upgrader, err := spdy.RoundTripperFor(n.config)
		if err != nil {
			t.Fatal(err)
		}
		return spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, portForwardURL)
	}
	for _, tc := range []struct {
		name   string
		dialer func(t *testing.T) httpstream.Dialer
	}{
		{"port-forward over SPDY", spdyDialer},
		{"port-forward over WebSocket (kubectl's default)", func(t *testing.T) httpstream.Dialer {
			dialer, err := portforward.NewSPDYOverWebsocketDialer(portForwardURL, n.config)
			if err != nil {
				t.Fatal(err)
			}
			return dialer
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := forwardPort(t, tc.dialer(t), "0:8080")
			// Two requests: each forwarded connection is a stream pair of
			// its own on the one connection.
			for range 2 {
				if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", local)); body != "web" {
					t.Errorf("through the forwarded port: %q, want the pod's name", body)
				}
			}
		})
	}

	t.Run("port-forward to a closed port reports the error", func(t *testing.T) {
		local := forwardPort(t, spdyDialer(t), "0:9999")
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", local), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		// The forwarder drops the local connection once the agent reports
		// that nothing listens.
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("reading the refused connection: %v", err)
		}
	})

	t.Run("exec over SPDY", func(t *testing.T) {
		req := n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name("shell").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Command: []string{"sh", "-c", "cat; echo err >&2; exit 7"}, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		executor, err := remotecommand.NewSPDYExecutor(n.config, http.MethodPost, req.URL())
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("over spdy\n"), Stdout: &stdout, Stderr: &stderr})
		var exitErr utilexec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 7 {
			t.Errorf("exit: %v, want exit code 7", err)
		}
		if stdout.String() != "over spdy\n" || stderr.String() != "err\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})

	t.Run("kubectl cp both ways", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "in.txt")
		content := strings.Repeat("copied through exec and tar\n", 1000)
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, env := range []string{"", "false"} {
			// kubectl uses WebSocket unless told otherwise; both reach
			// the agent.
			t.Setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", env)
			target := namespace + "/shell:/tmp/in-" + env + ".txt"
			if out, err := framework.RunKubectl(n.kubeconfig, nil, "cp", src, target); err != nil {
				t.Fatalf("kubectl cp to the pod: %v\n%s", err, out)
			}
			back := filepath.Join(dir, "back-"+env+".txt")
			if out, err := framework.RunKubectl(n.kubeconfig, nil, "cp", target, back); err != nil {
				t.Fatalf("kubectl cp from the pod: %v\n%s", err, out)
			}
			got, err := os.ReadFile(back)
			if err != nil || string(got) != content {
				t.Errorf("round trip (websockets=%q): %d bytes, %v; want %d bytes", env, len(got), err, len(content))
			}
		}
	})
}

// forwardPort forwards ports ("LOCAL:REMOTE") through dialer until the
// test ends and returns the local port.
func forwardPort(t *testing.T, dialer httpstream.Dialer, ports string) uint16 {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	var out, errOut strings.Builder
	forwarder, err := portforward.New(dialer, []string{ports}, stop, ready, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- forwarder.ForwardPorts() }()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward ended before it was ready: %v (%s)", err, errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready after 20s")
	}
	forwarded, err := forwarder.GetPorts()
	if err != nil || len(forwarded) != 1 {
		t.Fatalf("forwarded ports %v, %v", forwarded, err)
	}
	return forwarded[0].Local
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return strings.TrimSpace(string(body))
}
