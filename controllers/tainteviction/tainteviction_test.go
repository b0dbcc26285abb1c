package tainteviction

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestEvictionTime(t *testing.T) {
	added := time.Unix(1000, 0)
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	other := corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}
	tolerate := func(key string, seconds *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
	}
	cases := []struct {
		name        string
		tolerations []corev1.Toleration
		taints      []corev1.Taint
		want        time.Time
		evict       bool
	}{
		{"untolerated taint evicts at once", nil, []corev1.Taint{unreachable}, time.Time{}, true},
		{"toleration without limit stays", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable}, time.Time{}, false},
		{"tolerationSeconds counts from the taint", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](5))}, []corev1.Taint{unreachable}, added.Add(5 * time.Second), true},
		{"shortest matching toleration wins", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](300)), tolerate("", ptr.To[int64](2))}, []corev1.Taint{unreachable}, added.Add(2 * time.Second), true},
		{"one untolerated taint among tolerated ones", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable, other}, time.Time{}, true},
		{"negative seconds mean now", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](-1))}, []corev1.Taint{unreachable}, added, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, evict := EvictionTime(c.tolerations, c.taints, func(corev1.Taint) time.Time { return added })
			if evict != c.evict || !got.Equal(c.want) {
				t.Fatalf("EvictionTime = %v, %v; want %v, %v", got, evict, c.want, c.evict)
			}
		})
	}
}
