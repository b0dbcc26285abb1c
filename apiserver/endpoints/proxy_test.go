package endpoints

import (
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParsePodLogOptions(t *testing.T) {
	cases := []struct {
		query     string
		wantQuery string
		wantErr   string
	}{
		{query: "", wantQuery: ""},
		{query: "container=c&follow=true&tailLines=3&timestamps=1", wantQuery: "follow=true&tailLines=3&timestamps=true"},
		{query: "previous=true&limitBytes=10&sinceSeconds=5", wantQuery: "limitBytes=10&previous=true&sinceSeconds=5"},
		{query: "sinceTime=2026-01-02T03:04:05Z", wantQuery: "sinceTime=2026-01-02T03%3A04%3A05Z"},
		{query: "tailLines=-1", wantErr: "tailLines: Invalid value: -1: must be greater than or equal to 0"},
		{query: "limitBytes=0", wantErr: "limitBytes: Invalid value: 0: must be greater than 0"},
		{query: "sinceSeconds=0", wantErr: "sinceSeconds: Invalid value: 0: must be greater than 0"},
		{query: "sinceSeconds=1&sinceTime=2026-01-02T03:04:05Z", wantErr: "at most one of `sinceTime` or `sinceSeconds` may be specified"},
		{query: "follow=maybe", wantErr: "follow: Invalid value"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			values, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := parsePodLogOptions(values, "web")
			if tc.wantErr != "" {
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want Invalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := opts.query().Encode(); got != tc.wantQuery {
				t.Errorf("node query %q, want %q", got, tc.wantQuery)
			}
		})
	}
}

func TestLogContainer(t *testing.T) {
	pod := func(containers, inits []string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		}
		for _, c := range inits {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: c})
		}
		return p
	}
	cases := []struct {
		name      string
		pod       *corev1.Pod
		requested string
		want      string
		wantErr   string
	}{
		{"only container by default", pod([]string{"app"}, nil), "", "app", ""},
		{"named container", pod([]string{"app", "side"}, nil), "side", "side", ""},
		{"init container", pod([]string{"app"}, []string{"setup"}), "setup", "setup", ""},
		{"several containers", pod([]string{"app", "side"}, nil), "", "", "a container name must be specified for pod web, choose one of: [app side]"},
		{"several with init", pod([]string{"app", "side"}, []string{"setup"}), "", "", "a container name must be specified for pod web, choose one of: [app side] or one of the init containers: [setup]"},
		{"unknown container", pod([]string{"app"}, nil), "nope", "", "container nope is not valid for pod web"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := logContainer(tc.pod, tc.requested)
			if tc.wantErr != "" {
				if !apierrors.IsBadRequest(err) || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want BadRequest %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
