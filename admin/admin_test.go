package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/admin"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

const testToken = "admin-token-0123456789"

// env is an admin server on a real SQLite store.
type env struct {
	t   *testing.T
	db  *sqlite.DB
	srv *admin.Server
	now time.Time
}

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	e := &env{t: t, db: sqlitetest.Open(t), now: time.Now()}
	x := &hooks.Executor{Store: e.db, Lease: time.Minute}
	e.srv = admin.New(admin.Options{
		Store: e.db,
		Token: token,
		Now:   func() time.Time { return e.now },
		Replay: func(ctx context.Context, id int64, force bool) ([]hooks.ReplayedJob, error) {
			return x.Replay(ctx, id, force, nil)
		},
		Report: func(ctx context.Context, s hooks.Sender, since time.Time) (any, error) {
			reqs, err := e.db.FindRequests(ctx, hooks.RequestFilter{Sender: s, Since: since, Limit: 1000})
			return map[string]int{"requests": len(reqs)}, err
		},
		BaseURL: func() string { return "https://hooks.example" },
		Version: "test",
	})
	return e
}

// do sends a request through the server's handler (routing, middleware
// and the error handler included) as loopback, with the token when set.
func (e *env) do(method, target string, body any, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = strings.NewReader(string(buf))
	}
	req := httptest.NewRequest(method, "http://127.0.0.1:8081"+target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

// api calls the API with the bearer token and decodes a JSON answer into
// v, failing unless the status is want.
func (e *env) api(method, target string, body any, want int, v any) {
	e.t.Helper()
	rec := e.do(method, "/api/v1/"+target, body, "Authorization", "Bearer "+testToken)
	if rec.Code != want {
		e.t.Fatalf("%s %s: got %d %s, want %d", method, target, rec.Code, rec.Body, want)
	}
	if v != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, target, err, rec.Body)
		}
	}
}

