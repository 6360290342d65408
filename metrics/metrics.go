// Package metrics is hookbay's Prometheus instrumentation. A Metrics owns
// its registry (never the default one; the package keeps no globals), and
// is told what happened through plain method calls that the composition
// root wires to the handlers, the queue and the store, so that none of
// them imports this package.
//
// Every label takes its values from the configuration (the senders
// served, the configured hook, endpoint and webhook names, the throttle
// policies) or from a fixed list kept here or in hooks; anything else
// counts as "other". No path, Host header or name chosen by a client ever
// becomes a label value, so no client can grow the number of series.
package metrics

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookbay/hookbay/hooks"
)

// Other is the label value of anything outside a label's fixed or
// configured values.
const Other = "other"

// NoSender is the sender label of a request that reached no sender's
// route (an unknown path, a health check).
const NoSender = "none"

// Duplicate kinds: what a repeat was recognised by.
const (
	// DupRequestID: the sender's request or message ID was seen before.
	DupRequestID = "request_id"
	// DupContent: a content key was (SendEvent1's event, under a new
	// request ID).
	DupContent = "content"
	// DupItem: a customer of a Bloomreach batch was accepted before.
	DupItem = "item"
)

// Action kinds, for attempts.
const (
	ActionForward = "forward"
	ActionExec    = "exec"
	ActionGo      = "go"
	// ActionStore is a job with no action: keeping the record is all.
	ActionStore = "store"
)

// Store operations whose errors are counted.
const (
	StoreWrite = "write"
	StoreRead  = "read"
)

// What a purge deletes.
const (
	PurgedRecords     = "records"
	PurgedIdempotency = "idempotency"
)

// Refusal reasons: the error classes of hooks (the "code" of an error
// answer), the reasons a Svix signature is refused, and an injected
// fault's answer.
var refusalReasons = []string{
	hooks.ECONFLICT, hooks.EINTERNAL, hooks.EINCOMPLETE, hooks.EINVALID, hooks.ENOTFOUND, hooks.ETOOLARGE,
	hooks.EUNAUTHORIZED, hooks.EUNAVAILABLE, hooks.EMETHOD, hooks.ETHROTTLED,
	hooks.ReasonMissingHeaders, hooks.ReasonBadTimestamp, hooks.ReasonStale, hooks.ReasonFuture, hooks.ReasonNoMatch,
	"injected",
}

// statuses are the status codes labelled as themselves: every status
// hookbay answers with on its own. Any other (an injected fault's) is
// labelled by its class, such as 4xx.
var statuses = map[int]string{}

func init() {
	for _, s := range []int{200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 409, 410, 412, 413, 415, 418, 429,
		500, 502, 503, 504} {
		statuses[s] = strconv.Itoa(s)
	}
}

// StatusLabel is the status label of an answer: the code when it is in
// the fixed set, else its class ("5xx"); "none" when no answer was sent.
func StatusLabel(status int) string {
	if s, ok := statuses[status]; ok {
		return s
	}
	if status >= 100 && status < 600 {
		return strconv.Itoa(status/100) + "xx"
	}
	return "none"
}

// The histograms' bucket bounds. Request durations have a bound at each
// sender's deadline (Bloomreach 1 s, Bubblehouse 10 s and 30 s, Svix
// 15 s), so that "answered within the deadline" is a bucket, not an
// estimate.
var (
	requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, .75, .9, 1, 2.5, 5, 10, 15, 20, 30, 60}
	bodyBuckets    = []float64{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
	attemptBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300}
	waitBuckets    = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600}
	commitBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	writesBuckets  = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
)

// Options are what the label values may be.
type Options struct {
	// Names are, by sender served, the configured hook, endpoint and
	// webhook names: the only values of the name label besides "other".
	Names map[hooks.Sender][]string
	// Throttles maps a Bloomreach webhook to the name of its throttle
	// policy: a shared policy's name, or the webhook's own for an inline
	// one.
	Throttles map[string]string
	// Version is hookbay's version, for hookbay_build_info.
	Version string
}

// Metrics is hookbay's instrumentation and the registry it is on.
type Metrics struct {
	// Registry holds every hookbay metric, the Go runtime's and the
	// process's. Nothing else registers on it.
	Registry *prometheus.Registry

	names     map[hooks.Sender]map[string]bool
	throttles map[string]string

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	bodySize   *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	refusals   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	answers    *prometheus.CounterVec
	batchItems *prometheus.CounterVec
	throttled  *prometheus.CounterVec
	enqueued   *prometheus.CounterVec

	attempts        *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	queueWait       *prometheus.HistogramVec
	deliveryLatency *prometheus.HistogramVec

	commitDuration prometheus.Histogram
	commitWrites   prometheus.Histogram
	storeErrors    *prometheus.CounterVec
	purged         *prometheus.CounterVec

	handshakeFailures *prometheus.CounterVec
}

