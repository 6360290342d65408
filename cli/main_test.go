package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

const (
	testAuth      = "Bearer test-secret-value"
	testJWTSecret = "jwt-shared-secret-for-tests"
)

// MustRunMain starts hookbay on a loopback port with a store under
// t.TempDir(), plain HTTP, and the catalogue hooks subscribed.
func MustRunMain(tb testing.TB, mutate func(*config.Config)) *Main {
	tb.Helper()
	return mustRunMainActions(tb, nil, mutate)
}

// mustRunMainActions is MustRunMain with Go actions.
func mustRunMainActions(tb testing.TB, actions hooks.Actions, mutate func(*config.Config)) *Main {
	tb.Helper()
	cfg := config.Config{}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.DataDir = tb.TempDir()
	cfg.Server.TLS.Mode = "off"
	cfg.Bubblehouse.Authorization = testAuth
	cfg.Bubblehouse.JWTSecret = testJWTSecret
	cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}, "DeliverCustomReward1": {}, "SendEvent1": {}, "PrivatePromo2": {Inline: true}}
	cfg.Queue.Workers = 2
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Finish(); err != nil {
		tb.Fatal(err)
	}
	m := NewMain(cfg)
	m.Actions = actions
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return m
}

// call is one hook request as Bubblehouse sends it.
type call struct {
	method  string
	hook    string
	body    string
	auth    string // "" sends testAuth; "-" sends none
	urgency string
	id      string
	header  map[string]string
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", a.status, a.body)
	}
	return m
}

