package nodeagent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox":                               corev1.PullAlways,
		"busybox:latest":                        corev1.PullAlways,
		"busybox:1.36":                          corev1.PullIfNotPresent,
		"127.0.0.1:5000/test/echo":              corev1.PullAlways,
		"127.0.0.1:5000/test/echo:v1":           corev1.PullIfNotPresent,
		"busybox@sha256:" + sixtyFourHex:        corev1.PullIfNotPresent,
		"busybox:latest@sha256:" + sixtyFourHex: corev1.PullAlways,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("defaultPullPolicy(%q) = %s, want %s", image, got, want)
		}
	}
}

const sixtyFourHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
