package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func TestDB_Listen(t *testing.T) {
	t.Parallel()
	// Jobs queued, or made available again, on one replica wake another's
	// listener; requests recorded there are announced with their IDs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSchema(t)
	a, b := s.open(t), s.open(t)
	woken := make(chan int, 100)
	if err := b.Listen(ctx, func(p int) { woken <- p }); err != nil {
		t.Fatal(err)
	}
	recorded := make(chan int64, 100)
	if err := b.ListenRequests(ctx, func(id int64) { recorded <- id }); err != nil {
		t.Fatal(err)
	}
	// Another schema's jobs wake nobody here.
	other := openDB(t)
	mustQueue(t, other, "elsewhere", hooks.UrgencyRegular, t0)

	wait := func(what string) int {
		t.Helper()
		select {
		case p := <-woken:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up after %s", what)
		}
		return 0
	}
	r := newReceipt(t0, "req-1", `{}`)
	mustCommit(t, a, r)
	// The wake-up says how pressing the job is, so that an urgent job
	// passes regular ones a replica already holds.
	if got, want := wait("a job was queued"), r.Job.Priority; got != want {
		t.Fatalf("priority announced: got %d, want %d", got, want)
	}
	u := newReceipt(t0, "req-urgent", `{}`)
	u.Request.Urgency = hooks.UrgencyUrgent
	u.Job = hooks.NewJob(u.Request, t0)
	mustCommit(t, a, u)
	if got, want := wait("an urgent job was queued"), hooks.UrgencyUrgent.Priority(); got != want {
		t.Fatalf("priority announced: got %d, want %d", got, want)
	}
	select {
	case id := <-recorded:
		if id != r.Request.ID {
			t.Fatalf("request announced: got %d, want %d", id, r.Request.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not announced")
	}
	<-recorded // the urgent one's
	select {
	case <-woken:
		t.Fatal("woken twice for one job, or by another schema's")
	case <-time.After(200 * time.Millisecond):
	}
	// A refused request is announced; it wakes no worker.
	refused := newReceipt(t0, "", `{}`).Request
	refused.Status = 401
	if err := a.Record(ctx, refused); err != nil {
		t.Fatal(err)
	}
	if id := <-recorded; id != refused.ID {
		t.Fatalf("refusal announced: got %d, want %d", id, refused.ID)
	}
	j := mustClaim(t, a, time.Now(), time.Minute, 1)[0]
	if err := a.ReleaseJobs(ctx, []*hooks.Job{j}); err != nil {
		t.Fatal(err)
	}
	wait("a job was released")
	// A listener whose context ends stops; Close stops the others.
	cancel()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDB_TryLead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	a, b := s.open(t), s.open(t)
	if ok, err := a.TryLead(ctx, "purge", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a takes the lease: got %v, %v; want true", ok, err)
	}
	if ok, err := b.TryLead(ctx, "purge", "b", time.Minute); err != nil || ok {
		t.Fatalf("b while a holds it: got %v, %v; want false", ok, err)
	}
	if ok, err := b.TryLead(ctx, "rescue", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b takes another lease: got %v, %v; want true", ok, err)
	}
	if ok, err := a.TryLead(ctx, "purge", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a renews: got %v, %v; want true", ok, err)
	}
	// a stops renewing: once the lease has expired by the database's
	// clock, b takes it.
	s.exec(t, `UPDATE leases SET expires_at = now() - interval '1 microsecond' WHERE name = 'purge'`)
	if ok, err := b.TryLead(ctx, "purge", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b after a's lease expired: got %v, %v; want true", ok, err)
	}
	if ok, err := a.TryLead(ctx, "purge", "a", time.Minute); err != nil || ok {
		t.Fatalf("a after b took over: got %v, %v; want false", ok, err)
	}
	// Resigning hands it over at once; resigning what one does not hold
	// does nothing.
	if err := a.Resign(ctx, "purge", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.TryLead(ctx, "purge", "a", time.Minute); ok {
		t.Fatal("a took the lease after resigning what it did not hold")
	}
	if err := b.Resign(ctx, "purge", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.TryLead(ctx, "purge", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a after b resigned: got %v, %v; want true", ok, err)
	}
}

func TestDB_ListenJobChanges(t *testing.T) {
	t.Parallel()
	// Each attempt recorded on one replica is announced to another with
	// its job's id, and so is a retry of given jobs; a retry of every dead
	// job, which may touch any number, says only that jobs changed (0).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSchema(t)
	a, b := s.open(t), s.open(t)
	changed := make(chan int64, 100)
	if err := b.ListenJobChanges(ctx, func(id int64) { changed <- id }); err != nil {
		t.Fatal(err)
	}
	next := func(what string) int64 {
		t.Helper()
		select {
		case id := <-changed:
			return id
		case <-time.After(10 * time.Second):
			t.Fatalf("no job change announced after %s", what)
		}
		return -1
	}
	mustCommit(t, a, newReceipt(t0, "req-1", `{}`))
	mustCommit(t, a, newReceipt(t0, "req-2", `{}`))
	select {
	case id := <-changed:
		t.Fatalf("job %d announced as changed when it was only queued", id)
	case <-time.After(200 * time.Millisecond):
	}
	now := time.Now()
	jobs := mustClaim(t, a, now, time.Minute, 2)
	for _, j := range jobs {
		j.AttemptStarted, j.AttemptDuration = now, time.Millisecond
	}
	if err := a.CompleteJobs(ctx, jobs[:1], now); err != nil {
		t.Fatal(err)
	}
	if got, want := next("a completion"), jobs[0].ID; got != want {
		t.Fatalf("completion announced: got job %d, want %d", got, want)
	}
	if err := a.FailJob(ctx, jobs[1], now, now, true, "boom"); err != nil {
		t.Fatal(err)
	}
	if got, want := next("a failure"), jobs[1].ID; got != want {
		t.Fatalf("failure announced: got job %d, want %d", got, want)
	}
	// A retry of given jobs names them.
	if n, err := a.RetryJobs(ctx, []int64{jobs[1].ID}, now); err != nil || n != 1 {
		t.Fatalf("RetryJobs: got %d, %v; want 1", n, err)
	}
	if got, want := next("a retry of one job"), jobs[1].ID; got != want {
		t.Fatalf("retry announced: got job %d, want %d", got, want)
	}
	again := mustClaim(t, a, now, time.Minute, 1)
	again[0].AttemptStarted = now
	if err := a.FailJob(ctx, again[0], now, now, true, "boom again"); err != nil {
		t.Fatal(err)
	}
	next("the second failure")
	if n, err := a.RetryDead(ctx, now.Add(-time.Hour), now); err != nil || n != 1 {
		t.Fatalf("RetryDead: got %d, %v; want 1", n, err)
	}
	if got := next("a retry"); got != 0 {
		t.Fatalf("retry announced: got job %d, want 0 (jobs changed)", got)
	}
}
