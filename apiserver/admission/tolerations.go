package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// defaultTolerationSeconds is kube-apiserver's
// --default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds.
const defaultTolerationSeconds = 300

// DefaultTolerationSeconds lets every pod tolerate a not-ready or
// unreachable node for five minutes before the taint manager evicts it,
// unless the pod already tolerates that taint.
type DefaultTolerationSeconds struct{}

// Admit implements Mutator.
func (DefaultTolerationSeconds) Admit(_ context.Context, a *Attributes) error {
	if !a.isPod() || (a.Operation != Create && a.Operation != Update) {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		if toleratesNoExecute(pod.Spec.Tolerations, key) {
			continue
		}
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key:               key,
			Operator:          corev1.TolerationOpExists,
			Effect:            corev1.TaintEffectNoExecute,
			TolerationSeconds: ptr.To[int64](defaultTolerationSeconds),
		})
	}
	return nil
}

// toleratesNoExecute: a toleration with an empty key or effect matches
// every key or effect.
func toleratesNoExecute(tolerations []corev1.Toleration, key string) bool {
	for _, t := range tolerations {
		if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
			return true
		}
	}
	return false
}

// TaintNodesByCondition registers every new node as not ready for
// scheduling: the node lifecycle controller lifts the not-ready NoSchedule
// taint once the node reports Ready, so no pod is scheduled to a node
// that has not yet said it can run one.
type TaintNodesByCondition struct{}

// Admit implements Mutator.
func (TaintNodesByCondition) Admit(_ context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" || a.Resource.Group != "" || a.Resource.Resource != "nodes" {
		return nil
	}
	node, ok := a.Object.(*corev1.Node)
	if !ok {
		return nil
	}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	for _, t := range node.Spec.Taints {
		if t.MatchTaint(&notReady) {
			return nil
		}
	}
	node.Spec.Taints = append(node.Spec.Taints, notReady)
	return nil
}
