package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// qaSvixMain runs hookbay with one Svix endpoint, bloom, that stores
// every event.
func qaSvixMain(t *testing.T) (*Main, string) {
	t.Helper()
	m := MustRunMain(t, func(c *config.Config) {
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
	})
	return m, "http://" + m.Addr() + "/svix/bloom"
}

func qaSvixReport(t *testing.T, out []byte) *qa.Report {
	t.Helper()
	var r qa.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("--json output is not a report: %v\n%s", err, out)
	}
	return &r
}

// Bloom's "Enablement Webhooks" graded against hookbay itself: every check
// passes, the processed-once one through hookbay's own records.
func TestConformSvix_Hookbay(t *testing.T) {
	m, url := qaSvixMain(t)
	junit := filepath.Join(t.TempDir(), "svix.xml")
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{"conform", "--sender", "svix", "--url", url, "--secret", svixSecret,
		"--hookbay-data", m.Config.Server.DataDir, "--json", "--junit", junit}, &out, &errOut)
	if err != nil {
		t.Fatalf("conform: %v\n%s%s", err, out.String(), errOut.String())
	}
	citesByTitle(t, out.String(), readFile(t, junit))
	r := qaSvixReport(t, out.Bytes())
	want := []string{"good-signature", "redelivery-accepted", "redelivery-processed-once", "webhook-headers",
		"bad-signature", "stale-timestamp", "future-timestamp", "missing-headers", "within-timeout"}
	if len(r.Checks) != len(want) {
		t.Fatalf("checks=%d, want %d: %s", len(r.Checks), len(want), out.String())
	}
	for i, c := range r.Checks {
		if c.Name != want[i] || c.Status != qa.Pass {
			t.Fatalf("check %d: %s %s (%s), want %s PASS", i, c.Name, c.Status, c.Detail, want[i])
		}
	}
	// hookbay recorded the refusals with their reasons, and the redelivery
	// as a duplicate of the first delivery.
	recs := requests(t, m, hooks.RequestFilter{Sender: hooks.SenderSvix, Limit: 100})
	if len(recs) != 10 {
		t.Fatalf("records=%d, want 10 probes", len(recs))
	}
	dups := 0
	for _, rec := range recs {
		if rec.DuplicateOf != 0 {
			dups++
		}
	}
	if dups != 1 {
		t.Fatalf("duplicates=%d, want 1", dups)
	}

	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Cases    []struct {
			Name string `xml:"name,attr"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(b, &suite); err != nil {
		t.Fatalf("JUnit: %v\n%s", err, b)
	}
	if suite.Failures != 0 || suite.Skipped != 0 || suite.Tests != len(want) || len(suite.Cases) != len(want) {
		t.Fatalf("JUnit tests=%d failures=%d skipped=%d\n%s", suite.Tests, suite.Failures, suite.Skipped, b)
	}
	if !bytes.Contains(b, []byte(`failures="0"`)) {
		t.Fatalf("JUnit lacks failures=\"0\":\n%s", b)
	}

	// The table, without the store: processed-once is skipped, nothing fails.
	out.Reset()
	if err := Run(context.Background(), []string{"conform", "--sender=svix", "--url", url, "--secret", svixSecret}, &out, &errOut); err != nil {
		t.Fatalf("conform: %v\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "SKIP    redelivery-processed-once") || !strings.Contains(s, "8 passed, 0 failed, 0 warnings, 1 skipped") {
		t.Fatalf("table:\n%s", s)
	}
}

// qaSvixBroken is a deliberately broken endpoint: it verifies nothing and
// processes every delivery, redeliveries included.
type qaSvixBroken struct {
	mu        sync.Mutex
	processed map[string]int
}

func (b *qaSvixBroken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.processed[r.Header.Get("svix-id")+r.Header.Get("webhook-id")]++
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}`))
}

func (b *qaSvixBroken) count(_ context.Context, id string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.processed[id], nil
}

