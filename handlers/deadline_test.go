package handlers

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

type ctxKey struct{}

// closed reports whether ch is closed within wait.
func closed(ch <-chan struct{}, wait time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(wait):
		return false
	}
}

func TestWithTimeout_NoTimerUntilDone(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	ctx, cancel := withTimeout(parent, time.Hour)
	c := ctx.(*lazyDeadline)
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("Deadline = %v, %v; want about an hour from now", d, ok)
	}
	if v := ctx.Value(ctxKey{}); v != "v" {
		t.Fatalf("Value = %v, want the parent's", v)
	}
	if c.timed != nil {
		t.Fatal("a timer was started without anyone waiting on Done")
	}
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after release = %v, want Canceled", err)
	}
	if !closed(ctx.Done(), time.Second) {
		t.Fatal("Done asked for after release is not closed")
	}
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after release and Done = %v, want Canceled", err)
	}
}

func TestWithTimeout_DeadlineWithoutTimer(t *testing.T) {
	ctx, cancel := withTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(5 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v, want DeadlineExceeded", err)
	}
	if ctx.(*lazyDeadline).timed != nil {
		t.Fatal("Err started a timer")
	}
	if !closed(ctx.Done(), time.Second) {
		t.Fatal("Done asked for past the deadline is not closed")
	}
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after a late release = %v, want DeadlineExceeded", err)
	}
}

func TestWithTimeout_DoneClosesAtDeadline(t *testing.T) {
	ctx, cancel := withTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := ctx.Done()
	if closed(done, 0) {
		t.Fatal("Done closed before the deadline")
	}
	if !closed(done, 5*time.Second) {
		t.Fatal("Done not closed at the deadline")
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
}

func TestWithTimeout_Parent(t *testing.T) {
	t.Run("EndsBeforeDone", func(t *testing.T) {
		parent, pcancel := context.WithCancel(context.Background())
		ctx, cancel := withTimeout(parent, time.Hour)
		defer cancel()
		pcancel()
		if err := ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want the parent's Canceled", err)
		}
		if !closed(ctx.Done(), time.Second) {
			t.Fatal("Done not closed when the parent ended")
		}
	})
	t.Run("EndsWhileWaiting", func(t *testing.T) {
		parent, pcancel := context.WithCancel(context.Background())
		ctx, cancel := withTimeout(parent, time.Hour)
		defer cancel()
		done := ctx.Done()
		pcancel()
		if !closed(done, 5*time.Second) {
			t.Fatal("Done not closed when the parent ended")
		}
	})
	t.Run("EarlierDeadline", func(t *testing.T) {
		parent, pcancel := context.WithTimeout(context.Background(), time.Minute)
		defer pcancel()
		want, _ := parent.Deadline()
		ctx, cancel := withTimeout(parent, time.Hour)
		defer cancel()
		if got, ok := ctx.Deadline(); !ok || !got.Equal(want) {
			t.Fatalf("Deadline = %v, %v; want the parent's %v", got, ok, want)
		}
	})
}

func TestWithTimeout_ReleaseStopsTimer(t *testing.T) {
	ctx, cancel := withTimeout(context.Background(), time.Hour)
	done := ctx.Done()
	cancel()
	if !closed(done, time.Second) {
		t.Fatal("Done not closed on release")
	}
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want Canceled", err)
	}
}

func TestWithTimeout_ErrStaysTheSame(t *testing.T) {
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	ctx, cancel := withTimeout(parent, time.Millisecond)
	defer cancel()
	time.Sleep(5 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v, want DeadlineExceeded", err)
	}
	pcancel()
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the parent ended too = %v, want DeadlineExceeded still", err)
	}
	if !closed(ctx.Done(), time.Second) {
		t.Fatal("Done asked for after the end is not closed")
	}
}

// A context derived from one whose timer has started joins the timed
// context, as it would a context.WithTimeout, instead of a goroutine of its
// own waiting on Done.
func TestWithTimeout_DerivedJoinWithoutGoroutines(t *testing.T) {
	ctx, cancel := withTimeout(context.Background(), time.Hour)
	before := runtime.NumGoroutine()
	var children []context.Context
	for range 100 {
		child, ccancel := context.WithCancel(ctx)
		defer ccancel()
		children = append(children, child)
	}
	if n := runtime.NumGoroutine() - before; n >= 50 {
		t.Fatalf("100 derived contexts started %d goroutines, want none", n)
	}
	cancel()
	for i, child := range children {
		if !closed(child.Done(), time.Second) {
			t.Fatalf("child %d not done after release", i)
		}
	}
}
