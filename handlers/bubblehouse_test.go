package handlers_test

// The Bubblehouse Hooks API contract, one layer deep: the handler with the
// real error handler and a fake guard. Bubblehouse's public "Hooks API"
// documentation: one POST URL per hook name; 200, 201, 202 or 204 with a
// JSON object is success; 404 for Hello2 and any unknown hook; the
// Authorization value configured on the API settings page, or an HS256
// JWT (the per-hook reference pages); X-BH-Urgency real-time runs while
// Bubblehouse waits.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

const (
	bhAuth = "Bearer bh-Fixed-s3cret-value-7d2e"
	bhPath = "/bubblehouse"
	// bhMaxBody is server.max_body_bytes in these tests.
	bhMaxBody = 2048
)

var bhJWTSecret = []byte("bh-jwt-s3cret-0123456789abcdef")

// newBubblehouse serves the catalogue's hooks and a private one, with
// both kinds of credentials, through the real error handler.
func newBubblehouse(t *testing.T, g *Guard, mutate func(h *handlers.Bubblehouse)) *echo.Echo {
	t.Helper()
	set, err := hooks.NewBubblehouseHooks(map[string]hooks.HookSettings{
		"CreateDiscount4": {}, "DeliverCustomReward1": {}, "SendEvent1": {}, "PrivatePromo2": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &handlers.Bubblehouse{
		Hooks:        set,
		Auth:         &hooks.BubblehouseAuth{Authorization: bhAuth, JWTSecret: bhJWTSecret},
		Guard:        g,
		MaxBodyBytes: bhMaxBody,
	}
	if mutate != nil {
		mutate(h)
	}
	e := newEcho(g)
	h.Register(e, bhPath)
	return e
}

// bhCall is one hook call as Bubblehouse sends it.
type bhCall struct {
	method  string
	hook    string
	body    string
	urgency string
	auth    string // "" sends bhAuth; "-" sends none
	id      string
}

func (c bhCall) request() *http.Request {
	if c.method == "" {
		c.method = http.MethodPost
	}
	req := httptest.NewRequest(c.method, bhPath+"/"+c.hook, strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accepts", "application/json")
	switch c.auth {
	case "":
		req.Header.Set("Authorization", bhAuth)
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
	return req
}

func bhJWT(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

func TestBubblehouse_Hello1(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		want       string // the whole answer, for 200
	}{
		{"OK", `{"magic":"xyzzy"}`, 200, `{"magic":"xyzzy","hooks":["CreateDiscount4","DeliverCustomReward1","PrivatePromo2","SendEvent1"]}`},
		// The magic goes back byte for byte: Bubblehouse compares the string it sent.
		{"MagicVerbatim", `{"magic":"a\u00e9\"b\/c<&>"}`, 200, `{"magic":"a\u00e9\"b\/c<&>","hooks":["CreateDiscount4","DeliverCustomReward1","PrivatePromo2","SendEvent1"]}`},
		{"ExtraFields", `{"future":{"x":[1]},"magic":"m"}`, 200, `{"magic":"m","hooks":["CreateDiscount4","DeliverCustomReward1","PrivatePromo2","SendEvent1"]}`},
		{"ErrNoMagic", `{}`, 400, ""},
		{"ErrMagicNotString", `{"magic":42}`, 400, ""},
		{"ErrNotObject", `["magic"]`, 400, ""},
		{"ErrNotJSON", `{"magic":`, 400, ""},
		{"ErrEmpty", ``, 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, nil)
			a := serve(e, bhCall{hook: "Hello1", body: tt.body, urgency: "real-time", id: "hello-" + tt.name}.request())
			if a.status != tt.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.status)
			}
			if tt.status != 200 {
				if a.code(t) != hooks.EINVALID || a.json(t)["error"] == "" {
					t.Fatalf("answer %s, want code invalid with a message", a.body)
				}
				if rec := g.last(t); rec.Status != 400 || string(rec.Body) != tt.body {
					t.Fatalf("record: status %d body %q, want 400 and the body", rec.Status, rec.Body)
				}
				return
			}
			if string(a.body) != tt.want {
				t.Fatalf("answer %s\nwant   %s", a.body, tt.want)
			}
			// Hello1 runs inline under its request ID, recorded like any hook.
			if g.runs != 1 || g.headers[0] != handlers.HeaderRequestID || g.last(t).RequestID != "hello-"+tt.name {
				t.Fatalf("runs=%d headers=%q: want one inline run keyed on X-Request-ID", g.runs, g.headers)
			}
		})
	}
}