// The processed-once check through hookbay's admin API, which reads any
// store: on SQLite, and on PostgreSQL, whose records no --hookbay-data
// reaches. The admin token goes from the environment; a wrong one turns
// the check into a warning that says why.
func TestConformSvix_HookbayAdmin(t *testing.T) {
	const token = "admin-token-for-the-conform-test"
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var pg *config.PostgresConfig
			if store == "postgres" {
				pg = &config.PostgresConfig{URL: pgtest.New(t).URL()} // skips, naming the variable, when it is unset
			}
			m := MustRunMain(t, func(c *config.Config) {
				c.Store.Postgres = pg
				c.Admin.Token = token
				c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
			})
			processedOnce := func(envToken string) qa.Check {
				t.Helper()
				t.Setenv(adminTokenEnv, envToken)
				var out, errOut bytes.Buffer
				err := Run(context.Background(), []string{"conform", "--sender", "svix", "--url", "http://" + m.Addr() + "/svix/bloom",
					"--secret", svixSecret, "--hookbay-admin", m.AdminURL(), "--json"}, &out, &errOut)
				if err != nil {
					t.Fatalf("conform: %v\n%s%s", err, out.String(), errOut.String())
				}
				for _, c := range qaSvixReport(t, out.Bytes()).Checks {
					if c.Name == "redelivery-processed-once" {
						return c
					}
				}
				t.Fatalf("no redelivery-processed-once check:\n%s", out.String())
				return qa.Check{}
			}
			if c := processedOnce(token); c.Status != qa.Pass {
				t.Fatalf("processed-once=%s (%s), want PASS", c.Status, c.Detail)
			}
			if c := processedOnce("not-the-" + token); c.Status != qa.Warn || !strings.Contains(c.Detail, "401") {
				t.Fatalf("with a wrong token: processed-once=%s (%s), want WARN naming the 401", c.Status, c.Detail)
			}
		})
	}
}

