package cli

// The metrics, end to end: a real hookbay (cli.Main, real SQLite, loopback
// HTTP) is driven through each sender and the queue, /metrics on the
// admin listener is scraped and read with the Prometheus text parser, and
// the figures must have moved as they should. Names nobody configured
// never become series. The example alerting rules and the Grafana
// dashboard shipped in deploy/ are checked against a real scrape.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/metrics"
)

// promScrape is one scrape of /metrics, parsed.
type promScrape map[string]*dto.MetricFamily

// scrapeMetrics GETs /metrics from the admin listener and parses it with
// the Prometheus text parser.
func scrapeMetrics(t *testing.T, m *Main) promScrape {
	t.Helper()
	if m.AdminAddr() == "" {
		t.Fatal("no admin listener")
	}
	resp, err := http.Get("http://" + m.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// labelsMatch reports whether a series carries every name=value of want
// ("name=value" pairs).
func labelsMatch(s *dto.Metric, want []string) bool {
	have := map[string]string{}
	for _, l := range s.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		if have[k] != v {
			return false
		}
	}
	return true
}

// value sums the series of a family that match the labels: a counter's
// or gauge's value, a histogram's count.
func (s promScrape) value(name string, labels ...string) float64 {
	total := 0.0
	f := s[name]
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		if !labelsMatch(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// has reports whether a family has a series with these labels.
func (s promScrape) has(name string, labels ...string) bool {
	for _, m := range s[name].GetMetric() {
		if labelsMatch(m, labels) {
			return true
		}
	}
	return false
}

// series counts every series of every family, a histogram's buckets
// included.
func (s promScrape) series() int {
	n := 0
	for _, f := range s {
		for _, m := range f.GetMetric() {
			n++
			if h := m.GetHistogram(); h != nil {
				n += len(h.GetBucket())
			}
		}
	}
	return n
}

// hookbaySeries lists the hookbay_ series (not the Go runtime's or the
// process's, which move by themselves), by family and labels.
func (s promScrape) hookbaySeries() map[string]bool {
	out := map[string]bool{}
	for name, f := range s {
		if !strings.HasPrefix(name, "hookbay_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = true
		}
	}
	return out
}

// runObserved runs hookbay as MustRunMain does, with its admin listener,
// short sampling and fault polling intervals, and Go actions; tune sets
// Main's fields before it runs.
func runObserved(t *testing.T, actions hooks.Actions, mutate func(*config.Config), tune ...func(*Main)) *Main {
	t.Helper()
	cfg := config.Config{}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.DataDir = t.TempDir()
	cfg.Server.TLS.Mode = "off"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Bubblehouse.Authorization = testAuth
	cfg.Bubblehouse.JWTSecret = testJWTSecret
	cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}, "DeliverCustomReward1": {}, "SendEvent1": {}, "PrivatePromo2": {Inline: true}}
	cfg.Queue.Workers = 2
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg)
	m.Actions = actions
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, f := range tune {
		f(m)
	}
	m.JobStatsEvery = 20 * time.Millisecond
	m.FaultPollInterval = 10 * time.Millisecond
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return m
}

