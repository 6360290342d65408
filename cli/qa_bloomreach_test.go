package cli

// "hookbay send bloomreach" and "hookbay conform --sender bloomreach",
// against hookbay itself and against a deliberately broken endpoint. The
// contract: Bloomreach Engagement's "Creating API endpoint for webhooks"
// and "Webhooks".

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

const (
	qabrGood = `{"phone":"+15550100","text":"hello from the conformance run"}`
	// qabrBad is one customer's data that webhook refuses: its text is over
	// the 160 characters schema.item allows.
	qabrBadText = "this text is far too long for one SMS "
)

func qabrBad() string {
	return `{"phone":"+15550100","text":"` + strings.Repeat(qabrBadText, 5) + `"}`
}

// qabrSMSHooks are the per-customer webhook of the README's example and a
// batch webhook with the same Basic credentials.
func qabrSMSHooks() map[string]config.WebhookConfig {
	return map[string]config.WebhookConfig{
		"sms": {Auth: brBasic(), Schema: config.SchemaConfig{Item: map[string]any{
			"type": "object", "required": []any{"phone", "text"},
			"properties": map[string]any{"text": map[string]any{"type": "string", "maxLength": 160}}}}},
		"sms_batch": {Auth: brBasic(), Batch: &config.BatchConfig{Items: "/messages"}, RequestID: config.RequestIDConfig{ItemID: "/id"}},
	}
}

// qabrReport runs conform with --json and returns its checks by name.
func qabrReport(t *testing.T, args ...string) (map[string]qa.Check, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := (&ConformCommand{Stdout: &out, Stderr: &errb}).Run(context.Background(), append([]string{"--sender", "bloomreach", "--json"}, args...))
	var r qa.Report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("conform: %v; output is not a JSON report (%v): %s %s", err, jerr, out.Bytes(), errb.Bytes())
	}
	checks := map[string]qa.Check{}
	for _, c := range r.Checks {
		checks[c.Name] = c
		t.Logf("%s %s: %s", c.Status, c.Name, c.Detail)
	}
	return checks, err
}

var qabrChecks = []string{"success-shape", "customer-failure-not-4xx", "concurrency-200-under-1s", "bad-credentials-401",
	"auth-test-200", "oversized-batch-refused", "throttle-status", "json-under-64k"}

