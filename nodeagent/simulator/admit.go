package simulator

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"tower.dev/tower/nodeagent/admission"
)

// podNodeNameField indexes the pod cache by node, so that admitting a pod
// reads only its node's pods.
const podNodeNameField = "spec.nodeName"

// nodeAdmission is what one simulated node knows of the pods it admitted.
type nodeAdmission struct {
	// mu orders the node's admission decisions.
	mu sync.Mutex
	// admitted are the pods admitted and not yet seen finished or gone,
	// covering those whose Running status the cache does not show yet.
	admitted map[types.NamespacedName]*corev1.Pod
}

func newNodeAdmissions(names []string) map[string]*nodeAdmission {
	out := make(map[string]*nodeAdmission, len(names))
	for _, name := range names {
		out[name] = &nodeAdmission{admitted: map[types.NamespacedName]*corev1.Pod{}}
	}
	return out
}

// forget drops a pod that finished or is gone from the admitted pods of
// its node, or of every node when which is not known.
func (s *Simulator) forget(node string, pod types.NamespacedName) {
	for name, na := range s.admissions {
		if node != "" && name != node {
			continue
		}
		na.mu.Lock()
		delete(na.admitted, pod)
		na.mu.Unlock()
	}
}

// admit decides about a pod of node that is not Running yet, as the node
// agent does (shared logic in nodeagent/admission): against the pods the
// node runs, Running ones from the cache and just admitted ones from
// memory. A pod admitted before is admitted again without a check.
func (s *Simulator) admit(ctx context.Context, reader client.Reader, nodeName string, pod *corev1.Pod) (admission.Result, error) {
	na := s.admissions[nodeName]
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	na.mu.Lock()
	defer na.mu.Unlock()
	if known, ok := na.admitted[key]; ok && known.UID == pod.UID {
		return admission.Result{Admit: true}, nil
	}
	node := &corev1.Node{}
	if err := reader.Get(ctx, types.NamespacedName{Name: nodeName}, node); err != nil {
		return admission.Result{}, fmt.Errorf("reading node %s: %w", nodeName, err)
	}
	list := &corev1.PodList{}
	if err := reader.List(ctx, list, client.MatchingFields{podNodeNameField: nodeName}); err != nil {
		return admission.Result{}, fmt.Errorf("listing pods of node %s: %w", nodeName, err)
	}
	running := map[types.UID]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.UID != pod.UID && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running[p.UID] = p
		}
	}
	for _, p := range na.admitted {
		running[p.UID] = p
	}
	others := make([]*corev1.Pod, 0, len(running))
	for _, p := range running {
		others = append(others, p)
	}
	result := admission.Admit(node, pod, others, false)
	if result.Admit {
		na.admitted[key] = pod
	}
	return result, nil
}

// reject reports a pod its node refused: a warning event and the Failed
// status kubelet gives it.
func (s *Simulator) reject(ctx context.Context, node string, pod *corev1.Pod, result admission.Result) error {
	if recorder, ok := s.recorders[node]; ok {
		recorder.Event(pod, corev1.EventTypeWarning, result.Reason, result.Message)
	}
	updated := pod.DeepCopy()
	updated.Status = admission.RejectedStatus(pod, result, metav1.Now())
	if _, err := s.writer(node).CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reporting rejection of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// nodeRecorders gives every simulated node an event recorder that posts
// as that node's kubelet.
func nodeRecorders(broadcaster record.EventBroadcaster, names []string) map[string]record.EventRecorder {
	out := make(map[string]record.EventRecorder, len(names))
	for _, name := range names {
		out[name] = broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: "kubelet", Host: name})
	}
	return out
}