// addFault injects one answer of status for a sender's name and waits
// until the server has loaded it.
func addFault(t *testing.T, m *Main, s hooks.Sender, name string, status int) {
	t.Helper()
	f := &hooks.Fault{Sender: s, Name: name, Kind: hooks.FaultStatus, Status: status, Remaining: 1, Percent: 100, CreatedAt: time.Now()}
	if err := m.DB.AddFault(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	// The server reloads its faults every FaultPollInterval (10 ms here).
	waitUntil(t, 5*time.Second, "the fault loaded", func() bool { return m.faults.Loaded(f.ID) })
}

// metricsMain is the configuration every sender is driven through.
func metricsMain(t *testing.T, d *downstream) *Main {
	t.Helper()
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		return nil, nil
	}))
	return runObserved(t, actions, func(c *config.Config) {
		c.Queue.MaxAttempts = 1
		c.Bubblehouse.Hooks["AuditLog3"] = config.HookConfig{Action: forwardTo(d.URL)} // queued, delivered by forward
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		sms := config.WebhookConfig{Auth: brBasic(), RequestID: config.RequestIDConfig{Header: "X-Request-ID"},
			Throttle: &config.ThrottleRef{Inline: &config.ThrottleConfig{Rate: 0.001, Burst: 1}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": sms, "batch": brBatchHook(100)}
	})
}

// driveEverySender sends what TestMetrics_EndToEnd expects to find
// counted, and waits for the queue's two attempts.
func driveEverySender(t *testing.T, m *Main) {
	t.Helper()
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: answered %d, want %d", what, got, want)
		}
	}
	// Bubblehouse: a queued hook and its repeat; a hook whose action
	// fails for good; SendEvent1, its event again under a new request ID,
	// and an answer that holds the queue; a hook nobody subscribed to.
	expect("CreateDiscount4", send(t, m, call{hook: "CreateDiscount4", body: `{"code":"A"}`, id: "bh-1", urgency: "urgent"}).status, 202)
	expect("CreateDiscount4 again", send(t, m, call{hook: "CreateDiscount4", body: `{"code":"A"}`, id: "bh-1", urgency: "urgent"}).status, 202)
	expect("AuditLog3", send(t, m, call{hook: "AuditLog3", body: `{}`, id: "bh-2"}).status, 202)
	expect("SendEvent1", send(t, m, call{hook: "SendEvent1", body: `{"bhid":"ev-1"}`, id: "se-1"}).status, 202)
	expect("SendEvent1 resent", send(t, m, call{hook: "SendEvent1", body: `{"bhid":"ev-1"}`, id: "se-2"}).status, 202)
	addFault(t, m, hooks.SenderBubblehouse, "SendEvent1", 503)
	expect("SendEvent1 faulted", send(t, m, call{hook: "SendEvent1", body: `{"bhid":"ev-2"}`, id: "se-3"}).status, 503)
	expect("unknown hook", send(t, m, call{hook: "NoSuchHook7", body: `{}`, id: "bh-3"}).status, 404)

	// Svix: an event, its redelivery, a bad signature.
	ev := `{"type":"user.created"}`
	expect("svix", sendSvix(t, m, "bloom", signed{id: "msg_1", body: ev}).status, 200)
	expect("svix again", sendSvix(t, m, "bloom", signed{id: "msg_1", body: ev}).status, 200)
	expect("svix forged", sendSvix(t, m, "bloom", signed{id: "msg_2", body: ev, secret: svixOldSecret}).status, 401)

	// Bloomreach: a customer, one over the throttle, a webhook answered
	// 404 (which stops its campaign); a batch of three with one bad
	// customer, and the same customers under another request ID.
	expect("bloomreach", brSend(t, m, brReq{name: "sms", id: "br-1", body: `{}`}).status, 200)
	expect("bloomreach throttled", brSend(t, m, brReq{name: "sms", id: "br-2", body: `{}`}).status, 429)
	addFault(t, m, hooks.SenderBloomreach, "sms", 404)
	expect("bloomreach faulted", brSend(t, m, brReq{name: "sms", id: "br-3", body: `{}`}).status, 404)
	batch := `{"messages":[{"id":"i1","phone":"1"},{"id":"i2","phone":"2"},{"id":"i3"}]}`
	expect("batch", brSend(t, m, brReq{name: "batch", id: "b-1", body: batch}).status, 200)
	expect("batch again", brSend(t, m, brReq{name: "batch", id: "b-2", body: batch}).status, 200)

	// Neither a sender's route nor a health check.
	resp, err := http.Get("http://" + m.Addr() + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	waitUntil(t, 10*time.Second, "the queue's two attempts to be counted", func() bool {
		return scrapeMetrics(t, m).value("hookbay_attempts_total") >= 2
	})
}

