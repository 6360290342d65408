package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// bubblehouseConform runs "hookbay conform --sender bubblehouse" with
// --json and returns the report and the command's error.
func bubblehouseConform(t *testing.T, args ...string) (*qa.Report, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), append([]string{"conform", "--sender", "bubblehouse", "--json"}, args...), &out, &errOut)
	var r qa.Report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("report is not JSON (%v; err %v): %s %s", jerr, err, out.String(), errOut.String())
	}
	return &r, err
}

func bubblehouseStatuses(r *qa.Report) map[string]qa.Status {
	m := map[string]qa.Status{}
	for _, c := range r.Checks {
		m[c.Name] = c.Status
	}
	return m
}

// hookbay itself keeps the Bubblehouse contract: every check passes, and
// the JUnit file says so too.
func TestConformBubblehouse_Hookbay(t *testing.T) {
	m := MustRunMain(t, nil)
	junit := filepath.Join(t.TempDir(), "bubblehouse.xml")
	r, err := bubblehouseConform(t, "--url", "http://"+m.Addr()+"/bubblehouse/:name", "--authorization", testAuth, "--junit", junit)
	if err != nil {
		t.Fatalf("conform: %v", err)
	}
	raw, _ := json.Marshal(r)
	citesByTitle(t, string(raw), readFile(t, junit))
	for _, name := range []string{"hello1-magic", "hello1-hooks", "hello2-404", "unknown-hook-404", "wrong-auth",
		"output-object/CreateDiscount4", "output-object/DeliverCustomReward1", "output-object/PrivatePromo2",
		"retry-same-answer", "realtime-deadline", "header-case", "urgency-case"} {
		if _, ok := bubblehouseStatuses(r)[name]; !ok {
			t.Errorf("no check %s", name)
		}
	}
	for _, c := range r.Checks {
		if c.Status != qa.Pass {
			t.Errorf("%s: %s: %s (status %d, body %s)", c.Name, c.Status, c.Detail, c.HTTP, c.Body)
		}
		if !strings.Contains(c.Contract, "Bubblehouse \"Hooks API\"") {
			t.Errorf("%s cites no contract: %q", c.Name, c.Contract)
		}
		if c.HTTP == 0 || c.Latency == 0 {
			t.Errorf("%s lacks evidence: status %d, latency %s", c.Name, c.HTTP, c.Latency)
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
		t.Fatalf("JUnit file is not XML: %v\n%s", err, b)
	}
	if suite.Failures != 0 || suite.Tests != len(r.Checks) || len(suite.Cases) != len(r.Checks) {
		t.Fatalf("JUnit tests=%d failures=%d cases=%d, want %d, 0, %d", suite.Tests, suite.Failures, len(suite.Cases), len(r.Checks), len(r.Checks))
	}
}

// bubblehouseBroken is a receiver with three faults: Hello2 is answered as
// if implemented, Hello1 echoes a different magic, and CreateDiscount4 is
// slow in real-time mode. Everything else is right.
func bubblehouseBroken(t *testing.T, delay time.Duration) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != testAuth {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"unauthorized"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		switch strings.TrimPrefix(r.URL.Path, "/bh/") {
		case "Hello1":
			io.WriteString(w, `{"magic":"not-what-you-sent","hooks":["CreateDiscount4"]}`)
		case "Hello2":
			io.WriteString(w, `{"ok":true}`)
		case "CreateDiscount4":
			if strings.EqualFold(r.Header.Get("X-BH-Urgency"), "real-time") {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
				}
			}
			var in struct{ Code string }
			json.Unmarshal(body, &in)
			json.NewEncoder(w).Encode(map[string]any{"ok": true, "code": in.Code})
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such hook"}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// A receiver with those faults fails exactly those checks, and conform
// exits with errChecksFailed.
func TestConformBubblehouse_Broken(t *testing.T) {
	s := bubblehouseBroken(t, 400*time.Millisecond)
	r, err := bubblehouseConform(t, "--url", s.URL+"/bh/:name", "--authorization", testAuth, "--realtime-limit", "200ms")
	if !errors.Is(err, errChecksFailed) {
		t.Fatalf("err=%v, want errChecksFailed", err)
	}
	var failed []string
	for _, c := range r.Checks {
		switch c.Status {
		case qa.Fail:
			failed = append(failed, c.Name)
		case qa.Pass:
		default:
			t.Errorf("%s: %s: %s", c.Name, c.Status, c.Detail)
		}
	}
	sort.Strings(failed)
	if got, want := strings.Join(failed, ","), "hello1-magic,hello2-404,realtime-deadline"; got != want {
		t.Fatalf("failed=%s, want %s\n%+v", got, want, r.Checks)
	}
	if _, ok := bubblehouseStatuses(r)["output-object/CreateDiscount4"]; !ok {
		t.Fatal("the hook Hello1 listed was not probed")
	}
}

func TestConformBubblehouse_Usage(t *testing.T) {
	for _, args := range [][]string{
		{"conform", "--sender", "bubblehouse"},
		{"conform", "--sender", "bubblehouse", "--url", "http://x/:name", "--authorization", "a", "--jwt-secret", "b"},
		{"conform", "--sender", "bubblehouse", "--url", "http://x/:name", "--realtime-limit", "11s"},
		{"conform", "--sender", "bubblehouse", "--url", "http://x/:name", "extra"},
	} {
		if err := Run(context.Background(), args, io.Discard, io.Discard); err == nil || errors.Is(err, errChecksFailed) {
			t.Errorf("%q: err=%v, want a usage error", args, err)
		}
	}
}

var bubblehouseMagicRE = regexp.MustCompile(`"magic":"(hookbay-[0-9a-f]+)"`)

func bubblehouseSend(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), append([]string{"send", "bubblehouse"}, args...), &out, &out)
	return out.String(), err
}

