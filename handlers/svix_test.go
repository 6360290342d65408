package handlers_test

// Svix-signed events (Bloom's public "Enablement Webhooks"), one layer
// deep: signatures over the raw bytes with the svix library, keys per
// endpoint (several while a secret is rotated), a 2xx means delivered, a
// redelivery carries the same id.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

const (
	svixSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	svixOldSecret = "whsec_c2VjcmV0LWJlZm9yZS1yb3RhdGlvbi0xMjM0"
	svixMaxBody   = 4096
)

// svixNow is the verifier's clock in these tests.
var svixNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newSvix serves two endpoints: bloom (rotating from the old secret to the
// new one; tradeline.* routed to an action, the rest stored) and other
// (no routes: everything stored).
func newSvix(t *testing.T, g *Guard) *handlers.Svix {
	t.Helper()
	ep := func(routed bool, secrets ...string) *handlers.SvixEndpoint {
		v, err := hooks.NewSvixVerifier(secrets)
		if err != nil {
			t.Fatal(err)
		}
		v.Now = func() time.Time { return svixNow }
		forward := hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) { return nil, nil })
		table := map[string]hooks.Action{}
		if routed {
			table = map[string]hooks.Action{"tradeline.*": forward, "*": nil}
		}
		routes, err := hooks.NewEventRoutes(table)
		if err != nil {
			t.Fatal(err)
		}
		return &handlers.SvixEndpoint{Verifier: v, Routes: routes}
	}
	return &handlers.Svix{
		Endpoints:    map[string]*handlers.SvixEndpoint{"bloom": ep(true, svixOldSecret, svixSecret), "other": ep(false, svixOldSecret)},
		Guard:        g,
		MaxBodyBytes: svixMaxBody,
		Now:          func() time.Time { return svixNow },
	}
}

// svixServe registers h and sends one delivery.
func svixServe(h *handlers.Svix, g *Guard, endpoint string, s signed) answer {
	e := newEcho(g)
	h.Register(e, "/svix")
	return serve(e, s.request(endpoint))
}

// signed is one Svix delivery as Bloom's sender builds it.
type signed struct {
	id, body string
	ts       time.Time
	secret   string
	prefix   string // svix (default) or webhook
	sig      string // overrides the computed signature
	omit     string // a header to leave out
}

