package qa

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

const testSvixSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// svixHMAC signs independently of the svix library: HMAC-SHA256 over
// "id.timestamp.body" with the base64-decoded secret.
func svixHMAC(secret, id string, ts int64, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSvixRequest(t *testing.T) {
	ts := time.Unix(1614265330, 0)
	t.Run("OK", func(t *testing.T) {
		body := []byte(`{"test": 2432232314}`)
		req, got, err := SvixRequest(SvixOptions{URL: "http://x.test/svix/bloom", Secret: testSvixSecret, ID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: ts, Data: body})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(body) || req.Method != http.MethodPost || req.URL.String() != "http://x.test/svix/bloom" {
			t.Fatalf("got %s %s %q", req.Method, req.URL, got)
		}
		want := map[string]string{
			"svix-id":        "msg_p5jXN8AQM9LWM0D4loKWxJek",
			"svix-timestamp": "1614265330",
			"svix-signature": svixHMAC(testSvixSecret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
			"Content-Type":   "application/json",
		}
		for k, v := range want {
			if got := req.Header.Get(k); got != v {
				t.Fatalf("%s=%q, want %q", k, got, v)
			}
		}
		if req.Header.Get("webhook-id") != "" {
			t.Fatalf("webhook-* headers sent with the svix set")
		}
	})
	t.Run("WebhookHeaders", func(t *testing.T) {
		req, body, err := SvixRequest(SvixOptions{URL: "https://x.test/", Secret: testSvixSecret, ID: "msg_std", Timestamp: ts, Headers: "webhook"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := req.Header.Get("webhook-signature"), svixHMAC(testSvixSecret, "msg_std", ts.Unix(), body); got != want {
			t.Fatalf("webhook-signature=%q, want %q", got, want)
		}
		if req.Header.Get("webhook-id") != "msg_std" || req.Header.Get("webhook-timestamp") != "1614265330" || req.Header.Get("svix-id") != "" {
			t.Fatalf("headers %v", req.Header)
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		before := time.Now().Unix()
		req, body, err := SvixRequest(SvixOptions{URL: "http://x.test/", Secret: testSvixSecret, Type: "tradeline.created"})
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Type != "tradeline.created" || len(p.Data) == 0 || !strings.HasPrefix(string(body), `{"type":`) {
			t.Fatalf("default body %s", body)
		}
		id := req.Header.Get("svix-id")
		if !strings.HasPrefix(id, "msg_") || len(id) != 31 {
			t.Fatalf("default id %q", id)
		}
		sec := req.Header.Get("svix-timestamp")
		if n, _ := fmt.Sscan(sec, new(int64)); n != 1 || sec < fmt.Sprint(before) {
			t.Fatalf("default timestamp %q, want now", sec)
		}
		// The svix library itself accepts it.
		wh, _ := svix.NewWebhook(testSvixSecret)
		if err := wh.Verify(body, req.Header); err != nil {
			t.Fatalf("library verify: %v", err)
		}
		if a, _, _ := SvixRequest(SvixOptions{URL: "http://x.test/", Secret: testSvixSecret}); a.Header.Get("svix-id") == id {
			t.Fatalf("two requests share the id %s", id)
		}
	})
	for _, tt := range []struct {
		name string
		o    SvixOptions
		says string
	}{
		{"ErrNoURL", SvixOptions{Secret: testSvixSecret}, "--url"},
		{"ErrURLScheme", SvixOptions{URL: "ftp://x.test/", Secret: testSvixSecret}, "--url"},
		{"ErrNoSecret", SvixOptions{URL: "http://x.test/"}, "required"},
		{"ErrSignatureAsSecret", SvixOptions{URL: "http://x.test/", Secret: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "not a signing secret"},
		{"ErrNotBase64", SvixOptions{URL: "http://x.test/", Secret: "whsec_not*base64"}, "not a whsec_ secret"},
		{"ErrHeaders", SvixOptions{URL: "http://x.test/", Secret: testSvixSecret, Headers: "stripe"}, "--headers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := SvixRequest(tt.o); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want one saying %q", err, tt.says)
			}
		})
	}
}

func TestSvixMeaning(t *testing.T) {
	for status, want := range map[int]string{
		200: "delivered (Svix counts any 2xx as success, whatever the body says)",
		204: "delivered (Svix counts any 2xx as success, whatever the body says)",
		0:   "failed: Svix will retry on its schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then give up; 5 days of failures disable the endpoint",
		401: "failed: Svix will retry on its schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then give up; 5 days of failures disable the endpoint",
		503: "failed: Svix will retry on its schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then give up; 5 days of failures disable the endpoint",
	} {
		if got := SvixMeaning(status); got != want {
			t.Fatalf("SvixMeaning(%d)=%q, want %q", status, got, want)
		}
	}
}

// svixFake is a receiver under test. verify makes it check signatures with
// the svix library (tolerance included); dedup makes it process each
// message id once. processed counts processing per id.
type svixFake struct {
	verify, dedup bool
	delay         func(r *http.Request) time.Duration
	mu            sync.Mutex
	processed     map[string]int
}

func (f *svixFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if f.delay != nil {
		select {
		case <-time.After(f.delay(r)):
		case <-r.Context().Done():
			return
		}
	}
	id := r.Header.Get("svix-id")
	if id == "" {
		id = r.Header.Get("webhook-id")
	}
	if f.verify {
		wh, _ := svix.NewWebhook(testSvixSecret)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusUnauthorized)
			return
		}
	}
	f.mu.Lock()
	if !f.dedup || f.processed[id] == 0 {
		f.processed[id]++
	}
	f.mu.Unlock()
	w.Write([]byte(`{"ok":true}`))
}

func (f *svixFake) count(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.processed[id], nil
}

func newSvixFake(t *testing.T, f *svixFake) string {
	t.Helper()
	f.processed = map[string]int{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL + "/svix/bloom"
}

func svixStatuses(r *Report) map[string]Status {
	m := map[string]Status{}
	for _, c := range r.Checks {
		m[c.Name] = c.Status
	}
	return m
}

func svixWantStatuses(t *testing.T, r *Report, want map[string]Status) {
	t.Helper()
	got := svixStatuses(r)
	for name, s := range want {
		if got[name] != s {
			var b strings.Builder
			r.WriteTable(&b)
			t.Fatalf("%s=%s, want %s\n%s", name, got[name], s, b.String())
		}
	}
	if len(got) != len(want) {
		t.Fatalf("checks %v, want %v", got, want)
	}
}

var svixChecks = []string{"good-signature", "redelivery-accepted", "redelivery-processed-once", "webhook-headers",
	"bad-signature", "stale-timestamp", "future-timestamp", "missing-headers", "within-timeout"}

func svixAllStatus(s Status) map[string]Status {
	m := map[string]Status{}
	for _, n := range svixChecks {
		m[n] = s
	}
	return m
}

func svixTestClient() *Client { return &Client{HTTP: &http.Client{}} }

func TestConformSvix(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		f := &svixFake{verify: true, dedup: true}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: testSvixSecret, EventsCheck: f.count})
		svixWantStatuses(t, r, svixAllStatus(Pass))
		if r.Sender != "svix" || r.Failed() {
			t.Fatalf("report %+v", r)
		}
		for _, c := range r.Checks {
			if c.Contract == "" || c.Detail == "" {
				t.Fatalf("%s lacks its contract or detail", c.Name)
			}
		}
		// Every probe but the redelivery used its own id.
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.processed) != 2 { // the first delivery, and webhook-headers
			t.Fatalf("processed ids %v", f.processed)
		}
	})
	t.Run("NoEventsCheck", func(t *testing.T) {
		f := &svixFake{verify: true, dedup: true}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: testSvixSecret})
		want := svixAllStatus(Pass)
		want["redelivery-processed-once"] = Skip
		svixWantStatuses(t, r, want)
		for _, c := range r.Checks {
			if c.Name == "redelivery-processed-once" && !strings.Contains(c.Detail, "receiver's records") {
				t.Fatalf("skip detail %q", c.Detail)
			}
		}
	})
	t.Run("Broken", func(t *testing.T) {
		// Accepts any signature and processes redeliveries again.
		f := &svixFake{}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: testSvixSecret, EventsCheck: f.count})
		want := svixAllStatus(Pass)
		for _, n := range []string{"bad-signature", "stale-timestamp", "future-timestamp", "missing-headers", "redelivery-processed-once"} {
			want[n] = Fail
		}
		svixWantStatuses(t, r, want)
		for _, c := range r.Checks {
			if c.Name == "redelivery-processed-once" && !strings.Contains(c.Detail, "processed 2 times") {
				t.Fatalf("processed-once detail %q", c.Detail)
			}
			if c.Name == "missing-headers" && (c.HTTP != 200 || !strings.Contains(c.Detail, "200, 200, 200")) {
				t.Fatalf("missing-headers evidence %d %q", c.HTTP, c.Detail)
			}
		}
	})
	t.Run("WrongSecret", func(t *testing.T) {
		// Refusing everything is not verification.
		f := &svixFake{verify: true, dedup: true}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: "whsec_c2VjcmV0LWJlZm9yZS1yb3RhdGlvbi0xMjM0", EventsCheck: f.count})
		want := svixAllStatus(Warn)
		want["good-signature"], want["redelivery-accepted"], want["within-timeout"] = Fail, Fail, Pass
		want["redelivery-processed-once"] = Skip
		svixWantStatuses(t, r, want)
	})
	t.Run("ServerErrors", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("svix-id") == "" || r.Header.Get("svix-timestamp") == "" || r.Header.Get("svix-signature") == "" {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}))
		defer srv.Close()
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: srv.URL, Secret: testSvixSecret})
		got := svixStatuses(r)
		if got["missing-headers"] != Warn || got["webhook-headers"] != Warn || got["good-signature"] != Pass {
			t.Fatalf("statuses %v", got)
		}
	})
	t.Run("Slow", func(t *testing.T) {
		// Only the Standard Webhooks probe is slow: 1.1 s warns.
		f := &svixFake{verify: true, dedup: true, delay: func(r *http.Request) time.Duration {
			if r.Header.Get("webhook-id") != "" {
				return 1100 * time.Millisecond
			}
			return 0
		}}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: testSvixSecret, EventsCheck: f.count})
		want := svixAllStatus(Pass)
		want["within-timeout"] = Warn
		svixWantStatuses(t, r, want)
	})
	t.Run("Timeout", func(t *testing.T) {
		f := &svixFake{verify: true, dedup: true, delay: func(r *http.Request) time.Duration {
			if r.Header.Get("webhook-id") != "" {
				return time.Minute
			}
			return 0
		}}
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: newSvixFake(t, f), Secret: testSvixSecret, EventsCheck: f.count, Timeout: 300 * time.Millisecond})
		want := svixAllStatus(Pass)
		want["within-timeout"], want["webhook-headers"] = Fail, Warn
		svixWantStatuses(t, r, want)
		for _, c := range r.Checks {
			if c.Name == "webhook-headers" && !strings.Contains(c.Detail, "no answer within the sender's 300ms timeout") {
				t.Fatalf("detail %q", c.Detail)
			}
		}
	})
	t.Run("NoServer", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: url, Secret: testSvixSecret})
		// One clear failure, nothing passed (TestConform_Unreachable).
		if got := svixStatuses(r); len(r.Checks) != 1 || got["reachable"] != Fail {
			t.Fatalf("checks %v, want only reachable=FAIL with no server", got)
		}
	})
	t.Run("ErrOptions", func(t *testing.T) {
		r := ConformSvix(ctx, svixTestClient(), SvixOptions{URL: "http://x.test/", Secret: "v1,abc"})
		if len(r.Checks) != 1 || r.Checks[0].Status != Fail || !r.Failed() {
			t.Fatalf("checks %+v", r.Checks)
		}
	})
}

