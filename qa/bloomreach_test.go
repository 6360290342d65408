package qa

// Tests of the Bloomreach simulator and probes against fake receivers. The
// contract is Bloomreach's public "Creating API endpoint for webhooks"
// and "Webhooks".

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBloomreachMeaning(t *testing.T) {
	big := []byte(`{"success":true,"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"Delivered", 200, `{"success":true}`, "delivered"},
		{"DeliveredNoFlag", 200, `ok`, "delivered"},
		{"CustomerFailure", 200, `{"success":false,"errors":[]}`, "delivered; Bloomreach records the customer's failure"},
		{"Retry429", 429, ``, "Bloomreach will retry (up to 3 times, ~7 s, 45 s, 300 s)"},
		{"Retry500", 500, ``, "Bloomreach will retry (up to 3 times, ~7 s, 45 s, 300 s)"},
		{"Retry503", 503, ``, "Bloomreach will retry (up to 3 times, ~7 s, 45 s, 300 s)"},
		{"Stop400", 400, ``, "Bloomreach would stop this campaign: 400"},
		{"Stop404", 404, ``, "Bloomreach would stop this campaign: 404"},
		{"Stop410", 410, ``, "Bloomreach would stop this campaign: 410"},
		{"Stop412", 412, ``, "Bloomreach would stop this campaign: 412"},
		{"Stop413", 413, ``, "Bloomreach would stop this campaign: 413"},
		{"Stop418", 418, ``, "Bloomreach would stop this campaign: 418"},
		{"Failed401", 401, ``, "recorded as a failed campaign event, not retried"},
		{"Failed422", 422, ``, "recorded as a failed campaign event, not retried"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := BloomreachMeaning(tt.status, []byte(tt.body)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("Over64KB", func(t *testing.T) {
		if got, want := BloomreachMeaning(200, big), "delivered; Bloomreach reads only the first 64 KB"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func brTestClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient("", false, "", "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBloomreachRequest(t *testing.T) {
	ctx := context.Background()
	c := brTestClient(t)
	t.Run("PerCustomerBasic", func(t *testing.T) {
		data := []byte(`{"phone":"+1","text":"hi"}`)
		req, body, err := BloomreachRequest(ctx, BloomreachOptions{URL: "https://x.example/br/sms", Basic: "u:p:w",
			Headers: []string{"X-Tenant: t1"}, Data: data}, c)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != "POST" || string(body) != string(data) {
			t.Fatalf("method %s body %s", req.Method, body)
		}
		if u, p, ok := req.BasicAuth(); !ok || u != "u" || p != "p:w" {
			t.Fatalf("basic %q %q %v", u, p, ok)
		}
		if req.Header.Get("X-Tenant") != "t1" || req.Header.Get("Content-Type") != "application/json" || req.Header.Get("X-Request-ID") == "" {
			t.Fatalf("headers %v", req.Header)
		}
		got, _ := io.ReadAll(req.Body)
		if string(got) != string(data) {
			t.Fatalf("request body %s", got)
		}
	})
	t.Run("UniqueRequestIDs", func(t *testing.T) {
		o := BloomreachOptions{URL: "http://x.example/", RequestIDHeader: "X-Id", Data: []byte(`{}`)}
		a, _, _ := BloomreachRequest(ctx, o, c)
		b, _, _ := BloomreachRequest(ctx, o, c)
		if a.Header.Get("X-Id") == "" || a.Header.Get("X-Id") == b.Header.Get("X-Id") {
			t.Fatalf("ids %q %q", a.Header.Get("X-Id"), b.Header.Get("X-Id"))
		}
	})
	t.Run("Batch", func(t *testing.T) {
		for _, tt := range []struct{ pointer, path string }{{"", "messages"}, {"/data/items", "data.items"}, {"/a~1b", "a/b"}} {
			_, body, err := BloomreachRequest(ctx, BloomreachOptions{URL: "http://x.example/", Batch: 3, ItemsPointer: tt.pointer,
				Data: []byte(`{"phone":"+1","id":"template"}`)}, c)
			if err != nil {
				t.Fatal(err)
			}
			var root map[string]any
			if err := json.Unmarshal(body, &root); err != nil {
				t.Fatal(err)
			}
			var v any = root
			for _, k := range strings.Split(tt.path, ".") {
				v = v.(map[string]any)[k]
			}
			items, _ := v.([]any)
			ids := map[string]bool{}
			for _, it := range items {
				m := it.(map[string]any)
				ids[m["id"].(string)] = m["phone"] == "+1"
			}
			if len(items) != 3 || len(ids) != 3 || ids["template"] {
				t.Fatalf("pointer %q: %s", tt.pointer, body)
			}
		}
	})
	t.Run("OAuth2", func(t *testing.T) {
		var tokenCalls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, secret, ok := r.BasicAuth()
			r.ParseForm()
			if !ok {
				id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
			}
			if id != "br" || secret != "s,3cret" || r.Form.Get("grant_type") != "client_credentials" {
				w.WriteHeader(401)
				fmt.Fprint(w, `{"error":"invalid_client"}`)
				return
			}
			tokenCalls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
		}))
		defer srv.Close()
		req, _, err := BloomreachRequest(ctx, BloomreachOptions{URL: "http://x.example/", OAuth2: srv.URL + ",br,s,3cret"}, c)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != "Bearer tok-1" || tokenCalls.Load() != 1 {
			t.Fatalf("Authorization %q after %d token calls", got, tokenCalls.Load())
		}
		if _, _, err := BloomreachRequest(ctx, BloomreachOptions{URL: "http://x.example/", OAuth2: srv.URL + ",br,wrong"}, c); err == nil || !strings.Contains(err.Error(), "OAuth") {
			t.Fatalf("wrong secret: err=%v", err)
		}
	})
	for _, tt := range []struct {
		name string
		o    BloomreachOptions
	}{
		{"ErrNoURL", BloomreachOptions{}},
		{"ErrMethod", BloomreachOptions{URL: "http://x/", Method: "HEAD"}},
		{"ErrBasic", BloomreachOptions{URL: "http://x/", Basic: "nocolon"}},
		{"ErrHeader", BloomreachOptions{URL: "http://x/", Headers: []string{"novalue"}}},
		{"ErrOAuth2", BloomreachOptions{URL: "http://x/", OAuth2: "http://t/,id"}},
		{"ErrBasicAndOAuth2", BloomreachOptions{URL: "http://x/", Basic: "u:p", OAuth2: "http://t/,id,s"}},
		{"ErrBatchTooBig", BloomreachOptions{URL: "http://x/", Batch: 1001}},
		{"ErrBatchNotObject", BloomreachOptions{URL: "http://x/", Batch: 2, Data: []byte(`[1]`)}},
		{"ErrPointer", BloomreachOptions{URL: "http://x/", Batch: 2, ItemsPointer: "messages"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := BloomreachRequest(ctx, tt.o, c); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// brFake is a Bloomreach receiver: Basic auth, {path}/auth-test, a
// per-customer route that refuses a text over 160 characters, and a batch
// route at /batch with at most 1000 customers at /messages. Its faults are
// switched on by its fields.
type brFake struct {
	t                 *testing.T
	customerStatus    int           // status for a refused customer; 0: 200 success false
	slowOver          int32         // requests in flight above which answers take slow
	slow              time.Duration //
	throttleAfter     int32         // webhook requests after this many get throttleStatus
	throttleStatus    int
	bigReply          bool // pad successful replies past 64 KB
	noAuthTest        bool
	authTestNoCreds   bool  // the auth-test route does not check credentials
	authTestEmpty     bool  // the auth-test route answers 200 with no body, as Test settings allow
	batchOverStatus   int   // status for a batch over 1000 customers; 0: 400
	wrongCredsStatus  int   // 0: 401
	overlap           int32 // answers wait until this many are in flight, or overlapWait
	overlapOnce       sync.Once
	overlapped        chan struct{}
	inflight, maxSeen atomic.Int32
	total             atomic.Int32
	mu                sync.Mutex
	ids               map[string]bool
}

func (f *brFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}
	w.Header().Set("Content-Type", "application/json")
	reply := func(status int, body string) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	u, p, ok := r.BasicAuth()
	authed := ok && u == "br" && p == "pw"
	if strings.HasSuffix(r.URL.Path, "/auth-test") {
		if f.noAuthTest {
			reply(404, `{"error":"not found"}`)
			return
		}
		if !authed && !f.authTestNoCreds {
			reply(401, `{"error":"unauthorized"}`)
			return
		}
		if f.authTestEmpty {
			w.Header().Del("Content-Type")
			w.WriteHeader(200)
			return
		}
		reply(200, `{"success":true}`)
		return
	}
	if id := r.Header.Get("X-Request-ID"); id != "" {
		f.mu.Lock()
		if f.ids[id] {
			f.t.Errorf("request ID %s sent twice", id)
		}
		f.ids[id] = true
		f.mu.Unlock()
	}
	if !authed {
		status := http.StatusUnauthorized
		if f.wrongCredsStatus != 0 {
			status = f.wrongCredsStatus
		}
		reply(status, `{"error":"unauthorized"}`)
		return
	}
	if total := f.total.Add(1); f.throttleAfter > 0 && total > f.throttleAfter {
		reply(f.throttleStatus, `{"error":"slow down"}`)
		return
	}
	// Each answer takes a while, as a real one does, so that the
	// probes' requests overlap; with overlap set it waits until that many
	// are in flight, so that a slow machine still shows the overlap, and a
	// probe that sends one at a time waits overlapWait each.
	time.Sleep(50 * time.Millisecond)
	if f.overlap > 0 {
		if n >= f.overlap {
			f.overlapOnce.Do(func() { close(f.overlapped) })
		}
		select {
		case <-f.overlapped:
		case <-time.After(overlapWait):
		}
	}
	if f.slowOver > 0 && n > f.slowOver {
		time.Sleep(f.slow)
	}
	body, _ := io.ReadAll(r.Body)
	pad := ""
	if f.bigReply {
		pad = `,"pad":"` + strings.Repeat("x", 70<<10) + `"`
	}
	if r.URL.Path == "/batch" {
		var root struct{ Messages []json.RawMessage }
		if json.Unmarshal(body, &root) != nil {
			reply(400, `{"error":"not JSON"}`)
			return
		}
		if len(root.Messages) > 1000 {
			status := http.StatusBadRequest
			if f.batchOverStatus != 0 {
				status = f.batchOverStatus
			}
			reply(status, `{"error":"too many customers"}`)
			return
		}
		reply(200, `{"success":true}`)
		return
	}
	var c struct{ Text string }
	if json.Unmarshal(body, &c) != nil {
		reply(400, `{"error":"not JSON"}`)
		return
	}
	if len(c.Text) > 160 {
		if f.customerStatus != 0 {
			reply(f.customerStatus, `{"error":"text too long"}`)
			return
		}
		reply(200, `{"success":false,"errors":[{"code":1004,"description":"SMS message too long. Limit is 160 characters."}]}`)
		return
	}
	reply(200, `{"success":true,"result":{"code":1,"status":"sent"}`+pad+`}`)
}

func brConform(t *testing.T, f *brFake, mutate func(*BloomreachOptions)) map[string]Check {
	t.Helper()
	f.t, f.ids = t, map[string]bool{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	o := BloomreachOptions{URL: srv.URL + "/sms", Basic: "br:pw", BatchURL: srv.URL + "/batch",
		Data:    []byte(`{"phone":"+15550100","text":"hello"}`),
		BadData: []byte(`{"phone":"+15550100","text":"` + strings.Repeat("a", 161) + `"}`)}
	if mutate != nil {
		mutate(&o)
	}
	r := ConformBloomreach(context.Background(), brTestClient(t), o)
	checks := map[string]Check{}
	for _, c := range r.Checks {
		checks[c.Name] = c
	}
	if t.Failed() {
		r.WriteTable(os.Stderr)
	}
	return checks
}

// brWant asserts the statuses; checks not named must pass, but for
// throttle-status, which is skipped when nothing was throttled.
func brWant(t *testing.T, checks map[string]Check, want map[string]Status) {
	t.Helper()
	names := []string{"success-shape", "customer-failure-not-4xx", "concurrency-200-under-1s", "bad-credentials-401",
		"auth-test-200", "oversized-batch-refused", "throttle-status", "json-under-64k"}
	if len(checks) != len(names) {
		t.Errorf("%d checks, want %d", len(checks), len(names))
	}
	for _, n := range names {
		w, ok := want[n]
		switch {
		case !ok && n == "throttle-status":
			w = Skip
		case !ok:
			w = Pass
		}
		c, found := checks[n]
		if !found || c.Status != w {
			t.Errorf("%s: %s (%s), want %s", n, c.Status, c.Detail, w)
		}
	}
}

// overlapWait bounds how long brFake holds an answer waiting for overlap.
const overlapWait = 300 * time.Millisecond

func TestConformBloomreach_Good(t *testing.T) {
	f := &brFake{overlap: 100, overlapped: make(chan struct{})}
	checks := brConform(t, f, nil)
	brWant(t, checks, nil)
	if got := f.maxSeen.Load(); got < 100 {
		t.Errorf("at most %d requests in flight: the concurrency probe is not concurrent", got)
	}
	if c := checks["concurrency-200-under-1s"]; !strings.Contains(c.Detail, "p99") || !strings.Contains(c.Detail, "200×200") {
		t.Errorf("concurrency detail %q lacks the statuses or p99", c.Detail)
	}
	if c := checks["throttle-status"]; !strings.Contains(c.Detail, "not throttled at this rate") {
		t.Errorf("throttle detail %q", c.Detail)
	}
}

func TestConformBloomreach_BatchMode(t *testing.T) {
	f := &brFake{}
	checks := brConform(t, f, func(o *BloomreachOptions) {
		o.URL, o.BatchURL, o.Batch, o.Concurrency = strings.TrimSuffix(o.URL, "/sms")+"/batch", "", 5, 50
		o.BadData = nil
	})
	brWant(t, checks, map[string]Status{"customer-failure-not-4xx": Skip})
}

func TestConformBloomreach_Faults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fake   *brFake
		mutate func(*BloomreachOptions)
		want   map[string]Status
	}{
		{"CustomerFailure400", &brFake{customerStatus: 400}, nil, map[string]Status{"customer-failure-not-4xx": Fail}},
		{"CustomerFailure503", &brFake{customerStatus: 503}, nil, map[string]Status{"customer-failure-not-4xx": Warn}},
		{"NoBadData", &brFake{}, func(o *BloomreachOptions) { o.BadData = nil }, map[string]Status{"customer-failure-not-4xx": Skip}},
		{"Slow", &brFake{slowOver: 20, slow: 1100 * time.Millisecond}, func(o *BloomreachOptions) { o.Concurrency = 30 },
			map[string]Status{"concurrency-200-under-1s": Fail}},
		// The throttle probe's burst starts after some 210 webhook requests.
		{"Throttle429", &brFake{throttleAfter: 400, throttleStatus: 429}, nil, map[string]Status{"throttle-status": Pass}},
		{"Throttle503", &brFake{throttleAfter: 400, throttleStatus: 503}, nil, map[string]Status{"throttle-status": Pass}},
		{"Throttle403", &brFake{throttleAfter: 400, throttleStatus: 403}, nil, map[string]Status{"throttle-status": Fail}},
		{"ThrottledUnder200", &brFake{throttleAfter: 100, throttleStatus: 429}, nil,
			map[string]Status{"concurrency-200-under-1s": Warn, "oversized-batch-refused": Warn, "throttle-status": Pass}},
		{"BigReply", &brFake{bigReply: true}, func(o *BloomreachOptions) { o.Concurrency = 20 }, map[string]Status{"json-under-64k": Fail}},
		// Bloomreach "Webhooks", Test settings: "respond with HTTP 200";
		// an empty body there is no JSON problem.
		{"AuthTestEmpty", &brFake{authTestEmpty: true}, nil, nil},
		// Issue 7: "an oversized batch is refused with a status that is
		// documented"; 422 is not one of Bloomreach's.
		{"OversizedBatch422", &brFake{batchOverStatus: 422}, nil, map[string]Status{"oversized-batch-refused": Fail}},
		{"OversizedBatch404", &brFake{batchOverStatus: 404}, nil, map[string]Status{"oversized-batch-refused": Warn}},
		{"WrongCreds403", &brFake{wrongCredsStatus: 403}, nil, map[string]Status{"bad-credentials-401": Warn}},
		{"WrongCreds200", &brFake{wrongCredsStatus: 200}, nil, map[string]Status{"bad-credentials-401": Fail}},
		{"NoAuthTest", &brFake{noAuthTest: true}, nil, map[string]Status{"auth-test-200": Warn}},
		{"AuthTestOpen", &brFake{authTestNoCreds: true}, nil, map[string]Status{"auth-test-200": Fail}},
		{"NoBatchURL", &brFake{}, func(o *BloomreachOptions) { o.BatchURL = "" }, map[string]Status{"oversized-batch-refused": Skip}},
		// A per-customer route answers a 1001-customer batch 200.
		{"BatchAccepts1001", &brFake{}, func(o *BloomreachOptions) { o.BatchURL = o.URL }, map[string]Status{"oversized-batch-refused": Fail}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			brWant(t, brConform(t, tt.fake, tt.mutate), tt.want)
		})
	}
}

func TestConformBloomreach_Options(t *testing.T) {
	r := ConformBloomreach(context.Background(), brTestClient(t), BloomreachOptions{URL: "http://127.0.0.1:1/"})
	if !r.Failed() || len(r.Checks) != 1 || r.Checks[0].Name != "options" {
		t.Fatalf("checks %+v, want one failed options check (no --data)", r.Checks)
	}
}

// mTLS as the only credential: without the certificate the request is
// refused in the handshake or with 401; with it, it passes.
func TestConformBloomreach_MTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bloomreach"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	f := &brFake{t: t, ids: map[string]bool{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"a client certificate is required"}`)
			return
		}
		r.SetBasicAuth("br", "pw") // the certificate stands for the credentials
		f.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	c, err := NewClient(caFile, false, certFile, keyFile, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := ConformBloomreach(context.Background(), c, BloomreachOptions{URL: srv.URL + "/sms", BatchURL: srv.URL + "/batch", Concurrency: 20,
		Data: []byte(`{"text":"hi"}`), BadData: []byte(`{"text":"` + strings.Repeat("a", 200) + `"}`)})
	checks := map[string]Check{}
	for _, c := range r.Checks {
		checks[c.Name] = c
	}
	brWant(t, checks, nil)
	if c := checks["bad-credentials-401"]; !strings.Contains(c.Detail, "no client certificate: 401") {
		t.Errorf("bad-credentials detail %q", c.Detail)
	}
}

// Nothing answers: every probe that sends fails or warns, none passes.
func TestConformBloomreach_NoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	r := ConformBloomreach(context.Background(), brTestClient(t), BloomreachOptions{URL: u + "/sms", Basic: "br:pw", Concurrency: 5,
		Data: []byte(`{"text":"hi"}`), BadData: []byte(`{}`), BatchURL: u + "/batch"})
	for _, c := range r.Checks {
		if c.Status == Pass {
			t.Errorf("%s passed with no server: %s", c.Name, c.Detail)
		}
	}
}
