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
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/kubectl/pkg/util/podutils"
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
		agent: func(c *nodeagent.Config) {
			c.NodeIP = "127.0.0.1"
			// Small, so that a chatty container's log rotates.
			c.ContainerLogMaxSize, c.ContainerLogMaxFiles = 4096, 3
		},
	})
	namespace := n.createNamespace(t, "streaming")
	// Ready only once it listens: port-forward needs the server up.
	n.createPod(t, namespace, "web", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		}
	})
	n.createPod(t, namespace, "shell", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		// The busybox image has no /tmp for kubectl cp.
		p.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /tmp && exec sleep 3600"}
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	})
	n.createPod(t, namespace, "attachee", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].Command = []string{"sh", "-c", `while read line; do echo "got $line"; echo "err $line" >&2; done; echo bye`}
		p.Spec.Containers[0].Stdin, p.Spec.Containers[0].StdinOnce = true, true
	})
	n.createPod(t, namespace, "chatty", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		// About 40 bytes an entry: the 4 KiB log rotates every ~100 lines.
		p.Spec.Containers[0].Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; [ $((i % 50)) = 0 ] && sleep 0.2; done"}
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	})
	for _, name := range []string{"web", "shell", "attachee", "chatty"} {
		n.waitPod(t, namespace, name, 60*time.Second, "Running", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && (name != "web" || podutils.IsPodReady(p))
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

	t.Run("attach to the container's stdio", func(t *testing.T) {
		req := n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name("attachee").SubResource("attach").
			VersionedParams(&corev1.PodAttachOptions{Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		executor, err := remotecommand.NewWebSocketExecutor(n.config, http.MethodGet, req.URL().String())
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// stdinOnce: the end of this stdin ends the container's, so it
		// says bye and exits, which ends the attach.
		err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			t.Fatalf("attach: %v", err)
		}
		if stdout.String() != "got hello\ngot world\nbye\n" || stderr.String() != "err hello\nerr world\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
		n.waitPod(t, namespace, "attachee", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded
		})
		logs, err := n.client.CoreV1().Pods(namespace).GetLogs("attachee", &corev1.PodLogOptions{}).DoRaw(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// The log has both streams; each stream's lines keep their order,
		// how the two interleave depends on when each was read.
		var out, errs []string
		for line := range strings.Lines(string(logs)) {
			if strings.HasPrefix(line, "err ") {
				errs = append(errs, line)
			} else {
				out = append(out, line)
			}
		}
		if strings.Join(out, "") != stdout.String() || strings.Join(errs, "") != stderr.String() {
			t.Errorf("log of the attached container: %q", logs)
		}
	})

	t.Run("logs rotate by size and still read whole", func(t *testing.T) {
		logDir := filepath.Join(n.rootDir, "pods")
		var files []string
		waitFor(t, 60*time.Second, "two rotated log files", func() (bool, error) {
			var err error
			files, err = filepath.Glob(filepath.Join(logDir, namespace+"_chatty_*", "logs", "main", "0.log*"))
			return len(files) == 3, err
		})
		time.Sleep(time.Second)
		files, _ = filepath.Glob(filepath.Join(logDir, namespace+"_chatty_*", "logs", "main", "0.log*"))
		if len(files) > 3 {
			t.Errorf("%d log files kept, want at most 3: %v", len(files), files)
		}
		for _, f := range files {
			if info, err := os.Stat(f); err == nil && info.Size() > 4096+64 {
				t.Errorf("%s is %d bytes, over the 4 KiB limit", f, info.Size())
			}
		}
		logs, err := n.client.CoreV1().Pods(namespace).GetLogs("chatty", &corev1.PodLogOptions{}).DoRaw(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// What is kept is a run of consecutive lines: rotation drops the
		// oldest whole files, nothing in between.
		lines := strings.Split(strings.TrimSuffix(string(logs), "\n"), "\n")
		var first int
		if _, err := fmt.Sscanf(lines[0], "line %d", &first); err != nil || first <= 1 {
			t.Fatalf("first kept line %q: the oldest lines should have been rotated away", lines[0])
		}
		for i, l := range lines {
			if l != fmt.Sprintf("line %d", first+i) {
				t.Fatalf("line %d of the log is %q, want %q", i, l, fmt.Sprintf("line %d", first+i))
			}
		}
		tail, err := n.client.CoreV1().Pods(namespace).GetLogs("chatty", &corev1.PodLogOptions{TailLines: ptr.To[int64](150)}).DoRaw(t.Context())
		if err != nil || strings.Count(string(tail), "\n") != 150 {
			t.Errorf("tail 150 across rotated files: %d lines, %v", strings.Count(string(tail), "\n"), err)
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