// receipt saves an accepted request of sender for name with a queued job.
func (e *env) receipt(sender hooks.Sender, name, rid, body, answer string) *hooks.Receipt {
	e.t.Helper()
	req := &hooks.Request{Sender: sender, Name: name, RequestID: rid, Urgency: hooks.UrgencyRegular, Method: http.MethodPost,
		Path: "/" + string(sender) + "/" + name, RemoteAddr: "192.0.2.7",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer [redacted]"}, "X-Request-Id": {rid}},
		Body:   []byte(body), Status: http.StatusOK, Response: []byte(answer), Latency: 1500 * time.Microsecond, ReceivedAt: e.now}
	r := &hooks.Receipt{Request: req, Keys: []string{rid}, Job: hooks.NewJob(req, e.now)}
	if _, err := e.db.SaveReceipt(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// refused records a request that was not accepted.
func (e *env) refused(sender hooks.Sender, name, rid string, status int, answer string) *hooks.Request {
	e.t.Helper()
	req := &hooks.Request{Sender: sender, Name: name, RequestID: rid, Method: http.MethodPost, Path: "/" + string(sender) + "/" + name,
		Header: http.Header{}, Body: []byte(`{}`), Status: status, Response: []byte(answer), ReceivedAt: e.now}
	if err := e.db.Record(context.Background(), req); err != nil {
		e.t.Fatal(err)
	}
	return req
}

// kill claims the available jobs and fails each for good.
func (e *env) kill() []*hooks.Job {
	e.t.Helper()
	ctx := context.Background()
	jobs, err := e.db.ClaimJobs(ctx, e.now, time.Minute, 100, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, j := range jobs {
		j.AttemptStarted, j.AttemptDuration = e.now, 20*time.Millisecond
		if err := e.db.FailJob(ctx, j, e.now, time.Time{}, true, "HTTP 500 from the integrator"); err != nil {
			e.t.Fatal(err)
		}
	}
	return jobs
}

func TestServer_Auth(t *testing.T) {
	t.Run("OpenOnLoopback", func(t *testing.T) {
		e := newEnv(t, "")
		if rec := e.do(http.MethodGet, "/api/v1/requests", nil); rec.Code != http.StatusOK {
			t.Fatalf("loopback without a token: got %d %s, want 200", rec.Code, rec.Body)
		}
		req := httptest.NewRequest(http.MethodGet, "http://attacker.example:8081/api/v1/requests", nil)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "loopback") {
			t.Fatalf("another host name (DNS rebinding): got %d %s, want 403 naming loopback", rec.Code, rec.Body)
		}
		// A page on another site cannot change anything through the
		// visitor's browser, even with no token to steal.
		rec = e.do(http.MethodPost, "/api/v1/faults", `{"sender":"svix","status":503}`, "Sec-Fetch-Site", "cross-site")
		if rec.Code != http.StatusForbidden {
			t.Fatalf("cross-site POST: got %d %s, want 403", rec.Code, rec.Body)
		}
		if rec := e.do(http.MethodGet, "/login", nil); rec.Code != http.StatusSeeOther {
			t.Fatalf("login page without a token: got %d, want a redirect to /", rec.Code)
		}
	})
	t.Run("TokenRequired", func(t *testing.T) {
		e := newEnv(t, testToken)
		rec := e.do(http.MethodGet, "/api/v1/requests", nil)
		var body map[string]string
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(body["error"], "token") {
			t.Fatalf("no token: got %d %s, want 401 saying a token is required", rec.Code, rec.Body)
		}
		if rec := e.do(http.MethodGet, "/api/v1/requests", nil, "Authorization", "Bearer wrong-token-0123456789"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token: got %d, want 401", rec.Code)
		}
		if rec := e.do(http.MethodGet, "/api/v1/requests", nil, "Authorization", "Bearer "+testToken); rec.Code != http.StatusOK {
			t.Fatalf("bearer token: got %d %s, want 200", rec.Code, rec.Body)
		}
		if rec := e.do(http.MethodGet, "/", nil, "Accept", "text/html"); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login?next=") {
			t.Fatalf("a page without a session: got %d to %q, want a redirect to /login", rec.Code, rec.Header().Get("Location"))
		}
		// Mounted handlers sit behind the same token.
		e.srv.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hookbay_up 1\n") }))
		if rec := e.do(http.MethodGet, "/metrics", nil); rec.Code != http.StatusUnauthorized {
			t.Fatalf("/metrics without the token: got %d, want 401", rec.Code)
		}
		if rec := e.do(http.MethodGet, "/metrics", nil, "Authorization", "Bearer "+testToken); rec.Code != http.StatusOK || rec.Body.String() != "hookbay_up 1\n" {
			t.Fatalf("/metrics with the token: got %d %q", rec.Code, rec.Body)
		}
	})
	t.Run("LoginSession", func(t *testing.T) {
		e := newEnv(t, testToken)
		form := func(token string) *httptest.ResponseRecorder {
			return e.do(http.MethodPost, "/login", url.Values{"token": {token}, "next": {"/requests/5"}}.Encode(),
				"Content-Type", "application/x-www-form-urlencoded", "Origin", "http://127.0.0.1:8081")
		}
		if rec := form("wrong"); rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 || !strings.Contains(rec.Body.String(), "not the admin token") {
			t.Fatalf("wrong token: got %d, cookies %v", rec.Code, rec.Result().Cookies())
		}
		rec := form(testToken)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/requests/5" {
			t.Fatalf("login: got %d to %q, want a redirect to /requests/5", rec.Code, rec.Header().Get("Location"))
		}
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("login set %d cookies, want 1", len(cookies))
		}
		ck := cookies[0]
		if ck.Name != admin.SessionCookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Value == testToken {
			t.Fatalf("session cookie: got %+v, want HttpOnly, SameSite=Strict, not Secure over plain HTTP, not the token", ck)
		}
		session := ck.Name + "=" + ck.Value
		if rec := e.do(http.MethodGet, "/api/v1/faults", nil, "Cookie", session); rec.Code != http.StatusOK {
			t.Fatalf("API with the session: got %d %s", rec.Code, rec.Body)
		}
		body := `{"sender":"svix","status":503}`
		if rec := e.do(http.MethodPost, "/api/v1/faults", body, "Cookie", session, "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusForbidden {
			t.Fatalf("cross-site POST with the session: got %d, want 403", rec.Code)
		}
		if rec := e.do(http.MethodPost, "/api/v1/faults", body, "Cookie", session, "Origin", "https://evil.example"); rec.Code != http.StatusForbidden {
			t.Fatalf("POST from another origin with the session: got %d, want 403", rec.Code)
		}
		if rec := e.do(http.MethodPost, "/api/v1/faults", body, "Cookie", session, "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusCreated {
			t.Fatalf("same-origin POST with the session: got %d %s, want 201", rec.Code, rec.Body)
		}
		// The bearer token is not a browser's ambient credential: no
		// origin check applies to it.
		if rec := e.do(http.MethodDelete, "/api/v1/faults?all=true", nil, "Authorization", "Bearer "+testToken, "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusOK {
			t.Fatalf("bearer DELETE: got %d %s, want 200", rec.Code, rec.Body)
		}
		e.now = e.now.Add(13 * time.Hour)
		if rec := e.do(http.MethodGet, "/api/v1/faults", nil, "Cookie", session); rec.Code != http.StatusUnauthorized {
			t.Fatalf("expired session: got %d, want 401", rec.Code)
		}
		if rec := e.do(http.MethodGet, "/api/v1/faults", nil, "Cookie", admin.SessionCookie+"="+ck.Value[:len(ck.Value)-2]+"AA"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("forged session: got %d, want 401", rec.Code)
		}
	})
	t.Run("SecureCookieOverTLS", func(t *testing.T) {
		e := newEnv(t, testToken)
		ts := httptest.NewTLSServer(e.srv)
		defer ts.Close()
		c := ts.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/login", strings.NewReader("token="+testToken))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
			t.Fatalf("over TLS: got cookies %+v, want one Secure", cs)
		}
	})
	t.Run("SafeNext", func(t *testing.T) {
		e := newEnv(t, testToken)
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
			rec := e.do(http.MethodPost, "/login", url.Values{"token": {testToken}, "next": {next}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
			if got := rec.Header().Get("Location"); got != "/" {
				t.Errorf("next %q: redirected to %q, want /", next, got)
			}
		}
	})
}

