package qa

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// closedURL is the URL of a port that was just listening and is closed.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// An endpoint that never answered passes nothing: conform against a closed
// port stops at the first probe with one failure that says so, instead of
// six identical connection failures and a within-timeout PASS.
func TestConform_Unreachable(t *testing.T) {
	client, err := NewClient("", false, "", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u := closedURL(t)
	host := strings.TrimPrefix(u, "http://")
	for _, tt := range []struct {
		sender string
		run    func() *Report
	}{
		{"svix", func() *Report {
			return ConformSvix(ctx, client, SvixOptions{URL: u + "/svix/bloom", Secret: testSvixSecret})
		}},
		{"bubblehouse", func() *Report {
			return ConformBubblehouse(ctx, client, BubblehouseOptions{URLTemplate: u + "/bubblehouse/:name", Authorization: "Bearer x"})
		}},
		{"bloomreach", func() *Report {
			return ConformBloomreach(ctx, client, BloomreachOptions{URL: u + "/bloomreach/sms", Basic: "br:pw", Concurrency: 5, Data: []byte(`{"text":"hi"}`)})
		}},
	} {
		t.Run(tt.sender, func(t *testing.T) {
			r := tt.run()
			if len(r.Checks) != 1 {
				var names []string
				for _, c := range r.Checks {
					names = append(names, string(c.Status)+" "+c.Name)
				}
				t.Fatalf("%d checks (%s), want one failure", len(r.Checks), strings.Join(names, ", "))
			}
			c := r.Checks[0]
			if c.Name != "reachable" || c.Status != Fail || !r.Failed() || !strings.Contains(c.Detail, host) || !strings.Contains(c.Detail, "connection refused") {
				t.Fatalf("check %+v, want one failed reachable check naming %s and the refusal", c, host)
			}
		})
	}
}

// A name that does not resolve is unreachable too.
func TestConform_UnknownHost(t *testing.T) {
	client, _ := NewClient("", false, "", "", 5*time.Second)
	r := ConformSvix(context.Background(), client, SvixOptions{URL: "http://hookbay-probe.invalid/svix/bloom", Secret: testSvixSecret})
	if len(r.Checks) != 1 || r.Checks[0].Name != "reachable" || r.Checks[0].Status != Fail {
		t.Fatalf("checks %+v, want one failed reachable check", r.Checks)
	}
}

// within-timeout grades answers: probes none of which was answered pass
// nothing.
func TestSvixWithinTimeout_NoAnswers(t *testing.T) {
	reset := &Exchange{Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, Latency: time.Millisecond}
	if c := svixWithinTimeout([]*Exchange{reset, reset}, time.Second); c.Status != Fail {
		t.Fatalf("within-timeout with no answers: %s %s, want FAIL", c.Status, c.Detail)
	}
}