// New returns a Metrics on a registry of its own.
func New(o Options) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), names: map[hooks.Sender]map[string]bool{}, throttles: o.Throttles}
	for s, names := range o.Names {
		m.names[s] = map[string]bool{}
		for _, n := range names {
			m.names[s][n] = true
		}
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	m.requests = counter("hookbay_requests_total",
		"Requests answered, by sender, configured name (other for any name not configured) and status.", "sender", "name", "status")
	m.duration = histogram("hookbay_request_duration_seconds",
		"Time from a request's arrival to its answer, with bucket bounds at the senders' deadlines (Bloomreach 1 s, Bubblehouse 10 s and 30 s, Svix 15 s).",
		requestBuckets, "sender", "name")
	m.bodySize = histogram("hookbay_request_body_bytes", "Bytes of request body read, by sender.", bodyBuckets, "sender")
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookbay_requests_in_flight", Help: "Requests being served now."})
	m.refusals = counter("hookbay_refusals_total",
		"Requests refused (answered 4xx or 5xx), by sender, name and reason: the error class, a Svix signature's refusal reason, or injected.",
		"sender", "name", "reason")
	m.duplicates = counter("hookbay_duplicates_total",
		"Repeats answered from the idempotency records, by what they were recognised by: request_id, content (a content key such as SendEvent1's event) or item (a Bloomreach batch's customer).",
		"sender", "kind")
	m.answers = counter("hookbay_answers_total",
		"Answers by what they mean to the sender (hooks.VerdictKind): delivered, item_failed, retry, hold_queue, failed, stop_campaign, not_implemented.",
		"sender", "name", "verdict")
	m.batchItems = counter("hookbay_bloomreach_batch_items_total",
		"Customers of Bloomreach batches, by webhook and result: accepted (queued), duplicate (accepted before) or failed.",
		"webhook", "result")
	m.throttled = counter("hookbay_throttled_total", "Requests refused by a throughput policy, by policy.", "policy")
	m.enqueued = counter("hookbay_jobs_enqueued_total", "Jobs queued for delivery, by sender, name and urgency.",
		"sender", "name", "urgency")
	m.attempts = counter("hookbay_attempts_total",
		"Delivery attempts, by sender, name, action (forward, exec, go, store) and outcome (ok, failed, dead, interrupted, not_started).",
		"sender", "name", "action", "outcome")
	m.attemptDuration = histogram("hookbay_attempt_duration_seconds", "How long delivery attempts ran, by sender and action.",
		attemptBuckets, "sender", "action")
	m.queueWait = histogram("hookbay_queue_wait_seconds",
		"Time from when a job was due to when its attempt started, by urgency.", waitBuckets, "urgency")
	m.deliveryLatency = histogram("hookbay_delivery_latency_seconds",
		"Time from a job's acceptance to its successful delivery, by sender and urgency.", waitBuckets, "sender", "urgency")
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookbay_store_commit_duration_seconds",
		Help: "Time to commit one group of writes (one transaction, fsync included).", Buckets: commitBuckets})
	m.commitWrites = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookbay_store_commit_writes",
		Help: "Writes committed together in one transaction (group commit).", Buckets: writesBuckets})
	m.storeErrors = counter("hookbay_store_errors_total",
		"Store operations that failed for a reason of the store's own, by operation (write, read).", "op")
	m.purged = counter("hookbay_purged_rows_total",
		"Rows deleted by the retention purges: request records (records) and idempotency answers (idempotency).", "what")
	m.handshakeFailures = counter("hookbay_tls_handshake_failures_total",
		"TLS handshakes that failed, by reason (a fixed list; other for the rest).", "reason")

	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookbay_build_info", Help: "hookbay's version and the Go version it was built with; always 1.",
		ConstLabels: prometheus.Labels{"version": o.Version, "goversion": runtime.Version()}})
	build.Set(1)

	m.Registry.MustRegister(m.requests, m.duration, m.bodySize, m.inFlight, m.refusals, m.duplicates, m.answers,
		m.batchItems, m.throttled, m.enqueued, m.attempts, m.attemptDuration, m.queueWait, m.deliveryLatency,
		m.commitDuration, m.commitWrites, m.storeErrors, m.purged, m.handshakeFailures, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.initSeries()
	return m
}

