package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// closedURL is a URL that refuses connections: a port that was just
// listened on and closed.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/down"
}

// allSenders configures the three senders to forward to url: Bubblehouse's
// CreateDiscount4, Svix endpoint bloom (every event) and Bloomreach
// webhook sms.
func allSenders(url string) func(*config.Config) {
	return func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(url)}
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{
			"bloom": {Secrets: []string{svixSecret}, Events: map[string]*config.EventRouteConfig{"*": {Action: forwardTo(url)}}},
		}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": {Auth: brBasic(), Action: forwardTo(url)}}
	}
}

// sendAll sends one request to each sender's route, with request IDs
// made from tag, and returns the answers by request ID.
func sendAll(t *testing.T, m *Main, tag string) map[string]answer {
	t.Helper()
	got := map[string]answer{}
	bh := "bh-" + tag
	got[bh] = send(t, m, call{hook: "CreateDiscount4", body: `{"code":"` + bh + `"}`, urgency: "urgent", id: bh})
	sv := "msg_" + tag
	got[sv] = sendSvix(t, m, "bloom", signed{id: sv, body: `{"type":"copy.test","data":{"tag":"` + sv + `"}}`})
	br := "br-" + tag
	got[br] = brSend(t, m, brReq{name: "sms", body: `{"phone":"+15550100","text":"` + br + `"}`, id: br})
	for id, a := range got {
		if a.status/100 != 2 {
			t.Fatalf("%s: answered %d %s, want 2xx", id, a.status, a.body)
		}
	}
	return got
}

