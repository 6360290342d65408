package admin

import (
	"sync"
	"testing"
	"time"
)

// TestHub_SlowSubscriber: a subscriber that does not read loses what does
// not fit in its buffer and is told how much; publishing never waits for
// it, and the others get everything.
func TestHub_SlowSubscriber(t *testing.T) {
	h := NewHub()
	if h.Active() {
		t.Fatal("a hub with no subscriber is active")
	}
	slow, fast := h.Subscribe(4), h.Subscribe(100)
	var got int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range fast.C {
			got++
		}
	}()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			h.Publish(Event{Kind: "request", Data: []byte("{}")})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if n := slow.Dropped(); n != 6 {
		t.Fatalf("slow subscriber: %d dropped, want 6", n)
	}
	if n := slow.Dropped(); n != 0 {
		t.Fatalf("dropped count after reading it: %d, want 0", n)
	}
	if len(slow.C) != 4 {
		t.Fatalf("slow subscriber's buffer: %d events, want 4", len(slow.C))
	}
	slow.Close()
	h.Close()
	wg.Wait()
	if got != 10 {
		t.Fatalf("fast subscriber: got %d events, want 10", got)
	}
	// After Close: subscriptions start closed, publishing is a no-op.
	late := h.Subscribe(1)
	if _, ok := <-late.C; ok {
		t.Fatal("a subscription on a closed hub is open")
	}
	late.Close()
	h.Publish(Event{Kind: "job"})
	if h.Active() {
		t.Fatal("a closed hub is active")
	}
}

// TestNewest: a flush keeps the newest events of each kind, in order, and
// counts the others.
func TestNewest(t *testing.T) {
	var batch []Event
	for i, k := range []string{"request", "job", "request", "request", "job", "request"} {
		batch = append(batch, Event{Kind: k, Data: []byte{byte('0' + i)}})
	}
	got, skipped := newest(batch, 2)
	var s string
	for _, ev := range got {
		s += ev.Kind[:1] + string(ev.Data)
	}
	if s != "j1r3j4r5" || skipped != 2 {
		t.Fatalf("got %s, %d skipped; want j1r3j4r5, 2 skipped", s, skipped)
	}
	if got, skipped := newest(batch, 10); len(got) != 6 || skipped != 0 {
		t.Fatalf("under the cap: got %d events, %d skipped", len(got), skipped)
	}
}