func send(t testing.TB, m *Main, c call) answer {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	req, err := http.NewRequest(c.method, "http://"+m.Addr()+"/bubblehouse/"+c.hook, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accepts", "application/json")
	switch c.auth {
	case "":
		req.Header.Set("Authorization", testAuth)
	case "-":
	default:
		req.Header.Set("Authorization", c.auth)
	}
	if c.urgency != "" {
		req.Header.Set("X-BH-Urgency", c.urgency)
	}
	if c.id != "" {
		req.Header.Set("X-Request-ID", c.id)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

func requests(t testing.TB, m *Main, f hooks.RequestFilter) []*hooks.Request {
	t.Helper()
	reqs, err := m.DB.FindRequests(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

func jobs(t testing.TB, m *Main, f hooks.JobFilter) []*hooks.Job {
	t.Helper()
	js, err := m.DB.FindJobs(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func jwtToken(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// The contract: bubblehouse-hooks-api.txt ("At the very least, you need to
// implement Hello1 hook"; "MUST return a 404 error code" for unexpected
// Hello hooks) and bubblehouse-hooks-catalog.md (Hello1 input and output).
func TestBubblehouse_Hello1(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, tt := range []struct {
		name, body string
		status     int
		magic      string // raw JSON expected back
	}{
		{"OK", `{"magic":"xyzzy"}`, 200, `"xyzzy"`},
		{"MagicVerbatim", `{"magic":"a\u00e9\"b\/c"}`, 200, `"a\u00e9\"b\/c"`},
		{"ExtraFields", `{"magic":"m","future":1}`, 200, `"m"`},
		{"ErrNoMagic", `{}`, 400, ""},
		{"ErrMagicNotString", `{"magic":42}`, 400, ""},
		{"ErrNotObject", `["magic"]`, 400, ""},
		{"ErrNotJSON", `{"magic":`, 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, m, call{hook: "Hello1", body: tt.body, urgency: "real-time", id: "hello-" + tt.name})
			if got, want := a.status, tt.status; got != want {
				t.Fatalf("status=%d, want %d (%s)", got, want, a.body)
			}
			obj := a.json(t)
			if tt.status != 200 {
				if obj["error"] == "" || obj["code"] != "invalid" {
					t.Fatalf("error body %s lacks code and message", a.body)
				}
				return
			}
			var out struct {
				Magic json.RawMessage `json:"magic"`
				Hooks []string        `json:"hooks"`
			}
			json.Unmarshal(a.body, &out)
			if got, want := string(out.Magic), tt.magic; got != want {
				t.Fatalf("magic=%s, want %s", got, want)
			}
			if got, want := strings.Join(out.Hooks, ","), "CreateDiscount4,DeliverCustomReward1,PrivatePromo2,SendEvent1"; got != want {
				t.Fatalf("hooks=%s, want %s", got, want)
			}
		})
	}
}

func TestBubblehouse_NotFound(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { delete(c.Bubblehouse.Hooks, "SendEvent1") })
	for _, hook := range []string{"Hello2", "Hello3", "Hello", "HelloWorld", "hello1", "CreateDiscount3", "creatediscount4", "SendEvent1", "Nope"} {
		t.Run(hook, func(t *testing.T) {
			a := send(t, m, call{hook: hook, body: `{"magic":"x"}`, urgency: "real-time"})
			if a.status != http.StatusNotFound || a.json(t)["code"] != "not_found" {
				t.Fatalf("got %d %s, want 404 not_found", a.status, a.body)
			}
		})
	}
	// Refused requests are recorded too: QA reads what the sender did.
	if got := requests(t, m, hooks.RequestFilter{Name: "Hello2"}); len(got) != 1 || got[0].Status != 404 {
		t.Fatalf("Hello2 records=%v, want one 404", got)
	}
}

func TestBubblehouse_Methods(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		a := send(t, m, call{method: method, hook: "CreateDiscount4"})
		if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "POST" {
			t.Fatalf("%s: got %d Allow=%q, want 405 Allow=POST", method, a.status, a.header.Get("Allow"))
		}
		a.json(t)
	}
}

// bubblehouse-hooks-catalog.md, "Authentication": a fixed Authorization
// value, or an HS256 JWT; reject alg none and any other algorithm.
func TestBubblehouse_Auth(t *testing.T) {
	m := MustRunMain(t, nil)
	now := time.Now()
	secret := []byte(testJWTSecret)
	valid := jwt.MapClaims{"exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
	noneToken, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"FixedValue", testAuth, 200},
		{"JWT", jwtToken(t, jwt.SigningMethodHS256, secret, valid), 200},
		{"ErrJWTNoExp", jwtToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "bubblehouse"}), 401},
		{"JWTWithinSkew", jwtToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()}), 200},
		{"ErrMissing", "-", 401},
		{"ErrWrongValue", "Bearer test-secret-valuE", 401},
		{"ErrPrefixOfValue", "Bearer test-secret", 401},
		{"ErrJWTExpired", jwtToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(-2 * time.Minute).Unix()}), 401},
		{"ErrJWTNotBefore", jwtToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"nbf": now.Add(2 * time.Minute).Unix()}), 401},
		{"ErrJWTWrongSecret", jwtToken(t, jwt.SigningMethodHS256, []byte("other"), valid), 401},
		{"ErrJWTAlgNone", "Bearer " + noneToken, 401},
		{"ErrJWTHS384", jwtToken(t, jwt.SigningMethodHS384, secret, valid), 401},
		{"ErrJWTHS512", jwtToken(t, jwt.SigningMethodHS512, secret, valid), 401},
		{"ErrJWTGarbage", "Bearer a.b.c", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, m, call{hook: "Hello1", body: `{"magic":"m"}`, auth: tt.auth, urgency: "real-time", id: "auth-" + tt.name})
			if a.status != tt.status {
				t.Fatalf("status=%d, want %d (%s)", a.status, tt.status, a.body)
			}
			if obj := a.json(t); tt.status == 401 && obj["code"] != "unauthorized" {
				t.Fatalf("body=%s, want code unauthorized", a.body)
			}
		})
	}
	// The secret never reaches the stored request: the header is redacted,
	// and no byte of the database holds it.
	recs := requests(t, m, hooks.RequestFilter{RequestID: "auth-FixedValue"})
	if len(recs) != 1 || recs[0].Header.Get("Authorization") != "Bearer [redacted]" {
		t.Fatalf("stored Authorization=%q, want Bearer [redacted]", recs[0].Header.Get("Authorization"))
	}
	for _, suffix := range []string{"", "-wal"} {
		buf, _ := os.ReadFile(filepath.Join(m.Config.Server.DataDir, "hookbay.db"+suffix))
		if bytes.Contains(buf, []byte("test-secret-value")) {
			t.Fatalf("hookbay.db%s contains the Authorization secret", suffix)
		}
	}
}