// requestsPage is GET requests' answer, as the tests read it.
type requestsPage struct {
	Requests []struct {
		ID        int64  `json:"id"`
		Sender    string `json:"sender"`
		Name      string `json:"name"`
		RequestID string `json:"request_id"`
		Status    int    `json:"status"`
		Verdict   struct {
			Kind, Text string
		} `json:"verdict"`
		Delivery struct {
			State string `json:"state"`
		} `json:"delivery"`
	} `json:"requests"`
	NextBefore int64 `json:"next_before"`
	Searched   *struct {
		From, To, Window int64
	} `json:"searched"`
}

func (p requestsPage) ids() string {
	var out []string
	for _, r := range p.Requests {
		out = append(out, fmt.Sprint(r.ID))
	}
	return strings.Join(out, ",")
}

func TestServer_ListRequests(t *testing.T) {
	e := newEnv(t, testToken)
	a := e.receipt(hooks.SenderBubblehouse, "SendEvent1", "bh-1", `{"customer":"alice"}`, `{"outcome":"success"}`).Request
	b := e.refused(hooks.SenderBloomreach, "sample", "br-1", 404, `{"code":"not_found","error":"no webhook"}`)
	c := e.receipt(hooks.SenderSvix, "ep", "msg_1", `{"type":"user.created","data":{"name":"carol"}}`, `{}`).Request
	d := e.refused(hooks.SenderBubblehouse, "SendEvent1", "bh-2", 503, `{"code":"unavailable"}`)

	var p requestsPage
	e.api(http.MethodGet, "requests", nil, http.StatusOK, &p)
	if got, want := p.ids(), fmt.Sprintf("%d,%d,%d,%d", d.ID, c.ID, b.ID, a.ID); got != want {
		t.Fatalf("all: got %s, want %s (newest first)", got, want)
	}
	for _, r := range p.Requests {
		switch r.ID {
		case b.ID:
			if r.Verdict.Text != "Bloomreach would stop this campaign (404)" || r.Delivery.State != "none" {
				t.Errorf("bloomreach 404: got %+v", r)
			}
		case d.ID:
			if r.Verdict.Kind != string(hooks.VerdictHoldQueue) {
				t.Errorf("SendEvent1 503: verdict %+v, want hold_queue", r.Verdict)
			}
		case a.ID:
			if r.Verdict.Text != "Bubblehouse: delivered (outcome success)" || r.Delivery.State != "available" {
				t.Errorf("accepted SendEvent1: got %+v", r)
			}
		}
	}
	for _, tt := range []struct {
		query, want string
	}{
		{"sender=bubblehouse", fmt.Sprintf("%d,%d", d.ID, a.ID)},
		{"name=ep", fmt.Sprint(c.ID)},
		{"status=5xx", fmt.Sprint(d.ID)},
		{"status=404", fmt.Sprint(b.ID)},
		{"request_id=msg_1", fmt.Sprint(c.ID)},
		{"q=carol", fmt.Sprint(c.ID)},
		{"q=bh-1", fmt.Sprint(a.ID)}, // in the X-Request-Id header
		{"before=" + fmt.Sprint(c.ID), fmt.Sprintf("%d,%d", b.ID, a.ID)},
		{"since=1h", fmt.Sprintf("%d,%d,%d,%d", d.ID, c.ID, b.ID, a.ID)},
		{"until=" + url.QueryEscape(e.now.Add(-time.Minute).Format(time.RFC3339)), ""},
	} {
		var p requestsPage
		e.api(http.MethodGet, "requests?"+tt.query, nil, http.StatusOK, &p)
		if got := p.ids(); got != tt.want {
			t.Errorf("%s: got [%s], want [%s]", tt.query, got, tt.want)
		}
	}
	// Paging: a full page says where the next begins.
	e.api(http.MethodGet, "requests?limit=2", nil, http.StatusOK, &p)
	if p.NextBefore != c.ID {
		t.Errorf("limit=2: next_before %d, want %d", p.NextBefore, c.ID)
	}
	// A search says which records it read.
	e.api(http.MethodGet, "requests?q=carol", nil, http.StatusOK, &p)
	if p.Searched == nil || p.Searched.To != d.ID || p.Searched.Window != 100000 {
		t.Errorf("search: got %+v, want the records up to %d searched", p.Searched, d.ID)
	}
	// So does a lookup by request ID, which no index serves either.
	e.api(http.MethodGet, "requests?request_id=bh-1&before="+fmt.Sprint(c.ID), nil, http.StatusOK, &p)
	if p.Searched == nil || p.Searched.To != c.ID-1 || p.Searched.From != 1 || p.ids() != fmt.Sprint(a.ID) {
		t.Errorf("request ID: got %+v, want %d found in the records up to %d", p, a.ID, c.ID-1)
	}
	for _, bad := range []string{"sender=github", "status=6xx", "status=abc", "before=-1", "limit=x", "since=yesterday", "colour=red"} {
		rec := e.do(http.MethodGet, "/api/v1/requests?"+bad, nil, "Authorization", "Bearer "+testToken)
		var body map[string]string
		if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] == "" {
			t.Errorf("%s: got %d %s, want 400 with a JSON error", bad, rec.Code, rec.Body)
		}
	}
}

