package nodeagent

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/nodeagent/admission"
)

// Pods bound to the node are admitted before they run, as kubelet admits
// them: one at a time against the pods already admitted, the first list
// of pods oldest first, so that which pods a full node refuses does not
// depend on the order the watch delivered them in.

// needsAdmission is false for pods that will not run anyway: finished or
// being deleted.
func needsAdmission(pod *corev1.Pod) bool {
	phase := pod.Status.Phase
	return phase != corev1.PodSucceeded && phase != corev1.PodFailed && pod.DeletionTimestamp == nil
}

// admitPending admits the pods of the first list, oldest first, and lets
// later pods be admitted as they arrive. The node must be known by then.
func (a *Agent) admitPending(ctx context.Context) {
	a.admitMu.Lock()
	defer a.admitMu.Unlock()
	a.mu.Lock()
	pending := slices.Collect(maps.Values(a.pendingPods))
	a.pendingPods = nil
	a.admitting = true
	a.mu.Unlock()
	slices.SortFunc(pending, admission.ByCreation)
	for _, pod := range pending {
		a.admitAndStart(ctx, pod)
	}
}

// admitAndStart decides about a pod the agent has no worker for and
// starts one: to run it, or to report its rejection. The caller holds
// admitMu, so that decisions follow one another.
func (a *Agent) admitAndStart(ctx context.Context, pod *corev1.Pod) {
	var rejection *admission.Result
	if needsAdmission(pod) && !isStaticPod(pod) {
		if result := a.admit(ctx, pod); !result.Admit {
			logr.FromContextOrDiscard(ctx).Info("pod rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", result.Reason, "message", result.Message)
			rejection = &result
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.workers[pod.UID]; ok {
		w.update(pod, false)
		return
	}
	a.startWorker(ctx, pod, rejection)
}

// admit checks pod against the node and the pods admitted before it.
// Static pods are not checked: they are the node's own (the control
// plane) and count against what is left for the others. When only the
// node's labels stand in the way, the Node is read again, as kubelet
// does, in case the watch is behind a label change.
func (a *Agent) admit(ctx context.Context, pod *corev1.Pod) admission.Result {
	admitted := a.admittedPods()
	node := a.node()
	if node == nil {
		return admission.Result{Admit: true}
	}
	result := admission.Admit(node, pod, admitted, false)
	if result.Reason != admission.ReasonNodeAffinity {
		return result
	}
	fresh, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "reading the node again to admit a pod")
		return result
	}
	return admission.Admit(fresh, pod, admitted, false)
}

// admittedPods are the pods the agent runs that have not finished.
func (a *Agent) admittedPods() []*corev1.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(a.workers))
	for _, w := range a.workers {
		if w.rejection != nil {
			continue
		}
		pod, removed := w.snapshot()
		if removed || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		pods = append(pods, pod)
	}
	return pods
}

// node is the agent's Node as last seen by its watch, nil before.
func (a *Agent) node() *corev1.Node {
	a.mu.Lock()
	store := a.nodeStore
	a.mu.Unlock()
	if store == nil {
		return nil
	}
	obj, ok, err := store.GetByKey(a.cfg.NodeName)
	if err != nil || !ok {
		return nil
	}
	node, _ := obj.(*corev1.Node)
	return node
}

// reject ends a pod the node refused before anything of it ran: what a
// previous agent may have started is stopped, a warning event is posted
// and the pod is reported Failed with kubelet's reason and message.
func (w *podWorker) reject(ctx context.Context, pod *corev1.Pod) error {
	if err := w.stopAll(ctx, pod, gracePeriod(pod)); err != nil {
		return err
	}
	if err := w.teardownNetwork(ctx, pod); err != nil {
		return err
	}
	w.agent.recorder.Event(pod, corev1.EventTypeWarning, w.rejection.Reason, w.rejection.Message)
	status := admission.RejectedStatus(pod, *w.rejection, metaTime(time.Now()))
	w.final = &status
	w.terminated = true
	return w.writeStatus(ctx, pod, status)
}
