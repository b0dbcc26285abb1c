package node_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"tower.dev/tower/nodeagent"
	"tower.dev/tower/test/images/imagebuild"
)

// echoReadiness makes the echo server's pod ready once it answers.
func echoReadiness() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready
}

// containersOf lists the pod's containers in containerd, by ID.
func (n *node) containersOf(t *testing.T, uid string) map[string]bool {
	t.Helper()
	list, err := n.runtime.List(t.Context(), "tower.dev/pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, c := range list {
		if c.Labels["tower.dev/pod-uid"] == uid {
			found[c.ID] = c.Running
		}
	}
	return found
}

func (n *node) netnsCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.rootDir, "network", "netns"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

func TestHostPort(t *testing.T) {
	n := startNode(t)
	namespace := n.createNamespace(t, "hostport")
	n.createPod(t, namespace, "published", imagebuild.EchoImage, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
		p.Spec.Containers[0].ReadinessProbe = echoReadiness()
	})
	pod := n.waitPod(t, namespace, "published", 60*time.Second, "Running", runningAndReady)
	// The node's address, in the namespace that stands for its host
	// network.
	addr := net.JoinHostPort(pod.Status.HostIP, "18080")
	if body := n.httpGetInHostNetwork(t, addr); body != "published" {
		t.Errorf("GET %s answered %q, want the pod name", addr, body)
	}
}

// TestAgentRestart stops the agent, changes the world behind its back and
// starts it again: running containers are adopted untouched, and what
// belongs to a pod deleted meanwhile is removed with its network.
func TestAgentRestart(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	namespace := n.createNamespace(t, "restart")
	ready := func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = echoReadiness() }
	n.createPod(t, namespace, "steady", imagebuild.EchoImage, ready)
	n.createPod(t, namespace, "doomed", imagebuild.EchoImage, ready)
	steady := n.waitPod(t, namespace, "steady", 60*time.Second, "Running", runningAndReady)
	doomed := n.waitPod(t, namespace, "doomed", 60*time.Second, "Running", runningAndReady)
	before := steady.Status.ContainerStatuses[0]
	if got := n.netnsCount(t); got != 2 {
		t.Fatalf("%d network namespaces for 2 pods", got)
	}

	n.stopAgent(t)
	// Deleted while the agent is down: only a forced deletion removes a
	// pod whose node does not answer.
	if err := n.client.CoreV1().Pods(namespace).Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if running := n.containersOf(t, string(doomed.UID)); len(running) != 1 {
		t.Fatalf("containers of the deleted pod while the agent is down: %v", running)
	}
	n.startAgent()

	waitFor(t, 30*time.Second, "the deleted pod's containers removed", func() (bool, error) {
		return len(n.containersOf(t, string(doomed.UID))) == 0, nil
	})
	waitFor(t, 10*time.Second, "the deleted pod's network namespace removed", func() (bool, error) {
		return n.netnsCount(t) == 1, nil
	})

	// A few status rounds of the new agent.
	time.Sleep(3 * time.Second)
	after, err := n.client.CoreV1().Pods(namespace).Get(ctx, "steady", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := after.Status.ContainerStatuses[0]
	if cs.ContainerID != before.ContainerID || cs.RestartCount != 0 || cs.State.Running == nil ||
		!cs.State.Running.StartedAt.Equal(&before.State.Running.StartedAt) || !runningAndReady(after) {
		t.Errorf("after the agent restarted: %+v, want the same running, ready container as before: %+v", cs, before)
	}
	if running := n.containersOf(t, string(steady.UID)); len(running) != 1 || !running[before.ContainerID[len("containerd://"):]] {
		t.Errorf("containers of the steady pod: %v, want only %s, running", running, before.ContainerID)
	}
	if body := n.httpGetInHostNetwork(t, net.JoinHostPort(after.Status.PodIP, "8080")); body != "steady" {
		t.Errorf("the adopted pod answers %q", body)
	}
}

func writeManifest(t *testing.T, dir, file, manifest string) {
	t.Helper()
	// Written aside and renamed, so the agent never reads half a file.
	tmp := filepath.Join(dir, "."+file)
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
}

const staticWeb = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, version: "%s"}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ` + imagebuild.EchoImage + `
    imagePullPolicy: Never
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
`

const staticSleeper = `apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ` + imagebuild.BusyboxImage + `
    imagePullPolicy: Never
    command: [sleep, "3600"]
