package qa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const bhTestAuth = "Bearer qa-test-value"

func TestBubblehouseRequest(t *testing.T) {
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	t.Run("Hello1", func(t *testing.T) {
		req, body, err := BubblehouseRequest(BubblehouseOptions{URLTemplate: "https://h.example/bh/:name?x=1", Authorization: bhTestAuth})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := req.Method+" "+req.URL.String(), "POST https://h.example/bh/Hello1?x=1"; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		for k, want := range map[string]string{"Content-Type": "application/json", "Accepts": "application/json",
			"X-BH-Urgency": "real-time", "Authorization": bhTestAuth} {
			if got := req.Header.Get(k); got != want {
				t.Errorf("%s=%q, want %q", k, got, want)
			}
		}
		if id := req.Header.Get("X-Request-ID"); !uuidRE.MatchString(id) {
			t.Errorf("X-Request-ID=%q, want a UUID", id)
		}
		var in struct{ Magic string }
		if json.Unmarshal(body, &in) != nil || !strings.HasPrefix(in.Magic, "hookbay-") {
			t.Errorf("body=%s, want a random magic", body)
		}
		req2, body2, _ := BubblehouseRequest(BubblehouseOptions{URLTemplate: "https://h.example/bh/:name"})
		if req2.Header.Get("X-Request-ID") == req.Header.Get("X-Request-ID") || bytes.Equal(body, body2) {
			t.Error("request ID or magic repeated across calls")
		}
		if req2.Header.Get("Authorization") != "" {
			t.Error("Authorization sent without credentials")
		}
	})
	t.Run("CatalogueInputs", func(t *testing.T) {
		for hook, fields := range map[string][]string{
			"CreateDiscount4":      {"code", "title", "percentage"},
			"DeliverCustomReward1": {"reward_identifier", "reward_title", "unlock_time"},
			"SendEvent1":           {"bhid"},
			"PrivateHook7":         nil,
		} {
			req, body, err := BubblehouseRequest(BubblehouseOptions{URLTemplate: "http://h/:name", Hook: hook})
			if err != nil {
				t.Fatal(err)
			}
			if req.Header.Get("X-BH-Urgency") != "urgent" || !strings.HasSuffix(req.URL.Path, "/"+hook) {
				t.Errorf("%s: urgency %q path %s", hook, req.Header.Get("X-BH-Urgency"), req.URL.Path)
			}
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil || len(obj) < len(fields) {
				t.Fatalf("%s: body %s", hook, body)
			}
			for _, f := range fields {
				if _, ok := obj[f]; !ok {
					t.Errorf("%s: body %s lacks %s", hook, body, f)
				}
			}
		}
	})
	t.Run("GivenFields", func(t *testing.T) {
		req, body, err := BubblehouseRequest(BubblehouseOptions{URLTemplate: "http://h/:name", Hook: "SendEvent1", Urgency: "regular",
			RequestID: "rid-1", Data: []byte(`{"bhid":"e1"}`)})
		if err != nil || req.Header.Get("X-BH-Urgency") != "regular" || req.Header.Get("X-Request-ID") != "rid-1" || string(body) != `{"bhid":"e1"}` {
			t.Fatalf("err=%v urgency=%q id=%q body=%s", err, req.Header.Get("X-BH-Urgency"), req.Header.Get("X-Request-ID"), body)
		}
	})
	t.Run("JWT", func(t *testing.T) {
		req, _, err := BubblehouseRequest(BubblehouseOptions{URLTemplate: "http://h/:name", JWTSecret: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok {
			t.Fatalf("Authorization=%q", req.Header.Get("Authorization"))
		}
		claims := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
		if err != nil || !tok.Valid {
			t.Fatalf("token does not verify: %v", err)
		}
		iat, _ := claims.GetIssuedAt()
		exp, _ := claims.GetExpirationTime()
		if d := exp.Sub(iat.Time); d != 5*time.Minute {
			t.Fatalf("exp-iat=%s, want 5m", d)
		}
	})
	for name, o := range map[string]BubblehouseOptions{
		"ErrNoName":     {URLTemplate: "http://h/hooks"},
		"ErrBothAuth":   {URLTemplate: "http://h/:name", Authorization: "a", JWTSecret: "b"},
		"ErrNotAbsURL":  {URLTemplate: "/bh/:name"},
		"ErrBadScheme":  {URLTemplate: "ftp://h/:name"},
		"ErrUnparsable": {URLTemplate: "http://h/%zz/:name"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := BubblehouseRequest(o); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// bhExchange returns an exchange of hook answered status and answer.
func bhExchange(t *testing.T, hook, urgency string, body string, status int, answer string) *Exchange {
	t.Helper()
	req, b, err := BubblehouseRequest(BubblehouseOptions{URLTemplate: "http://h/x/:name", Hook: hook, Urgency: urgency, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return &Exchange{Request: req, Body: b, Status: status, Answer: []byte(answer)}
}

func TestBubblehouseMeaning(t *testing.T) {
	for _, tt := range []struct {
		name, hook, urgency, body string
		status                    int
		answer, want              string
	}{
		{"Accepted", "CreateDiscount4", "", `{}`, 202, `{"ok":true}`, "accepted"},
		{"Retry503", "CreateDiscount4", "urgent", `{}`, 503, `{}`, "Bubblehouse will retry: 503 is not 200, 201, 202 or 204; Bubblehouse will retry (for up to 1 hour)"},
		{"Regular500", "PrivateHook1", "regular", `{}`, 500, ``, "for up to 48 hours"},
		{"Realtime", "CreateDiscount4", "real-time", `{}`, 502, ``, "100ms, then 1 second, 5 times"},
		{"Unauthorized", "CreateDiscount4", "", `{}`, 401, `{}`, "Bubblehouse will retry: 401 (the Authorization value"},
		{"Empty204", "CreateDiscount4", "", `{}`, 204, ``, "not a valid output object (204, the body is empty): Bubblehouse will retry"},
		{"Array", "CreateDiscount4", "", `{}`, 200, `[]`, "not a valid output object (200, the body is JSON but not an object)"},
		{"NotJSON", "CreateDiscount4", "", `{}`, 200, `ok`, "the body is not valid JSON"},
		{"Hello2", "Hello2", "", `{}`, 404, `{}`, "404: Bubblehouse treats the hook as not implemented (expected only for unknown hooks and Hello2)"},
		{"Subscribed404", "CreateDiscount4", "", `{}`, 404, `{}`, "for a subscribed hook it is an error"},
		{"Hello1OK", "Hello1", "", `{"magic":"a\u00e9"}`, 200, `{"magic":"aé","hooks":["X1"]}`, "accepted: handshake OK, subscribed to X1"},
		{"Hello1WrongMagic", "Hello1", "", `{"magic":"a"}`, 200, `{"magic":"b","hooks":[]}`, "magic is not the string sent"},
		{"Hello1NoHooks", "Hello1", "", `{"magic":"a"}`, 200, `{"magic":"a"}`, "hooks is not an array of strings"},
		{"RewardDelivered", "DeliverCustomReward1", "", `{}`, 200, `{"delivered":true}`, "accepted: reward delivered"},
		{"RewardNotDelivered", "DeliverCustomReward1", "", `{}`, 200, `{"delivered":false}`, "refunds the customer"},
		{"RewardNoDelivered", "DeliverCustomReward1", "", `{}`, 200, `{"ok":true}`, "delivered must be a boolean"},
		{"EventSent", "SendEvent1", "", `{}`, 200, `{"outcome":"sent"}`, "the event leaves Bubblehouse's queue"},
		{"EventInvalid", "SendEvent1", "", `{}`, 200, `{"outcome":"invalid_data"}`, "permanent failure"},
		{"EventFailure", "SendEvent1", "", `{}`, 200, `{"outcome":"failure"}`, "failure or any HTTP error holds the whole event queue"},
		{"EventHTTPError", "SendEvent1", "", `{}`, 400, `{}`, "failure or any HTTP error holds the whole event queue"},
		{"EventNoOutcome", "SendEvent1", "", `{}`, 200, `{}`, "outcome must be sent, skipped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := BubblehouseMeaning(bhExchange(t, tt.hook, tt.urgency, tt.body, tt.status, tt.answer))
			if !strings.Contains(got, tt.want) {
				t.Fatalf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
	t.Run("NoAnswer", func(t *testing.T) {
		x := bhExchange(t, "CreateDiscount4", "", `{}`, 0, "")
		x.Err = errors.New("connection refused")
		if got := BubblehouseMeaning(x); !strings.Contains(got, "no answer (connection refused): Bubblehouse will retry") {
			t.Fatalf("got %q", got)
		}
	})
}

// bhReceiver is a Bubblehouse receiver done right, with switchable faults.
type bhReceiver struct {
	hooks        []string
	magic        func(raw json.RawMessage) []byte // nil: echo verbatim
	answers      map[string]func(w http.ResponseWriter)
	noAuth       bool          // accept any Authorization
	wrongAuthSt  int           // status for a wrong Authorization (default 401)
	strictCase   bool          // refuse urgencies that are not lower case
	queueCase    bool          // queue any call whose urgency is not exactly "real-time"
	conflictDups bool          // 409 for a repeated X-Request-ID
	slowRealtime time.Duration // delay for real-time calls other than Hello1

	mu   sync.Mutex
	seen map[string]bool
}

func (b *bhReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !b.noAuth && r.Header.Get("Authorization") != bhTestAuth {
		st := b.wrongAuthSt
		if st == 0 {
			st = http.StatusUnauthorized
		}
		w.WriteHeader(st)
		io.WriteString(w, `{"error":"auth"}`)
		return
	}
	urgency := r.Header.Get("X-BH-Urgency")
	if b.strictCase && urgency != strings.ToLower(urgency) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"urgency"}`)
		return
	}
	if b.queueCase && urgency != "real-time" && urgency != "urgent" && urgency != "regular" {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"queued":true}`)
		return
	}
	if id := r.Header.Get("X-Request-ID"); b.conflictDups && id != "" {
		b.mu.Lock()
		dup := b.seen[id]
		if b.seen == nil {
			b.seen = map[string]bool{}
		}
		b.seen[id] = true
		b.mu.Unlock()
		if dup {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error":"duplicate"}`)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	hook := strings.TrimPrefix(r.URL.Path, "/hooks/")
	if hook == "Hello1" {
		var in struct{ Magic json.RawMessage }
		json.Unmarshal(body, &in)
		m := []byte(in.Magic)
		if b.magic != nil {
			m = b.magic(in.Magic)
		}
		list, _ := json.Marshal(append([]string{}, b.hooks...)) // never null
		w.Write([]byte(`{"magic":` + string(m) + `,"hooks":` + string(list) + `}`))
		return
	}
	known := false
	for _, h := range b.hooks {
		known = known || h == hook
	}
	if !known {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"not found"}`)
		return
	}
	if strings.EqualFold(urgency, "real-time") && b.slowRealtime > 0 {
		time.Sleep(b.slowRealtime)
	}
	if a := b.answers[hook]; a != nil {
		a(w)
		return
	}
	io.WriteString(w, `{"ok":true}`)
}

// bhConform runs the probes against rcv and returns the checks by name.
func bhConform(t *testing.T, rcv http.Handler, o BubblehouseOptions) map[string]Check {
	t.Helper()
	s := httptest.NewServer(rcv)
	t.Cleanup(s.Close)
	o.URLTemplate = s.URL + "/hooks/:name"
	c, err := NewClient("", false, "", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := ConformBubblehouse(context.Background(), c, o)
	if r.Sender != "bubblehouse" || r.Target != o.URLTemplate {
		t.Fatalf("report for %s %s", r.Sender, r.Target)
	}
	checks := map[string]Check{}
	for _, ch := range r.Checks {
		if _, dup := checks[ch.Name]; dup {
			t.Fatalf("check %s reported twice", ch.Name)
		}
		checks[ch.Name] = ch
	}
	return checks
}

// bhWant asserts the status of the named checks and that every other check passed.
func bhWant(t *testing.T, checks map[string]Check, want map[string]Status) {
	t.Helper()
	for name, st := range want {
		c, ok := checks[name]
		if !ok {
			t.Errorf("no check %s", name)
		} else if c.Status != st {
			t.Errorf("%s: %s (%s), want %s", name, c.Status, c.Detail, st)
		}
	}
	for name, c := range checks {
		if _, ok := want[name]; !ok && c.Status != Pass {
			t.Errorf("%s: %s (%s), want PASS", name, c.Status, c.Detail)
		}
		if c.Contract == "" {
			t.Errorf("%s: no contract cited", name)
		}
	}
}

func TestConformBubblehouse(t *testing.T) {
	catalogue := []string{"CreateDiscount4", "DeliverCustomReward1", "SendEvent1", "Private2"}
	okAnswers := map[string]func(http.ResponseWriter){
		"DeliverCustomReward1": func(w http.ResponseWriter) { io.WriteString(w, `{"delivered":true}`) },
		"SendEvent1":           func(w http.ResponseWriter) { io.WriteString(w, `{"outcome":"sent"}`) },
	}
	t.Run("OK", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{hooks: catalogue, answers: okAnswers}, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, map[string]Status{"hello1-magic": Pass, "hello1-hooks": Pass, "hello2-404": Pass, "unknown-hook-404": Pass,
			"wrong-auth": Pass, "output-object/CreateDiscount4": Pass, "output-object/DeliverCustomReward1": Pass,
			"output-object/SendEvent1": Pass, "retry-same-answer": Pass, "realtime-deadline": Pass, "header-case": Pass, "urgency-case": Pass})
		if _, ok := checks["output-object/Private2"]; ok {
			t.Error("more than 3 hooks probed")
		}
		for _, c := range checks {
			if c.HTTP == 0 || c.Latency == 0 {
				t.Errorf("%s: no evidence (status %d, latency %s)", c.Name, c.HTTP, c.Latency)
			}
		}
		if d := checks["hello1-magic"].Detail; d != "magic echoed byte for byte" {
			t.Errorf("hello1-magic detail %q", d)
		}
	})
	t.Run("MagicReEncoded", func(t *testing.T) {
		// The same string in another JSON spelling passes: Bubblehouse
		// compares the string.
		checks := bhConform(t, &bhReceiver{magic: func(raw json.RawMessage) []byte {
			var s string
			json.Unmarshal(raw, &s)
			b, _ := json.Marshal(s)
			return b
		}}, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, nil)
		if d := checks["hello1-magic"].Detail; !strings.Contains(d, `\u003c\u0026\u003e`) {
			t.Errorf("detail %q does not show the re-encoding", d)
		}
	})
	for name, fn := range map[string]func(json.RawMessage) []byte{
		"MagicHTMLEscaped": func(raw json.RawMessage) []byte {
			return []byte(strings.NewReplacer("<", "&lt;", "&", "&amp;", ">", "&gt;").Replace(string(raw)))
		},
		"MagicDoubleEscaped": func(raw json.RawMessage) []byte { b, _ := json.Marshal(string(raw[1 : len(raw)-1])); return b },
		"MagicLatin1": func(raw json.RawMessage) []byte {
			return bytes.ReplaceAll(raw, []byte("é"), []byte("\xc3\x83\xc2\xa9"))
		},
		"MagicMissing": func(json.RawMessage) []byte { return []byte(`null`) },
	} {
		t.Run(name, func(t *testing.T) {
			bhWant(t, bhConform(t, &bhReceiver{magic: fn}, BubblehouseOptions{Authorization: bhTestAuth}), map[string]Status{"hello1-magic": Fail})
		})
	}
	t.Run("HooksNotArray", func(t *testing.T) {
		rcv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/Hello1") && r.Header.Get("Authorization") == bhTestAuth {
				var in struct{ Magic json.RawMessage }
				json.NewDecoder(r.Body).Decode(&in)
				w.Write([]byte(`{"magic":` + string(in.Magic) + `,"hooks":"CreateDiscount4"}`))
				return
			}
			if r.Header.Get("Authorization") != bhTestAuth {
				w.WriteHeader(401)
			} else {
				w.WriteHeader(404)
			}
			io.WriteString(w, `{}`)
		})
		bhWant(t, bhConform(t, rcv, BubblehouseOptions{Authorization: bhTestAuth}), map[string]Status{"hello1-hooks": Fail})
	})
	t.Run("Empty204AndBadOutputs", func(t *testing.T) {
		rcv := &bhReceiver{hooks: catalogue, answers: map[string]func(http.ResponseWriter){
			"CreateDiscount4":      func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) },
			"DeliverCustomReward1": func(w http.ResponseWriter) { io.WriteString(w, `{"ok":true}`) },
			"SendEvent1":           func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable); io.WriteString(w, `{}`) },
		}}
		checks := bhConform(t, rcv, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, map[string]Status{"output-object/CreateDiscount4": Fail, "output-object/DeliverCustomReward1": Fail,
			"output-object/SendEvent1": Fail, "retry-same-answer": Fail, "urgency-case": Warn})
		if d := checks["output-object/CreateDiscount4"].Detail; !strings.Contains(d, "must be a valid output JSON object") {
			t.Errorf("204 detail %q", d)
		}
		if d := checks["output-object/SendEvent1"].Detail; !strings.Contains(d, "holds the whole event queue") {
			t.Errorf("SendEvent1 detail %q", d)
		}
	})
	t.Run("WarnOutcomes", func(t *testing.T) {
		rcv := &bhReceiver{hooks: []string{"DeliverCustomReward1", "SendEvent1"}, answers: map[string]func(http.ResponseWriter){
			"DeliverCustomReward1": func(w http.ResponseWriter) { io.WriteString(w, `{"delivered":false}`) },
			"SendEvent1":           func(w http.ResponseWriter) { io.WriteString(w, `{"outcome":"failure"}`) },
		}}
		bhWant(t, bhConform(t, rcv, BubblehouseOptions{Authorization: bhTestAuth}),
			map[string]Status{"output-object/DeliverCustomReward1": Warn, "output-object/SendEvent1": Warn})
	})
	t.Run("ConflictOnRetry", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{hooks: catalogue, answers: okAnswers, conflictDups: true}, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, map[string]Status{"retry-same-answer": Fail})
		if c := checks["retry-same-answer"]; c.HTTP != http.StatusConflict || !strings.Contains(c.Detail, "CreateDiscount4") {
			t.Errorf("evidence: %d %s", c.HTTP, c.Detail)
		}
	})
	t.Run("RetryDifferentBody", func(t *testing.T) {
		n := 0
		var mu sync.Mutex
		rcv := &bhReceiver{hooks: []string{"Private1"}, answers: map[string]func(http.ResponseWriter){
			"Private1": func(w http.ResponseWriter) {
				mu.Lock()
				n++
				k := n
				mu.Unlock()
				json.NewEncoder(w).Encode(map[string]int{"n": k})
			},
		}}
		bhWant(t, bhConform(t, rcv, BubblehouseOptions{Authorization: bhTestAuth}), map[string]Status{"retry-same-answer": Fail}) // issue 7: "a retry with the same X-Request-ID gets the same answer"
	})
	t.Run("NoHooksRetriesHello1", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{}, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, nil)
		if d := checks["retry-same-answer"].Detail; !strings.HasPrefix(d, "Hello1 ") {
			t.Errorf("retry detail %q", d)
		}
	})
	t.Run("NoAuthCheck", func(t *testing.T) {
		bhWant(t, bhConform(t, &bhReceiver{noAuth: true}, BubblehouseOptions{Authorization: bhTestAuth}), map[string]Status{"wrong-auth": Fail})
	})
	t.Run("WrongAuth400", func(t *testing.T) {
		bhWant(t, bhConform(t, &bhReceiver{wrongAuthSt: 400}, BubblehouseOptions{Authorization: bhTestAuth}), map[string]Status{"wrong-auth": Warn})
	})
	t.Run("WrongAuth403", func(t *testing.T) {
		bhWant(t, bhConform(t, &bhReceiver{wrongAuthSt: 403}, BubblehouseOptions{Authorization: bhTestAuth}), nil)
	})
	t.Run("NoCredentials", func(t *testing.T) {
		bhWant(t, bhConform(t, &bhReceiver{noAuth: true}, BubblehouseOptions{}), map[string]Status{"wrong-auth": Skip})
	})
	t.Run("JWT", func(t *testing.T) {
		rcv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return []byte("k"), nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
				w.WriteHeader(401)
				return
			}
			r.Header.Set("Authorization", bhTestAuth)
			(&bhReceiver{}).ServeHTTP(w, r)
		})
		bhWant(t, bhConform(t, rcv, BubblehouseOptions{JWTSecret: "k"}), nil)
	})
	t.Run("UrgencyCaseSensitive", func(t *testing.T) {
		bhWant(t, bhConform(t, &bhReceiver{hooks: catalogue, answers: okAnswers, strictCase: true}, BubblehouseOptions{Authorization: bhTestAuth}),
			map[string]Status{"urgency-case": Warn})
	})
	// An unrecognised "Real-Time" queued: accepted, but Hello1 never ran.
	t.Run("UrgencyCaseQueued", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{hooks: catalogue, answers: okAnswers, queueCase: true}, BubblehouseOptions{Authorization: bhTestAuth})
		bhWant(t, checks, map[string]Status{"urgency-case": Warn})
		if d := checks["urgency-case"].Detail; !strings.Contains(d, "not run as real-time") {
			t.Errorf("urgency-case detail %q", d)
		}
	})
	t.Run("RealtimeWarn", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{hooks: []string{"CreateDiscount4"}, slowRealtime: 250 * time.Millisecond},
			BubblehouseOptions{Authorization: bhTestAuth, RealtimeLimit: 400 * time.Millisecond})
		bhWant(t, checks, map[string]Status{"realtime-deadline": Warn})
		if c := checks["realtime-deadline"]; c.Latency < 250*time.Millisecond || !strings.Contains(c.Detail, "CreateDiscount4") {
			t.Errorf("evidence: %s %s", c.Latency, c.Detail)
		}
	})
	t.Run("RealtimeTooSlow", func(t *testing.T) {
		checks := bhConform(t, &bhReceiver{hooks: []string{"Private9"}, slowRealtime: 300 * time.Millisecond},
			BubblehouseOptions{Authorization: bhTestAuth, RealtimeLimit: 100 * time.Millisecond})
		bhWant(t, checks, map[string]Status{"realtime-deadline": Fail})
		if d := checks["realtime-deadline"].Detail; !strings.Contains(d, "no answer within 100ms") {
			t.Errorf("detail %q", d)
		}
	})
	t.Run("ErrNoTemplate", func(t *testing.T) {
		c, _ := NewClient("", false, "", "", time.Second)
		r := ConformBubblehouse(context.Background(), c, BubblehouseOptions{URLTemplate: "http://127.0.0.1:1/hooks"})
		if !r.Failed() || len(r.Checks) != 1 || r.Checks[0].Name != "url-template" {
			t.Fatalf("checks=%+v", r.Checks)
		}
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c, _ := NewClient("", false, "", "", time.Second)
		r := ConformBubblehouse(context.Background(), c, BubblehouseOptions{URLTemplate: "http://" + addr + "/:name", Authorization: bhTestAuth})
		for _, ch := range r.Checks {
			if ch.Status != Fail {
				t.Errorf("%s: %s, want FAIL with no server", ch.Name, ch.Status)
			}
		}
	})
}

// teeListener records every byte the server reads, to see the header
// names as they went over the wire.
type teeListener struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, l: l}, nil
}

func (l *teeListener) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type teeConn struct {
	net.Conn
	l *teeListener
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// The header-case probe really sends lower-case names; the other calls
// send the names as the contract spells them.
func TestConformBubblehouse_HeaderCaseOnTheWire(t *testing.T) {
	s := httptest.NewUnstartedServer(&bhReceiver{})
	tl := &teeListener{Listener: s.Listener}
	s.Listener = tl
	s.Start()
	defer s.Close()
	c, _ := NewClient("", false, "", "", 5*time.Second)
	r := ConformBubblehouse(context.Background(), c, BubblehouseOptions{URLTemplate: s.URL + "/hooks/:name", Authorization: bhTestAuth})
	if r.Failed() {
		t.Fatalf("checks: %+v", r.Checks)
	}
	wire := tl.String()
	for _, want := range []string{"\r\nx-bh-urgency: real-time\r\n", "\r\nx-request-id: ", "\r\nauthorization: " + bhTestAuth + "\r\n",
		"\r\nX-Bh-Urgency: real-time\r\n", "\r\nAccepts: application/json\r\n"} {
		if !strings.Contains(wire, want) {
			t.Errorf("no %q on the wire", want)
		}
	}
}
