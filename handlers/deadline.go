package handlers

import (
	"context"
	"sync"
	"time"
)

// withTimeout is context.WithTimeout for a sender's answer deadline, with
// its timer started only when something waits on Done. Almost every
// request is committed without waiting (the store takes its write at once
// and never gives up on it once queued), and a timer armed per request is not
// free: arming one that is due before any other can wake a thread asleep
// in the network poller. Without it an urgent Bubblehouse hook costs 2-4%
// less CPU on SQLite (two builds loaded side by side); PostgreSQL's driver
// asks for Done on every statement, so there the timer starts as before,
// as it does when a context is derived from this one. Err and Deadline
// answer from the clock without a timer.
func withTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c := &lazyDeadline{parent: parent, at: time.Now().Add(d)}
	return c, c.release
}

// lazyDeadline is a context that ends at a deadline, when its parent ends
// or when it is released, whichever comes first; see withTimeout.
type lazyDeadline struct {
	parent context.Context
	at     time.Time

	mu     sync.Mutex
	timed  context.Context    // the timer-backed context, once Done was asked for
	cancel context.CancelFunc // cancels timed
	ended  error              // why it ended, once reported or released
}

// Deadline reports the earlier of the parent's deadline and this one.
func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if p, ok := c.parent.Deadline(); ok && p.Before(c.at) {
		return p, true
	}
	return c.at, true
}

// Done starts the timer on first use.
func (c *lazyDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.parent, c.at)
		if c.ended != nil {
			c.cancel()
		}
	}
	return c.timed.Done()
}

// Err reports why the context ended, or nil while it lives. Once it has
// reported a reason, it reports the same one.
func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended != nil {
		return c.ended
	}
	if c.timed != nil {
		c.ended = c.timed.Err()
	} else {
		c.ended = c.cause()
	}
	return c.ended
}

// cause is why the context has ended by now without a timer, or nil.
func (c *lazyDeadline) cause() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.at) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value is the parent's, and once the timer has started the timed
// context's: a context derived from this one then finds the timed one as
// its cancellable parent and joins it, rather than start a goroutine that
// waits on Done.
func (c *lazyDeadline) Value(key any) any {
	c.mu.Lock()
	timed := c.timed
	c.mu.Unlock()
	if timed != nil {
		return timed.Value(key)
	}
	return c.parent.Value(key)
}

// release ends the context and stops its timer, if one was started.
func (c *lazyDeadline) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
		return
	}
	if c.ended == nil {
		if c.ended = c.cause(); c.ended == nil {
			c.ended = context.Canceled
		}
	}
}
