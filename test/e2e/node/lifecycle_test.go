package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/images/imagebuild"
)

// hookScript is a CGI program for busybox httpd: each GET of
// /cgi-bin/hook?WHAT appends WHAT to the log next to it.
const hookScript = "#!/bin/sh\necho \"$QUERY_STRING\" >> /www/log\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n"

// webDir makes a host directory for a pod's web sidecar: the hook CGI
// program and the log every container of the pod appends to.
func webDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgi-bin", "hook"), []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readLog(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// withWebSidecar gives the pod a restartable init container serving dir
// on port 8080 (busybox httpd, with the hook CGI program), mounted at
// /www in every container, and an init container after it.
func withWebSidecar(dir string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "www", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}})
		mount := []corev1.VolumeMount{{Name: "www", MountPath: "/www"}}
		p.Spec.InitContainers = []corev1.Container{
			{
				Name:            "web",
				Image:           imagebuild.BusyboxImage,
				ImagePullPolicy: corev1.PullNever,
				RestartPolicy:   ptr.To(corev1.ContainerRestartPolicyAlways),
				Command:         []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
				VolumeMounts:    mount,
				StartupProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			},
			{
				Name:            "init",
				Image:           imagebuild.BusyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", "echo init >> /www/log"},
				VolumeMounts:    mount,
			},
		}
		p.Spec.Containers[0].VolumeMounts = mount
	}
}

func hookGet(what string) *corev1.LifecycleHandler {
	return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/cgi-bin/hook?" + what, Port: intstr.FromInt32(8080)}}
}

func hookExec(command string) *corev1.LifecycleHandler {
	return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", command}}}
}

func hasEvent(t *testing.T, n *node, namespace, pod, reason string) bool {
	t.Helper()
	events, err := n.client.CoreV1().Events(namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name == pod && e.Reason == reason {
			return true
		}
	}
	return false
}

