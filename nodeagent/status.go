package nodeagent

import (
	"time"

	"github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerIDPrefix is the runtime scheme of containerStatuses[].containerID.
const containerIDPrefix = "containerd://"

// metaTime drops what the API's second-precision timestamps cannot hold,
// so that a status compares equal to itself after a round trip.
func metaTime(t time.Time) metav1.Time {
	return metav1.NewTime(t.Truncate(time.Second))
}

// imageID is the image's name pinned to its manifest digest, as kubelet
// reports imageID.
func imageID(image client.Image) string {
	return image.Name() + "@" + image.Target().Digest.String()
}

func statusEqual(a, b corev1.PodStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// status is the pod's status as this node sees it.
func (w *podWorker) status(pod *corev1.Pod) corev1.PodStatus {
	status := corev1.PodStatus{
		QOSClass:           pod.Status.QOSClass,
		StartTime:          w.startTime,
		ObservedGeneration: pod.Generation,
	}
	if ip := w.agent.nodeIP.String(); ip != "" {
		status.HostIP = ip
		status.HostIPs = []corev1.HostIP{{IP: ip}}
	}
	if w.podIP != "" {
		status.PodIP = w.podIP
		status.PodIPs = []corev1.PodIP{{IP: w.podIP}}
	}
	status.InitContainerStatuses = w.containerStatuses(pod.Spec.InitContainers, pod.Status.InitContainerStatuses)
	status.ContainerStatuses = w.containerStatuses(pod.Spec.Containers, pod.Status.ContainerStatuses)
	initialized := w.initialized || allInitialized(status.InitContainerStatuses)
	status.Phase = podPhase(pod.Spec.RestartPolicy, initialized, status.ContainerStatuses)
	if w.failure != nil {
		status.Phase = corev1.PodFailed
		status.Reason = w.failure.reason
		status.Message = w.failure.message
	}

	containersReady := len(status.ContainerStatuses) > 0
	for _, cs := range status.ContainerStatuses {
		containersReady = containersReady && cs.Ready
	}
	// Sidecars serve the containers: the pod is ready only with them.
	for i, cs := range status.InitContainerStatuses {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			containersReady = containersReady && cs.Ready
		}
	}
	// A pod whose containers all finished for good is not ready, whatever
	// they were.
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		containersReady = false
	}
	conditions := []corev1.PodCondition{
		podCondition(corev1.PodReadyToStartContainers, w.sandbox != nil, ""),
		podCondition(corev1.PodInitialized, initialized, "ContainersNotInitialized"),
		podCondition(corev1.PodReady, containersReady, "ContainersNotReady"),
		podCondition(corev1.ContainersReady, containersReady, "ContainersNotReady"),
		podCondition(corev1.PodScheduled, true, ""),
	}
	if status.Phase == corev1.PodSucceeded && !initialized {
		conditions[1].Status = corev1.ConditionTrue
		conditions[1].Reason = "PodCompleted"
	}
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		conditions[2].Reason = "PodCompleted"
		conditions[3].Reason = "PodCompleted"
	}
	now := metaTime(time.Now())
	for i := range conditions {
		conditions[i].LastTransitionTime = now
		conditions[i].ObservedGeneration = pod.Generation
		for _, old := range pod.Status.Conditions {
			if old.Type == conditions[i].Type && old.Status == conditions[i].Status {
				conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	for _, old := range pod.Status.Conditions {
		if !hasCondition(conditions, old.Type) {
			conditions = append(conditions, old)
		}
	}
	status.Conditions = conditions
	return status
}

func podConditionTrue(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasCondition(conditions []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range conditions {
		if c.Type == t {
			return true
		}
	}
	return false
}

func podCondition(t corev1.PodConditionType, ok bool, falseReason string) corev1.PodCondition {
	if ok {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
	}
	return corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: falseReason}
}

func (w *podWorker) containerStatuses(specs []corev1.Container, previous []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(specs) == 0 {
		return nil
	}
	statuses := make([]corev1.ContainerStatus, 0, len(specs))
	for _, c := range specs {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		rec, ok := w.records[c.Name]
		if !ok {
			cs.State = waiting("ContainerCreating", "")
			statuses = append(statuses, cs)
			continue
		}
		cs.State = *rec.state.DeepCopy()
		if cs.State == (corev1.ContainerState{}) {
			cs.State = waiting("ContainerCreating", "")
		}
		cs.LastTerminationState = *rec.lastState.DeepCopy()
		cs.RestartCount = rec.restartCount
		cs.ImageID = rec.imageID
		if rec.id != "" && rec.everStarted {
			cs.ContainerID = containerIDPrefix + rec.id
		}
		running := cs.State.Running != nil
		started := running && (c.StartupProbe == nil || rec.startup.ok)
		cs.Started = &started
		cs.Ready = started && (c.ReadinessProbe == nil || rec.readiness.ok)
		statuses = append(statuses, cs)
	}
	return statuses
}

func allInitialized(statuses []corev1.ContainerStatus) bool {
	for _, cs := range statuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return true
}

// podPhase follows kubelet: Pending until every container has run (or
// init has not finished), Running while any runs or will be restarted,
// Succeeded or Failed once all have stopped for good.
func podPhase(policy corev1.RestartPolicy, initialized bool, statuses []corev1.ContainerStatus) corev1.PodPhase {
	if !initialized {
		return corev1.PodPending
	}
	var running, waitingFirst, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waitingFirst++
		}
	}
	switch {
	case waitingFirst > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped == 0:
		return corev1.PodPending
	case policy == corev1.RestartPolicyAlways:
		return corev1.PodRunning
	case stopped == succeeded:
		return corev1.PodSucceeded
	case policy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default:
		return corev1.PodRunning
	}
}
