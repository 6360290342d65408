package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func testFaults(t *testing.T, b Backend) {
	fault := func(e *env, sender hooks.Sender, remaining int, expires time.Time) *hooks.Fault {
		t.Helper()
		f := &hooks.Fault{Sender: sender, Name: "SendEvent1", Kind: hooks.FaultStatus, Status: 503,
			Remaining: remaining, Percent: 100, ExpiresAt: expires, CreatedAt: e.now()}
		if err := e.s.AddFault(t.Context(), f); err != nil {
			t.Fatalf("add fault: %v", err)
		}
		if f.ID == 0 {
			t.Fatalf("add fault: ID not set")
		}
		return f
	}
	inForce := func(e *env) []int64 {
		t.Helper()
		fs, err := e.s.Faults(t.Context(), e.now())
		if err != nil {
			t.Fatalf("faults: %v", err)
		}
		var ids []int64
		for _, f := range fs {
			ids = append(ids, f.ID)
		}
		return ids
	}

	t.Run("AddFault", func(t *testing.T) {
		e := newEnv(t, b)
		f := &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultDelay, Delay: 1500 * time.Millisecond,
			Remaining: 3, Percent: 50, ExpiresAt: e.now().Add(time.Hour), CreatedAt: e.now()}
		if err := e.s.AddFault(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		fs, err := e.s.Faults(t.Context(), e.now())
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 {
			t.Fatalf("got %d faults, want 1", len(fs))
		}
		got := fs[0]
		if got.ID != f.ID || got.Sender != f.Sender || got.Name != "" || got.Kind != f.Kind || got.Delay != f.Delay ||
			got.Remaining != 3 || got.Percent != 50 || !got.ExpiresAt.Equal(f.ExpiresAt) || !got.CreatedAt.Equal(f.CreatedAt) {
			t.Fatalf("got %+v, want %+v", got, f)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		// An acceptance is never injected: it is refused before it is kept.
		e := newEnv(t, b)
		f := &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: 200, Remaining: -1, Percent: 100}
		if err := e.s.AddFault(t.Context(), f); hooks.ErrorCode(err) != hooks.EINVALID {
			t.Fatalf("got %v, want EINVALID", err)
		}
		if got := inForce(e); len(got) != 0 {
			t.Fatalf("faults: got %v, want none", got)
		}
	})

	t.Run("InForce", func(t *testing.T) {
		// Used up and expired faults are not in force; the others are,
		// oldest first.
		e := newEnv(t, b)
		unlimited := fault(e, hooks.SenderSvix, -1, time.Time{})
		fault(e, hooks.SenderSvix, 0, time.Time{})
		fault(e, hooks.SenderSvix, -1, e.now().Add(-time.Hour))
		until := fault(e, hooks.SenderBubblehouse, 2, e.now().Add(time.Hour))
		if got, want := fmt.Sprint(inForce(e)), fmt.Sprint([]int64{unlimited.ID, until.ID}); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})

	t.Run("UseFault", func(t *testing.T) {
		// A fault with a count is used up after that many uses.
		e := newEnv(t, b)
		f := fault(e, hooks.SenderSvix, 2, time.Time{})
		for i, want := range []bool{true, true, false} {
			if ok, err := e.s.UseFault(t.Context(), f.ID); err != nil || ok != want {
				t.Fatalf("use %d: got %v, %v; want %v, nil", i+1, ok, err, want)
			}
		}
		if got := inForce(e); len(got) != 0 {
			t.Fatalf("faults: got %v, want none (used up)", got)
		}
		if ok, err := e.s.UseFault(t.Context(), 12345); err != nil || ok {
			t.Fatalf("use an unknown fault: got %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("ClearFaults", func(t *testing.T) {
		e := newEnv(t, b)
		fault(e, hooks.SenderSvix, -1, time.Time{})
		fault(e, hooks.SenderSvix, 0, time.Time{}) // used up: cleared too
		bh := fault(e, hooks.SenderBubblehouse, -1, time.Time{})
		if n, err := e.s.ClearFaults(t.Context(), hooks.SenderSvix); err != nil || n != 2 {
			t.Fatalf("clear svix: got %d, %v; want 2, nil", n, err)
		}
		if got, want := fmt.Sprint(inForce(e)), fmt.Sprint([]int64{bh.ID}); got != want {
			t.Fatalf("after clearing svix: got %s, want %s", got, want)
		}
		fault(e, hooks.SenderBloomreach, -1, time.Time{})
		if n, err := e.s.ClearFaults(t.Context(), ""); err != nil || n != 2 {
			t.Fatalf("clear all: got %d, %v; want 2, nil", n, err)
		}
		if got := inForce(e); len(got) != 0 {
			t.Fatalf("after clearing all: got %v, want none", got)
		}
	})

	t.Run("DeleteFault", func(t *testing.T) {
		e := newEnv(t, b)
		a := fault(e, hooks.SenderSvix, -1, time.Time{})
		bb := fault(e, hooks.SenderSvix, -1, time.Time{})
		if ok, err := e.s.DeleteFault(t.Context(), a.ID); err != nil || !ok {
			t.Fatalf("delete: got %v, %v; want true, nil", ok, err)
		}
		if ok, err := e.s.DeleteFault(t.Context(), a.ID); err != nil || ok {
			t.Fatalf("delete again: got %v, %v; want false, nil", ok, err)
		}
		if got := inForce(e); !slices.Equal(got, []int64{bb.ID}) {
			t.Fatalf("faults: got %v, want [%d]", got, bb.ID)
		}
	})
}