func TestMetrics_EndToEnd(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.status = 500 })
	m := metricsMain(t, d)
	before := scrapeMetrics(t, m)
	driveEverySender(t, m)
	// The queue snapshot is sampled: wait for one taken after the dead job.
	var s promScrape
	waitUntil(t, 5*time.Second, "a queue snapshot with the dead job", func() bool {
		s = scrapeMetrics(t, m)
		return s.value("hookbay_jobs", "state=dead") == 1
	})

	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hookbay_requests_total", []string{"sender=bubblehouse", "name=CreateDiscount4", "status=202"}, 2},
		{"hookbay_requests_total", []string{"sender=bubblehouse", "name=other", "status=404"}, 1},
		{"hookbay_requests_total", []string{"sender=none", "name=other", "status=404"}, 1},
		{"hookbay_requests_total", []string{"sender=svix", "name=bloom", "status=401"}, 1},
		{"hookbay_answers_total", []string{"sender=bubblehouse", "name=CreateDiscount4", "verdict=delivered"}, 2},
		{"hookbay_answers_total", []string{"sender=bubblehouse", "name=SendEvent1", "verdict=hold_queue"}, 1},
		{"hookbay_answers_total", []string{"sender=bubblehouse", "name=other", "verdict=not_implemented"}, 1},
		{"hookbay_answers_total", []string{"sender=svix", "name=bloom", "verdict=delivered"}, 2},
		{"hookbay_answers_total", []string{"sender=svix", "name=bloom", "verdict=retry"}, 1},
		{"hookbay_answers_total", []string{"sender=bloomreach", "name=sms", "verdict=delivered"}, 1},
		{"hookbay_answers_total", []string{"sender=bloomreach", "name=sms", "verdict=retry"}, 1},
		{"hookbay_answers_total", []string{"sender=bloomreach", "name=sms", "verdict=stop_campaign"}, 1},
		{"hookbay_answers_total", []string{"sender=bloomreach", "name=batch", "verdict=item_failed"}, 2},
		{"hookbay_refusals_total", []string{"sender=svix", "name=bloom", "reason=signature_mismatch"}, 1},
		{"hookbay_refusals_total", []string{"sender=bloomreach", "name=sms", "reason=throttled"}, 1},
		{"hookbay_refusals_total", []string{"sender=bloomreach", "name=sms", "reason=injected"}, 1},
		{"hookbay_refusals_total", []string{"sender=bubblehouse", "name=SendEvent1", "reason=injected"}, 1},
		{"hookbay_refusals_total", []string{"sender=bubblehouse", "name=other", "reason=not_found"}, 1},
		{"hookbay_throttled_total", []string{"policy=sms"}, 1},
		{"hookbay_duplicates_total", []string{"sender=bubblehouse", "kind=request_id"}, 1},
		{"hookbay_duplicates_total", []string{"sender=bubblehouse", "kind=content"}, 1},
		{"hookbay_duplicates_total", []string{"sender=svix", "kind=request_id"}, 1},
		{"hookbay_duplicates_total", []string{"sender=bloomreach", "kind=item"}, 2},
		{"hookbay_bloomreach_batch_items_total", []string{"webhook=batch", "result=accepted"}, 2},
		{"hookbay_bloomreach_batch_items_total", []string{"webhook=batch", "result=duplicate"}, 2},
		{"hookbay_bloomreach_batch_items_total", []string{"webhook=batch", "result=failed"}, 2},
		{"hookbay_jobs_enqueued_total", []string{"sender=bubblehouse", "name=CreateDiscount4", "urgency=urgent"}, 1},
		{"hookbay_jobs_enqueued_total", []string{"sender=bubblehouse", "name=AuditLog3", "urgency=regular"}, 1},
		{"hookbay_jobs_enqueued_total", nil, 2},
		{"hookbay_attempts_total", []string{"sender=bubblehouse", "name=CreateDiscount4", "action=go", "outcome=ok"}, 1},
		{"hookbay_attempts_total", []string{"sender=bubblehouse", "name=AuditLog3", "action=forward", "outcome=dead"}, 1},
		{"hookbay_attempt_duration_seconds", []string{"action=forward"}, 1},
		{"hookbay_queue_wait_seconds", nil, 2},
		{"hookbay_delivery_latency_seconds", []string{"sender=bubblehouse", "urgency=urgent"}, 1},
		{"hookbay_jobs", []string{"state=dead", "urgency=regular"}, 1},
		{"hookbay_jobs", []string{"state=available"}, 0},
		{"hookbay_requests_in_flight", nil, 0},
		{"hookbay_store_errors_total", nil, 0},
		{"hookbay_request_duration_seconds", []string{"sender=bloomreach"}, 5},
	} {
		if got := s.value(tt.name, tt.labels...) - before.value(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v moved by %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hookbay_workers", nil, 2},
		{"hookbay_workers_busy", nil, 0},
		{"hookbay_build_info", []string{"version=" + Version()}, 1},
		{"hookbay_purged_rows_total", []string{"what=records"}, 0},
	} {
		if got := s.value(tt.name, tt.labels...); got != tt.want || !s.has(tt.name, tt.labels...) {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := s.value("hookbay_request_body_bytes", "sender=svix"); got != 3 {
		t.Errorf("Svix bodies observed: %v, want 3", got)
	}
	if s.value("hookbay_store_commit_duration_seconds") == 0 || s.value("hookbay_store_commit_writes") == 0 {
		t.Error("no store commit was observed")
	}
	if age := s.value("hookbay_jobs_sample_age_seconds"); age > 1 {
		t.Errorf("queue snapshot %v s old, sampled every 20 ms", age)
	}

	// The request durations' buckets have bounds at each sender's deadline.
	bounds := map[float64]bool{}
	for _, series := range s["hookbay_request_duration_seconds"].GetMetric() {
		for _, b := range series.GetHistogram().GetBucket() {
			bounds[b.GetUpperBound()] = true
		}
	}
	for _, deadline := range []float64{1, 10, 15, 30} {
		if !bounds[deadline] {
			t.Errorf("no bucket bound at a sender's deadline of %v s: %v", deadline, bounds)
		}
	}
	// Bodies are measured as read: the first Svix event's bytes at least.
	var sum float64
	for _, series := range s["hookbay_request_body_bytes"].GetMetric() {
		if labelsMatch(series, []string{"sender=svix"}) {
			sum = series.GetHistogram().GetSampleSum()
		}
	}
	if sum != float64(3*len(`{"type":"user.created"}`)) {
		t.Errorf("Svix body bytes: %v, want %d", sum, 3*len(`{"type":"user.created"}`))
	}
}

// A thousand names nobody configured, random paths and Host headers add
// no series: they are all "other".
func TestMetrics_SeriesBounded(t *testing.T) {
	d := newDownstream(t)
	m := metricsMain(t, d)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	do := func(method, path, host string, header map[string]string) {
		req, _ := http.NewRequest(method, "http://"+m.Addr()+path, strings.NewReader(`{}`))
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}
	unknown := func(i int) {
		name := fmt.Sprintf("Unknown%dHook", i)
		host := fmt.Sprintf("host-%d.example", i)
		switch i % 4 {
		case 0:
			do("POST", "/bubblehouse/"+name, host, map[string]string{"Authorization": testAuth, "X-Request-ID": name})
		case 1:
			do("POST", "/svix/"+name, host, map[string]string{"svix-id": name})
		case 2:
			do("POST", "/bloomreach/"+name, host, map[string]string{"X-Request-ID": name})
		case 3:
			do([]string{"GET", "POST", "PUT", "DELETE"}[i/4%4], fmt.Sprintf("/%d/random/%x", i, i*7919), host, nil)
		}
	}
	for i := range 8 { // the "other" series of every kind of request
		unknown(i)
	}
	first := scrapeMetrics(t, m).hookbaySeries()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				unknown(i)
			}
		}()
	}
	for i := 8; i < 1008; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	after := scrapeMetrics(t, m)
	var grown []string
	for k := range after.hookbaySeries() {
		if !first[k] {
			grown = append(grown, k)
		}
	}
	sort.Strings(grown)
	if len(grown) > 0 {
		t.Fatalf("1,000 unknown names and paths added %d series:\n%s", len(grown), strings.Join(grown, "\n"))
	}
	if got := after.value("hookbay_requests_total", "sender=bubblehouse", "name=other"); got != 252 {
		t.Errorf("unknown Bubblehouse hooks counted as other: %v, want 252", got)
	}
	if got := after.value("hookbay_requests_total", "sender=none"); got != 252 {
		t.Errorf("random paths counted: %v, want 252", got)
	}
}

