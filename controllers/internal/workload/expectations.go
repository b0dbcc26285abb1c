package workload

import (
	"sync"
	"time"
)

// expectationsTTL bounds how long a controller waits for its cache to show
// a write it made: after that it assumes the event was lost and acts again.
const expectationsTTL = 5 * time.Minute

// Expectations records, per controller key, the creations and deletions a
// controller has asked for and not yet seen in its cache. Until they are
// seen, the controller must not compute a new diff, or it would create or
// delete the same pods twice.
type Expectations struct {
	mu      sync.Mutex
	pending map[string]*expectation
	now     func() time.Time
}

type expectation struct {
	creations int
	deletions map[string]bool
	since     time.Time
}

// NewExpectations returns an empty set of expectations.
func NewExpectations() *Expectations {
	return &Expectations{pending: map[string]*expectation{}, now: time.Now}
}

// ExpectCreations records that key is about to create n objects.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp := e.entry(key)
	exp.creations += n
}

// ExpectDeletions records that key is about to delete the named objects.
func (e *Expectations) ExpectDeletions(key string, names []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp := e.entry(key)
	for _, name := range names {
		exp.deletions[name] = true
	}
}

// CreationObserved records that the cache showed one creation of key's, or
// that one announced creation failed and will never show.
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exp, ok := e.pending[key]; ok && exp.creations > 0 {
		exp.creations--
	}
}

// DeletionObserved records that the cache showed the named object going
// away (or getting a deletionTimestamp), or that deleting it failed.
func (e *Expectations) DeletionObserved(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exp, ok := e.pending[key]; ok {
		delete(exp.deletions, name)
	}
}

// Satisfied is true when key may act on its cache: nothing it asked for is
// still unseen, or what is unseen has been waited for too long.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.pending[key]
	if !ok {
		return true
	}
	if exp.creations <= 0 && len(exp.deletions) == 0 {
		return true
	}
	return e.now().Sub(exp.since) > expectationsTTL
}

// Forget drops key's expectations, when its object is gone or when it is
// about to set new ones.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, key)
}

func (e *Expectations) entry(key string) *expectation {
	exp, ok := e.pending[key]
	if !ok || (exp.creations <= 0 && len(exp.deletions) == 0) {
		exp = &expectation{deletions: map[string]bool{}, since: e.now()}
		e.pending[key] = exp
	}
	return exp
}
