package cli

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/metrics"
)

// NewLogger returns the logger the log config asks for: text or JSON
// lines on w, at its level.
func NewLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	return slog.New(logHandler(w, c))
}

func logHandler(w io.Writer, c config.LogConfig) slog.Handler {
	opts := &slog.HandlerOptions{Level: logLevel(c.Level)}
	if c.Format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// newBufferedLogger is serve's logger: NewLogger's, writing through a
// logBuffer, so that a busy receiver's request lines reach w a batch per
// write rather than one write each. Lines at WARN and above are written
// at once, with whatever waits before them; the others wait at most
// logFlushEvery. Flush writes what waits (at exit).
func newBufferedLogger(w io.Writer, c config.LogConfig) (logger *slog.Logger, flush func()) {
	b := &logBuffer{w: w}
	return slog.New(flushingHandler{Handler: logHandler(b, c), buf: b}), b.Flush
}

// logFlushEvery bounds how long a log line waits in a logBuffer.
const logFlushEvery = 100 * time.Millisecond

// logBufferSize is how much a logBuffer holds before it writes anyway.
const logBufferSize = 64 << 10

// logBuffer gathers log lines and writes them in batches.
type logBuffer struct {
	mu      sync.Mutex
	w       io.Writer
	buf     []byte
	pending *time.Timer // the flush due within logFlushEvery; nil when nothing waits
}

// Write keeps p for the next flush: at logBufferSize, or logFlushEvery
// after the first line that waits.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= logBufferSize {
		return len(p), b.flushLocked()
	}
	if b.pending == nil {
		b.pending = time.AfterFunc(logFlushEvery, b.Flush)
	}
	return len(p), nil
}

// Flush writes the lines that wait.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked() //nolint:errcheck // nowhere left to report a log that cannot be written
}

func (b *logBuffer) flushLocked() error {
	if b.pending != nil {
		b.pending.Stop()
		b.pending = nil
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// flushingHandler flushes its buffer after a line at WARN or above, so
// that warnings and errors, and what led to them, are never held back.
type flushingHandler struct {
	slog.Handler
	buf *logBuffer
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.buf.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithAttrs(attrs), buf: h.buf}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithGroup(name), buf: h.buf}
}

// logLevel reads a checked log.level.
func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// commitObserver is a store that tells of its group commits.
type commitObserver interface {
	ObserveCommits(func(writes int, took time.Duration, failed int))
}

// jobStatser is a store that counts its jobs for metrics.
type jobStatser interface {
	JobStats(ctx context.Context, now time.Time) (hooks.JobStats, error)
}

// poolStatser is a store with a connection pool (PostgreSQL) that
// reports its state for metrics.
type poolStatser interface {
	PoolStats() hooks.PoolStats
}

// observe sets up the request log and, unless the admin listener is off
// (no one could scrape them), the metrics: it is called by Run once the
// store and the queue exist, before the handlers are built, and adds
// itself to onRequest and onAttempt.
func (m *Main) observe() {
	cfg := &m.Config
	every := cfg.Log.Requests == nil || *cfg.Log.Requests
	m.requestLog = handlers.RequestLog(m.Logger, every)
	if cfg.Admin.Listen == "off" {
		return
	}
	mt := metrics.New(metricsOptions(cfg))
	m.Metrics = mt
	if db, ok := m.DB.(commitObserver); ok {
		db.ObserveCommits(mt.Commit)
	}
	if db, ok := m.DB.(jobStatser); ok {
		mt.WatchJobs(db.JobStats, m.JobStatsEvery)
	} else {
		m.Logger.Info("this store does not count its jobs: hookbay_jobs and hookbay_queue_oldest_waiting_seconds are not served")
	}
	if db, ok := m.DB.(poolStatser); ok {
		mt.WatchPool(db.PoolStats)
	}
	if _, ok := m.DB.(sharedStore); ok {
		// Read at each scrape: the lease loop starts after observe.
		mt.WatchLeader(m.Leading)
	}
	mt.WatchWorkers(m.Queue.Workers, m.Queue.Busy)
	if cfg.Server.TLS.Mode != "off" {
		mt.WatchCertificate(m.certificateNotAfter)
	}
	m.onAttempt = append(m.onAttempt, func(j *hooks.Job, res hooks.AttemptResult) {
		mt.Attempt(j, m.actionKind(j), res)
	})
}