// hmacSign signs independently of the svix library.
func hmacSign(secret, id string, ts time.Time, body string) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts.Unix(), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (s signed) request(endpoint string) *http.Request {
	if s.secret == "" {
		s.secret = svixSecret
	}
	if s.ts.IsZero() {
		s.ts = svixNow
	}
	if s.prefix == "" {
		s.prefix = "svix"
	}
	if s.sig == "" {
		s.sig = hmacSign(s.secret, s.id, s.ts, s.body)
	}
	req := httptest.NewRequest(http.MethodPost, "/svix/"+endpoint, strings.NewReader(s.body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range map[string]string{"-id": s.id, "-timestamp": fmt.Sprint(s.ts.Unix()), "-signature": s.sig} {
		if s.omit != s.prefix+k {
			req.Header.Set(s.prefix+k, v)
		}
	}
	return req
}

func TestSvix_Verify(t *testing.T) {
	lib, _ := svix.NewWebhook(svixSecret)
	libSig, _ := lib.Sign("msg_lib", svixNow, []byte(`{"type":"user.created","data":{"id":"u1"}}`))
	oldSig := hmacSign(svixOldSecret, "msg_both", svixNow, `{"type":"user.synced"}`)
	newSig := hmacSign(svixSecret, "msg_both", svixNow, `{"type":"user.synced"}`)
	odd := "{\"type\" : \"user.updated\",\r\n \"url\":\"https:\\/\\/x.test\\/a\", \"name\":\"\\u00e9\"}  "
	for _, tt := range []struct {
		name     string
		endpoint string
		s        signed
		status   int
		code     string
		reason   string
	}{
		{"LibrarySigner", "bloom", signed{id: "msg_lib", body: `{"type":"user.created","data":{"id":"u1"}}`, sig: libSig}, 200, "", ""},
		{"IndependentHMAC", "bloom", signed{id: "msg_hmac", body: `{"type":"user.created"}`}, 200, "", ""},
		{"StandardWebhooksHeaders", "bloom", signed{id: "msg_std", body: `{"type":"user.created"}`, prefix: "webhook"}, 200, "", ""},
		{"RotationOldSecret", "bloom", signed{id: "msg_old", body: `{"type":"user.closed"}`, secret: svixOldSecret}, 200, "", ""},
		{"SeveralSignatures", "bloom", signed{id: "msg_both", body: `{"type":"user.synced"}`, sig: "v1,bm90LWl0 " + oldSig + " " + newSig}, 200, "", ""},
		{"ByteExactOddBody", "bloom", signed{id: "msg_odd", body: odd}, 200, "", ""},
		{"WithinSkew", "bloom", signed{id: "msg_skew", body: `{}`, ts: svixNow.Add(-4 * time.Minute)}, 200, "", ""},
		{"ErrWrongSecret", "other", signed{id: "msg_wrong", body: `{"type":"user.created"}`}, 401, hooks.EUNAUTHORIZED, hooks.ReasonNoMatch},
		{"ErrTampered", "bloom", signed{id: "msg_t", body: `{"type":"user.created"}`, sig: hmacSign(svixSecret, "msg_t", svixNow, `{"type":"user.deleted"}`)}, 401, hooks.EUNAUTHORIZED, hooks.ReasonNoMatch},
		{"ErrOtherID", "bloom", signed{id: "msg_a", body: `{}`, sig: hmacSign(svixSecret, "msg_b", svixNow, `{}`)}, 401, hooks.EUNAUTHORIZED, hooks.ReasonNoMatch},
		{"ErrUnversioned", "bloom", signed{id: "msg_v", body: `{}`, sig: strings.TrimPrefix(hmacSign(svixSecret, "msg_v", svixNow, `{}`), "v1,")}, 401, hooks.EUNAUTHORIZED, hooks.ReasonNoMatch},
		{"ErrStale", "bloom", signed{id: "msg_stale", body: `{}`, ts: svixNow.Add(-6 * time.Minute)}, 401, hooks.EUNAUTHORIZED, hooks.ReasonStale},
		{"ErrFuture", "bloom", signed{id: "msg_future", body: `{}`, ts: svixNow.Add(6 * time.Minute)}, 401, hooks.EUNAUTHORIZED, hooks.ReasonFuture},
		{"ErrBadTimestamp", "bloom", signed{id: "msg_bt", body: `{}`, prefix: "svix", ts: svixNow}, 0, "", ""},
		{"ErrMissingID", "bloom", signed{id: "msg_x", body: `{}`, omit: "svix-id"}, 400, hooks.EINVALID, hooks.ReasonMissingHeaders},
		{"ErrMissingTimestamp", "bloom", signed{id: "msg_x", body: `{}`, omit: "svix-timestamp"}, 400, hooks.EINVALID, hooks.ReasonMissingHeaders},
		{"ErrMissingSignature", "bloom", signed{id: "msg_x", body: `{}`, omit: "svix-signature"}, 400, hooks.EINVALID, hooks.ReasonMissingHeaders},
		{"ErrNotFound", "nope", signed{id: "msg_nf", body: `{}`}, 404, hooks.ENOTFOUND, ""},
		// Bad input, signed correctly: refused with a JSON error saying why.
		{"ErrNotJSON", "bloom", signed{id: "msg_nj", body: `this is not json {`}, 400, hooks.EINVALID, ""},
		{"ErrNotObject", "bloom", signed{id: "msg_arr", body: `[{"type":"user.created"}]`}, 400, hooks.EINVALID, ""},
		{"ErrEmpty", "bloom", signed{id: "msg_empty", body: ``}, 400, hooks.EINVALID, ""},
		{"ErrTooLarge", "bloom", signed{id: "msg_big", body: `{"type":"user.created","pad":"` + strings.Repeat("x", svixMaxBody) + `"}`}, 413, hooks.ETOOLARGE, ""},
	} {
		if tt.status == 0 {
			continue // ErrBadTimestamp is below: it needs a hand-made header
		}
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			a := svixServe(newSvix(t, g), g, tt.endpoint, tt.s)
			obj := a.json(t)
			if a.status != tt.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.status)
			}
			if tt.status == 200 {
				if obj["accepted"] != true || obj["id"] != tt.s.id {
					t.Fatalf("answer %s, want accepted with the message id", a.body)
				}
				return
			}
			if obj["code"] != tt.code || obj["error"] == "" {
				t.Fatalf("answer %s, want code %s with an error saying why", a.body, tt.code)
			}
			if tt.reason != "" && obj["reason"] != tt.reason {
				t.Fatalf("answer %s, want reason %s", a.body, tt.reason)
			}
			rec := g.last(t)
			if rec.Status != tt.status || (tt.reason != "" && !hasNote(rec, "refused: "+tt.reason)) {
				t.Fatalf("record %d notes %q, want %d refused: %s", rec.Status, rec.Notes, tt.status, tt.reason)
			}
			if strings.Contains(string(a.body), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Fatalf("answer reveals the secret: %s", a.body)
			}
		})
	}
	t.Run("ErrBadTimestamp", func(t *testing.T) {
		g := &Guard{}
		h := newSvix(t, g)
		e := newEcho(g)
		h.Register(e, "/svix")
		req := signed{id: "msg_bt", body: `{}`}.request("bloom")
		req.Header.Set("svix-timestamp", "2026-03-01T12:00:00Z")
		if a := serve(e, req); a.status != 400 || a.json(t)["reason"] != hooks.ReasonBadTimestamp {
			t.Fatalf("got %d %s, want 400 invalid_timestamp", a.status, a.body)
		}
	})
	// The answer never contains the signature the endpoint expected.
	t.Run("NoExpectedSignatureInAnswer", func(t *testing.T) {
		g := &Guard{}
		body := `{"type":"user.created"}`
		a := svixServe(newSvix(t, g), g, "bloom", signed{id: "msg_leak", body: body, sig: "v1,AAAA"})
		want := strings.TrimPrefix(hmacSign(svixSecret, "msg_leak", svixNow, body), "v1,")
		if a.status != 401 || strings.Contains(string(a.body), want) || strings.Contains(strings.Join(g.last(t).Notes, " "), want) {
			t.Fatalf("401 answer or record contains the expected signature: %s", a.body)
		}
	})
	// A body re-serialised on the way gets a hint saying so.
	t.Run("HintReserialised", func(t *testing.T) {
		g := &Guard{}
		signedBody := `{"type":"user.created","data":{"a":1}}`
		a := svixServe(newSvix(t, g), g, "bloom", signed{id: "msg_proxy", body: "{\n  \"type\": \"user.created\",\n  \"data\": {\n    \"a\": 1\n  }\n}",
			sig: hmacSign(svixSecret, "msg_proxy", svixNow, signedBody)})
		if hint, _ := a.json(t)["hint"].(string); a.status != 401 || !strings.Contains(hint, "re-serialised") {
			t.Fatalf("got %d %s, want 401 with a hint about re-serialised JSON", a.status, a.body)
		}
	})
}

