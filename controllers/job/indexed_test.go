package job

import "testing"

func TestCompletedIndexesRoundTrip(t *testing.T) {
	cases := []struct {
		in, want    string
		completions int
	}{
		{"", "", 5},
		{"0", "0", 5},
		{"0-2,4", "0-2,4", 5},
		{"3,1,2", "1-3", 5},
		{"0-9", "0-4", 5},
		{"x,1", "1", 5},
	}
	for _, c := range cases {
		if got := formatIndexes(parseIndexes(c.in, c.completions)); got != c.want {
			t.Errorf("%q with %d completions: got %q, want %q", c.in, c.completions, got, c.want)
		}
	}
}
