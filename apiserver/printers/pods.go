package printers

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeLostReason is the pod status reason the node lifecycle controller sets
// on pods of a node that stopped reporting.
const nodeLostReason = "NodeLost"

func podColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		ageColumn(),
		{Name: "IP", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["podIP"]},
		{Name: "Node", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["nodeName"]},
		{Name: "Nominated Node", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"]},
		{Name: "Readiness Gates", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["readinessGates"]},
	}
}

func podRow(pod *corev1.Pod, now time.Time) (metav1.TableRow, error) {
	summary := summarizePod(pod)

	restarts := strconv.Itoa(summary.restarts)
	if summary.restarts != 0 && !summary.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", summary.restarts, age(metav1.NewTime(summary.lastRestart), now))
	}

	podIP := pod.Status.PodIP
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}

	row := metav1.TableRow{Cells: []any{
		pod.Name,
		fmt.Sprintf("%d/%d", summary.ready, summary.total),
		summary.reason,
		restarts,
		age(pod.CreationTimestamp, now),
		orNone(podIP),
		orNone(pod.Spec.NodeName),
		orNone(pod.Status.NominatedNodeName),
		readinessGatesCell(pod),
	}}
	// Finished pods carry a Completed row condition, as kube-apiserver's do;
	// clients may use it to tell them apart or hide them.
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodSucceeded), Message: "The pod has completed successfully."}}
	case corev1.PodFailed:
		row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodFailed), Message: "The pod failed."}}
	}
	return row, nil
}

// podSummary is what the READY, STATUS and RESTARTS cells say about a pod.
type podSummary struct {
	ready, total int
	reason       string
	restarts     int
	lastRestart  time.Time
}

// summarizePod reproduces kubectl's well-known pod status: the phase, unless
// an init container is still working (Init:1/3, Init:CrashLoopBackOff), a
// container is waiting or has terminated (CrashLoopBackOff, Completed,
// ExitCode:1), or the pod is being deleted (Terminating, or Unknown when its
// node is lost).
func summarizePod(pod *corev1.Pod) podSummary {
	s := podSummary{total: len(pod.Spec.Containers), reason: string(pod.Status.Phase)}
	if pod.Status.Reason != "" {
		s.reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			s.reason = corev1.PodReasonSchedulingGated
		}
	}

	// Sidecars (restartable init containers) run alongside the main
	// containers, so they count as containers of the pod.
	sidecars := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			s.total++
		}
	}

	var sidecarRestarts int
	var lastSidecarRestart time.Time
	initializing := false
	for i, status := range pod.Status.InitContainerStatuses {
		s.restarts += int(status.RestartCount)
		s.lastRestart = laterRestart(s.lastRestart, status)
		sidecar := sidecars[status.Name]
		if sidecar {
			sidecarRestarts += int(status.RestartCount)
			lastSidecarRestart = laterRestart(lastSidecarRestart, status)
		}

		if status.State.Terminated != nil && status.State.Terminated.ExitCode == 0 {
			continue
		}
		if sidecar && status.Started != nil && *status.Started {
			if status.Ready {
				s.ready++
			}
			continue
		}
		initializing = true
		switch {
		case status.State.Terminated != nil:
			s.reason = "Init:" + terminationReason(status.State.Terminated)
		case status.State.Waiting != nil && status.State.Waiting.Reason != "" && status.State.Waiting.Reason != "PodInitializing":
			s.reason = "Init:" + status.State.Waiting.Reason
		default:
			s.reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		break
	}

	if !initializing || podConditionTrue(pod, corev1.PodInitialized) {
		// Once initialised, only sidecar restarts still matter among init
		// containers.
		s.restarts = sidecarRestarts
		s.lastRestart = lastSidecarRestart
		hasRunning := false
		// The first container in spec order decides the reason, so walk
		// backwards and let earlier containers overwrite later ones.
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			status := pod.Status.ContainerStatuses[i]
			s.restarts += int(status.RestartCount)
			s.lastRestart = laterRestart(s.lastRestart, status)
			switch {
			case status.State.Waiting != nil && status.State.Waiting.Reason != "":
				s.reason = status.State.Waiting.Reason
			case status.State.Terminated != nil:
				s.reason = terminationReason(status.State.Terminated)
			case status.Ready && status.State.Running != nil:
				hasRunning = true
				s.ready++
			}
		}
		if s.reason == "Completed" && hasRunning {
			if podConditionTrue(pod, corev1.PodReady) {
				s.reason = "Running"
			} else {
				s.reason = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil {
		switch {
		case pod.Status.Reason == nodeLostReason:
			s.reason = "Unknown"
		case pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed:
			s.reason = "Terminating"
		}
	}
	return s
}

// terminationReason is the terminated state's reason, or its signal or exit
// code when the runtime gave none.
func terminationReason(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	default:
		return fmt.Sprintf("ExitCode:%d", t.ExitCode)
	}
}

func laterRestart(last time.Time, status corev1.ContainerStatus) time.Time {
	if t := status.LastTerminationState.Terminated; t != nil && last.Before(t.FinishedAt.Time) {
		return t.FinishedAt.Time
	}
	return last
}

// podConditionTrue reports whether the first condition of the given type is
// True.
func podConditionTrue(pod *corev1.Pod, conditionType corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == conditionType {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readinessGatesCell says how many of the pod's readiness gates are met.
func readinessGatesCell(pod *corev1.Pod) string {
	if len(pod.Spec.ReadinessGates) == 0 {
		return none
	}
	met := 0
	for _, gate := range pod.Spec.ReadinessGates {
		for _, c := range pod.Status.Conditions {
			if c.Type == gate.ConditionType {
				if c.Status == corev1.ConditionTrue {
					met++
				}
				break
			}
		}
	}
	return fmt.Sprintf("%d/%d", met, len(pod.Spec.ReadinessGates))
}