// bubblehouse-hooks-api.txt, "Real-time, urgent and regular calls": the
// urgency header is read case-insensitively; real-time runs inline, urgent
// and regular are queued (urgent first).
func TestBubblehouse_Urgency(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, tt := range []struct {
		urgency  string
		status   int
		queued   hooks.Urgency
		noteWant string
	}{
		{"real-time", 200, "", ""},
		{"Real-Time", 200, "", ""},
		{"urgent", 202, hooks.UrgencyUrgent, ""},
		{"URGENT", 202, hooks.UrgencyUrgent, ""},
		{"regular", 202, hooks.UrgencyRegular, ""},
		{"", 202, hooks.UrgencyRegular, "X-BH-Urgency missing: handled as regular"},
		{"whenever", 202, hooks.UrgencyRegular, `X-BH-Urgency has unknown value "whenever": handled as regular`},
	} {
		t.Run(tt.urgency, func(t *testing.T) {
			id := "urg-" + tt.urgency
			a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"C-1","title":"10% off","percentage":1000}`, urgency: tt.urgency, id: id})
			if a.status != tt.status {
				t.Fatalf("status=%d, want %d (%s)", a.status, tt.status, a.body)
			}
			if got := a.json(t)["code"]; got != "C-1" {
				t.Fatalf("answer %s does not keep the discount code", a.body)
			}
			rec := requests(t, m, hooks.RequestFilter{RequestID: id})
			if len(rec) != 1 {
				t.Fatalf("records=%d, want 1", len(rec))
			}
			if tt.noteWant != "" && !contains(rec[0].Notes, tt.noteWant) {
				t.Fatalf("notes=%q, want %q", rec[0].Notes, tt.noteWant)
			}
			js := jobs(t, m, hooks.JobFilter{})
			found := false
			for _, j := range js {
				if j.RequestRef == rec[0].ID {
					found = true
					if j.Urgency != tt.queued || j.Priority != tt.queued.Priority() {
						t.Fatalf("job urgency=%s priority=%d, want %s", j.Urgency, j.Priority, tt.queued)
					}
				}
			}
			if found != (tt.queued != "") {
				t.Fatalf("job queued=%v, want %v", found, tt.queued != "")
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// "The response body must be a valid output JSON object" and the body is
// "the input JSON object for the hook": bad bodies get a JSON 400 that says
// why; oversized ones 413.
func TestBubblehouse_BadBodies(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { c.Server.MaxBodyBytes = 2048 })
	big := `{"code":"` + strings.Repeat("x", 3000) + `"}`
	for _, tt := range []struct {
		name, body string
		status     int
		code, says string
	}{
		{"Empty", ``, 400, "invalid", "body is empty"},
		{"Malformed", `{"code":`, 400, "invalid", "not valid JSON"},
		{"Array", `[1,2]`, 400, "invalid", "not an array"},
		{"String", `"x"`, 400, "invalid", "not a string"},
		{"TrailingGarbage", `{} {}`, 400, "invalid", "not valid JSON"},
		{"Oversized", big, 413, "too_large", "2048-byte limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, m, call{hook: "CreateDiscount4", body: tt.body, urgency: "urgent", id: "bad-" + tt.name})
			obj := a.json(t)
			if a.status != tt.status || obj["code"] != tt.code || !strings.Contains(obj["error"].(string), tt.says) {
				t.Fatalf("got %d %s, want %d %s mentioning %q", a.status, a.body, tt.status, tt.code, tt.says)
			}
		})
	}
	if js := jobs(t, m, hooks.JobFilter{}); len(js) != 0 {
		t.Fatalf("jobs=%d, want none for refused bodies", len(js))
	}
}

// Idempotency: a repeat gets exactly the first answer and is neither
// queued nor executed again.
func TestBubblehouse_Idempotency(t *testing.T) {
	m := MustRunMain(t, nil)
	t.Run("Repeat", func(t *testing.T) {
		first := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"FIRST"}`, urgency: "urgent", id: "rep-1"})
		again := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"SECOND"}`, urgency: "urgent", id: "rep-1"})
		if first.status != again.status || !bytes.Equal(first.body, again.body) {
			t.Fatalf("repeat answered %d %s, first %d %s", again.status, again.body, first.status, first.body)
		}
		recs := requests(t, m, hooks.RequestFilter{RequestID: "rep-1"})
		if len(recs) != 2 || recs[0].DuplicateOf != recs[1].ID {
			t.Fatalf("records=%d, want the repeat recorded as a duplicate", len(recs))
		}
		if n := countJobs(t, m, recs); n != 1 {
			t.Fatalf("jobs=%d, want 1", n)
		}
	})
	for _, tt := range []struct{ name, hook, urgency string }{
		{"ConcurrentQueued", "CreateDiscount4", "urgent"},
		{"ConcurrentInline", "CreateDiscount4", "real-time"},
		{"ConcurrentHello1", "Hello1", "real-time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 20
			id := "conc-" + tt.name
			answers := make([]answer, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = send(t, m, call{hook: tt.hook, body: fmt.Sprintf(`{"code":"C%d","magic":"m%d"}`, i, i), urgency: tt.urgency, id: id})
				}()
			}
			wg.Wait()
			for _, a := range answers[1:] {
				if a.status != answers[0].status || !bytes.Equal(a.body, answers[0].body) {
					t.Fatalf("answers differ: %d %s vs %d %s", a.status, a.body, answers[0].status, answers[0].body)
				}
			}
			recs := requests(t, m, hooks.RequestFilter{RequestID: id})
			originals := 0
			for _, r := range recs {
				if r.DuplicateOf == 0 {
					originals++
				}
			}
			if len(recs) != n || originals != 1 {
				t.Fatalf("records=%d originals=%d, want %d and 1", len(recs), originals, n)
			}
			if want := map[string]int{"urgent": 1}[tt.urgency]; countJobs(t, m, recs) != want {
				t.Fatalf("jobs=%d, want %d", countJobs(t, m, recs), want)
			}
		})
	}
	t.Run("NoRequestID", func(t *testing.T) {
		a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"NOID"}`, urgency: "urgent"})
		b := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"NOID"}`, urgency: "urgent"})
		if a.status != 202 || b.status != 202 {
			t.Fatalf("status=%d,%d, want 202", a.status, b.status)
		}
		recs := requests(t, m, hooks.RequestFilter{Name: "CreateDiscount4", RequestID: ""})
		n := 0
		for _, r := range recs {
			if r.RequestID == "" && contains(r.Notes, "no X-Request-ID header: processed without de-duplication on the request ID") {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("records noted without request ID=%d, want 2", n)
		}
	})
	t.Run("RequestIDTooLong", func(t *testing.T) {
		// Hashed, not refused: an HTTP error would make Bubblehouse retry
		// the same request forever.
		a := send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: strings.Repeat("x", 300)})
		b := send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: strings.Repeat("x", 300)})
		if a.status != 202 || b.status != 202 {
			t.Fatalf("status=%d,%d, want 202", a.status, b.status)
		}
		recs := requests(t, m, hooks.RequestFilter{RequestID: "sha256:" + sha256hex(strings.Repeat("x", 300))})
		if len(recs) != 2 || recs[0].DuplicateOf == 0 {
			t.Fatalf("records=%d, want the repeat recorded as a duplicate under the digest", len(recs))
		}
	})
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func countJobs(t testing.TB, m *Main, recs []*hooks.Request) int {
	ids := map[int64]bool{}
	for _, r := range recs {
		ids[r.ID] = true
	}
	n := 0
	for _, j := range jobs(t, m, hooks.JobFilter{Limit: 10000}) {
		if ids[j.RequestRef] {
			n++
		}
	}
	return n
}

// bubblehouse-hooks-catalog.md, SendEvent1: outcomes instead of HTTP
// errors (an HTTP error holds Bubblehouse's whole queue), and
// de-duplication on bhid as well as X-Request-ID.
func TestBubblehouse_SendEvent1(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { c.Server.MaxBodyBytes = 1024 })
	for _, tt := range []struct{ name, body, says string }{
		{"Malformed", `{"bhid":`, "not valid JSON"},
		{"Array", `[]`, "not an array"},
		{"NoBhid", `{"event":"points"}`, "bhid is required"},
		{"EmptyBhid", `{"bhid":""}`, "bhid must be a non-empty string"},
		{"Oversized", `{"bhid":"` + strings.Repeat("b", 2000) + `"}`, "1024-byte limit"},
	} {
		t.Run("Invalid"+tt.name, func(t *testing.T) {
			a := send(t, m, call{hook: "SendEvent1", body: tt.body, urgency: "regular", id: "ev-" + tt.name})
			obj := a.json(t)
			if a.status != 200 || obj["outcome"] != "invalid_data" || !strings.Contains(obj["error"].(string), tt.says) {
				t.Fatalf("got %d %s, want 200 invalid_data mentioning %q", a.status, a.body, tt.says)
			}
		})
	}
	t.Run("DedupOnBhid", func(t *testing.T) {
		a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"evt-1","type":"points"}`, urgency: "regular", id: "ev-a"})
		b := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"evt-1","type":"points"}`, urgency: "regular", id: "ev-b"})
		c := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"evt-1","type":"points"}`, urgency: "regular", id: "ev-b"})
		for _, x := range []answer{a, b, c} {
			if x.status/100 != 2 || x.json(t)["outcome"] != "sent" {
				t.Fatalf("got %d %s, want 2xx outcome sent", x.status, x.body)
			}
		}
		recs := requests(t, m, hooks.RequestFilter{Name: "SendEvent1"})
		if n := countJobs(t, m, recs); n != 1 {
			t.Fatalf("jobs=%d, want 1 for one bhid", n)
		}
	})
	t.Run("ErrAuthStillRefused", func(t *testing.T) {
		if a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"x"}`, auth: "Bearer nope"}); a.status != 401 {
			t.Fatalf("status=%d, want 401", a.status)
		}
	})
}

// DeliverCustomReward1's answer carries a business result, so it runs
// inline whatever the urgency; so does a private hook marked inline.
func TestBubblehouse_InlineHooks(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, hook := range []string{"DeliverCustomReward1", "PrivatePromo2"} {
		a := send(t, m, call{hook: hook, body: `{"reward_identifier":"r1","reward_title":"Mug","unlock_time":"2026-11-23T00:00:00Z"}`, urgency: "regular", id: "inl-" + hook})
		if a.status != 200 {
			t.Fatalf("%s: status=%d, want 200 inline (%s)", hook, a.status, a.body)
		}
		if hook == "DeliverCustomReward1" && a.json(t)["delivered"] != true {
			t.Fatalf("answer %s lacks delivered", a.body)
		}
	}
	if js := jobs(t, m, hooks.JobFilter{}); len(js) != 0 {
		t.Fatalf("jobs=%d, want none: inline hooks are done when answered", len(js))
	}
}

// Never acknowledge before it is durable: once a 202 is received, the
// request and its job are readable from the store, and the workers drain
// the job.
func TestBubblehouse_DurableThenDelivered(t *testing.T) {
	m := MustRunMain(t, nil)
	for i := range 20 {
		id := fmt.Sprintf("dur-%d", i)
		a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"D"}`, urgency: "urgent", id: id})
		if a.status != 202 {
			t.Fatalf("status=%d", a.status)
		}
		if recs := requests(t, m, hooks.RequestFilter{RequestID: id}); len(recs) != 1 || countJobs(t, m, recs) != 1 {
			t.Fatalf("request %s not durable when acknowledged", id)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})) != 20 {
		if time.Now().After(deadline) {
			t.Fatalf("done jobs=%d, want 20", len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealth(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + m.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	// A store that no longer answers makes /readyz 503, with a JSON error
	// and no details; /healthz still answers.
	if err := m.DB.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/readyz": 503, "/healthz": 200} {
		resp, err := http.Get("http://" + m.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 503 && !strings.Contains(string(body), `"code":"unavailable"`)) {
			t.Fatalf("%s with the store closed: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// FuzzBubblehouse sends arbitrary hook names, urgencies, request IDs and
// bodies through the whole Echo app: every answer is a JSON object with a
// status the contract allows, never a 5xx and never a crash.
func FuzzBubblehouse(f *testing.F) {
	m := MustRunMain(f, func(c *config.Config) { c.Server.MaxBodyBytes = 4096 })
	f.Add("CreateDiscount4", "urgent", "id-1", []byte(`{"code":"A","title":"t"}`))
	f.Add("Hello1", "real-time", "h-1", []byte(`{"magic":"m"}`))
	f.Add("SendEvent1", "regular", "", []byte(`{"bhid":"e1"}`))
	f.Add("SendEvent1", "REGULAR", "s", []byte(`{"bhid":`))
	f.Add("DeliverCustomReward1", "", "d", []byte(`[]`))
	f.Add("Hello2", "x", "x", []byte(`{}`))
	f.Fuzz(func(t *testing.T, hook, urgency, id string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/bubblehouse/x", bytes.NewReader(body))
		req.URL.Path = "/bubblehouse/" + hook
		req.Header.Set("Authorization", testAuth)
		req.Header.Set("X-BH-Urgency", urgency)
		req.Header.Set("X-Request-ID", id)
		rec := httptest.NewRecorder()
		m.Echo.ServeHTTP(rec, req)
		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
			t.Fatalf("%d answer is not a JSON object: %q", rec.Code, rec.Body.Bytes())
		}
		switch rec.Code {
		case 200, 202, 400, 404, 409, 413:
		default:
			t.Fatalf("status %d for hook %q: %s", rec.Code, hook, rec.Body.Bytes())
		}
	})
}
func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