// stopMain closes m now (its cleanup then does nothing).
func stopMain(t *testing.T, m *Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// "hookbay store copy" moves an SQLite data file to PostgreSQL without
// losing history or pending work: records, keys and jobs arrive with their
// ids; a repeat sent to hookbay on PostgreSQL gets the first answer without
// running again; the jobs still to deliver are delivered, the dead ones are
// not; a target that holds anything is refused unless --force.
func TestStoreCopy_SQLiteToPostgres(t *testing.T) {
	schema := pgtest.New(t)
	data := t.TempDir()
	down := closedURL(t)
	onSQLite := func(c *config.Config) {
		c.Server.DataDir = data
		allSenders(down)(c)
	}

	// Dead jobs: one attempt allowed, and the downstream is down.
	m := MustRunMain(t, func(c *config.Config) {
		onSQLite(c)
		c.Queue.MaxAttempts = 1
	})
	first := sendAll(t, m, "dead")
	waitUntil(t, 10*time.Second, "three dead jobs", func() bool {
		return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDead})) == 3
	})
	stopMain(t, m)
	// Pending jobs: they failed once and wait for their retry.
	m = MustRunMain(t, func(c *config.Config) {
		onSQLite(c)
		c.Queue.MaxAttempts = 20
		c.Queue.Backoff.Initial = config.Duration(2 * time.Second)
	})
	pending := sendAll(t, m, "pending")
	waitUntil(t, 10*time.Second, "three jobs waiting for a retry", func() bool {
		n := 0
		for _, j := range jobs(t, m, hooks.JobFilter{State: hooks.JobAvailable}) {
			if j.Attempts == 1 {
				n++
			}
		}
		return n == 3
	})
	fault := &hooks.Fault{Sender: hooks.SenderSvix, Name: "nothing-matches", Kind: hooks.FaultStatus, Status: 503, Remaining: -1,
		Percent: 100, CreatedAt: time.Now()}
	if err := m.DB.AddFault(context.Background(), fault); err != nil {
		t.Fatal(err)
	}
	wantReqs := requests(t, m, hooks.RequestFilter{Limit: 1000})
	wantJobs := jobs(t, m, hooks.JobFilter{Limit: 1000})
	stopMain(t, m)

	copyTo := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := (&StoreCommand{Stdout: &out, Stderr: &errOut}).Run(context.Background(),
			append([]string{"copy", "--from", data, "--to", schema.URL()}, args...))
		return out.String() + errOut.String(), err
	}
	out, err := copyTo()
	if err != nil {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	for _, want := range []string{fmt.Sprintf("%8d request records", len(wantReqs)), fmt.Sprintf("%8d jobs", len(wantJobs)),
		"       6 idempotency keys", "       1 faults"} {
		if !strings.Contains(out, want) {
			t.Errorf("store copy printed:\n%s\nwant a line %q", out, want)
		}
	}
	if out, err := copyTo(); err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second copy: got %v\n%s\nwant a refusal naming --force", err, out)
	}
	if out, err := copyTo("--force"); err != nil {
		t.Fatalf("store copy --force: %v\n%s", err, out)
	}

	// What the copy holds, read back through the PostgreSQL store.
	pg := schema.Open(t)
	ctx := context.Background()
	gotReqs, err := pg.FindRequests(ctx, hooks.RequestFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotReqs) != len(wantReqs) {
		t.Fatalf("requests: got %d, want %d", len(gotReqs), len(wantReqs))
	}
	for i, w := range wantReqs {
		g := gotReqs[i]
		if g.ID != w.ID || g.RequestID != w.RequestID || g.Status != w.Status || !bytes.Equal(g.Body, w.Body) ||
			!bytes.Equal(g.Response, w.Response) || !g.ReceivedAt.Equal(w.ReceivedAt) || g.Header.Get("Content-Type") != w.Header.Get("Content-Type") {
			t.Errorf("request %d: got %+v, want %+v", w.ID, g, w)
		}
	}
	gotJobs, err := pg.FindJobs(ctx, hooks.JobFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotJobs) != len(wantJobs) {
		t.Fatalf("jobs: got %d, want %d", len(gotJobs), len(wantJobs))
	}
	for i, w := range wantJobs {
		g := gotJobs[i]
		if g.ID != w.ID || g.RequestRef != w.RequestRef || g.State != w.State || g.Attempts != w.Attempts ||
			!g.ScheduledAt.Equal(w.ScheduledAt) || g.LastError != w.LastError {
			t.Errorf("job %d: got %+v, want %+v", w.ID, g, w)
		}
	}
	for id, a := range first {
		sender := map[byte]hooks.Sender{'b': hooks.SenderBubblehouse, 'm': hooks.SenderSvix}[id[0]]
		if strings.HasPrefix(id, "br-") {
			sender = hooks.SenderBloomreach
		}
		key := id
		if sender == hooks.SenderSvix {
			key = "bloom/" + id
		}
		if sender == hooks.SenderBloomreach {
			key = "sms/id:" + id
		}
		e, err := pg.LookupKey(ctx, sender, key)
		if err != nil || e.State != hooks.EntryDone || !bytes.Equal(e.Response.Body, a.body) {
			t.Errorf("key %s of %s: got %+v, %v; want done with the answer %s", key, sender, e, err, a.body)
		}
	}
	if faults, err := pg.Faults(ctx, time.Now()); err != nil || len(faults) != 1 || faults[0].ID != fault.ID {
		t.Errorf("faults: got %+v, %v; want fault %d", faults, err, fault.ID)
	}

	// hookbay on PostgreSQL, with the downstream up.
	d := newDownstream(t)
	m = MustRunMain(t, func(c *config.Config) {
		allSenders(d.URL)(c)
		c.Store.Postgres = &config.PostgresConfig{URL: schema.URL()}
	})
	for id, want := range first {
		var a answer
		switch {
		case strings.HasPrefix(id, "bh-"):
			a = send(t, m, call{hook: "CreateDiscount4", body: `{"code":"` + id + `"}`, urgency: "urgent", id: id})
		case strings.HasPrefix(id, "msg_"):
			a = sendSvix(t, m, "bloom", signed{id: id, body: `{"type":"copy.test","data":{"tag":"` + id + `"}}`})
		default:
			a = brSend(t, m, brReq{name: "sms", body: `{"phone":"+15550100","text":"` + id + `"}`, id: id})
		}
		if a.status != want.status || !bytes.Equal(a.body, want.body) {
			t.Errorf("repeat of %s on PostgreSQL: got %d %s, want the first answer %d %s", id, a.status, a.body, want.status, want.body)
		}
	}
	delivered := func(tag string) int {
		n := 0
		for _, g := range d.deliveries() {
			if bytes.Contains(g.body, []byte(tag)) {
				n++
			}
		}
		return n
	}
	waitUntil(t, 15*time.Second, "the pending jobs delivered from PostgreSQL", func() bool {
		for id := range pending {
			if delivered(id) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond)
	for id := range pending {
		if n := delivered(id); n != 1 {
			t.Errorf("%s delivered %d times, want 1", id, n)
		}
	}
	for id := range first {
		if n := delivered(id); n != 0 {
			t.Errorf("%s (dead, and repeated) delivered %d times, want 0", id, n)
		}
	}
	// New requests get ids after the copied ones.
	a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"new"}`, urgency: "urgent", id: "bh-new"})
	if a.status != 202 {
		t.Fatalf("new request: %d %s", a.status, a.body)
	}
	if recs := requests(t, m, hooks.RequestFilter{RequestID: "bh-new"}); len(recs) != 1 || recs[0].ID <= wantReqs[0].ID {
		t.Fatalf("new request's record: %+v, want an id after %d", recs, wantReqs[0].ID)
	}
}

// A refused copy says why: a missing source, a directory without a store,
// missing flags.
func TestStoreCopy_Refusals(t *testing.T) {
	empty := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--to", "postgres://x@/y"}, "--from and --to are both required"},
		{[]string{"copy", "--from", empty + "/missing", "--to", "postgres://x@/y"}, "no such file"},
		{[]string{"copy", "--from", empty, "--to", "postgres://x@/y"}, "without a hookbay.db"},
		{[]string{"move"}, `unknown subcommand "move"`},
	} {
		var out bytes.Buffer
		err := (&StoreCommand{Stdout: &out, Stderr: &out}).Run(context.Background(), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("store %v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// replicaMain is the part of a Main that a shared store's loops work
// with: the store and a queue of one worker, polling every poll, whose
// action tells delivered of each job.
func replicaMain(t *testing.T, db Store, poll time.Duration, delivered chan<- int64) *Main {
	t.Helper()
	m := NewMain(config.Config{})
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m.PurgeInterval = 0
	m.DB = db
	m.Queue = &hooks.Queue{Store: db, Workers: 1, PollInterval: poll, Logger: m.Logger,
		ActionFor: func(j *hooks.Job) hooks.Action {
			return hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
				if delivered != nil {
					delivered <- j.ID
				}
				return nil, nil
			})
		}}
	return m
}

// start starts m's store loops, then its queue, as Run does, and stops
// them when the test ends.
func (m *Main) startForTest(t *testing.T) {
	t.Helper()
	if err := m.startStoreLoops(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Queue.Start()
	t.Cleanup(func() { m.stopForTest(t) })
}

// stopForTest stops m's queue, then its store loops, as Close does.
func (m *Main) stopForTest(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Queue.Stop(ctx); err != nil {
		t.Error(err)
	}
	if err := m.stopStoreLoops(ctx); err != nil {
		t.Error(err)
	}
}

// On a shared store, one replica at a time holds the maintenance lease:
// only its queue rescues expired jobs, it purges, and when it shuts down
// it gives the lease up, so that another takes it at its next renewal
// rather than after the lease's whole length.
func TestReplicas_MaintenanceLease(t *testing.T) {
	schema := pgtest.New(t)
	ctx := context.Background()
	a, b := replicaMain(t, schema.Open(t), time.Hour, nil), replicaMain(t, schema.Open(t), time.Hour, nil)
	// Old idempotency answers, which the leader's purge deletes.
	old := schema.Open(t)
	old.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
	if _, err := old.SaveReceipt(ctx, storeReceipt("old-answer")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Main{a, b} {
		m.PurgeInterval = 50 * time.Millisecond
		m.Config.Idempotency.Retention = config.Duration(time.Hour)
	}
	a.startForTest(t)
	b.startForTest(t)
	waitUntil(t, 5*time.Second, "a replica leading", func() bool { return a.Leading() || b.Leading() })
	time.Sleep(100 * time.Millisecond)
	if a.Leading() == b.Leading() {
		t.Fatalf("leading: a %v, b %v; want exactly one", a.Leading(), b.Leading())
	}
	leader, follower := a, b
	if b.Leading() {
		leader, follower = b, a
	}
	waitUntil(t, 5*time.Second, "the leader's purge", func() bool {
		_, err := old.LookupKey(ctx, hooks.SenderBubblehouse, "old-answer")
		return hooks.ErrorCode(err) == hooks.ENOTFOUND
	})

	// A job whose lease ran out: the follower leaves it, the leader takes
	// it back.
	// (Due in an hour, so that the replicas' own queues leave it alone.)
	other := schema.Open(t)
	stuck := storeReceipt("stuck")
	stuck.Job.ScheduledAt = time.Now().Add(time.Hour)
	if _, err := other.SaveReceipt(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	if got, err := other.ClaimJobs(ctx, time.Now().Add(time.Hour), time.Millisecond, 1, 1); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v, %v", got, err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, err := follower.Queue.Store.RescueJobs(ctx, time.Now(), hooks.RetryPolicy{}); err != nil || n != 0 {
		t.Fatalf("the follower rescued %d jobs (%v), want 0: rescues are the leader's", n, err)
	}
	if n, err := leader.Queue.Store.RescueJobs(ctx, time.Now(), hooks.RetryPolicy{}); err != nil || n != 1 {
		t.Fatalf("the leader rescued %d jobs (%v), want 1", n, err)
	}

	// The leader shuts down: the follower leads within one renewal, well
	// before the lease would have run out.
	start := time.Now()
	leader.stopForTest(t)
	waitUntil(t, leadEvery+2*time.Second, "the follower to take the lease over", follower.Leading)
	t.Logf("the follower led %v after the leader resigned (lease %v, renewed every %v)", time.Since(start).Round(time.Millisecond), leadTTL, leadEvery)
}

// New jobs wake an idle replica at once, whichever replica queued them:
// here the queue polls only every hour, so the job queued through another
// handle is delivered within seconds only through LISTEN.
func TestReplicas_ListenWakes(t *testing.T) {
	schema := pgtest.New(t)
	ctx := context.Background()
	delivered := make(chan int64, 10)
	m := replicaMain(t, schema.Open(t), time.Hour, delivered)
	m.startForTest(t)
	time.Sleep(200 * time.Millisecond) // the queue's first claim, which finds nothing
	other := schema.Open(t)
	for i := range 3 {
		r := storeReceipt(fmt.Sprintf("wake-%d", i))
		if _, err := other.SaveReceipt(ctx, r); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-delivered:
			if id != r.Job.ID {
				t.Fatalf("delivered job %d, want %d", id, r.Job.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("job %d queued by another replica was not delivered within 5s: the idle replica was not woken", r.Job.ID)
		}
	}
}

// storeReceipt is a receipt of a Bubblehouse request that queues a job,
// under the key id.
func storeReceipt(id string) *hooks.Receipt {
	now := time.Now()
	req := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", RequestID: id, Urgency: hooks.UrgencyUrgent,
		Method: "POST", Path: "/bubblehouse/CreateDiscount4", Body: []byte(`{}`), Status: 202, Response: []byte(`{}`), ReceivedAt: now}
	return &hooks.Receipt{Request: req, Keys: []string{id}, Job: hooks.NewJob(req, now)}
}
