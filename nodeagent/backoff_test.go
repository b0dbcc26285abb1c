package nodeagent

import (
	"testing"
	"time"
)

func TestRestartBackoff(t *testing.T) {
	start := time.Unix(1000, 0)
	var b restartBackoff
	steps := []struct {
		ran       time.Duration
		wantDelay time.Duration
	}{
		{time.Second, 0},
		{time.Second, 10 * time.Second},
		{time.Second, 20 * time.Second},
		{time.Second, 40 * time.Second},
		{time.Second, 80 * time.Second},
		{time.Second, 160 * time.Second},
		{time.Second, 5 * time.Minute},
		{time.Second, 5 * time.Minute},
		{10 * time.Minute, 0},
		{time.Second, 10 * time.Second},
	}
	for i, step := range steps {
		finished := start.Add(step.ran)
		if got := b.exited(start, finished).Sub(finished); got != step.wantDelay {
			t.Errorf("exit %d: delay %s, want %s", i+1, got, step.wantDelay)
		}
		start = finished.Add(step.wantDelay)
	}
}