// "Your code MUST be prepared to receive calls of unexpected hooks, at
// least in the Hello family, and MUST return a 404 error code for those."
func TestBubblehouse_NotFound(t *testing.T) {
	g := &Guard{}
	e := newBubblehouse(t, g, nil)
	for _, hook := range []string{"Hello2", "Hello3", "Hello", "HelloWorld", "hello1", "HELLO1", "CreateDiscount3", "creatediscount4", "SendEvent2", "Nope"} {
		t.Run(hook, func(t *testing.T) {
			a := serve(e, bhCall{hook: hook, body: `{"magic":"x"}`, urgency: "real-time", id: "nf-" + hook}.request())
			if a.status != http.StatusNotFound || a.code(t) != hooks.ENOTFOUND {
				t.Fatalf("got %d %s, want 404 not_found", a.status, a.body)
			}
			// Refused requests are recorded too: QA reads what the sender did.
			if rec := g.last(t); rec.Name != hook || rec.Status != 404 || rec.RequestID != "nf-"+hook {
				t.Fatalf("record %s %d %q, want %s 404 with its request ID", rec.Name, rec.Status, rec.RequestID, hook)
			}
		})
	}
	// A known hook the integrator did not subscribe to is unknown here.
	set, _ := hooks.NewBubblehouseHooks(map[string]hooks.HookSettings{"CreateDiscount4": {}})
	e = newBubblehouse(t, g, func(h *handlers.Bubblehouse) { h.Hooks = set })
	if a := serve(e, bhCall{hook: "SendEvent1", body: `{"bhid":"x"}`}.request()); a.status != 404 {
		t.Fatalf("unsubscribed SendEvent1: got %d %s, want 404", a.status, a.body)
	}
	if receipts, _ := g.counts(); receipts != 0 {
		t.Fatalf("receipts=%d, want none for unknown hooks", receipts)
	}
}

func TestBubblehouse_Methods(t *testing.T) {
	g := &Guard{}
	e := newBubblehouse(t, g, nil)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			a := serve(e, bhCall{method: method, hook: "CreateDiscount4", body: `{}`}.request())
			if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "POST" {
				t.Fatalf("got %d Allow=%q, want 405 Allow=POST", a.status, a.header.Get("Allow"))
			}
			if method == http.MethodHead {
				if len(a.body) != 0 {
					t.Fatalf("HEAD answered with a body: %q", a.body)
				}
			} else if a.code(t) != hooks.EMETHOD {
				t.Fatalf("answer %s, want code method", a.body)
			}
			if rec := g.last(t); rec.Method != method || rec.Status != 405 {
				t.Fatalf("record %s %d, want %s 405", rec.Method, rec.Status, method)
			}
		})
	}
}