// An accepted event is committed with its job, de-duplicated on the
// message id per endpoint (Svix sends one id to every endpoint), and
// routed by its type; unknown types are accepted and stored.
func TestSvix_Accepted(t *testing.T) {
	for _, tt := range []struct {
		name, endpoint, body string
		job                  string // job name
		state                hooks.JobState
		note                 string
	}{
		{"Routed", "bloom", `{"type":"tradeline.created","data":{"id":"t1"}}`, "tradeline.created", hooks.JobAvailable, ""},
		{"StoredByWildcard", "bloom", `{"type":"user.created"}`, "user.created", hooks.JobDone, ""},
		{"EventTypeField", "bloom", `{"eventType":"tradeline.opened"}`, "tradeline.opened", hooks.JobAvailable, ""},
		{"UnknownType", "bloom", `{"type":"loan.approved"}`, "loan.approved", hooks.JobDone, "unknown event type loan.approved: accepted and stored"},
		{"NoType", "bloom", `{"data":{}}`, "unknown", hooks.JobDone, `no event type in the payload (a top-level "type" field is expected)`},
		{"NotRouted", "other", `{"type":"tradeline.created"}`, "tradeline.created", hooks.JobDone, "no route for event type tradeline.created: stored only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			h := newSvix(t, g)
			secret := svixSecret
			if tt.endpoint == "other" {
				secret = svixOldSecret
			}
			a := svixServe(h, g, tt.endpoint, signed{id: "msg_1", body: tt.body, secret: secret, prefix: "webhook"})
			if a.status != 200 || a.json(t)["accepted"] != true {
				t.Fatalf("got %d %s, want 200 accepted", a.status, a.body)
			}
			r := g.lastReceipt()
			if r.Job == nil || r.Job.Name != tt.job || r.Job.Source != tt.endpoint || r.Job.State != tt.state {
				t.Fatalf("job %+v, want %s from %s, %s", r.Job, tt.job, tt.endpoint, tt.state)
			}
			if r.Scope != tt.endpoint+"/" || r.Request.RequestID != "msg_1" || g.headers[0] != "webhook-id" {
				t.Fatalf("scope %q id %q header %q: want the id de-duplicated per endpoint, named by the header set used", r.Scope, r.Request.RequestID, g.headers[0])
			}
			if tt.note != "" && !hasNote(r.Request, tt.note) {
				t.Fatalf("notes %q, want %q", r.Request.Notes, tt.note)
			}
			if string(r.Request.Body) != tt.body {
				t.Fatalf("stored body %q, want the exact bytes", r.Request.Body)
			}
		})
	}
}

func TestSvix_Methods(t *testing.T) {
	g := &Guard{}
	e := newEcho(g)
	newSvix(t, g).Register(e, "/svix")
	req := signed{id: "msg_get", body: `{}`}.request("bloom")
	req.Method = http.MethodGet
	if a := serve(e, req); a.status != 405 || a.header.Get("Allow") != "POST" {
		t.Fatalf("GET: got %d Allow=%q, want 405 Allow=POST", a.status, a.header.Get("Allow"))
	}
}