func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func TestPodLifecycle(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	namespace := n.createNamespace(t, "lifecycle")
	never := func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }

	// Every pod starts at once; the subtests then wait for each.
	completingDir := webDir(t)
	n.createPod(t, namespace, "completing", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		withWebSidecar(completingDir)(p)
		p.Spec.Containers[0].Command = []string{"sh", "-c", "echo main >> /www/log; sleep 2"}
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: hookGet("poststart")}
	})
	stoppingDir := webDir(t)
	n.createPod(t, namespace, "stopping", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		withWebSidecar(stoppingDir)(p)
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
		p.Spec.Containers[0].Command = []string{"sh", "-c", "trap 'echo term >> /www/log; exit 0' TERM; while true; do sleep 0.2; done"}
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
			PostStart: hookExec("echo poststart >> /www/log"),
			PreStop:   hookGet("prestop"),
		}
	})
	n.createPod(t, namespace, "failing-exec-poststart", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		p.Spec.Containers[0].Command = []string{"sleep", "3600"}
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: hookExec("exit 3")}
	})
	n.createPod(t, namespace, "failing-http-poststart", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		p.Spec.Containers[0].Command = []string{"sleep", "3600"}
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: hookGet("nothing-listens")}
	})
	n.createPod(t, namespace, "deadline", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		p.Spec.ActiveDeadlineSeconds = ptr.To[int64](3)
		p.Spec.Containers[0].Command = []string{"sleep", "3600"}
	})
	n.createPod(t, namespace, "oom", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		// busybox tail keeps the last line of a file in memory; /dev/zero
		// has none.
		p.Spec.Containers[0].Command = []string{"tail", "/dev/zero"}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("24Mi")}
	})
	n.createPod(t, namespace, "exit-codes", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		p.Spec.Containers[0].Command = []string{"true"}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "failing", Image: imagebuild.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", "exit 7"},
		})
	})
	n.createPod(t, namespace, "crashing-sidecar", imagebuild.BusyboxImage, func(p *corev1.Pod) {
		never(p)
		p.Spec.InitContainers = []corev1.Container{{
			Name: "side", Image: imagebuild.BusyboxImage, ImagePullPolicy: corev1.PullNever,
			RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Command:       []string{"sh", "-c", "sleep 1; exit 1"},
		}}
		p.Spec.Containers[0].Command = []string{"sleep", "6"}
	})

	t.Run("sidecar serves the containers and stops after them; the pod completes", func(t *testing.T) {
		pod := n.waitPod(t, namespace, "completing", 60*time.Second, "finished", podFinished)
		if pod.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("phase %s, want Succeeded: %+v", pod.Status.Phase, pod.Status)
		}
		web := pod.Status.InitContainerStatuses[0]
		if web.State.Terminated == nil || web.RestartCount != 0 {
			t.Errorf("sidecar after completion: state %+v restarts %d, want terminated, never restarted", web.State, web.RestartCount)
		}
		log := readLog(t, completingDir)
		if len(log) != 3 || log[0] != "init" || !strings.Contains(strings.Join(log[1:], " "), "main") || !strings.Contains(strings.Join(log[1:], " "), "poststart") {
			t.Errorf("log %q, want init, then main and the poststart hook (over HTTP through the sidecar)", log)
		}
	})

	t.Run("deletion runs preStop before SIGTERM, then stops the sidecar", func(t *testing.T) {
		n.waitPod(t, namespace, "stopping", 60*time.Second, "Running and ready", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
		})
		if err := n.client.CoreV1().Pods(namespace).Delete(ctx, "stopping", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		n.waitGone(t, namespace, "stopping", 30*time.Second)
		if log := readLog(t, stoppingDir); strings.Join(log, " ") != "init poststart prestop term" {
			t.Errorf("log %q, want init poststart prestop term", log)
		}
	})

	t.Run("failing postStart kills the container", func(t *testing.T) {
		for _, name := range []string{"failing-exec-poststart", "failing-http-poststart"} {
			pod := n.waitPod(t, namespace, name, 60*time.Second, "Failed", podFinished)
			cs := pod.Status.ContainerStatuses[0]
			if pod.Status.Phase != corev1.PodFailed || cs.State.Terminated == nil || cs.State.Terminated.ExitCode == 0 {
				t.Errorf("%s: phase %s state %+v, want Failed with the container killed", name, pod.Status.Phase, cs.State)
			}
			waitFor(t, 10*time.Second, name+" FailedPostStartHook event", func() (bool, error) {
				return hasEvent(t, n, namespace, name, "FailedPostStartHook"), nil
			})
		}
	})

	t.Run("activeDeadlineSeconds fails the pod and kills its containers", func(t *testing.T) {
		pod := n.waitPod(t, namespace, "deadline", 60*time.Second, "Failed", podFinished)
		if pod.Status.Phase != corev1.PodFailed || pod.Status.Reason != "DeadlineExceeded" {
			t.Errorf("phase %s reason %q, want Failed DeadlineExceeded", pod.Status.Phase, pod.Status.Reason)
		}
		if cs := pod.Status.ContainerStatuses[0]; cs.State.Terminated == nil {
			t.Errorf("container state %+v, want terminated", cs.State)
		}
		if !hasEvent(t, n, namespace, "deadline", "DeadlineExceeded") {
			t.Error("no DeadlineExceeded event")
		}
	})

	t.Run("a container over its memory limit is OOMKilled", func(t *testing.T) {
		pod := n.waitPod(t, namespace, "oom", 60*time.Second, "finished", podFinished)
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if pod.Status.Phase != corev1.PodFailed || term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Errorf("phase %s terminated %+v, want Failed, OOMKilled with 137", pod.Status.Phase, term)
		}
	})

	t.Run("exit reasons Completed and Error", func(t *testing.T) {
		pod := n.waitPod(t, namespace, "exit-codes", 60*time.Second, "finished", podFinished)
		reasons := map[string]string{}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Terminated != nil {
				reasons[cs.Name] = cs.State.Terminated.Reason
			}
		}
		if pod.Status.Phase != corev1.PodFailed || reasons["main"] != "Completed" || reasons["failing"] != "Error" {
			t.Errorf("phase %s reasons %v, want Failed, main Completed, failing Error", pod.Status.Phase, reasons)
		}
	})

	t.Run("a crashing sidecar is restarted and does not block completion", func(t *testing.T) {
		pod := n.waitPod(t, namespace, "crashing-sidecar", 60*time.Second, "finished", podFinished)
		side := pod.Status.InitContainerStatuses[0]
		if pod.Status.Phase != corev1.PodSucceeded || side.RestartCount < 1 {
			t.Errorf("phase %s sidecar restarts %d, want Succeeded with the sidecar restarted", pod.Status.Phase, side.RestartCount)
		}
	})
}

func (n *node) waitGone(t *testing.T, namespace, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "pod "+name+" gone", func() (bool, error) {
		_, err := n.client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}
