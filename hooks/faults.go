package hooks

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault kinds.
const (
	FaultStatus = "status" // answer with Status instead of processing
	FaultDelay  = "delay"  // wait Delay, then process as usual
	FaultDrop   = "drop"   // close the connection without an answer
)

// Fault is an answer injected on purpose, so that QA can watch how a
// sender retries. Injected answers are recorded as injected.
type Fault struct {
	ID        int64         `json:"id"`
	Sender    Sender        `json:"sender"`
	Name      string        `json:"name,omitempty"` // "" matches all
	Kind      string        `json:"kind"`
	Status    int           `json:"status,omitempty"`
	Delay     time.Duration `json:"delay_ns,omitempty"`
	Remaining int           `json:"remaining"` // -1: no limit
	Percent   int           `json:"percent"`
	ExpiresAt time.Time     `json:"expires_at,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

// Validate checks a fault before it is stored.
func (f *Fault) Validate() error {
	switch f.Sender {
	case SenderBubblehouse, SenderBloomreach, SenderSvix:
	default:
		return Errorf(EINVALID, "sender %q is not bubblehouse, bloomreach or svix", f.Sender)
	}
	switch f.Kind {
	case FaultStatus:
		if f.acceptance() || f.Status > 599 {
			return Errorf(EINVALID, "status %d: want a 3xx, 4xx or 5xx (an injected answer is never an acceptance)", f.Status)
		}
	case FaultDelay:
		if f.Delay <= 0 || f.Delay > 10*time.Minute {
			return Errorf(EINVALID, "delay %s is not between 0 and 10m", f.Delay)
		}
	case FaultDrop:
	default:
		return Errorf(EINVALID, "one of --status, --delay or --drop is required")
	}
	if f.Percent < 1 || f.Percent > 100 {
		return Errorf(EINVALID, "percent %d is not between 1 and 100", f.Percent)
	}
	return nil
}

// acceptance reports whether the fault would answer below 300: a 1xx is no
// final answer, and a 2xx would tell the sender its request was accepted
// when nothing was processed. Such a fault is never injected.
func (f *Fault) acceptance() bool { return f.Kind == FaultStatus && f.Status < 300 }

// Matches reports whether the fault applies to a request now; names
// match a hook, webhook, Svix endpoint or Svix event type.
func (f *Fault) Matches(s Sender, names []string, now time.Time) bool {
	if f.acceptance() {
		return false // stored before Validate refused it
	}
	if f.Sender != s || f.Remaining == 0 || (!f.ExpiresAt.IsZero() && now.After(f.ExpiresAt)) {
		return false
	}
	if f.Name != "" {
		found := false
		for _, n := range names {
			found = found || n == f.Name
		}
		if !found {
			return false
		}
	}
	return f.Percent >= 100 || rand.IntN(100) < f.Percent
}

// String describes the fault for notes and listings.
func (f *Fault) String() string {
	what := map[string]string{FaultStatus: fmt.Sprintf("answer %d", f.Status), FaultDelay: "delay " + f.Delay.String(), FaultDrop: "drop the connection"}[f.Kind]
	return fmt.Sprintf("fault %d: %s", f.ID, what)
}