// The Authorization value configured on the API settings page, or an HS256
// JWT signed with the shared secret, with a small clock skew; alg none and
// any other algorithm refused.
func TestBubblehouse_Auth(t *testing.T) {
	now := time.Now()
	valid := jwt.MapClaims{"exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"FixedValue", bhAuth, 200},
		{"JWT", bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, valid), 200},
		{"JWTLowerCaseScheme", "bearer " + strings.TrimPrefix(bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, valid), "Bearer "), 200},
		{"JWTWithinSkew", bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()}), 200},
		{"ErrMissing", "-", 401},
		{"ErrWrongValue", bhAuth[:len(bhAuth)-1] + "f", 401},
		{"ErrPrefixOfValue", bhAuth[:len(bhAuth)-1], 401},
		{"ErrValueWithoutScheme", strings.TrimPrefix(bhAuth, "Bearer "), 401},
		{"ErrJWTNoExp", bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, jwt.MapClaims{"sub": "bubblehouse"}), 401},
		{"ErrJWTExpired", bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, jwt.MapClaims{"exp": now.Add(-2 * time.Minute).Unix()}), 401},
		{"ErrJWTNotBefore", bhJWT(t, jwt.SigningMethodHS256, bhJWTSecret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(2 * time.Minute).Unix()}), 401},
		{"ErrJWTWrongSecret", bhJWT(t, jwt.SigningMethodHS256, []byte("another-s3cret"), valid), 401},
		{"ErrJWTAlgNone", "Bearer " + none, 401},
		{"ErrJWTHS384", bhJWT(t, jwt.SigningMethodHS384, bhJWTSecret, valid), 401},
		{"ErrJWTGarbage", "Bearer a.b.c", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, nil)
			body := `{"magic":"m"}`
			a := serve(e, bhCall{hook: "Hello1", body: body, auth: tt.auth, urgency: "real-time", id: "auth-" + tt.name}.request())
			if a.status != tt.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.status)
			}
			rec := g.last(t)
			if tt.status == 401 {
				if a.code(t) != hooks.EUNAUTHORIZED {
					t.Fatalf("answer %s, want code unauthorized", a.body)
				}
				// The body of an unauthenticated request is not read.
				if rec.Status != 401 || rec.Body != nil || !hasNote(rec, "not authenticated") {
					t.Fatalf("record: status %d body %q notes %q, want 401, no body, a note", rec.Status, rec.Body, rec.Notes)
				}
			}
			// The secret is redacted in the record and never in an answer.
			if got := rec.Header.Get("Authorization"); tt.auth != "-" && !strings.HasSuffix(got, "[redacted]") {
				t.Fatalf("recorded Authorization %q, want it redacted", got)
			}
			for _, secret := range []string{"bh-Fixed-s3cret", string(bhJWTSecret)} {
				if strings.Contains(string(a.body), secret) || strings.Contains(strings.Join(rec.Notes, " "), secret) {
					t.Fatalf("answer or notes repeat a secret: %s %q", a.body, rec.Notes)
				}
			}
		})
	}
}

// X-BH-Urgency, compared ignoring case: real-time runs inline (200 with
// the output), urgent and regular are queued (202), urgent first; a
// missing or unknown value is handled as regular and noted.
func TestBubblehouse_Urgency(t *testing.T) {
	for _, tt := range []struct {
		urgency string
		status  int
		queued  hooks.Urgency // "" when run inline
		note    string
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
			g := &Guard{}
			e := newBubblehouse(t, g, func(h *handlers.Bubblehouse) {
				h.HasAction = func(string) bool { return true }
				h.Inline = func(context.Context, *hooks.Job) ([]byte, error) {
					return []byte(`{"ok":true,"code":"C-1","inline":true}`), nil
				}
			})
			a := serve(e, bhCall{hook: "CreateDiscount4", body: `{"code":"C-1","title":"10% off","percentage":1000}`, urgency: tt.urgency, id: "urg"}.request())
			if a.status != tt.status || a.json(t)["code"] != "C-1" {
				t.Fatalf("got %d %s, want %d keeping the discount code", a.status, a.body, tt.status)
			}
			r := g.lastReceipt()
			if r == nil {
				t.Fatal("no receipt")
			}
			if tt.note != "" && !hasNote(r.Request, tt.note) {
				t.Fatalf("notes %q, want %q", r.Request.Notes, tt.note)
			}
			if tt.queued == "" {
				if g.runs != 1 || a.json(t)["inline"] != true || r.Job == nil || r.Job.State != hooks.JobDone {
					t.Fatalf("real-time: runs=%d answer %s job %+v, want the inline output and a done job", g.runs, a.body, r.Job)
				}
				return
			}
			if g.runs != 0 || r.Job == nil || r.Job.State != hooks.JobAvailable || r.Job.Urgency != tt.queued || r.Job.Priority != tt.queued.Priority() {
				t.Fatalf("runs=%d job %+v, want a queued %s job", g.runs, r.Job, tt.queued)
			}
		})
	}
}