func TestQABloomreach_ConformHookbay(t *testing.T) {
	m := brMain(t, qabrSMSHooks(), nil)
	base := "http://" + m.Addr() + brPath
	junit := filepath.Join(t.TempDir(), "bloomreach.xml")
	checks, err := qabrReport(t, "--url", base+"/sms", "--basic", brUser+":"+brPass,
		"--data", qabrGood, "--bad-data", qabrBad(), "--batch-url", base+"/sms_batch", "--junit", junit)
	if err != nil {
		t.Fatalf("conform against hookbay: %v", err)
	}
	for _, name := range qabrChecks {
		if c, ok := checks[name]; !ok || c.Status == qa.Fail {
			t.Errorf("%s: %s %s", name, c.Status, c.Detail)
		}
	}
	// hookbay's documented answers: 400 for more than batch.max customers,
	// 200 success false for one customer's bad data.
	if c := checks["oversized-batch-refused"]; c.HTTP != 400 || c.Status != qa.Pass {
		t.Errorf("oversized batch: %s %d, want PASS 400", c.Status, c.HTTP)
	}
	if c := checks["customer-failure-not-4xx"]; c.HTTP != 200 || c.Status != qa.Pass {
		t.Errorf("bad customer: %s %d, want PASS 200", c.Status, c.HTTP)
	}
	// Every probe carried a unique request ID: none was answered as a
	// duplicate.
	for _, r := range requests(t, m, hooks.RequestFilter{Sender: hooks.SenderBloomreach, Limit: 5000}) {
		if r.DuplicateOf != 0 {
			t.Fatalf("request %q was a duplicate: request IDs are not unique", r.RequestID)
		}
	}

	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name string `xml:"name,attr"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(b, &suite); err != nil {
		t.Fatalf("JUnit file does not parse: %v", err)
	}
	if suite.Tests != len(qabrChecks) || suite.Failures != 0 || len(suite.Cases) != len(qabrChecks) || suite.Cases[0].Name != "success-shape" {
		t.Fatalf("JUnit suite %+v", suite)
	}
}

// qabrBroken is an endpoint that is right about everything but two things:
// it answers 400 for one customer's bad data, and under concurrency it
// takes 1.2 s.
type qabrBroken struct {
	inflight atomic.Int32
}

func (b *qabrBroken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	w.Header().Set("Content-Type", "application/json")
	answer := func(status int, body string) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "br" || p != "pw" {
		answer(401, `{"error":"unauthorized"}`)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/auth-test") {
		answer(200, `{"success":true}`)
		return
	}
	time.Sleep(20 * time.Millisecond) // so that concurrent requests overlap
	if n > 20 {
		time.Sleep(1200 * time.Millisecond)
	}
	var body struct {
		Text     string
		Messages []json.RawMessage
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		answer(400, `{"error":"not JSON"}`)
		return
	}
	switch {
	case r.URL.Path == "/batch" && len(body.Messages) > 1000:
		answer(413, `{"error":"too many customers"}`)
	case len(body.Text) > 160:
		answer(400, `{"error":"text too long"}`)
	default:
		answer(200, `{"success":true,"result":{"code":1,"status":"sent"}}`)
	}
}

func TestQABloomreach_ConformBroken(t *testing.T) {
	srv := httptest.NewServer(&qabrBroken{})
	defer srv.Close()
	checks, err := qabrReport(t, "--url", srv.URL+"/sms", "--basic", "br:pw", "--data", qabrGood, "--bad-data", qabrBad(),
		"--batch-url", srv.URL+"/batch")
	if !errors.Is(err, errChecksFailed) {
		t.Fatalf("err=%v, want errChecksFailed", err)
	}
	for _, name := range qabrChecks {
		want := qa.Pass
		switch name {
		case "customer-failure-not-4xx", "concurrency-200-under-1s":
			want = qa.Fail
		case "throttle-status":
			want = qa.Skip // it never throttles: nothing to grade
		}
		if c := checks[name]; c.Status != want {
			t.Errorf("%s: %s (%s), want %s", name, c.Status, c.Detail, want)
		}
	}
	if c := checks["customer-failure-not-4xx"]; !strings.Contains(c.Detail, "a 4xx for one customer fails or stops the whole campaign") {
		t.Errorf("customer failure detail %q", c.Detail)
	}
	if c := checks["concurrency-200-under-1s"]; !strings.Contains(c.Detail, "max 1.") || !strings.Contains(c.Detail, "p99") {
		t.Errorf("concurrency detail %q: want max and p99 latencies", c.Detail)
	}
}

func qabrSend(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := (&SendCommand{Stdout: &out, Stderr: &errb}).Run(context.Background(), append([]string{"bloomreach"}, args...))
	return out.String(), errb.String(), err
}

func TestQABloomreach_Send(t *testing.T) {
	hooksCfg := qabrSMSHooks()
	hooksCfg["crm"] = config.WebhookConfig{Auth: config.WebhookAuth{OAuth2: &config.OAuth2Auth{}}}
	m := brMain(t, hooksCfg, brOAuth)
	base := "http://" + m.Addr()

	t.Run("OAuth2", func(t *testing.T) {
		out, errOut, err := qabrSend(t, "--url", base+brPath+"/crm", "--oauth2", base+"/oauth/token,bloomreach,s3cret",
			"--data", `{"customer_id":"c-1"}`)
		if err != nil {
			t.Fatalf("send: %v\n%s%s", err, out, errOut)
		}
		for _, want := range []string{"> POST " + base + brPath + "/crm", "Authorization: Bearer ", "< HTTP/1.1 200", `"success":true`, "meaning: delivered\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out+errOut, "s3cret") {
			t.Fatalf("the client secret was printed:\n%s%s", out, errOut)
		}
		if got := brLatest(t, m, "crm").Header.Get("Authorization"); got != "Bearer [redacted]" {
			t.Fatalf("hookbay recorded Authorization %q", got)
		}
	})
	t.Run("Batch3", func(t *testing.T) {
		out, errOut, err := qabrSend(t, "--url", base+brPath+"/sms_batch", "--basic", brUser+":"+brPass, "--batch", "3", "--data", qabrGood)
		if err != nil {
			t.Fatalf("send: %v\n%s%s", err, out, errOut)
		}
		_, answer, _ := strings.Cut(out, "<\n< ")
		var reply brBatchReply
		if err := json.Unmarshal([]byte(strings.TrimSpace(strings.Split(answer, "\n\nmeaning:")[0])), &reply); err != nil {
			t.Fatalf("answer is not a batch reply: %v\n%s", err, out)
		}
		if !reply.Success || reply.Accepted != 3 || len(reply.Results) != 3 || !strings.Contains(out, "meaning: delivered\n") {
			t.Fatalf("reply %+v\n%s", reply, out)
		}
		ids := map[string]bool{}
		for _, r := range reply.Results {
			ids[r.ItemID] = true
		}
		if len(ids) != 3 {
			t.Fatalf("item IDs %v, want 3 unique", ids)
		}
	})
	t.Run("Meanings", func(t *testing.T) {
		// The exit status says whether Bloomreach counts the answer as
		// delivered: 1 for anything else, a customer's failure included.
		for _, tt := range []struct {
			name string
			args []string
			want string
			exit int
		}{
			{"CustomerFailure", []string{"--url", base + brPath + "/sms", "--basic", brUser + ":" + brPass, "--data", qabrBad()},
				"meaning: delivered; Bloomreach records the customer's failure\n", 1},
			{"WrongPassword", []string{"--url", base + brPath + "/sms", "--basic", brUser + ":nope", "--data", qabrGood},
				"meaning: recorded as a failed campaign event, not retried\n", 1},
			{"UnknownWebhook", []string{"--url", base + brPath + "/nope", "--basic", brUser + ":" + brPass, "--data", qabrGood},
				"meaning: Bloomreach would stop this campaign: 404\n", 1},
			{"DataFile", []string{"--url", base + brPath + "/sms", "--basic", brUser + ":" + brPass, "--data", "@" + qabrFile(t, qabrGood)},
				"meaning: delivered\n", 0},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, errOut, err := qabrSend(t, tt.args...)
				if got := exitStatus(t, err); got != tt.exit || !strings.Contains(out, tt.want) {
					t.Fatalf("exit %d (err=%v), want %d and %q in:\n%s%s", got, err, tt.exit, tt.want, out, errOut)
				}
			})
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--data", qabrGood},
			{"--url", base + brPath + "/sms", "--basic", "nocolon"},
			{"--url", base + brPath + "/sms", "--batch", "2", "--data", "[1]"},
			{"--url", base + brPath + "/sms", "--data", "@/does/not/exist"},
		} {
			if _, _, err := qabrSend(t, args...); exitStatus(t, err) != 2 {
				t.Errorf("%v: err=%v, want exit status 2", args, err)
			}
		}
		if _, err := qabrConformRaw(t, "--url", base+brPath+"/sms"); err == nil || !strings.Contains(err.Error(), "--data") {
			t.Errorf("conform without --data: err=%v", err)
		}
	})
}

func qabrConformRaw(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := (&ConformCommand{Stdout: &out, Stderr: &errb}).Run(context.Background(), append([]string{"--sender", "bloomreach"}, args...))
	return out.String(), err
}

func qabrFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