// TestServer_ShowRequest: one record with its verdict, authentication,
// body (exact bytes and size), jobs and every attempt, and its repeats.
func TestServer_ShowRequest(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.receipt(hooks.SenderBloomreach, "sample", "br-7", "{\"id\": 7,\n \"é\": true}", `{"success":false}`).Request
	dead := e.kill()
	dup := &hooks.Request{Sender: hooks.SenderBloomreach, Name: "sample", RequestID: "br-7", Method: http.MethodPost, Header: http.Header{},
		Status: 200, Response: []byte(`{"success":false}`), ReceivedAt: e.now, DuplicateOf: r.ID}
	if err := e.db.Record(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID      int64 `json:"id"`
		Verdict struct{ Kind, Text string }
		Auth    struct{ State, Text string }
		Body    struct {
			Size   int             `json:"size"`
			JSON   json.RawMessage `json:"json"`
			Text   string          `json:"text"`
			Base64 string          `json:"base64"`
		}
		Headers    map[string][]string  `json:"headers"`
		Duplicates []int64              `json:"duplicates"`
		Related    []struct{ ID int64 } `json:"related"`
		Jobs       []struct {
			ID      int64  `json:"id"`
			State   string `json:"state"`
			History []struct {
				Outcome  string `json:"outcome"`
				Error    string `json:"error"`
				Duration int64  `json:"duration_ns"`
			} `json:"history"`
		} `json:"jobs"`
	}
	e.api(http.MethodGet, fmt.Sprintf("requests/%d", r.ID), nil, http.StatusOK, &d)
	if d.Verdict.Text != "Bloomreach: delivered, with the customer's failure counted" || d.Verdict.Kind != "item_failed" {
		t.Errorf("verdict: got %+v", d.Verdict)
	}
	if d.Auth.State != "accepted" {
		t.Errorf("auth: got %+v, want accepted", d.Auth)
	}
	if d.Body.Size != len(r.Body) || d.Body.Text != string(r.Body) || string(d.Body.JSON) != `{"id":7,"é":true}` {
		t.Errorf("body: got %+v, want its %d exact bytes", d.Body, len(r.Body))
	}
	if d.Headers["Authorization"][0] != "Bearer [redacted]" {
		t.Errorf("headers: got %v", d.Headers)
	}
	if len(d.Jobs) != 1 || d.Jobs[0].ID != dead[0].ID || d.Jobs[0].State != "dead" || len(d.Jobs[0].History) != 1 ||
		d.Jobs[0].History[0].Outcome != "dead" || d.Jobs[0].History[0].Error != "HTTP 500 from the integrator" ||
		d.Jobs[0].History[0].Duration != int64(20*time.Millisecond) {
		t.Errorf("jobs: got %+v, want the dead job with its attempt", d.Jobs)
	}
	if len(d.Duplicates) != 1 || d.Duplicates[0] != dup.ID || len(d.Related) != 1 {
		t.Errorf("duplicates: got %v, related %v; want [%d]", d.Duplicates, d.Related, dup.ID)
	}

	refused := e.refused(hooks.SenderSvix, "ep", "msg_9", 401, `{"code":"unauthorized","reason":"signature_mismatch","error":"no signature matches"}`)
	e.api(http.MethodGet, fmt.Sprintf("requests/%d", refused.ID), nil, http.StatusOK, &d)
	if d.Auth.State != "refused" || d.Auth.Text != "refused: no signature matches (signature_mismatch)" {
		t.Errorf("refused auth: got %+v", d.Auth)
	}
	e.api(http.MethodGet, "requests/99999", nil, http.StatusNotFound, nil)
	e.api(http.MethodGet, "requests/abc", nil, http.StatusBadRequest, nil)

	// The body downloads as its exact bytes, never as a page.
	rec := e.do(http.MethodGet, fmt.Sprintf("/api/v1/requests/%d/body", r.ID), nil, "Authorization", "Bearer "+testToken)
	if rec.Body.String() != string(r.Body) || rec.Header().Get("Content-Type") != "application/octet-stream" ||
		!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("download: got %q, %v", rec.Body, rec.Header())
	}
}