// verdictsOf are the verdicts a sender's answers can have.
var verdictsOf = map[hooks.Sender][]hooks.VerdictKind{
	hooks.SenderBubblehouse: {hooks.VerdictDelivered, hooks.VerdictItemFailed, hooks.VerdictRetry, hooks.VerdictHoldQueue, hooks.VerdictNotImplemented},
	hooks.SenderBloomreach:  {hooks.VerdictDelivered, hooks.VerdictItemFailed, hooks.VerdictRetry, hooks.VerdictFailed, hooks.VerdictStopCampaign},
	hooks.SenderSvix:        {hooks.VerdictDelivered, hooks.VerdictRetry},
}

// initSeries creates, at zero, the series that alerts and dashboards
// watch, so that the first stop_campaign or hold_queue answer is an
// increase from 0 and not a series that appears already at 1 (which
// increase() does not see).
func (m *Metrics) initSeries() {
	for s, names := range m.names {
		for n := range names {
			for _, v := range verdictsOf[s] {
				m.answers.WithLabelValues(string(s), n, string(v))
			}
		}
	}
	for _, op := range []string{StoreWrite, StoreRead} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, what := range []string{PurgedRecords, PurgedIdempotency} {
		m.purged.WithLabelValues(what)
	}
	for _, p := range m.throttles {
		m.throttled.WithLabelValues(p)
	}
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked for), and counts its own scrapes.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, MaxRequestsInFlight: 4,
		Timeout: 10 * time.Second, EnableOpenMetrics: true})
	return promhttp.InstrumentMetricHandler(m.Registry, h)
}

// senderLabel is a sender's label value.
func senderLabel(s hooks.Sender) string {
	switch s {
	case hooks.SenderBubblehouse, hooks.SenderBloomreach, hooks.SenderSvix:
		return string(s)
	case "":
		return NoSender
	}
	return Other
}

// NameLabel is the name label of a request or job of sender: the name
// when it is configured, else "other".
func (m *Metrics) NameLabel(s hooks.Sender, name string) string {
	if m.names[s][name] {
		return name
	}
	return Other
}

func oneOf(v string, list []string) string {
	if slices.Contains(list, v) {
		return v
	}
	return Other
}

func urgencyLabel(u hooks.Urgency) string {
	switch u {
	case hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular:
		return string(u)
	}
	return Other
}

// Request is one answered request, as the metrics count it.
type Request struct {
	// Sender and Name are the route's; Sender is "" for a request that
	// reached no sender's route.
	Sender hooks.Sender
	Name   string
	// Status is the answer's; 0 when none was sent (a dropped connection).
	Status    int
	Duration  time.Duration
	BodyBytes int64
	// Verdict is what the answer means to the sender; "" when there is
	// none (no sender, or no answer).
	Verdict hooks.VerdictKind
	// Refusal is why the request was refused; "" when it was not.
	Refusal string
	// Throttled says a throughput policy refused it.
	Throttled bool
}

// RequestStarted counts a request in flight until RequestDone.
func (m *Metrics) RequestStarted() { m.inFlight.Inc() }

// RequestDone counts an answered request.
func (m *Metrics) RequestDone(r Request) {
	m.inFlight.Dec()
	sender, name := senderLabel(r.Sender), Other
	if r.Sender != "" {
		name = m.NameLabel(r.Sender, r.Name)
	}
	m.requests.WithLabelValues(sender, name, StatusLabel(r.Status)).Inc()
	m.duration.WithLabelValues(sender, name).Observe(r.Duration.Seconds())
	m.bodySize.WithLabelValues(sender).Observe(float64(r.BodyBytes))
	if r.Verdict != "" {
		m.answers.WithLabelValues(sender, name, oneOf(string(r.Verdict), verdictNames)).Inc()
	}
	if r.Refusal != "" {
		m.refusals.WithLabelValues(sender, name, oneOf(r.Refusal, refusalReasons)).Inc()
	}
	if r.Throttled {
		policy, ok := m.throttles[r.Name]
		if !ok || r.Sender != hooks.SenderBloomreach {
			policy = Other
		}
		m.throttled.WithLabelValues(policy).Inc()
	}
}

var verdictNames = func() []string {
	var out []string
	for _, v := range hooks.VerdictKinds {
		out = append(out, string(v))
	}
	return out
}()