// metricsOptions are the label values the config allows: the names it
// configures for each sender it serves, and its throttle policies.
func metricsOptions(cfg *config.Config) metrics.Options {
	o := metrics.Options{Names: map[hooks.Sender][]string{}, Throttles: map[string]string{}, Version: Version()}
	if cfg.Serves(hooks.SenderBubblehouse) {
		names := []string{hooks.Hello1}
		for n := range cfg.Bubblehouse.Hooks {
			names = append(names, n)
		}
		o.Names[hooks.SenderBubblehouse] = names
	}
	if cfg.Serves(hooks.SenderSvix) {
		for n := range cfg.Svix.Endpoints {
			o.Names[hooks.SenderSvix] = append(o.Names[hooks.SenderSvix], n)
		}
	}
	if cfg.Serves(hooks.SenderBloomreach) {
		for n, w := range cfg.Bloomreach.Webhooks {
			o.Names[hooks.SenderBloomreach] = append(o.Names[hooks.SenderBloomreach], n, n+"/auth-test")
			if t := w.Throttle; t != nil {
				o.Throttles[n] = t.Name
				if t.Inline != nil || t.Name == "" {
					o.Throttles[n] = n // an inline policy is the webhook's own
				}
			}
		}
	}
	return o
}

// MetricsHandler serves the metrics in the Prometheus text format; nil
// when there are none (admin.listen off). The admin listener mounts it at
// /metrics.
func (m *Main) MetricsHandler() http.Handler {
	if m.Metrics == nil {
		return nil
	}
	return m.Metrics.Handler()
}

// actionKind names the kind of action a job runs, for the attempts'
// action label.
func (m *Main) actionKind(j *hooks.Job) string {
	switch m.Dispatch.For(j).(type) {
	case nil:
		return metrics.ActionStore
	case *hooks.Forward:
		return metrics.ActionForward
	case *hooks.Exec:
		return metrics.ActionExec
	}
	return metrics.ActionGo
}

// certificateNotAfter is when the served certificate expires; zero while
// there is none.
func (m *Main) certificateNotAfter() time.Time {
	switch {
	case m.acme != nil:
		return m.acme.Status().NotAfter
	case m.reloader != nil:
		if leaf := m.reloader.Leaf(); leaf != nil {
			return leaf.NotAfter
		}
	}
	return time.Time{}
}

// requestStarted is told of each request as it arrives.
func (m *Main) requestStarted() {
	if m.Metrics != nil {
		m.Metrics.RequestStarted()
	}
}

// requestDone is told of each request once it is answered: it is logged,
// counted, and its record handed to onRequest.
func (m *Main) requestDone(x *handlers.Exchange) {
	m.requestLog(x)
	if mt := m.Metrics; mt != nil {
		r := metrics.Request{Status: x.Status, Duration: x.Duration, BodyBytes: x.BodyBytes, Verdict: x.Verdict.Kind,
			Refusal: x.Refusal, Throttled: x.Throttled}
		if x.Record != nil {
			r.Sender, r.Name = x.Record.Sender, x.Record.Name
		}
		mt.RequestDone(r)
	}
	if x.Record != nil {
		for _, f := range m.onRequest {
			f(x.Record)
		}
	}
}