// With TLS the certificate's expiry is served, and failed handshakes are
// counted by reason.
func TestMetrics_TLS(t *testing.T) {
	m := runObserved(t, nil, func(c *config.Config) { c.Server.TLS.Mode = "dev" })
	s := scrapeMetrics(t, m)
	want := float64(m.reloader.Leaf().NotAfter.Unix())
	if got := s.value("hookbay_tls_certificate_not_after_seconds"); got != want {
		t.Fatalf("certificate expiry %v, want the served certificate's %v", got, want)
	}
	// A client that does not trust the dev CA refuses the certificate.
	conn, err := tls.Dial("tcp", m.Addr(), &tls.Config{ServerName: "localhost"})
	if err == nil {
		conn.Close()
		t.Fatal("a client without the dev CA completed the handshake")
	}
	waitUntil(t, 5*time.Second, "the failed handshake to be counted", func() bool {
		return scrapeMetrics(t, m).value("hookbay_tls_handshake_failures_total", "reason=server_certificate_refused") == 1
	})
}

// A worker running an attempt is busy until it ends.
func TestMetrics_BusyWorkers(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	}))
	m := runObserved(t, actions, nil)
	if got := send(t, m, call{hook: "CreateDiscount4", body: `{}`, id: "busy-1"}).status; got != 202 {
		t.Fatalf("CreateDiscount4: %d", got)
	}
	<-started
	if got := scrapeMetrics(t, m).value("hookbay_workers_busy"); got != 1 {
		t.Errorf("busy workers while an action runs: %v, want 1", got)
	}
	close(release)
	waitUntil(t, 5*time.Second, "the worker to be idle again", func() bool {
		s := scrapeMetrics(t, m)
		return s.value("hookbay_workers_busy") == 0 && s.value("hookbay_attempts_total", "outcome=ok") == 1
	})
}

