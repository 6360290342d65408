// The running server: Main's store, queue, listeners and their lifecycle,
// which serve, the tests and embedding programs share.

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/metrics"
)

// Main is a running hookbay: the store, the queue and the HTTP server.
type Main struct {
	Config config.Config
	// Actions are actions written in Go, by sender and name. They take
	// precedence over the config file's action for the same name (README,
	// "Your own action").
	Actions hooks.Actions
	// Dev generates missing Bubblehouse credentials into the data directory
	// and prints the start-up banner.
	Dev bool
	// ConfigFile is the file Config was read from, for the log; "" when
	// there is none (dev mode, tests).
	ConfigFile string
	Stdout     io.Writer
	Logger     *slog.Logger
	// PurgeInterval is how often old idempotency records are deleted; 0
	// disables the loop (tests call the guard directly).
	PurgeInterval time.Duration
	// CertPollInterval is how often certificate files are checked for
	// changes (server.tls.mode files).
	CertPollInterval time.Duration
	// FaultPollInterval is how often injected faults are reloaded.
	FaultPollInterval time.Duration
	// JobStatsEvery is how long the metrics reuse a count of the queue's
	// jobs; 0 means metrics.DefaultJobStatsEvery.
	JobStatsEvery time.Duration
	// Metrics are hookbay's Prometheus metrics, on a registry of their
	// own, served at /metrics on the admin listener; nil when admin.listen
	// is off. Set by Run.
	Metrics *metrics.Metrics

	DB       Store
	Dispatch *hooks.Dispatch
	Echo     *echo.Echo
	Queue    *hooks.Queue
	Guard    *idempotency.Guard
	Server   *http.Server

	// onRequest are told of every recorded request once it is answered;
	// onAttempt of every recorded delivery attempt. Logs, metrics and the
	// inspector's live stream add themselves before Run serves.
	onRequest []func(*hooks.Request)
	onAttempt []func(*hooks.Job, hooks.AttemptResult)
	admin     *adminState // the admin listener (admin.go)
	// requestLog logs each answered request (handlers.RequestLog).
	requestLog func(*handlers.Exchange)

	ln          net.Listener
	serveDone   chan error
	stopPurge   context.CancelFunc
	reloader    *certs.Reloader
	acme        *certs.ACME        // server.tls.mode acme
	stopACME    context.CancelFunc // ends the renewal watch and acmeHTTP
	faults      *handlers.Faults
	closeOnce   sync.Once
	bg          sync.WaitGroup // background loops, stopped by stopPurge
	credentials Credentials
	devCerts    certs.DevFiles
}

// NewMain returns a Main for cfg.
func NewMain(cfg config.Config) *Main {
	return &Main{Config: cfg, Stdout: io.Discard, Logger: slog.Default(), PurgeInterval: 10 * time.Minute,
		CertPollInterval: 2 * time.Second, FaultPollInterval: 500 * time.Millisecond}
}

