package version

import "testing"

func TestKubernetesFromAPIModule(t *testing.T) {
	tests := map[string]string{
		"v0.37.2":        "v1.37.2",
		"v0.38.0-beta.1": "v1.38.0-beta.1",
		"(devel)":        "(devel)",
	}
	for in, want := range tests {
		if got := KubernetesFromAPIModule(in); got != want {
			t.Errorf("KubernetesFromAPIModule(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestString(t *testing.T) {
	got := Info{Tower: "v0.1.0", Kubernetes: "v1.37.2"}.String()
	if want := "Tower v0.1.0 (Kubernetes v1.37.2 API)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
