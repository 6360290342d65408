package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

// faultEcho serves Bubblehouse and Bloomreach behind the fault middleware,
// with the faults the store holds loaded once.
func faultEcho(t *testing.T, g *Guard, store *FaultStore) *echo.Echo {
	t.Helper()
	f := &handlers.Faults{Store: store, MaxBodyBytes: 4096, Logger: discard,
		Prefixes: map[string]hooks.Sender{bhPath: hooks.SenderBubblehouse, brPath: hooks.SenderBloomreach},
		Record:   func(c echo.Context, req *hooks.Request) error { return g.Record(c.Request().Context(), req) }}
	br := &handlers.Bloomreach{Webhooks: map[string]*handlers.BloomreachWebhook{"w": brHook("w", handlers.WebhookAuth{Headers: map[string]string{"X-Br-Token": "supersecret"}})},
		Guard: g, MaxBodyBytes: 4096}
	br.Webhooks["w"].IDHeader = "X-Campaign-Req"
	f.Webhook = func(s hooks.Sender, name string) ([]string, string) {
		if s != hooks.SenderBloomreach {
			return nil, ""
		}
		return br.SecretHeaders(), br.IDHeader(name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Poll loads once and returns
	f.Poll(ctx, time.Hour)
	e := newEcho(g)
	e.Use(f.Middleware())
	set, _ := hooks.NewBubblehouseHooks(map[string]hooks.HookSettings{"CreateDiscount4": {}})
	(&handlers.Bubblehouse{Hooks: set, Auth: &hooks.BubblehouseAuth{Authorization: bhAuth}, Guard: g, MaxBodyBytes: 4096}).Register(e, bhPath)
	br.Register(e, brPath, "/oauth/token")
	return e
}

// An injected status answers instead of the route, is recorded as
// injected with the request's ID and redacted headers, and a fault with a
// count is used up in the store, at most that many times.
func TestFaults_Status(t *testing.T) {
	var uses atomic.Int64
	store := &FaultStore{
		FaultsFn: func(context.Context, time.Time) ([]*hooks.Fault, error) {
			return []*hooks.Fault{
				{ID: 1, Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", Kind: hooks.FaultStatus, Status: 503, Remaining: 1, Percent: 100},
				{ID: 2, Sender: hooks.SenderBloomreach, Kind: hooks.FaultStatus, Status: 500, Remaining: -1, Percent: 100},
			}, nil
		},
		UseFaultFn: func(_ context.Context, id int64) (bool, error) { return id == 1 && uses.Add(1) == 1, nil },
	}
	g := &Guard{}
	e := faultEcho(t, g, store)

	a := serve(e, bhCall{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: "f-1"}.request())
	if a.status != 503 || a.code(t) != "injected" {
		t.Fatalf("first call: got %d %s, want the injected 503", a.status, a.body)
	}
	if rec := g.last(t); rec.Status != 503 || rec.RequestID != "f-1" || rec.Urgency != hooks.UrgencyUrgent || !hasNote(rec, "fault injected: fault 1: answer 503") {
		t.Fatalf("record %d %q %s notes %q", rec.Status, rec.RequestID, rec.Urgency, rec.Notes)
	}
	// --count 1: used up.
	if a := serve(e, bhCall{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: "f-2"}.request()); a.status != 202 {
		t.Fatalf("second call: got %d %s, want 202: the fault was used up", a.status, a.body)
	}
	req := post(brPath+"/w", `{}`, "X-Br-Token", "supersecret", "X-Campaign-Req", "camp-1")
	if a := serve(e, req); a.status != 500 || a.code(t) != "injected" {
		t.Fatalf("Bloomreach: got %d %s, want the injected 500", a.status, a.body)
	}
	if rec := g.last(t); rec.RequestID != "camp-1" || rec.Header.Get("X-Br-Token") != "[redacted]" {
		t.Fatalf("injected Bloomreach record: id %q X-Br-Token %q, want camp-1 and redacted", rec.RequestID, rec.Header.Get("X-Br-Token"))
	}
}

// A fault store that fails to count a use injects nothing: --count N must
// not be exceeded.
func TestFaults_UseFails(t *testing.T) {
	store := &FaultStore{
		FaultsFn: func(context.Context, time.Time) ([]*hooks.Fault, error) {
			return []*hooks.Fault{{ID: 1, Sender: hooks.SenderBubblehouse, Kind: hooks.FaultStatus, Status: 503, Remaining: 3, Percent: 100}}, nil
		},
		UseFaultFn: func(context.Context, int64) (bool, error) { return false, errors.New("database is locked") },
	}
	g := &Guard{}
	if a := serve(faultEcho(t, g, store), bhCall{hook: "CreateDiscount4", body: `{}`, urgency: "urgent"}.request()); a.status != 202 {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
}

func TestHealth(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		certErr error
		status  int
	}{
		{"Ready", nil, nil, 200},
		{"StoreDown", errors.New("open /var/lib/hookbay/hookbay.db: permission denied"), nil, 503},
		{"NoCertificate", nil, errors.New("no valid certificate: rate limited"), 503},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEcho(&Guard{})
			store := &Pinger{PingFn: func(context.Context) error { return tt.err }}
			handlers.RegisterHealth(e, discard, handlers.Check{Name: "store", Ping: store.Ping},
				handlers.Check{Name: "certificate", Ping: func(context.Context) error { return tt.certErr }})
			if a := serve(e, httpGet("/healthz")); a.status != 200 {
				t.Fatalf("healthz: %d %s", a.status, a.body)
			}
			a := serve(e, httpGet("/readyz"))
			if a.status != tt.status || (tt.err != nil && (a.code(t) != hooks.EUNAVAILABLE || containsAny(string(a.body), "/var/lib", "permission"))) {
				t.Fatalf("readyz: %d %s, want %d without the store's details", a.status, a.body, tt.status)
			}
			if tt.certErr != nil && !strings.Contains(string(a.body), "certificate: no valid certificate: rate limited") {
				t.Fatalf("readyz: %s, want the certificate's reason", a.body)
			}
			if tt.status == 200 && !strings.Contains(string(a.body), `"certificate":"ok"`) {
				t.Fatalf("readyz: %s, want each check listed", a.body)
			}
		})
	}
}

func httpGet(target string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	return req
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