// "hookbay send bubblehouse" prints the call, the answer and what it means.
func TestSendBubblehouse(t *testing.T) {
	m := MustRunMain(t, nil)
	url := "http://" + m.Addr() + "/bubblehouse/:name"
	t.Run("Hello1", func(t *testing.T) {
		out, err := bubblehouseSend(t, "--url", url, "--hook", "Hello1", "--authorization", testAuth)
		if err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
		ms := bubblehouseMagicRE.FindAllStringSubmatch(out, -1)
		if len(ms) != 2 || ms[0][1] != ms[1][1] {
			t.Fatalf("want the magic sent and echoed:\n%s", out)
		}
		for _, want := range []string{"> POST http://" + m.Addr() + "/bubblehouse/Hello1", "X-Bh-Urgency: real-time", "Accepts: application/json",
			"< HTTP/1.1 200", "meaning: accepted: handshake OK, subscribed to CreateDiscount4"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("DataFileAndRequestID", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "in.json")
		os.WriteFile(file, []byte(`{"code":"FILE-1","title":"t","percentage":500}`), 0o600)
		for range 2 {
			out, err := bubblehouseSend(t, "--url", url, "--hook", "CreateDiscount4", "--data", "@"+file, "--request-id", "send-rep",
				"--authorization", testAuth)
			if err != nil || !strings.Contains(out, "< HTTP/1.1 202") || !strings.Contains(out, `"code":"FILE-1"`) || !strings.Contains(out, "meaning: accepted") {
				t.Fatalf("err=%v\n%s", err, out)
			}
		}
		if recs := requests(t, m, hooks.RequestFilter{RequestID: "send-rep"}); len(recs) != 2 || recs[0].DuplicateOf == 0 && recs[1].DuplicateOf == 0 {
			t.Fatalf("records=%d, want the second recorded as a duplicate", len(recs))
		}
	})
	// An answer other than a delivery is an answer: printed with its
	// meaning, and exit status 1 (not 2, which is for no answer).
	t.Run("WrongAuthIsAnAnswer", func(t *testing.T) {
		out, err := bubblehouseSend(t, "--url", url, "--hook", "SendEvent1", "--authorization", "Bearer wrong")
		if exitStatus(t, err) != 1 || !strings.Contains(err.Error(), "not delivered") || !strings.Contains(out, "< HTTP/1.1 401") || !strings.Contains(out, "meaning: Bubblehouse will retry: 401") ||
			!strings.Contains(out, "holds the whole event queue") {
			t.Fatalf("err=%v\n%s", err, out)
		}
	})
	t.Run("Hello2", func(t *testing.T) {
		out, err := bubblehouseSend(t, "--url", url, "--hook", "Hello2", "--authorization", testAuth, "--data", `{"magic":"x"}`)
		if exitStatus(t, err) != 1 || !strings.Contains(out, "meaning: 404: Bubblehouse treats the hook as not implemented") {
			t.Fatalf("err=%v\n%s", err, out)
		}
	})
	t.Run("ErrNoAnswer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if out, err := bubblehouseSend(t, "--url", "http://"+addr+"/:name", "--authorization", testAuth); exitStatus(t, err) != 2 || !strings.Contains(out, "no answer") {
			t.Fatalf("err=%v, want a transport error\n%s", err, out)
		}
	})
}

// --jwt-secret signs an HS256 bearer token that a hookbay configured with
// only the JWT secret accepts.
func TestSendBubblehouse_JWT(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { c.Bubblehouse.Authorization = "" })
	url := "http://" + m.Addr() + "/bubblehouse/:name"
	out, err := bubblehouseSend(t, "--url", url, "--hook", "CreateDiscount4", "--jwt-secret", testJWTSecret)
	if err != nil || !strings.Contains(out, "Authorization: Bearer [redacted]") || !strings.Contains(out, "< HTTP/1.1 202") || !strings.Contains(out, "meaning: accepted") {
		t.Fatalf("err=%v\n%s", err, out)
	}
	out, err = bubblehouseSend(t, "--url", url, "--hook", "CreateDiscount4", "--jwt-secret", "another-secret")
	if exitStatus(t, err) != 1 || !strings.Contains(out, "< HTTP/1.1 401") {
		t.Fatalf("wrong secret: err=%v\n%s", err, out)
	}
	// conform with the JWT secret passes too.
	r, err := bubblehouseConform(t, "--url", url, "--jwt-secret", testJWTSecret)
	if err != nil {
		t.Fatalf("conform: %v\n%+v", err, r.Checks)
	}
}
