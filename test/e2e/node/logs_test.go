package node_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/utils/ptr"

	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/nodeagent"
	"tower.dev/tower/test/framework"
	"tower.dev/tower/test/images/imagebuild"
)

// withKubeletClientCertificate gives the API server a client certificate
// from the cluster CA, which the agent accepts.
func withKubeletClientCertificate(t *testing.T) framework.Option {
	return framework.WithServerOptions(func(o *server.Options) {
		ca, err := pki.LoadOrCreateCA(o.CertDir)
		if err != nil {
			t.Fatalf("loading the cluster CA: %v", err)
		}
		o.KubeletClientCertFile, o.KubeletClientKeyFile, err = ca.EnsureClientCert(o.CertDir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{framework.AdminGroup})
		if err != nil {
			t.Fatalf("issuing the kubelet client certificate: %v", err)
		}
	})
}

func TestPodLogsAndExec(t *testing.T) {
	n := startNodeWith(t, nodeSetup{
		controlPlane: []framework.Option{withKubeletClientCertificate(t)},
		// The API server dials the node's InternalIP: on loopback, where
		// the agent's server listens.
		agent: func(c *nodeagent.Config) { c.NodeIP = "127.0.0.1" },
	})
	ctx := t.Context()
	namespace := n.createNamespace(t, "logs")
	n.createPod(t, namespace, "talker", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].Command = []string{"sh", "-c", "echo first; echo second; i=0; while true; i=$((i+1)); do echo tick $i; sleep 1; done"}
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	})
	n.waitPod(t, namespace, "talker", 60*time.Second, "Running", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning
	})
	logs := func(opts *corev1.PodLogOptions) (string, error) {
		// Stream, as kubectl reads logs: it decodes error Statuses.
		stream, err := n.client.CoreV1().Pods(namespace).GetLogs("talker", opts).Stream(ctx)
		if err != nil {
			return "", err
		}
		defer stream.Close()
		data, err := io.ReadAll(stream)
		return string(data), err
	}
	waitFor(t, 20*time.Second, "a tick in the log", func() (bool, error) {
		out, err := logs(&corev1.PodLogOptions{})
		return strings.Contains(out, "tick 1\n"), err
	})

	t.Run("whole log", func(t *testing.T) {
		out, err := logs(&corev1.PodLogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "first\nsecond\ntick 1\n") {
			t.Errorf("log starts %q", out)
		}
	})

	tickLine := regexp.MustCompile(`^tick (\d+)\n$`)
	var lastTick int
	t.Run("tail 1 is the last line", func(t *testing.T) {
		out, err := logs(&corev1.PodLogOptions{Container: "main", TailLines: ptr.To[int64](1)})
		if err != nil {
			t.Fatal(err)
		}
		m := tickLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("tail 1 = %q, want one tick line", out)
		}
		_, _ = fmt.Sscan(m[1], &lastTick)
	})

	t.Run("timestamps prefix each line", func(t *testing.T) {
		out, err := logs(&corev1.PodLogOptions{Timestamps: true, TailLines: ptr.To[int64](2)})
		if err != nil {
			t.Fatal(err)
		}
		stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (second|tick \d+)$`)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("got %q, want 2 lines", out)
		}
		for _, l := range lines {
			if !stamped.MatchString(l) {
				t.Errorf("line %q has no timestamp", l)
			}
		}
	})

	t.Run("follow streams new lines", func(t *testing.T) {
		streamCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		stream, err := n.client.CoreV1().Pods(namespace).GetLogs("talker", &corev1.PodLogOptions{Follow: true, TailLines: ptr.To[int64](1)}).Stream(streamCtx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		reader := bufio.NewReader(stream)
		for {
			line, err := reader.ReadString('\n')
			if err != nil {
				t.Fatalf("reading followed log: %v (last %q)", err, line)
			}
			m := tickLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("followed line %q", line)
			}
			var tick int
			_, _ = fmt.Sscan(m[1], &tick)
			if tick > lastTick+1 {
				return
			}
		}
	})

	t.Run("no previous run", func(t *testing.T) {
		_, err := logs(&corev1.PodLogOptions{Previous: true})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `previous terminated container "main" in pod "talker" not found`) {
			t.Errorf("got %v, want BadRequest for the missing previous run", err)
		}
	})

	t.Run("unknown container", func(t *testing.T) {
		_, err := logs(&corev1.PodLogOptions{Container: "nope"})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "container nope is not valid for pod talker") {
			t.Errorf("got %v, want BadRequest for an unknown container", err)
		}
	})

	t.Run("a container exits: its follower ends", func(t *testing.T) {
		n.createPod(t, namespace, "brief", imagebuild.BusyboxImage, func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Spec.Containers[0].Command = []string{"sh", "-c", "echo hello; sleep 2; echo bye"}
		})
		n.waitPod(t, namespace, "brief", 60*time.Second, "Running or done", func(p *corev1.Pod) bool {
			return p.Status.Phase != corev1.PodPending
		})
		streamCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		stream, err := n.client.CoreV1().Pods(namespace).GetLogs("brief", &corev1.PodLogOptions{Follow: true}).Stream(streamCtx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		out, err := io.ReadAll(stream)
		if err != nil {
			t.Fatalf("followed log did not end cleanly: %v (got %q)", err, out)
		}
		if string(out) != "hello\nbye\n" {
			t.Errorf("followed log %q", out)
		}
	})

	t.Run("exec over WebSocket", func(t *testing.T) {
		exec := func(t *testing.T, stdin string, command ...string) (string, string, error) {
			t.Helper()
			req := n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name("talker").SubResource("exec").
				VersionedParams(&corev1.PodExecOptions{Container: "main", Command: command, Stdin: stdin != "", Stdout: true, Stderr: true}, scheme.ParameterCodec)
			executor, err := remotecommand.NewWebSocketExecutor(n.config, "GET", req.URL().String())
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			opts := remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}
			if stdin != "" {
				opts.Stdin = strings.NewReader(stdin)
			}
			execCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err = executor.StreamWithContext(execCtx, opts)
			return stdout.String(), stderr.String(), err
		}
		stdout, stderr, err := exec(t, "", "sh", "-c", "echo out; echo err >&2; exit 3")
		var exitErr utilexec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 {
			t.Errorf("exit: %v, want exit code 3", err)
		}
		if stdout != "out\n" || stderr != "err\n" {
			t.Errorf("stdout %q stderr %q", stdout, stderr)
		}
		stdout, _, err = exec(t, "hello from stdin\n", "cat")
		if err != nil || stdout != "hello from stdin\n" {
			t.Errorf("cat: %q, %v", stdout, err)
		}
	})

	t.Run("exec with a terminal", func(t *testing.T) {
		req := n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name("talker").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Command: []string{"sh", "-c", "test -t 0 && test -t 1 && echo on a tty"}, Stdin: true, Stdout: true, TTY: true}, scheme.ParameterCodec)
		executor, err := remotecommand.NewWebSocketExecutor(n.config, "GET", req.URL().String())
		if err != nil {
			t.Fatal(err)
		}
		var stdout strings.Builder
		execCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		// stdin stays open, as an interactive user's does.
		stdinReader, stdinWriter := io.Pipe()
		defer stdinWriter.Close()
		err = executor.StreamWithContext(execCtx, remotecommand.StreamOptions{Stdin: stdinReader, Stdout: &stdout, Tty: true})
		if err != nil || stdout.String() != "on a tty\r\n" {
			t.Errorf("got %q, %v; want the line through a terminal", stdout.String(), err)
		}
	})
}