// The probes themselves are what they claim: bad-signature's signatures
// fail an independent HMAC check, the stale and future probes pass it.
func TestConformSvix_Probes(t *testing.T) {
	type seen struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var all []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		all = append(all, seen{r.Header.Clone(), b})
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	ConformSvix(context.Background(), svixTestClient(), SvixOptions{URL: srv.URL, Secret: testSvixSecret})
	if len(all) != 10 {
		t.Fatalf("probes=%d, want 10", len(all))
	}
	now := time.Now().Unix()
	valid := 0
	for i, s := range all {
		p := "svix"
		if s.header.Get("webhook-id") != "" {
			p = "webhook"
		}
		var ts int64
		fmt.Sscan(s.header.Get(p+"-timestamp"), &ts)
		sig := s.header.Get(p + "-signature")
		good := sig != "" && sig == svixHMAC(testSvixSecret, s.header.Get(p+"-id"), ts, s.body)
		switch i {
		case 3, 4: // bad-signature: another secret, a changed body
			if good || sig == "" || !strings.HasPrefix(sig, "v1,") {
				t.Fatalf("probe %d: signature %q should be well-formed and wrong", i, sig)
			}
		case 5, 6: // stale, future
			if d := ts - now; !good || d < -700 || d > 700 || (d > -500 && d < 500) {
				t.Fatalf("probe %d: good=%v skew=%ds", i, good, d)
			}
		}
		if good {
			valid++
		}
	}
	if valid != 5 { // not the two bad signatures, nor the three with a header missing
		t.Fatalf("correctly signed probes=%d, want 5", valid)
	}
}
