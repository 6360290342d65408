package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// When the database drops every connection (a restart), writes fail as
// "unavailable", which each sender's handler answers with a status the
// sender retries, never as a success; the store reconnects by itself, and
// its listener too.
func TestDB_Reconnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	// The test's own application name, so that only its connections go.
	app := s.name
	base := s.url
	s.url += "&application_name=" + app
	db := s.open(t)
	s.url = base
	woken := make(chan struct{}, 100)
	if err := db.Listen(ctx, func(int) { woken <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, db, newReceipt(time.Now(), "before", `{}`))
	<-woken

	s.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)

	var failed int
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		r := newReceipt(time.Now(), fmt.Sprintf("after-%d", i), `{}`)
		_, err := db.SaveReceipt(ctx, r)
		if err == nil {
			break
		}
		failed++
		if got, want := hooks.ErrorCode(err), hooks.EUNAVAILABLE; got != want {
			t.Fatalf("save while reconnecting: got %q (%v), want %q", got, err, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no save succeeded within 30s of the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d saves failed while reconnecting", failed)
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping after reconnecting: %v", err)
	}
	// The listener is back: it announced the reconnection (notifications
	// may have been missed), and hears new jobs again.
	drain := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case <-woken:
			got = true
		case <-drain:
			t.Fatal("the listener did not come back")
		}
	}
	for len(woken) > 0 {
		<-woken
	}
	mustCommit(t, db, newReceipt(time.Now(), "later", `{}`))
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after the listener reconnected")
	}
}
