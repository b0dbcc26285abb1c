package workload

import (
	"testing"
	"time"
)

func TestExpectations(t *testing.T) {
	now := time.Unix(1000, 0)
	e := NewExpectations()
	e.now = func() time.Time { return now }

	if !e.Satisfied("ns/rs") {
		t.Fatal("a key without expectations must be satisfied")
	}
	e.ExpectCreations("ns/rs", 2)
	e.ExpectDeletions("ns/rs", []string{"a", "b"})
	steps := []struct {
		observe   func()
		satisfied bool
	}{
		{func() { e.CreationObserved("ns/rs") }, false},
		{func() { e.CreationObserved("ns/rs") }, false},
		{func() { e.DeletionObserved("ns/rs", "a") }, false},
		{func() { e.DeletionObserved("ns/rs", "a") }, false},
		{func() { e.DeletionObserved("ns/rs", "b") }, true},
		{func() { e.CreationObserved("ns/rs") }, true},
	}
	for i, s := range steps {
		s.observe()
		if got := e.Satisfied("ns/rs"); got != s.satisfied {
			t.Fatalf("step %d: Satisfied = %v, want %v", i, got, s.satisfied)
		}
	}

	e.ExpectCreations("ns/other", 1)
	if e.Satisfied("ns/other") {
		t.Fatal("pending creation must not be satisfied")
	}
	now = now.Add(expectationsTTL + time.Second)
	if !e.Satisfied("ns/other") {
		t.Fatal("expired expectations must be satisfied")
	}
	e.Forget("ns/other")
	if !e.Satisfied("ns/other") {
		t.Fatal("forgotten key must be satisfied")
	}
}