// admin.listen off: no metrics are kept, and the requests are still
// served and logged.
func TestMetrics_Off(t *testing.T) {
	m := runObserved(t, nil, func(c *config.Config) { c.Admin.Listen = "off" })
	if m.Metrics != nil || m.MetricsHandler() != nil || m.AdminAddr() != "" {
		t.Fatalf("metrics kept with admin.listen off: %v, %q", m.Metrics, m.AdminAddr())
	}
	if got := send(t, m, call{hook: "CreateDiscount4", body: `{}`, id: "off-1"}).status; got != 202 {
		t.Fatalf("CreateDiscount4: %d", got)
	}
}

// Records older than server.record_retention are purged and counted.
func TestMetrics_Purged(t *testing.T) {
	cfg := func(c *config.Config) { c.Server.RecordRetention = config.Duration(100 * time.Hour) }
	m := runObserved(t, nil, cfg, func(m *Main) { m.PurgeInterval = 10 * time.Millisecond })
	old := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", Method: "POST", Path: "/bubblehouse/CreateDiscount4",
		Status: 401, ReceivedAt: time.Now().Add(-200 * time.Hour)}
	for range 3 {
		r := *old
		if err := m.DB.Record(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "the purge to be counted", func() bool {
		return scrapeMetrics(t, m).value("hookbay_purged_rows_total", "what=records") == 3
	})
}

// metricNameRE finds the metric names a PromQL expression reads.
var metricNameRE = regexp.MustCompile(`\b(?:hookbay|process|go)_[a-z0-9_]+\b`)