func TestServer_Curl(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.receipt(hooks.SenderBubblehouse, "CreateDiscount4", "bh-c", `{"note":"it's"}`, `{}`).Request
	rec := e.do(http.MethodGet, fmt.Sprintf("/api/v1/requests/%d/curl", r.ID), nil, "Authorization", "Bearer "+testToken)
	got := rec.Body.String()
	for _, want := range []string{
		"# secrets are elided: set HOOKBAY_AUTHORIZATION first",
		"curl -X POST 'https://hooks.example/bubblehouse/CreateDiscount4'",
		`-H "Authorization: Bearer ${HOOKBAY_AUTHORIZATION}"`,
		`-H 'X-Request-Id: bh-c'`,
		`--data-binary '{"note":"it'\''s"}'`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("curl lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "[redacted]") {
		t.Errorf("curl shows the redaction marker instead of a variable:\n%s", got)
	}
}

func TestServer_Jobs(t *testing.T) {
	e := newEnv(t, testToken)
	e.receipt(hooks.SenderBubblehouse, "SendEvent1", "j-1", `{}`, `{"outcome":"success"}`)
	e.receipt(hooks.SenderSvix, "ep", "j-2", `{}`, `{}`)
	dead := e.kill()
	done := e.receipt(hooks.SenderSvix, "ep", "j-3", `{}`, `{}`)
	ctx := context.Background()
	claimed, err := e.db.ClaimJobs(ctx, e.now, time.Minute, 1, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatal(claimed, err)
	}
	if err := e.db.CompleteJobs(ctx, claimed, e.now); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Jobs []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		} `json:"jobs"`
		NextAfter int64 `json:"next_after"`
	}
	e.api(http.MethodGet, "jobs?state=dead", nil, http.StatusOK, &list)
	if len(list.Jobs) != 2 {
		t.Fatalf("dead jobs: got %+v, want 2", list.Jobs)
	}
	e.api(http.MethodGet, "jobs?state=dead&sender=svix", nil, http.StatusOK, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != dead[1].ID {
		t.Fatalf("dead svix jobs: got %+v, want job %d", list.Jobs, dead[1].ID)
	}
	e.api(http.MethodGet, "jobs?limit=1", nil, http.StatusOK, &list)
	if list.NextAfter != list.Jobs[0].ID {
		t.Fatalf("paging: next_after %d, want %d", list.NextAfter, list.Jobs[0].ID)
	}
	e.api(http.MethodGet, "jobs?state=lost", nil, http.StatusBadRequest, nil)

	var res struct {
		Retried    int64   `json:"retried"`
		NotRetried []int64 `json:"not_retried"`
	}
	e.api(http.MethodPost, fmt.Sprintf("jobs/%d/retry", dead[0].ID), nil, http.StatusOK, &res)
	if res.Retried != 1 {
		t.Fatalf("retry: got %+v", res)
	}
	e.api(http.MethodPost, fmt.Sprintf("jobs/%d/retry", done.Job.ID), nil, http.StatusConflict, nil)
	e.api(http.MethodPost, "jobs/424242/retry", nil, http.StatusNotFound, nil)
	e.api(http.MethodPost, "jobs/retry", map[string]any{"ids": []int64{dead[1].ID, 424242}}, http.StatusOK, &res)
	if res.Retried != 1 || len(res.NotRetried) != 1 || res.NotRetried[0] != 424242 {
		t.Fatalf("retry ids: got %+v", res)
	}
	e.api(http.MethodPost, "jobs/retry", map[string]any{"ids": []int64{1}, "dead": true}, http.StatusBadRequest, nil)
	e.api(http.MethodPost, "jobs/retry", map[string]any{"since": "2h"}, http.StatusBadRequest, nil)
	e.api(http.MethodPost, "jobs/retry", `{"dead": tru`, http.StatusBadRequest, nil)

	// All dead since a time: the two just retried are available again;
	// kill them once more, a day later.
	e.now = e.now.Add(24 * time.Hour)
	e.kill()
	e.api(http.MethodPost, "jobs/retry", map[string]any{"dead": true, "since": "1h"}, http.StatusOK, &res)
	if res.Retried != 2 {
		t.Fatalf("retry all dead since 1h: got %+v, want 2", res)
	}
	e.api(http.MethodGet, "jobs?state=dead", nil, http.StatusOK, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("dead after retrying all: %+v", list.Jobs)
	}
}