// Duplicate counts a repeat of sender's recognised by kind (DupRequestID,
// DupContent, DupItem), n times.
func (m *Metrics) Duplicate(s hooks.Sender, kind string, n int) {
	if n > 0 {
		m.duplicates.WithLabelValues(senderLabel(s), oneOf(kind, []string{DupRequestID, DupContent, DupItem})).Add(float64(n))
	}
}

// BatchItems counts a Bloomreach batch's customers by result.
func (m *Metrics) BatchItems(webhook string, accepted, duplicate, failed int) {
	w := m.NameLabel(hooks.SenderBloomreach, webhook)
	for result, n := range map[string]int{"accepted": accepted, "duplicate": duplicate, "failed": failed} {
		if n > 0 {
			m.batchItems.WithLabelValues(w, result).Add(float64(n))
		}
	}
}

// Enqueued counts n jobs queued for delivery.
func (m *Metrics) Enqueued(s hooks.Sender, name string, u hooks.Urgency, n int) {
	if n > 0 {
		m.enqueued.WithLabelValues(senderLabel(s), m.NameLabel(s, name), urgencyLabel(u)).Add(float64(n))
	}
}

var outcomes = []string{string(hooks.OutcomeOK), string(hooks.OutcomeFailed), string(hooks.OutcomeDead), string(hooks.OutcomeInterrupted),
	string(hooks.AttemptNotStarted)}

// Attempt counts one recorded delivery attempt of j, run by an action of
// kind action (ActionForward, ...): its outcome and duration, how long
// the job had waited since it was due, and for a delivery how long it
// took from acceptance. Jobs are labelled by the name in the request's
// URL (Job.Source), a configured one.
func (m *Metrics) Attempt(j *hooks.Job, action string, res hooks.AttemptResult) {
	sender := senderLabel(j.Sender)
	action = oneOf(action, []string{ActionForward, ActionExec, ActionGo, ActionStore})
	m.attempts.WithLabelValues(sender, m.NameLabel(j.Sender, j.Source), action, oneOf(string(res.Outcome), outcomes)).Inc()
	if j.AttemptStarted.IsZero() {
		return // not started: it waited for a process slot and went back
	}
	m.attemptDuration.WithLabelValues(sender, action).Observe(res.Duration.Seconds())
	if !j.ScheduledAt.IsZero() {
		m.queueWait.WithLabelValues(urgencyLabel(j.Urgency)).Observe(max(j.AttemptStarted.Sub(j.ScheduledAt), 0).Seconds())
	}
	if res.Outcome == hooks.OutcomeOK && !j.CreatedAt.IsZero() {
		done := j.AttemptStarted.Add(res.Duration)
		m.deliveryLatency.WithLabelValues(sender, urgencyLabel(j.Urgency)).Observe(max(done.Sub(j.CreatedAt), 0).Seconds())
	}
}

// Commit counts one group commit of the store: how many writes it held,
// how long it took and how many of them failed.
func (m *Metrics) Commit(writes int, took time.Duration, failed int) {
	m.commitDuration.Observe(took.Seconds())
	m.commitWrites.Observe(float64(writes))
	if failed > 0 {
		m.storeErrors.WithLabelValues(StoreWrite).Add(float64(failed))
	}
}

// StoreError counts a failed store operation (StoreWrite, StoreRead).
func (m *Metrics) StoreError(op string) {
	m.storeErrors.WithLabelValues(oneOf(op, []string{StoreWrite, StoreRead})).Inc()
}

// Purged counts rows deleted by a retention purge (PurgedRecords,
// PurgedIdempotency).
func (m *Metrics) Purged(what string, n int64) {
	if n > 0 {
		m.purged.WithLabelValues(oneOf(what, []string{PurgedRecords, PurgedIdempotency})).Add(float64(n))
	}
}

// WatchWorkers reports the worker pool's size and, when scraped, how many
// of its workers are running an attempt.
func (m *Metrics) WatchWorkers(total int, busy func() int) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookbay_workers", Help: "Workers in the delivery pool."},
			func() float64 { return float64(total) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookbay_workers_busy", Help: "Workers running a delivery attempt now."},
			func() float64 { return float64(busy()) }))
}

// WatchCertificate reports, when scraped, when the served certificate
// expires: notAfter's answer, as Unix seconds; 0 while there is none.
func (m *Metrics) WatchCertificate(notAfter func() time.Time) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookbay_tls_certificate_not_after_seconds",
		Help: "When the served TLS certificate expires (its NotAfter), in Unix seconds; 0 while there is none."},
		func() float64 {
			t := notAfter()
			if t.IsZero() {
				return 0
			}
			return float64(t.Unix())
		}))
}