// metricFamily is the family a name in a query belongs to: a histogram's
// _bucket, _sum and _count series are its family's.
func metricFamily(s promScrape, name string) bool {
	if s[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && s[base].GetType() == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

// The example alerting rules parse and pass their unit tests with
// promtool, and every metric they and the Grafana dashboard's queries
// name exists in a real scrape of a hookbay driven through every sender
// and the queue (and, for the TLS metrics, one serving TLS).
func TestDeploy_RulesAndDashboard(t *testing.T) {
	dir := filepath.Join("..", "deploy")
	promtool, err := exec.LookPath("promtool")
	switch {
	case err == nil:
		for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
			cmd := exec.Command(promtool, args...)
			cmd.Dir = filepath.Join(dir, "prometheus")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	case os.Getenv("HOOKBAY_REQUIRE_SERVICES") == "1":
		t.Errorf("promtool is required (HOOKBAY_REQUIRE_SERVICES=1): apt-get install prometheus")
	default:
		t.Log("promtool not found (Debian's prometheus package): the rules' syntax and unit tests are not checked; the metric names still are")
	}

	// Every query: the rules' expressions and the dashboard's targets.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := unmarshalYAMLFile(filepath.Join(dir, "prometheus", "alerts.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	if len(queries) < 7 {
		t.Fatalf("%d alerting rules, want at least the 7 the issue names", len(queries))
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "grafana", "hookbay.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	panels := 0
	for _, p := range dash.Panels {
		for i, q := range p.Targets {
			queries[fmt.Sprintf("panel %q target %d", p.Title, i)] = q.Expr
			panels++
		}
	}
	if panels < 20 {
		t.Fatalf("the dashboard has %d queries", panels)
	}

	d := newDownstream(t)
	d.set(func(d *downstream) { d.status = 500 })
	plain := metricsMain(t, d)
	driveEverySender(t, plain)
	scraped := scrapeMetrics(t, plain)
	secure := runObserved(t, nil, func(c *config.Config) { c.Server.TLS.Mode = "dev" })
	if conn, err := tls.Dial("tcp", secure.Addr(), &tls.Config{ServerName: "localhost"}); err == nil {
		conn.Close()
	}
	waitUntil(t, 5*time.Second, "a failed handshake", func() bool {
		return scrapeMetrics(t, secure).value("hookbay_tls_handshake_failures_total") > 0
	})
	for name, f := range scrapeMetrics(t, secure) {
		if scraped[name] == nil {
			scraped[name] = f
		}
	}
	var missing []string
	for where, q := range queries {
		names := metricNameRE.FindAllString(q, -1)
		if len(names) == 0 {
			t.Errorf("%s names no metric: %q", where, q)
		}
		for _, n := range names {
			if !metricFamily(scraped, n) {
				missing = append(missing, fmt.Sprintf("%s: %s", where, n))
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("queries name metrics that hookbay does not serve:\n%s", strings.Join(missing, "\n"))
	}
}

// unmarshalYAMLFile decodes a YAML file.
func unmarshalYAMLFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// BenchmarkObservation is what observing one answered request costs: its
// verdict, its JSON log line written to a file as serve writes it, and its
// metrics. Compare with hookbay's CPU time per request (scripts/bench.sh
// OBSERVE=1).
func BenchmarkObservation(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cfg := config.Config{}
	cfg.Bubblehouse.Authorization = testAuth
	cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}}
	logger, flush := newBufferedLogger(f, config.LogConfig{Format: "json", Level: "info"}) // as serve logs
	defer flush()
	m := &Main{Config: cfg, Logger: logger}
	m.requestLog = handlers.RequestLog(m.Logger, true)
	m.Metrics = metrics.New(metricsOptions(&m.Config))
	rec := &hooks.Request{ID: 12345, Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", RequestID: "0f6b3c1e-bench",
		Urgency: hooks.UrgencyUrgent, Status: 202, Response: []byte(`{"ok":true,"code":"BENCH-SPRING-10OFF"}`)}
	b.ReportAllocs()
	for b.Loop() {
		x := &handlers.Exchange{Record: rec, Method: "POST", Path: "/bubblehouse/CreateDiscount4", RemoteAddr: "127.0.0.1",
			Status: 202, Duration: 1500 * time.Microsecond, BodyBytes: 600}
		x.Verdict = hooks.Judge(rec.Sender, rec.Name, x.Status, rec.Response)
		m.requestStarted()
		m.requestDone(x)
	}
}