func TestConformSvix_BrokenEndpoint(t *testing.T) {
	broken := &qaSvixBroken{processed: map[string]int{}}
	srv := httptest.NewServer(broken)
	defer srv.Close()
	wantFailed := []string{"bad-signature", "stale-timestamp", "future-timestamp", "missing-headers"}

	t.Run("CLI", func(t *testing.T) {
		junit := filepath.Join(t.TempDir(), "svix.xml")
		var out, errOut bytes.Buffer
		err := Run(context.Background(), []string{"conform", "--sender", "svix", "--url", srv.URL + "/hooks", "--secret", svixSecret,
			"--json", "--junit", junit}, &out, &errOut)
		if !errors.Is(err, errChecksFailed) {
			t.Fatalf("err=%v, want errChecksFailed\n%s%s", err, out.String(), errOut.String())
		}
		var failed []string
		for _, c := range qaSvixReport(t, out.Bytes()).Checks {
			switch {
			case c.Status == qa.Fail:
				failed = append(failed, c.Name)
			case c.Name == "redelivery-processed-once" && c.Status != qa.Skip:
				t.Fatalf("processed-once=%s without --hookbay-data, want SKIP", c.Status)
			}
		}
		if got, want := strings.Join(failed, ","), strings.Join(wantFailed, ","); got != want {
			t.Fatalf("failed %s, want %s", got, want)
		}
		if b, _ := os.ReadFile(junit); !bytes.Contains(b, []byte(`failures="4"`)) {
			t.Fatalf("JUnit:\n%s", b)
		}
	})
	t.Run("ProcessedTwice", func(t *testing.T) {
		c, err := qa.NewClient("", false, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		r := qa.ConformSvix(context.Background(), c, qa.SvixOptions{URL: srv.URL, Secret: svixSecret, EventsCheck: broken.count})
		var failed []string
		for _, c := range r.Checks {
			if c.Status == qa.Fail {
				failed = append(failed, c.Name)
			}
		}
		want := append([]string{"redelivery-processed-once"}, wantFailed...)
		if got := strings.Join(failed, ","); got != strings.Join(want, ",") {
			t.Fatalf("failed %s, want %v", got, want)
		}
	})
}

func TestSendSvix(t *testing.T) {
	m, url := qaSvixMain(t)
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), append([]string{"send", "svix", "--url", url}, args...), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	t.Run("OK", func(t *testing.T) {
		out, err := run("--secret", svixSecret, "--id", "msg_send_ok", "--type", "tradeline.created")
		if err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
		for _, want := range []string{"> POST " + url, "Svix-Id: msg_send_ok", "Svix-Signature: v1,", `"type":"tradeline.created"`,
			" 200 in ", `"accepted":true`, "meaning: delivered (Svix counts any 2xx as success, whatever the body says)"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
		if recs := requests(t, m, hooks.RequestFilter{RequestID: "msg_send_ok"}); len(recs) != 1 || recs[0].Status != 200 {
			t.Fatalf("records %+v", recs)
		}
	})
	t.Run("WebhookHeadersDataFileTimestamp", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "event.json")
		body := `{"type" : "user.updated", "data": {"id": "u1"}}`
		os.WriteFile(file, []byte(body), 0o600)
		ts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		out, err := run("--secret", svixSecret, "--id", "msg_send_file", "--headers", "webhook", "--data", "@"+file, "--timestamp", ts)
		if err != nil || !strings.Contains(out, "Webhook-Id: msg_send_file") || !strings.Contains(out, "meaning: delivered") {
			t.Fatalf("send: %v\n%s", err, out)
		}
		recs := requests(t, m, hooks.RequestFilter{RequestID: "msg_send_file"})
		if len(recs) != 1 || string(recs[0].Body) != body {
			t.Fatalf("stored %+v, want the file's exact bytes", recs)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		ts := fmt.Sprint(time.Now().Add(-time.Hour).Unix())
		out, err := run("--secret", svixSecret, "--timestamp", ts)
		if exitStatus(t, err) != 1 || !strings.Contains(out, " 401 in ") || !strings.Contains(out, "old; at most") ||
			!strings.Contains(out, "meaning: failed: Svix will retry on its schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then give up; 5 days of failures disable the endpoint") {
			t.Fatalf("send: %v\n%s", err, out)
		}
	})
	t.Run("Notes", func(t *testing.T) {
		out, err := run("--secret", svixSecret, "--type", "loan.approved")
		if err != nil || !strings.Contains(out, "note: loan.approved is not one of the event types Bloom documents") {
			t.Fatalf("send: %v\n%s", err, out)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		says string
	}{
		{"ErrNoSecret", nil, "--secret"},
		{"ErrSignatureAsSecret", []string{"--secret", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "not a signing secret"},
		{"ErrTimestamp", []string{"--secret", svixSecret, "--timestamp", "yesterday"}, "--timestamp"},
		{"ErrHeaders", []string{"--secret", svixSecret, "--headers", "x"}, "--headers"},
		{"ErrDataFile", []string{"--secret", svixSecret, "--data", "@/nonexistent/file"}, "--data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want one saying %q", err, tt.says)
			}
		})
	}
	t.Run("ErrNoAnswer", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		dead := srv.URL
		srv.Close()
		var out bytes.Buffer
		err := Run(context.Background(), []string{"send", "svix", "--url", dead, "--secret", svixSecret}, &out, &out)
		if exitStatus(t, err) != 2 || !strings.Contains(out.String(), "meaning: failed") {
			t.Fatalf("err=%v\n%s", err, out.String())
		}
	})
}

func TestConformSvix_Usage(t *testing.T) {
	var out bytes.Buffer
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"conform", "--sender", "svix", "--secret", svixSecret}, "--url"},
		{[]string{"conform", "--sender", "svix", "--url", "http://127.0.0.1:1/", "--secret", "whsec_!!"}, "whsec_"},
		{[]string{"conform", "--sender", "svix", "--url", "http://127.0.0.1:1/", "--secret", svixSecret, "--hookbay-data", t.TempDir()}, "--hookbay-data"},
		{[]string{"conform", "--sender", "svix", "--url", "http://127.0.0.1:1/", "--secret", svixSecret, "--hookbay-data", t.TempDir(), "--hookbay-admin", "http://127.0.0.1:1/"}, "--hookbay-admin"},
		{[]string{"conform", "--sender", "svix", "--url", "http://127.0.0.1:1/", "--secret", svixSecret, "--hookbay-admin", "127.0.0.1:8081"}, "--hookbay-admin"},
	} {
		if err := Run(context.Background(), tt.args, &out, &out); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Fatalf("%v: err=%v, want one saying %q", tt.args, err, tt.says)
		}
	}
}
