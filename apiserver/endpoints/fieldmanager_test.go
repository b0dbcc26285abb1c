package endpoints

import (
	"strings"
	"testing"
)

func TestManagerName(t *testing.T) {
	cases := []struct {
		name, fieldManager, userAgent, want string
	}{
		{"parameter wins", "kubectl-edit", "kubectl/v1.37.2 (linux/amd64)", "kubectl-edit"},
		{"user agent product", "", "kubectl/v1.37.2 (linux/amd64) kubernetes/abc", "kubectl"},
		{"no slash", "", "curl", "curl"},
		{"unprintable dropped", "", "my\x00tool/1", "mytool"},
		{"empty", "", "", ""},
		{"truncated to 128 bytes", "", strings.Repeat("a", 200) + "/1", strings.Repeat("a", 128)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := managerName(tc.fieldManager, tc.userAgent); got != tc.want {
				t.Errorf("managerName(%q, %q) = %q, want %q", tc.fieldManager, tc.userAgent, got, tc.want)
			}
		})
	}
}
