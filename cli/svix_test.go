package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

const (
	svixSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	svixOldSecret = "whsec_c2VjcmV0LWJlZm9yZS1yb3RhdGlvbi0xMjM0"
)

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

func sendSvix(t *testing.T, m *Main, endpoint string, s signed) answer {
	t.Helper()
	if s.secret == "" {
		s.secret = svixSecret
	}
	if s.ts.IsZero() {
		s.ts = time.Now()
	}
	if s.prefix == "" {
		s.prefix = "svix"
	}
	if s.sig == "" {
		s.sig = hmacSign(s.secret, s.id, s.ts, s.body)
	}
	req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/svix/"+endpoint, strings.NewReader(s.body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range map[string]string{"-id": s.id, "-timestamp": fmt.Sprint(s.ts.Unix()), "-signature": s.sig} {
		if s.omit != s.prefix+k {
			req.Header.Set(s.prefix+k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return answer{resp.StatusCode, resp.Header, b.Bytes()}
}

func svixMain(t *testing.T, d *downstream) *Main {
	return MustRunMain(t, func(c *config.Config) {
		c.Server.MaxBodyBytes = 4096
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{
			"bloom": {Secrets: []string{svixOldSecret, svixSecret}, Events: map[string]*config.EventRouteConfig{
				"tradeline.*": {Action: forwardTo(d.URL + "/tradelines")},
				"*":           nil,
			}},
			"other": {Secrets: []string{svixOldSecret}},
		}
	})
}

// Bloom "Enablement Webhooks", "Retries": a redelivery carries the same message
// id with a new timestamp and signature; it is answered 2xx and not
// processed again. Events are routed by type; unknown types are accepted.
func TestSvix_DedupAndRoutes(t *testing.T) {
	d := newDownstream(t)
	m := svixMain(t, d)
	body := `{"type":"tradeline.created","data":{"id":"t1"}}`
	first := sendSvix(t, m, "bloom", signed{id: "msg_1", body: body, ts: time.Now().Add(-time.Minute)})
	again := sendSvix(t, m, "bloom", signed{id: "msg_1", body: body, ts: time.Now()})
	if first.status != 200 || again.status != 200 || !bytes.Equal(first.body, again.body) {
		t.Fatalf("first %d %s, redelivery %d %s", first.status, first.body, again.status, again.body)
	}
	waitUntil(t, 5*time.Second, "forward", func() bool { return len(d.deliveries()) == 1 })
	got := d.deliveries()[0]
	if string(got.body) != body || got.header.Get("X-Hookbay-Name") != "tradeline.created" ||
		got.header.Get("Idempotency-Key") != "msg_1" || got.header.Get("X-Hookbay-Sender") != "svix" {
		t.Fatalf("delivered %q with headers %v", got.body, got.header)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(d.deliveries()); n != 1 {
		t.Fatalf("deliveries=%d, want 1: the redelivery must not be processed again", n)
	}
	// The same message delivered to another endpoint is that endpoint's own
	// delivery: ids are de-duplicated per endpoint.
	if a := sendSvix(t, m, "other", signed{id: "msg_1", body: body, secret: svixOldSecret}); a.status != 200 {
		t.Fatalf("same id, other endpoint: %d %s", a.status, a.body)
	}
	if recs := requests(t, m, hooks.RequestFilter{Name: "other", RequestID: "msg_1"}); len(recs) != 1 || recs[0].DuplicateOf != 0 {
		t.Fatalf("same id on another endpoint recorded as %+v, want an original", recs)
	}
	// A type the route sends to store, and an unknown type: accepted, stored, noted.
	for _, tt := range []struct{ id, body, note string }{
		{"msg_u", `{"type":"user.created"}`, ""},
		{"msg_new", `{"type":"loan.approved"}`, "unknown event type loan.approved: accepted and stored"},
		{"msg_none", `{"data":{}}`, "no event type in the payload (a top-level \"type\" field is expected)"},
	} {
		a := sendSvix(t, m, "bloom", signed{id: tt.id, body: tt.body})
		if a.status != 200 {
			t.Fatalf("%s: %d %s", tt.id, a.status, a.body)
		}
		recs := requests(t, m, hooks.RequestFilter{RequestID: tt.id})
		if len(recs) != 1 || (tt.note != "" && !contains(recs[0].Notes, tt.note)) {
			t.Fatalf("%s notes=%v, want %q", tt.id, recs[0].Notes, tt.note)
		}
		js := jobs(t, m, hooks.JobFilter{RequestRef: recs[0].ID})
		if len(js) != 1 || js[0].State != hooks.JobDone {
			t.Fatalf("%s: jobs=%+v, want one done (store)", tt.id, js)
		}
	}
	if n := len(d.deliveries()); n != 1 {
		t.Fatalf("deliveries=%d: only tradeline.* is forwarded", n)
	}
	// Replaying a stored event does not re-check its old timestamp.
	var out bytes.Buffer
	id := requests(t, m, hooks.RequestFilter{RequestID: "msg_1", Limit: 10})
	orig := id[len(id)-1].ID
	cfgFile := writeSvixConfig(t, m, d.URL)
	if err := Run(context.Background(), []string{"events", "replay", "--config", cfgFile, fmt.Sprint(orig)}, &out, &out); err != nil {
		t.Fatalf("replay: %v %s", err, out.String())
	}
	if n := len(d.deliveries()); n != 2 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("after replay: deliveries=%d, output %s", n, out.String())
	}
}

func writeSvixConfig(t *testing.T, m *Main, url string) string {
	path := t.TempDir() + "/hookbay.yaml"
	cfg := fmt.Sprintf(`
server: {data_dir: %q, tls: {mode: "off"}}
bubblehouse: {authorization: "x"}
svix:
  endpoints:
    bloom:
      secrets: [%q]
      events:
        "tradeline.*": {action: {forward: {url: %q}}}
`, m.Config.Server.DataDir, svixSecret, url)
	if err := writeFile(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// FuzzSvix sends arbitrary message ids and bodies, correctly signed,
// through the whole Echo app: every answer is a JSON object; an event is
// accepted only when its body is a JSON object within the size limit, and
// refused 400 or 413 otherwise, never with a 5xx.
func FuzzSvix(f *testing.F) {
	m := MustRunMain(f, func(c *config.Config) {
		c.Server.MaxBodyBytes = 4096
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
	})
	f.Add("msg_1", []byte(`{"type":"user.created","data":{"id":"u1"}}`))
	f.Add("msg_2", []byte(`not json {`))
	f.Add("msg_3", []byte(`[{"type":"user.created"}]`))
	f.Add("", []byte(`{}`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		now := time.Now()
		req := httptest.NewRequest(http.MethodPost, "/svix/bloom", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("svix-id", id)
		req.Header.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("svix-signature", hmacSign(svixSecret, id, now, string(body)))
		rec := httptest.NewRecorder()
		m.Echo.ServeHTTP(rec, req)
		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
			t.Fatalf("%d answer is not a JSON object: %q", rec.Code, rec.Body.Bytes())
		}
		object := hooks.CheckObject(body) == nil
		switch {
		case rec.Code == 200 && !object:
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		case rec.Code == 200, rec.Code == 400, rec.Code == 413 && len(body) > 4096:
		case rec.Code == 401 && (strings.ContainsAny(id, "\r\n") || strings.TrimSpace(id) != id):
		default:
			t.Fatalf("status %d for id %q body %q: %s", rec.Code, id, body, rec.Body.Bytes())
		}
	})
}