// A bad body gets a JSON 400 that says why, an oversized one 413; neither
// queues anything.
func TestBubblehouse_Bodies(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		code, says string
	}{
		{"Empty", ``, 400, hooks.EINVALID, "body is empty"},
		{"Malformed", `{"code":`, 400, hooks.EINVALID, "not valid JSON"},
		{"Array", `[1,2]`, 400, hooks.EINVALID, "not an array"},
		{"String", `"x"`, 400, hooks.EINVALID, "not a string"},
		{"TrailingGarbage", `{} {}`, 400, hooks.EINVALID, "not valid JSON"},
		{"Oversized", `{"code":"` + strings.Repeat("x", bhMaxBody) + `"}`, 413, hooks.ETOOLARGE, "2048-byte limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, nil)
			a := serve(e, bhCall{hook: "CreateDiscount4", body: tt.body, urgency: "urgent", id: "bad"}.request())
			obj := a.json(t)
			if a.status != tt.status || obj["code"] != tt.code || !strings.Contains(obj["error"].(string), tt.says) {
				t.Fatalf("got %d %s, want %d %s saying %q", a.status, a.body, tt.status, tt.code, tt.says)
			}
			if receipts, _ := g.counts(); receipts != 0 || g.last(t).Status != tt.status {
				t.Fatalf("receipts=%d, want none; the refusal recorded", receipts)
			}
		})
	}
}

