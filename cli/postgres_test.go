package cli

import (
	"bytes"
	"context"
	"fmt"
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