// Run opens the store, starts the workers and starts serving. It returns
// once the listener is open; Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	cfg := &m.Config
	if err := checkDataDir(cfg.Server.DataDir); err != nil {
		return err
	}
	if err := m.loadSecrets(); err != nil {
		return err
	}
	tlsConfig, err := m.tlsConfig(ctx)
	if err != nil {
		return err
	}
	hookSet, err := cfg.Bubblehouse.HookSet()
	if err != nil {
		return fmt.Errorf("bubblehouse.hooks: %w", err)
	}

	if m.DB, err = openStore(ctx, cfg); err != nil {
		return err
	}
	if m.Dispatch, err = cfg.Dispatch(m.Actions); err != nil {
		return err
	}
	m.Queue = &hooks.Queue{
		Store:     m.DB,
		ActionFor: m.Dispatch.Queued,
		Workers:   cfg.Queue.Workers,
		Prefetch:  cfg.Queue.Prefetch * cfg.Queue.Workers,
		Lease:     time.Duration(cfg.Queue.Lease),
		Policy:    cfg.Queue.Policy(),
		Logger:    m.Logger,
		Observe: func(j *hooks.Job, res hooks.AttemptResult) {
			for _, f := range m.onAttempt {
				f(j, res)
			}
		},
	}
	m.observe()
	if h := m.MetricsHandler(); h != nil {
		m.HandleAdmin("/metrics", h)
	}
	if err := m.startStoreLoops(ctx); err != nil { // PostgreSQL: LISTEN, and the maintenance lease (store.go)
		return err
	}
	m.Guard = &idempotency.Guard{Store: m.guardStore(), Notify: m.Queue.Queued, Offer: m.Queue.Offer,
		Retention: time.Duration(cfg.Idempotency.Retention), Logger: m.Logger}
	guard := m.handlerGuard()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect() // X-Forwarded-For is not believed
	proxies, err := cfg.Server.TrustedPrefixes()
	if err != nil {
		return err
	}
	if len(proxies) > 0 {
		// Only the configured proxies' X-Forwarded-For is believed, so that
		// recorded client addresses stay honest.
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, p := range proxies {
			opts = append(opts, echo.TrustIPRange(ipNet(p)))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.HTTPErrorHandler = handlers.ErrorHandler(m.Logger, func(c echo.Context, req *hooks.Request) error {
		return m.Guard.Record(c.Request().Context(), req)
	})
	// Outermost, so that a request whose handler panicked is logged and
	// counted with the answer Recover gave it.
	e.Use(m.observeRequests())
	e.Use(middleware.Recover())
	// A sender is served only when the config asks for it: the routes of
	// the others are not registered, and answer 404.
	served := map[hooks.Sender]string{}
	for _, s := range []struct {
		sender hooks.Sender
		path   string
	}{{hooks.SenderBubblehouse, cfg.Bubblehouse.Path}, {hooks.SenderSvix, cfg.Svix.Path}, {hooks.SenderBloomreach, cfg.Bloomreach.Path}} {
		if cfg.Serves(s.sender) {
			served[s.sender] = s.path
		}
	}
	prefixes := map[string]hooks.Sender{}
	for s, path := range served {
		prefixes[path] = s
	}
	m.faults = &handlers.Faults{Store: m.DB, MaxBodyBytes: cfg.Server.MaxBodyBytes, Logger: m.Logger, Prefixes: prefixes,
		Record: func(c echo.Context, req *hooks.Request) error { return m.Guard.Record(c.Request().Context(), req) }}
	e.Use(m.faults.Middleware())
	var br *handlers.Bloomreach // set below; faults ask it for a webhook's headers
	m.faults.Webhook = func(s hooks.Sender, name string) ([]string, string) {
		if s != hooks.SenderBloomreach || br == nil {
			return nil, ""
		}
		return br.SecretHeaders(), br.IDHeader(name)
	}
	handlers.RegisterHealth(e, m.Logger, handlers.Check{Name: "store", Ping: m.DB.Ping},
		handlers.Check{Name: "certificate", Ping: m.acmeReady})
	bh := &handlers.Bubblehouse{
		Hooks: hookSet,
		Auth: &hooks.BubblehouseAuth{
			Authorization: cfg.Bubblehouse.Authorization,
			JWTSecret:     []byte(cfg.Bubblehouse.JWTSecret),
		},
		Guard:        guard,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		HasAction: func(name string) bool {
			return m.Dispatch.For(&hooks.Job{Sender: hooks.SenderBubblehouse, Name: name, Source: name}) != nil
		},
		Inline: func(ctx context.Context, j *hooks.Job) ([]byte, error) {
			if a := m.Dispatch.For(j); a != nil {
				return a.Run(ctx, j)
			}
			return nil, nil
		},
	}
	if _, ok := served[hooks.SenderBubblehouse]; ok {
		bh.Register(e, cfg.Bubblehouse.Path)
	}
	sv := &handlers.Svix{Endpoints: map[string]*handlers.SvixEndpoint{}, Guard: guard, MaxBodyBytes: cfg.Server.MaxBodyBytes,
		HasAction: func(j *hooks.Job) bool { return m.Dispatch.For(j) != nil }}
	for name, ep := range cfg.Svix.Endpoints {
		v, err := hooks.NewSvixVerifier(ep.Secrets)
		if err != nil {
			return fmt.Errorf("svix.endpoints.%s.secrets: %w", name, err)
		}
		sv.Endpoints[name] = &handlers.SvixEndpoint{Verifier: v, Routes: m.Dispatch.Svix[name]}
	}
	if _, ok := served[hooks.SenderSvix]; ok {
		sv.Register(e, cfg.Svix.Path)
	}
	if _, ok := served[hooks.SenderBloomreach]; ok {
		webhooks, clients, err := bloomreachWebhooks(cfg, m.Dispatch)
		if err != nil {
			return err
		}
		br = &handlers.Bloomreach{Webhooks: webhooks, Guard: guard, Tokens: m.DB, Clients: clients,
			TokenTTL: time.Duration(cfg.Bloomreach.OAuth2.TokenTTL), MaxBodyBytes: cfg.Server.MaxBodyBytes}
		br.Register(e, cfg.Bloomreach.Path, cfg.Bloomreach.OAuth2.TokenPath)
	}
	m.Echo = e

	t := cfg.Server.Timeouts
	m.Server = &http.Server{
		Handler:           e,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: time.Duration(t.ReadHeader),
		ReadTimeout:       time.Duration(t.Read),
		WriteTimeout:      time.Duration(t.Write),
		IdleTimeout:       time.Duration(t.Idle),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          m.serverErrorLog(),
	}
	if err := m.startAdmin(ctx); err != nil {
		return err
	}
	if m.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
	}
	m.Queue.Start()
	if tlsConfig == nil {
		// Plain HTTP (behind ngrok or a proxy) speaks HTTP/1.1 and h2c.
		m.Server.Protocols = new(http.Protocols)
		m.Server.Protocols.SetHTTP1(true)
		m.Server.Protocols.SetUnencryptedHTTP2(true)
	}
	var purgeCtx context.Context
	purgeCtx, m.stopPurge = context.WithCancel(context.Background())
	m.background(func() { m.faults.Poll(purgeCtx, m.FaultPollInterval) })
	if m.reloader != nil && m.Config.Server.TLS.Mode == "files" {
		m.background(func() { m.reloader.Watch(purgeCtx, m.CertPollInterval, m.Logger) })
	}
	if m.PurgeInterval > 0 && m.replicaLoops() == nil { // on a shared store, the leading replica purges (store.go)
		m.background(func() { m.Guard.Purge(purgeCtx, m.PurgeInterval) })
		m.background(func() { m.purgeRecords(purgeCtx) })
	}
	m.serveDone = make(chan error, 1)
	go func() {
		var err error
		if tlsConfig != nil {
			err = m.Server.ServeTLS(m.ln, "", "")
		} else {
			err = m.Server.Serve(m.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.serveDone <- err
	}()
	source := m.ConfigFile
	if source == "" && m.Dev {
		source = "none (dev mode)"
	}
	var senders []string
	for _, s := range []hooks.Sender{hooks.SenderBubblehouse, hooks.SenderSvix, hooks.SenderBloomreach} {
		if _, ok := served[s]; ok {
			senders = append(senders, string(s))
		}
	}
	m.Logger.Info("hookbay listening", "addr", m.ln.Addr().String(), "tls", cfg.Server.TLS.Mode, "config", source,
		"senders", strings.Join(senders, ","), "version", Version())
	if m.Dev {
		m.printBanner()
	}
	return nil
}

// observeRequests logs and counts each request once it has been answered
// (errors included: the error handler has run by then), and tells
// onRequest of its record (handlers.RecordOf) when it has one.
func (m *Main) observeRequests() echo.MiddlewareFunc {
	return handlers.Observe(m.requestStarted, m.requestDone)
}

// checkDataDir makes sure the data directory exists and hookbay can write
// in it, before anything is opened there, so that a mistake is reported as
// what it is, naming the directory.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: cannot create it: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".hookbay-write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s: not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("data directory %s: remove %s: %w", dir, filepath.Base(name), err)
	}
	return nil
}