// SendEvent1: an HTTP error holds Bubblehouse's whole event queue, so an
// event it cannot use is answered 200 with outcome invalid_data; events
// are de-duplicated on bhid as well as X-Request-ID.
func TestBubblehouse_SendEvent1(t *testing.T) {
	for _, tt := range []struct{ name, body string }{
		{"NotJSON", `{"bhid":`},
		{"NotObject", `[{"bhid":"x"}]`},
		{"NoBhid", `{"type":"points_earned"}`},
		{"EmptyBhid", `{"bhid":""}`},
		{"BhidObject", `{"bhid":{"id":"x"}}`},
		{"BhidOtherCase", `{"BHID":"x"}`},
	} {
		t.Run("Invalid"+tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, nil)
			a := serve(e, bhCall{hook: "SendEvent1", body: tt.body, urgency: "regular", id: "ev-" + tt.name}.request())
			if a.status != 200 || a.json(t)["outcome"] != "invalid_data" || a.json(t)["error"] == "" {
				t.Fatalf("got %d %s, want 200 outcome invalid_data saying why", a.status, a.body)
			}
			// Settled under its request ID, so that a retry gets the same answer; nothing queued.
			r := g.lastReceipt()
			if r == nil || r.Job != nil || r.Request.Status != 200 || string(r.Request.Body) != tt.body {
				t.Fatalf("receipt %+v, want the request committed with its answer and no job", r)
			}
		})
	}
	t.Run("Queued", func(t *testing.T) {
		g := &Guard{}
		e := newBubblehouse(t, g, nil)
		a := serve(e, bhCall{hook: "SendEvent1", body: `{"bhid":"evt-1","points":10}`, urgency: "regular", id: "ev-ok"}.request())
		if a.status != 202 || string(a.body) != `{"outcome":"sent"}` {
			t.Fatalf("got %d %s, want 202 outcome sent", a.status, a.body)
		}
		if r := g.lastReceipt(); len(r.Keys) != 1 || r.Keys[0] != "SendEvent1/bhid:evt-1" || r.Job == nil {
			t.Fatalf("receipt keys %q job %v, want the bhid key and a job", r.Keys, r.Job)
		}
	})
	// A body that did not arrive in full is not bad data: invalid_data
	// would settle the request ID and lose the event Bubblehouse's retry
	// would have delivered.
	t.Run("CutOffIsNotInvalidData", func(t *testing.T) {
		g := &Guard{}
		e := newBubblehouse(t, g, nil)
		req := bhCall{hook: "SendEvent1", urgency: "regular", id: "ev-cut"}.request()
		req.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"bhid":"evt-`), errReader{io.ErrUnexpectedEOF}))
		req.ContentLength = -1
		a := serve(e, req)
		if a.status != http.StatusRequestTimeout || a.code(t) != hooks.EINCOMPLETE {
			t.Fatalf("got %d %s, want 408 incomplete", a.status, a.body)
		}
		if receipts, _ := g.counts(); receipts != 0 {
			t.Fatalf("receipts=%d: a cut-off event must not be settled", receipts)
		}
	})
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Inline hooks answer with the action's output, checked against the hook's
// output shape; a failure, a missed deadline or a malformed output asks
// Bubblehouse to retry (503), never a fake success.
func TestBubblehouse_Inline(t *testing.T) {
	reward := `{"reward_identifier":"r1","reward_title":"Mug","unlock_time":"2025-06-01T12:00:00Z"}`
	for _, tt := range []struct {
		name, hook, urgency string
		out                 string
		err                 error
		status              int
		want                string
	}{
		// DeliverCustomReward1's answer carries the business result: inline whatever the urgency.
		{"RewardRegular", "DeliverCustomReward1", "regular", `{"delivered":false,"message":"out of stock"}`, nil, 200, `{"delivered":false,"message":"out of stock"}`},
		{"RewardNoDelivered", "DeliverCustomReward1", "regular", `{"ok":true}`, nil, 503, ""},
		{"RewardDeliveredOtherCase", "DeliverCustomReward1", "regular", `{"Delivered":true}`, nil, 503, ""},
		{"RewardNotJSON", "DeliverCustomReward1", "urgent", `delivered`, nil, 503, ""},
		{"ActionFailed", "DeliverCustomReward1", "urgent", ``, errors.New("downstream 500"), 503, ""},
		{"SendEventRealtime", "SendEvent1", "real-time", `{"outcome":"skipped"}`, nil, 200, `{"outcome":"skipped"}`},
		{"SendEventBadOutcome", "SendEvent1", "real-time", `{"outcome":"done"}`, nil, 503, ""},
		// outcome failure is a 200 that Bubblehouse retries: sent, not settled.
		{"SendEventFailure", "SendEvent1", "real-time", `{"outcome":"failure"}`, nil, 200, `{"outcome":"failure"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, func(h *handlers.Bubblehouse) {
				h.HasAction = func(string) bool { return true }
				h.Inline = func(context.Context, *hooks.Job) ([]byte, error) { return []byte(tt.out), tt.err }
			})
			body := reward
			if tt.hook == "SendEvent1" {
				body = `{"bhid":"evt-9"}`
			}
			a := serve(e, bhCall{hook: tt.hook, body: body, urgency: tt.urgency, id: "in-" + tt.name}.request())
			if a.status != tt.status || (tt.want != "" && string(a.body) != tt.want) {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.status, tt.want)
			}
			if tt.status == 503 && a.code(t) != hooks.EUNAVAILABLE {
				t.Fatalf("answer %s, want code unavailable", a.body)
			}
			if g.runs != 1 {
				t.Fatalf("runs=%d, want the hook run inline once", g.runs)
			}
			if rec := g.last(t); rec.Status != tt.status {
				t.Fatalf("recorded status %d, want %d", rec.Status, tt.status)
			}
		})
	}
}

// The guard's classes reach Bubblehouse as its statuses: a twin still
// being processed is 409, which Bubblehouse retries; an internal error is
// 500 without its details.
func TestBubblehouse_GuardErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"Conflict", hooks.Errorf(hooks.ECONFLICT, "a request with this ID is still being processed"), 409, hooks.ECONFLICT},
		{"Internal", errors.New("disk I/O error at /var/lib/hookbay/hookbay.db"), 500, hooks.EINTERNAL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{CommitFn: func(context.Context, *hooks.Receipt, string) (hooks.Response, error) { return hooks.Response{}, tt.err }}
			e := newBubblehouse(t, g, nil)
			a := serve(e, bhCall{hook: "CreateDiscount4", body: `{"code":"X"}`, urgency: "urgent", id: "g"}.request())
			if a.status != tt.status || a.code(t) != tt.code || strings.Contains(string(a.body), "/var/lib") {
				t.Fatalf("got %d %s, want %d %s without internals", a.status, a.body, tt.status, tt.code)
			}
		})
	}
}
