package manager

import "testing"

func TestEnabled(t *testing.T) {
	cases := []struct {
		list        []string
		name        string
		onByDefault bool
		want        bool
	}{
		{[]string{"*"}, "deployment", true, true},
		{[]string{"*"}, "bootstrapsigner", false, false},
		{[]string{"*", "bootstrapsigner"}, "bootstrapsigner", false, true},
		{[]string{"*", "-job"}, "job", true, false},
		{[]string{"deployment"}, "replicaset", true, false},
		{[]string{"deployment"}, "deployment", true, true},
		{nil, "deployment", true, false},
	}
	for _, c := range cases {
		if got := Enabled(c.list, c.name, c.onByDefault); got != c.want {
			t.Errorf("Enabled(%v, %q, %v) = %v, want %v", c.list, c.name, c.onByDefault, got, c.want)
		}
	}
}

func TestValidateEnableList(t *testing.T) {
	known := ControllerNames()
	if err := validateEnableList([]string{"*", "-deployment", "-job", "namespace"}, known); err != nil {
		t.Errorf("valid list rejected: %v", err)
	}
	if err := validateEnableList([]string{"*", "deploymnet"}, known); err == nil {
		t.Error("misspelt controller accepted")
	}
}