`

// runningContainerOf is the ID of the running container of the pod named
// podName in containerd, or "".
func (n *node) runningContainerOf(t *testing.T, podName string) (id, podUID string) {
	t.Helper()
	list, err := n.runtime.List(t.Context(), "tower.dev/pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Running && c.Labels["tower.dev/pod-name"] == podName {
			return c.ID, c.Labels["tower.dev/pod-uid"]
		}
	}
	return "", ""
}

// TestStaticPods runs pods from a manifests directory: with the API server
// they show as mirror pods that come back when deleted and follow edits;
// without it they still run.
func TestStaticPods(t *testing.T) {
	manifests := t.TempDir()
	n := startNodeWith(t, nodeSetup{agent: func(c *nodeagent.Config) { c.ManifestsDir = manifests }})
	ctx := t.Context()
	apiConfig := n.agentConfig.RESTConfig
	t.Cleanup(func() {
		// Static pods outlive any API deletion: their files go first.
		entries, _ := os.ReadDir(manifests)
		for _, e := range entries {
			_ = os.Remove(filepath.Join(manifests, e.Name()))
		}
		if n.agentConfig.RESTConfig != apiConfig {
			n.stopAgent(t)
			n.agentConfig.RESTConfig = apiConfig
			n.startAgent()
		}
		waitFor(t, 30*time.Second, "static pods stopped", func() (bool, error) { return n.netnsCount(t) == 0, nil })
	})
	pods := n.client.CoreV1().Pods(metav1.NamespaceDefault)
	const mirrorName = "web-" + nodeName

	writeManifest(t, manifests, "web.yaml", fmt.Sprintf(staticWeb, "1"))
	mirror := n.waitPod(t, metav1.NamespaceDefault, mirrorName, 60*time.Second, "mirror pod Running and ready", func(p *corev1.Pod) bool {
		return p.Annotations["kubernetes.io/config.mirror"] != "" && runningAndReady(p)
	})
	if refs := mirror.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Node" || refs[0].Name != nodeName {
		t.Errorf("mirror pod owners %+v, want the Node", refs)
	}
	if mirror.Annotations["kubernetes.io/config.source"] != "file" || mirror.Labels["app"] != "web" {
		t.Errorf("mirror pod metadata %+v", mirror.ObjectMeta)
	}
	containerID, staticUID := n.runningContainerOf(t, mirrorName)
	if containerID == "" || staticUID != mirror.Annotations["kubernetes.io/config.mirror"] {
		t.Fatalf("static pod container %q of pod UID %q, mirror says %q", containerID, staticUID, mirror.Annotations["kubernetes.io/config.mirror"])
	}

	t.Run("deleting the mirror pod recreates it, the pod keeps running", func(t *testing.T) {
		if err := pods.Delete(ctx, mirrorName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		n.waitPod(t, metav1.NamespaceDefault, mirrorName, 30*time.Second, "a new mirror pod", func(p *corev1.Pod) bool {
			return p.UID != mirror.UID && p.DeletionTimestamp == nil && runningAndReady(p)
		})
		if id, _ := n.runningContainerOf(t, mirrorName); id != containerID {
			t.Errorf("container %q after the mirror pod was deleted, want %q untouched", id, containerID)
		}
	})

	t.Run("editing the manifest replaces the pod", func(t *testing.T) {
		writeManifest(t, manifests, "web.yaml", fmt.Sprintf(staticWeb, "2"))
		edited := n.waitPod(t, metav1.NamespaceDefault, mirrorName, 60*time.Second, "the edited pod's mirror", func(p *corev1.Pod) bool {
			return p.Labels["version"] == "2" && runningAndReady(p)
		})
		if len(n.containersOf(t, staticUID)) != 0 {
			t.Error("containers of the pod before the edit are still there")
		}
		if _, uid := n.runningContainerOf(t, mirrorName); uid != edited.Annotations["kubernetes.io/config.mirror"] {
			t.Errorf("running container belongs to pod UID %q, the edited mirror says %q", uid, edited.Annotations["kubernetes.io/config.mirror"])
		}
	})

	t.Run("static pods run without an API server and show once it answers", func(t *testing.T) {
		webID, _ := n.runningContainerOf(t, mirrorName)
		n.stopAgent(t)
		unreachable := rest.CopyConfig(apiConfig)
		unreachable.Host = "https://127.0.0.1:1"
		n.agentConfig.RESTConfig = unreachable
		n.startAgent()
		writeManifest(t, manifests, "sleeper.yaml", staticSleeper)
		waitFor(t, 60*time.Second, "the new static pod running without an API server", func() (bool, error) {
			id, _ := n.runningContainerOf(t, "sleeper-"+nodeName)
			return id != "", nil
		})
		if id, _ := n.runningContainerOf(t, mirrorName); id != webID {
			t.Errorf("web container %q after the agent restarted without an API server, want %q", id, webID)
		}
		n.stopAgent(t)
		n.agentConfig.RESTConfig = apiConfig
		n.startAgent()
		n.waitPod(t, metav1.NamespaceDefault, "sleeper-"+nodeName, 60*time.Second, "mirror pod Running", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning
		})
	})

	t.Run("removing the manifest stops the pod and removes its mirror", func(t *testing.T) {
		if err := os.Remove(filepath.Join(manifests, "sleeper.yaml")); err != nil {
			t.Fatal(err)
		}
		n.waitGone(t, metav1.NamespaceDefault, "sleeper-"+nodeName, 30*time.Second)
		waitFor(t, 30*time.Second, "the removed static pod's container gone", func() (bool, error) {
			id, _ := n.runningContainerOf(t, "sleeper-"+nodeName)
			return id == "", nil
		})
	})
}
