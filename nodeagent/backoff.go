package nodeagent

import "time"

// Restart back-off, as kubelet's: a container that exits is restarted at
// once the first time, then after 10 s, doubling up to 5 min; one that ran
// for 10 min starts over.
const (
	initialBackoff = 10 * time.Second
	maxBackoff     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

// restartBackoff tracks one container's restart delays.
type restartBackoff struct {
	// next is the delay to apply at the next exit; zero means restart at
	// once.
	next time.Duration
	// last is the delay applied at the latest exit, for messages.
	last time.Duration
}

// current is the delay the container is serving now.
func (b *restartBackoff) current() time.Duration { return b.last }

// exited records an exit of a container that ran from started to finished
// and returns when it may start again.
func (b *restartBackoff) exited(started, finished time.Time) time.Time {
	if !started.IsZero() && finished.Sub(started) >= backoffReset {
		b.next = 0
	}
	delay := b.next
	b.last = delay
	switch {
	case b.next == 0:
		b.next = initialBackoff
	default:
		b.next = min(2*b.next, maxBackoff)
	}
	return finished.Add(delay)
}
