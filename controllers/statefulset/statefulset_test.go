package statefulset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestOrdinalOf(t *testing.T) {
	cases := []struct {
		pod  string
		want int
	}{
		{"web-0", 0},
		{"web-12", 12},
		{"web-01", -1},
		{"web-x", -1},
		{"web", -1},
		{"webby-1", -1},
		{"web--1", -1},
	}
	for _, c := range cases {
		if got := ordinalOf("web", c.pod); got != c.want {
			t.Errorf("ordinalOf(web, %q) = %d, want %d", c.pod, got, c.want)
		}
	}
}

func TestNewPodIdentity(t *testing.T) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "nginx",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			},
		},
	}
	pod := newPod(sts, 2, "web-abc")
	if pod.Name != "web-2" || pod.GenerateName != "" || pod.Spec.Hostname != "web-2" || pod.Spec.Subdomain != "nginx" {
		t.Fatalf("identity = name %q generateName %q hostname %q subdomain %q", pod.Name, pod.GenerateName, pod.Spec.Hostname, pod.Spec.Subdomain)
	}
	want := map[string]string{"app": "web", podNameLabel: "web-2", podIndexLabel: "2", revisionLabel: "web-abc"}
	for k, v := range want {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if sts.Spec.Template.Labels[podNameLabel] != "" {
		t.Error("newPod changed the template's labels")
	}
}