func TestServer_Replay(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.receipt(hooks.SenderBubblehouse, "CreateDiscount4", "rp-1", `{}`, `{"code":"X"}`).Request
	var out struct {
		OK   bool `json:"ok"`
		Jobs []struct {
			Job        int64  `json:"job"`
			Outcome    string `json:"outcome"`
			StoredOnly bool   `json:"stored_only"`
		} `json:"jobs"`
	}
	e.api(http.MethodPost, fmt.Sprintf("requests/%d/replay", r.ID), nil, http.StatusOK, &out)
	if !out.OK || len(out.Jobs) != 1 || out.Jobs[0].Outcome != string(hooks.OutcomeOK) || !out.Jobs[0].StoredOnly {
		t.Fatalf("replay: got %+v", out)
	}
	var d struct {
		Jobs []struct {
			ID      int64 `json:"id"`
			History []struct{ Outcome string }
		} `json:"jobs"`
	}
	e.api(http.MethodGet, fmt.Sprintf("requests/%d", r.ID), nil, http.StatusOK, &d)
	if len(d.Jobs) != 2 || d.Jobs[1].ID != out.Jobs[0].Job || len(d.Jobs[1].History) != 1 || d.Jobs[1].History[0].Outcome != "ok" {
		t.Fatalf("after replay: got %+v, want the new job with its attempt", d.Jobs)
	}
	refused := e.refused(hooks.SenderBubblehouse, "CreateDiscount4", "rp-2", 401, `{"code":"unauthorized"}`)
	rec := e.do(http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/replay", refused.ID), nil, "Authorization", "Bearer "+testToken)
	if rec.Code < 400 || !strings.Contains(rec.Body.String(), "error") {
		t.Fatalf("replay of a refused request without force: got %d %s, want an error", rec.Code, rec.Body)
	}
	e.api(http.MethodPost, fmt.Sprintf("requests/%d/replay?force=true", refused.ID), nil, http.StatusOK, &out)
	if !out.OK {
		t.Fatalf("forced replay: got %+v", out)
	}
	e.api(http.MethodPost, "requests/777/replay", nil, http.StatusNotFound, nil)
}

func TestServer_Faults(t *testing.T) {
	e := newEnv(t, testToken)
	var f hooks.Fault
	e.api(http.MethodPost, "faults", map[string]any{"sender": "svix", "name": "ep", "status": 503, "count": 2, "for": "10m"}, http.StatusCreated, &f)
	if f.ID == 0 || f.Kind != hooks.FaultStatus || f.Status != 503 || f.Remaining != 2 || !f.ExpiresAt.Equal(e.now.Add(10*time.Minute)) {
		t.Fatalf("added: got %+v", f)
	}
	var g hooks.Fault
	e.api(http.MethodPost, "faults", map[string]any{"sender": "bubblehouse", "delay": "2s"}, http.StatusCreated, &g)
	for _, bad := range []map[string]any{
		{"sender": "svix"}, // no kind
		{"sender": "svix", "status": 503, "drop": true}, // two kinds
		{"sender": "svix", "status": 200},               // an acceptance
		{"sender": "github", "status": 503},             // unknown sender
		{"sender": "svix", "delay": "soon"},             // not a duration
		{"sender": "svix", "drop": true, "count": 0},    // no count
		{"sender": "svix", "drop": true, "colour": "r"}, // unknown member
	} {
		rec := e.do(http.MethodPost, "/api/v1/faults", bad, "Authorization", "Bearer "+testToken)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%v: got %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
	var list struct{ Faults []hooks.Fault }
	e.api(http.MethodGet, "faults", nil, http.StatusOK, &list)
	if len(list.Faults) != 2 {
		t.Fatalf("faults: got %+v, want 2", list.Faults)
	}
	e.api(http.MethodDelete, fmt.Sprintf("faults/%d", f.ID), nil, http.StatusOK, nil)
	e.api(http.MethodDelete, fmt.Sprintf("faults/%d", f.ID), nil, http.StatusNotFound, nil)
	e.api(http.MethodGet, "faults", nil, http.StatusOK, &list)
	if len(list.Faults) != 1 || list.Faults[0].ID != g.ID {
		t.Fatalf("after removing one: got %+v, want fault %d", list.Faults, g.ID)
	}
	e.api(http.MethodDelete, "faults", nil, http.StatusBadRequest, nil)
	var cleared map[string]int64
	e.api(http.MethodDelete, "faults?all=true", nil, http.StatusOK, &cleared)
	if cleared["cleared"] != 1 {
		t.Fatalf("clear: got %v", cleared)
	}
}

func TestServer_ExportAndReport(t *testing.T) {
	e := newEnv(t, testToken)
	e.receipt(hooks.SenderBubblehouse, "SendEvent1", "x-1", `{"a":1}`, `{"outcome":"success"}`)
	e.receipt(hooks.SenderSvix, "ep", "x-2", "\xff\x00", `{}`)
	e.refused(hooks.SenderSvix, "ep", "x-3", 401, `{"code":"unauthorized"}`)

	rec := e.do(http.MethodGet, "/api/v1/requests/export?format=jsonl&sender=svix", nil, "Authorization", "Bearer "+testToken)
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != http.StatusOK || len(lines) != 2 || !strings.Contains(rec.Header().Get("Content-Disposition"), ".jsonl") {
		t.Fatalf("jsonl: got %d, %d lines: %s", rec.Code, len(lines), rec.Body)
	}
	var line struct {
		RequestID string `json:"request_id"`
		Body      struct {
			Base64 string `json:"base64"`
		} `json:"body"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &line); err != nil || line.RequestID != "x-2" || line.Body.Base64 != "/wA=" {
		t.Fatalf("jsonl line: got %+v, %v", line, err)
	}

	rec = e.do(http.MethodGet, "/api/v1/requests/export?format=har", nil, "Authorization", "Bearer "+testToken)
	var har struct {
		Log struct {
			Version string
			Entries []struct {
				Request struct {
					Method, URL string
					PostData    struct{ Text, Encoding string }
				}
				Response struct{ Status int }
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &har); err != nil || har.Log.Version != "1.2" || len(har.Log.Entries) != 3 {
		t.Fatalf("har: %v %s", err, rec.Body)
	}
	if en := har.Log.Entries[2].Request; en.URL != "https://hooks.example/bubblehouse/SendEvent1" || en.PostData.Text != `{"a":1}` {
		t.Errorf("har entry: got %+v", en)
	}
	if en := har.Log.Entries[1].Request; en.PostData.Encoding != "base64" {
		t.Errorf("binary har entry: got %+v, want base64", en)
	}
	e.api(http.MethodGet, "requests/export?format=csv", nil, http.StatusBadRequest, nil)

	var report map[string]int
	e.api(http.MethodGet, "report?sender=svix&since=1h", nil, http.StatusOK, &report)
	if report["requests"] != 2 {
		t.Fatalf("report: got %v, want the 2 svix requests", report)
	}
	e.api(http.MethodGet, "report?since=whenever", nil, http.StatusBadRequest, nil)
	e.api(http.MethodGet, "nothing-here", nil, http.StatusNotFound, nil)
}

func TestServer_UI(t *testing.T) {
	e := newEnv(t, "")
	rec := e.do(http.MethodGet, "/", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<script src="/static/app.js"`) ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("UI: got %d %v", rec.Code, rec.Header())
	}
	for _, path := range []string{"/requests/5", "/dead", "/faults", "/report"} {
		if rec := e.do(http.MethodGet, path, nil); rec.Code != http.StatusOK {
			t.Errorf("%s: got %d", path, rec.Code)
		}
	}
	for _, path := range []string{"/static/app.js", "/static/app.css", "/static/login.js"} {
		rec := e.do(http.MethodGet, path, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("%s: got %d", path, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
			t.Errorf("%s fetches something from elsewhere", path)
		}
	}
}

// TestServer_Stream reads the live stream over a real connection.
func TestServer_Stream(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream: got %d %q", resp.StatusCode, ct)
	}
	events := make(chan [2]string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "event: "); ok {
				kind = k
			} else if d, ok := strings.CutPrefix(line, "data: "); ok {
				events <- [2]string{kind, d}
			}
		}
		close(events)
	}()
	next := func() [2]string {
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
		return [2]string{}
	}
	if ev := next(); ev[0] != "hello" {
		t.Fatalf("first event: got %v, want hello", ev)
	}
	r := e.receipt(hooks.SenderBloomreach, "sample", "live-1", `{}`, `{"success":true}`).Request
	e.srv.PublishRequest(r)
	ev := next()
	var got struct {
		ID      int64 `json:"id"`
		Verdict struct{ Text string }
	}
	if json.Unmarshal([]byte(ev[1]), &got); ev[0] != "request" || got.ID != r.ID || got.Verdict.Text != "Bloomreach: success, counted" {
		t.Fatalf("request event: got %v", ev)
	}
	j := &hooks.Job{ID: 9, RequestRef: r.ID, Sender: r.Sender, Name: r.Name, Attempts: 3}
	e.srv.PublishAttempt(j, hooks.AttemptResult{Outcome: hooks.OutcomeDead, Err: fmt.Errorf("HTTP 500")})
	ev = next()
	if ev[0] != "job" || !strings.Contains(ev[1], `"state":"dead"`) || !strings.Contains(ev[1], `"error":"HTTP 500"`) {
		t.Fatalf("job event: got %v", ev)
	}
	// A job as stored, with its last attempt: what another replica's
	// announcement puts on the stream.
	dead := e.kill()
	if err := e.srv.PublishStoredJob(context.Background(), dead[0].ID); err != nil {
		t.Fatal(err)
	}
	ev = next()
	if ev[0] != "job" || !strings.Contains(ev[1], fmt.Sprintf(`"id":%d,`, dead[0].ID)) || !strings.Contains(ev[1], `"state":"dead"`) ||
		!strings.Contains(ev[1], `"error":"HTTP 500 from the integrator"`) || !strings.Contains(ev[1], `"duration_ms":20`) {
		t.Fatalf("stored job event: got %v", ev)
	}
	// Retrying every dead job says that jobs changed, without listing them.
	e.api(http.MethodPost, "jobs/retry", map[string]any{"dead": true}, http.StatusOK, nil)
	if ev = next(); ev[0] != "jobs" {
		t.Fatalf("after retrying all dead jobs: got %v, want a jobs event", ev)
	}
	// Shutdown ends the stream.
	e.srv.Hub().Close()
	for range events {
	}
}