// serverErrorLog is the HTTP server's error log: certs.ServerErrorLog,
// with failed TLS handshakes counted by reason first.
func (m *Main) serverErrorLog() *log.Logger {
	l := certs.ServerErrorLog(m.Logger)
	if m.Metrics == nil || m.Config.Server.TLS.Mode == "off" {
		return l
	}
	return log.New(handshakeCounter{next: l.Writer(), m: m.Metrics}, "", 0)
}

// handshakeCounter counts the failed handshakes the server logs.
type handshakeCounter struct {
	next io.Writer
	m    *metrics.Metrics
}

func (w handshakeCounter) Write(p []byte) (int, error) {
	if reason, ok := metrics.HandshakeReason(string(p)); ok {
		w.m.HandshakeFailed(reason)
	}
	return w.next.Write(p)
}

// handlerGuard is the guard the handlers are given: the idempotency
// guard, with what it accepts counted when there are metrics.
func (m *Main) handlerGuard() handlers.Guard {
	if m.Metrics == nil {
		return m.Guard
	}
	batches := map[string]bool{}
	for name, w := range m.Config.Bloomreach.Webhooks {
		batches[name] = w.Batch != nil
	}
	return countingGuard{Guard: m.Guard, m: m.Metrics, batches: batches}
}

// countingGuard counts, for each request the guard answers, the repeats
// it recognised and the jobs it queued; for a Bloomreach batch, its
// customers by result.
type countingGuard struct {
	handlers.Guard
	m       *metrics.Metrics
	batches map[string]bool // the Bloomreach webhooks that take batches
}

// Commit counts what Guard.Commit accepted.
func (g countingGuard) Commit(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error) {
	resp, err := g.Guard.Commit(ctx, r, header)
	if err == nil {
		g.count(r)
	}
	return resp, err
}

// Run counts what Guard.Run accepted.
func (g countingGuard) Run(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error) {
	resp, err := g.Guard.Run(ctx, r, header, fn)
	if err == nil {
		g.count(r)
	}
	return resp, err
}

func (g countingGuard) count(r *hooks.Receipt) {
	req := r.Request
	if req.DuplicateOf != 0 {
		kind := metrics.DupContent
		if req.RequestID != "" && req.DuplicateKey == r.Scope+req.RequestID {
			kind = metrics.DupRequestID
		}
		g.m.Duplicate(req.Sender, kind, 1)
		return
	}
	// A queued job is available, or running when a waiting worker took
	// it with the request (hooks.Queue.Offer); an inline hook's is done.
	if r.Job != nil && (r.Job.State == hooks.JobAvailable || r.Job.State == hooks.JobRunning) {
		g.m.Enqueued(req.Sender, r.Job.Source, r.Job.Urgency, 1)
	}
	if req.Sender != hooks.SenderBloomreach || !g.batches[req.Name] {
		return
	}
	var accepted, duplicate, queued int
	for _, it := range r.Items {
		switch {
		case it.Duplicate:
			duplicate++
		default:
			accepted++
			if it.Job != nil && it.Job.State == hooks.JobAvailable {
				queued++
			}
		}
	}
	failed, _ := strconv.Atoi(string(hooks.Member(req.Response, "failed")))
	g.m.BatchItems(req.Name, accepted, duplicate, failed)
	g.m.Duplicate(req.Sender, metrics.DupItem, duplicate)
	g.m.Enqueued(req.Sender, req.Name, req.Urgency, queued)
}

// countingPurges is the guard's store, with the idempotency answers its
// purge deletes counted.
type countingPurges struct {
	idempotency.Store
	m *metrics.Metrics
}

// PurgeIdempotency counts what Store.PurgeIdempotency deleted.
func (s countingPurges) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.Store.PurgeIdempotency(ctx, before)
	s.m.Purged(metrics.PurgedIdempotency, n)
	return n, err
}

// guardStore is the store the idempotency guard is given.
func (m *Main) guardStore() idempotency.Store {
	if m.Metrics == nil {
		return m.DB
	}
	return countingPurges{Store: m.DB, m: m.Metrics}
}
