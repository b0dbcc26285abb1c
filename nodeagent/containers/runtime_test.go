package containers

import "testing"

func TestOOMKillCount(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    int64
	}{
		{"v1 killed", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2},
		{"v1 never", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", 0},
		{"v2 killed", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n", 1},
		{"no counter", "oom_kill_disable 0\nunder_oom 0\n", 0},
	}
	for _, tc := range cases {
		if got := oomKillCount(tc.content); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}