// ipNet converts a prefix to the form echo.TrustIPRange takes; an IPv4
// prefix stays four bytes long, as net.IPNet.Contains expects.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// background runs a loop that Close waits for.
func (m *Main) background(loop func()) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		loop()
	}()
}

// purgeRecordsOnce deletes request records, jobs and attempts older than
// keep, counting and logging what it deleted.
func (m *Main) purgeRecordsOnce(ctx context.Context, keep time.Duration) {
	n, err := m.DB.PurgeRecords(ctx, time.Now().Add(-keep))
	if m.Metrics != nil {
		m.Metrics.Purged(metrics.PurgedRecords, n) // a purge that failed midway deleted some
	}
	if err != nil && ctx.Err() == nil {
		m.Logger.Error("purge request records", "err", err)
	} else if n > 0 {
		m.Logger.Info("purged request records", "count", n, "older_than", keep)
	}
}

// purgeRecords deletes request records, jobs and attempts older than
// server.record_retention, every PurgeInterval, until ctx ends.
func (m *Main) purgeRecords(ctx context.Context) {
	keep := time.Duration(m.Config.Server.RecordRetention)
	if keep <= 0 {
		return
	}
	t := time.NewTicker(m.PurgeInterval)
	defer t.Stop()
	for {
		m.purgeRecordsOnce(ctx, keep)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close stops accepting requests, finishes those in flight, lets running
// jobs finish until ctx ends, and closes the store.
func (m *Main) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() { err = m.close(ctx) })
	return err
}

func (m *Main) close(ctx context.Context) error {
	var errs []error
	if m.Server != nil && m.ln != nil {
		if err := m.Server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down HTTP server: %w", err))
		}
		if err := <-m.serveDone; err != nil {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	} else if m.ln != nil {
		m.ln.Close()
	}
	errs = append(errs, m.stopAdmin(ctx))
	if m.Queue != nil {
		// Running jobs get a bound to finish; unfinished ones are released.
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		errs = append(errs, m.Queue.Stop(qctx))
		cancel()
	}
	if m.stopACME != nil {
		m.stopACME()
	}
	if m.stopPurge != nil {
		m.stopPurge()
	}
	m.bg.Wait()
	errs = append(errs, m.stopStoreLoops(ctx))
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	return errors.Join(errs...)
}
