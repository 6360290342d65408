package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/metrics"
)

// scrape reads the handler's answer with the Prometheus text parser and
// returns, by family, each series' value keyed by its labels.
func scrape(t *testing.T, m *metrics.Metrics) map[string]map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, s := range f.GetMetric() {
			key := ""
			for _, l := range s.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			switch {
			case s.Counter != nil:
				out[name][key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				out[name][key] = s.GetGauge().GetValue()
			case s.Histogram != nil:
				out[name][key] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestStatusLabel(t *testing.T) {
	for status, want := range map[int]string{200: "200", 202: "202", 404: "404", 429: "429", 503: "503", 299: "2xx", 451: "4xx",
		599: "5xx", 0: "none", 999: "none", -1: "none"} {
		if got := metrics.StatusLabel(status); got != want {
			t.Errorf("StatusLabel(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestHandshakeReason(t *testing.T) {
	for _, tt := range []struct{ line, reason string }{
		{"http: TLS handshake error from 127.0.0.1:5555: tls: failed to verify certificate: x509: certificate signed by unknown authority", "client_certificate_refused"},
		{"http: TLS handshake error from 127.0.0.1:5555: tls: client didn't provide a certificate", "client_certificate_missing"},
		{"http: TLS handshake error from 127.0.0.1:5555: remote error: tls: bad certificate", "server_certificate_refused"},
		{"http: TLS handshake error from 127.0.0.1:5555: tls: first record does not look like a TLS handshake", "not_tls"},
		{"http: TLS handshake error from 127.0.0.1:5555: tls: client offered only unsupported versions: [302 301]", "protocol_version"},
		{"http: TLS handshake error from 127.0.0.1:5555: EOF", "connection_closed"},
		{"http: TLS handshake error from 127.0.0.1:5555: read tcp 127.0.0.1:8443->127.0.0.1:5555: i/o timeout", "timeout"},
		{"http: TLS handshake error from 127.0.0.1:5555: something new", "other"},
	} {
		if got, ok := metrics.HandshakeReason(tt.line); !ok || got != tt.reason {
			t.Errorf("%q: %q (%v), want %q", tt.line, got, ok, tt.reason)
		}
	}
	if _, ok := metrics.HandshakeReason("http: superfluous response.WriteHeader call"); ok {
		t.Error("a line that is not about a handshake was read as one")
	}
}

// Names, statuses, reasons and verdicts that the configuration and the
// fixed lists do not know are all "other": a thousand of them add no
// series beyond the first.
func TestMetrics_LabelsBounded(t *testing.T) {
	m := metrics.New(metrics.Options{Names: map[hooks.Sender][]string{hooks.SenderBloomreach: {"sms"}}, Throttles: map[string]string{"sms": "shared"}})
	m.RequestStarted()
	m.RequestDone(metrics.Request{Sender: hooks.SenderBloomreach, Name: "sms", Status: 200, Verdict: hooks.VerdictDelivered})
	m.RequestStarted()
	m.RequestDone(metrics.Request{Sender: hooks.SenderBloomreach, Name: "first-unknown", Status: 404, Verdict: hooks.VerdictStopCampaign, Refusal: hooks.ENOTFOUND})
	count := func() int {
		n := 0
		for _, series := range scrape(t, m) {
			n += len(series)
		}
		return n
	}
	before := count()
	for i := range 1000 {
		m.RequestStarted()
		m.RequestDone(metrics.Request{Sender: hooks.Sender(fmt.Sprint("sender-", i)), Name: fmt.Sprint("name-", i), Status: 460 + i%30,
			Verdict: hooks.VerdictKind(fmt.Sprint("verdict-", i)), Refusal: fmt.Sprint("reason-", i), Throttled: true})
		m.RequestStarted()
		m.RequestDone(metrics.Request{Sender: hooks.SenderBloomreach, Name: fmt.Sprint("unknown-", i), Status: 404,
			Verdict: hooks.VerdictStopCampaign, Refusal: hooks.ENOTFOUND})
		m.Duplicate(hooks.SenderSvix, fmt.Sprint("kind-", i), 1)
		m.Enqueued(hooks.SenderBloomreach, fmt.Sprint("job-", i), hooks.Urgency(fmt.Sprint("u-", i)), 1)
		m.HandshakeFailed(fmt.Sprint("why-", i))
	}
	// The loop's first round may add the "other" series once; none after.
	after := count()
	m.RequestStarted()
	m.RequestDone(metrics.Request{Sender: "x", Name: "y", Status: 461, Verdict: "z", Refusal: "w", Throttled: true})
	if again := count(); again != after {
		t.Fatalf("series grew from %d to %d on another unknown name", after, again)
	}
	if after > before+40 {
		t.Fatalf("%d series before a thousand unknown names, %d after", before, after)
	}
	s := scrape(t, m)
	if got := s["hookbay_requests_total"]["name=other,sender=bloomreach,status=404,"]; got != 1001 {
		t.Errorf("unknown Bloomreach names counted as other: %v, want 1001", got)
	}
	if got := s["hookbay_answers_total"]["name=sms,sender=bloomreach,verdict=stop_campaign,"]; got != 0 {
		t.Errorf("a configured name's stop_campaign answers: %v, want a series at 0 for alerts", got)
	}
	if _, ok := s["hookbay_answers_total"]["name=sms,sender=bloomreach,verdict=stop_campaign,"]; !ok {
		t.Error("no series at 0 for a configured webhook's stop_campaign answers")
	}
	if got := s["hookbay_requests_in_flight"][""]; got != 0 {
		t.Errorf("in flight after every request was answered: %v", got)
	}
}

// The queue's figures are read from the store at most once per interval,
// however often Prometheus scrapes; a failed read counts a store error
// and the last figures stay.
func TestMetrics_WatchJobs(t *testing.T) {
	m := metrics.New(metrics.Options{})
	var mu sync.Mutex
	calls, fail := 0, false
	m.WatchJobs(func(_ context.Context, now time.Time) (hooks.JobStats, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if fail {
			return hooks.JobStats{}, errors.New("store down")
		}
		return hooks.JobStats{
			Counts:    map[hooks.JobState]map[hooks.Urgency]int64{hooks.JobDead: {hooks.UrgencyRegular: 3}},
			OldestDue: map[hooks.Urgency]time.Time{hooks.UrgencyUrgent: now.Add(-time.Minute)},
		}, nil
	}, time.Second)
	for range 5 {
		s := scrape(t, m)
		if got := s["hookbay_jobs"]["state=dead,urgency=regular,"]; got != 3 {
			t.Fatalf("dead regular jobs: %v, want 3", got)
		}
		if got := s["hookbay_queue_oldest_waiting_seconds"]["urgency=urgent,"]; got < 60 {
			t.Fatalf("oldest urgent job: %v s, want at least 60", got)
		}
		if got := s["hookbay_queue_oldest_waiting_seconds"]["urgency=regular,"]; got != 0 {
			t.Fatalf("oldest regular job: %v s, want 0 (none waits)", got)
		}
	}
	mu.Lock()
	if calls != 1 {
		t.Errorf("5 scrapes read the store %d times, want once", calls)
	}
	fail = true
	mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	s := scrape(t, m)
	if got := s["hookbay_jobs"]["state=dead,urgency=regular,"]; got != 3 {
		t.Errorf("after a failed read: %v dead jobs, want the last figure, 3", got)
	}
	// The registry collects concurrently: the error counted during one
	// scrape may be served by the next.
	if got := scrape(t, m)["hookbay_store_errors_total"]["op=read,"]; got < 1 {
		t.Errorf("store read errors: %v, want the failed read counted", got)
	}
}
