package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookbay/hookbay/admin"
	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// adminListenOverride, when set, replaces the default admin.listen
// (config.DefaultAdminListen; a listen address configured on purpose is
// kept). This package's tests set it to 127.0.0.1:0 in TestMain: they start
// many servers, and none may take the fixed port that a developer's own
// hookbay may hold.
var adminListenOverride string

// adminState is the admin listener: the inspector, its API, the live
// stream, and what others mounted on it (/metrics).
type adminState struct {
	mu      sync.Mutex
	routes  map[string]http.Handler // mounted before the listener starts
	srv     *admin.Server
	server  *http.Server
	ln      net.Listener
	done    chan error
	tls     bool
	stopCtx context.CancelFunc // ends replays and the store's notifications
	bg      sync.WaitGroup
}

// HandleAdmin mounts h at path on the admin listener (a subtree when path
// ends in /), behind the admin token and the cross-site checks: /metrics
// lives there. Call it before Run starts the admin listener (from code
// that Run calls before startAdmin); later calls are too late and panic.
func (m *Main) HandleAdmin(path string, h http.Handler) {
	if m.admin == nil {
		m.admin = &adminState{}
	}
	a := m.admin
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		panic("HandleAdmin " + path + ": the admin listener is already serving")
	}
	if a.routes == nil {
		a.routes = map[string]http.Handler{}
	}
	a.routes[path] = h
}

// AdminAddr is the address the admin listener listens on; "" when it is
// off.
func (m *Main) AdminAddr() string {
	if m.admin == nil || m.admin.ln == nil {
		return ""
	}
	return m.admin.ln.Addr().String()
}

// AdminURL is the inspector's URL; "" when the admin listener is off.
func (m *Main) AdminURL() string {
	addr := m.AdminAddr()
	if addr == "" {
		return ""
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if m.admin.tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// startAdmin opens the admin listener (admin.listen; "off" disables it)
// and serves the inspector on it: the requests and attempts Main records
// feed its live stream, and its replays run through the queue's attempt
// executor. Off loopback it requires admin.token (config.Validate refuses
// a config without one) and speaks TLS when the sender listener does.
func (m *Main) startAdmin(ctx context.Context) error {
	cfg := &m.Config
	addr := cfg.Admin.Listen
	if addr == "off" {
		return nil
	}
	if addr == "" || (addr == config.DefaultAdminListen && adminListenOverride != "") {
		addr = cmp.Or(adminListenOverride, config.DefaultAdminListen)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin.listen: %q is not host:port: %w", addr, err)
	}
	loopback := config.IsLoopback(host)
	if !loopback && cfg.Admin.Token == "" {
		return fmt.Errorf("admin.listen: %q is not a loopback address, so admin.token must be set", addr)
	}
	if m.admin == nil {
		m.admin = &adminState{}
	}
	a := m.admin
	var senders []hooks.Sender
	for _, s := range []hooks.Sender{hooks.SenderBubblehouse, hooks.SenderSvix, hooks.SenderBloomreach} {
		if cfg.Serves(s) {
			senders = append(senders, s)
		}
	}
	var life context.Context
	life, a.stopCtx = context.WithCancel(context.WithoutCancel(ctx))
	_, announced := m.DB.(storeAnnouncer)
	exec := &hooks.Executor{Store: m.DB, Policy: cfg.Queue.Policy(), Lease: time.Duration(cfg.Queue.Lease), Observe: m.Queue.Observe}
	srv := admin.New(admin.Options{
		Store:   m.DB,
		Token:   cfg.Admin.Token,
		Senders: senders,
		BaseURL: m.senderBaseURL,
		Logger:  m.Logger,
		Version: Version(),
		Notify:  func() { m.Queue.Queued(0) },
		// The announcements feed the stream: see followAnnouncements.
		JobsAnnounced: announced,
		// A replay outlives the browser that asked for it (its attempt is
		// recorded either way), but not the server.
		Replay: func(_ context.Context, id int64, force bool) ([]hooks.ReplayedJob, error) {
			return exec.Replay(life, id, force, m.Dispatch.Queued)
		},
		Report: func(ctx context.Context, s hooks.Sender, since time.Time) (any, error) {
			reqs, err := m.DB.FindRequests(ctx, hooks.RequestFilter{Sender: s, Since: since, Limit: 100000})
			if err != nil {
				return nil, err
			}
			return qa.Analyse(reqs, since), nil
		},
	})
	a.mu.Lock()
	for path, h := range a.routes {
		srv.Handle(path, h)
	}
	a.srv = srv
	a.mu.Unlock()

	// With a store that announces every replica's requests and job changes
	// (PostgreSQL), those announcements feed the stream, this replica's
	// included; otherwise this process's own records and attempts do.
	if l, ok := m.DB.(storeAnnouncer); ok {
		if err := m.followAnnouncements(life, l, srv); err != nil {
			a.stopCtx()
			return err
		}
	} else {
		m.onRequest = append(m.onRequest, srv.PublishRequest)
		m.onAttempt = append(m.onAttempt, srv.PublishAttempt)
	}

	a.server = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: nil}
	if !loopback && m.Server != nil && m.Server.TLSConfig != nil {
		// Off loopback the token and the session cookie travel: over TLS
		// when hookbay has a certificate. Browsers bring no client
		// certificate, so none is asked for here.
		tc := m.Server.TLSConfig.Clone()
		tc.ClientAuth, tc.ClientCAs = tls.NoClientCert, nil
		a.server.TLSConfig, a.tls = tc, true
	}
	if a.ln, err = net.Listen("tcp", addr); err != nil {
		a.stopCtx()
		return fmt.Errorf("admin.listen: listen on %s: %w", addr, err)
	}
	a.done = make(chan error, 1)
	go func() {
		var err error
		if a.tls {
			err = a.server.ServeTLS(a.ln, "", "")
		} else {
			err = a.server.Serve(a.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.done <- err
	}()
	m.Logger.Info("admin listening: inspector, API and metrics", "url", m.AdminURL(), "token", cfg.Admin.Token != "")
	return nil
}

// stopAdmin ends the live streams and replays, then shuts the admin
// listener down.
func (m *Main) stopAdmin(ctx context.Context) error {
	a := m.admin
	if a == nil || a.server == nil {
		return nil
	}
	a.stopCtx()
	a.srv.Hub().Close() // streams end, so that Shutdown need not wait for them
	var errs []error
	if err := a.server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down admin listener: %w", err))
	}
	if err := <-a.done; err != nil {
		errs = append(errs, fmt.Errorf("admin listener: %w", err))
	}
	a.bg.Wait()
	return errors.Join(errs...)
}

// senderBaseURL is where senders reach this hookbay, for the inspector's
// curl commands and exports.
func (m *Main) senderBaseURL() string {
	cfg := m.Config
	scheme := "https"
	if cfg.Server.TLS.Mode == "off" {
		scheme = "http"
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return scheme + "://localhost"
	}
	if m.ln != nil {
		_, port, _ = net.SplitHostPort(m.ln.Addr().String())
	}
	if cfg.Server.PublicHost != "" {
		host = cfg.Server.PublicHost
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// storeAnnouncer is a store that announces every request committed and
// every job changed, by any replica (store/postgres).
type storeAnnouncer interface {
	ListenRequests(ctx context.Context, onRequest func(id int64)) error
	ListenJobChanges(ctx context.Context, onJob func(id int64)) error
}

// announced is one announcement to follow: a request or a job.
type announced struct {
	id  int64
	job bool
}

// followAnnouncements reads each announced request and job and puts it on
// the stream, while anyone watches. Announcements that arrive faster than
// they can be read are dropped, and the stream says how many.
func (m *Main) followAnnouncements(ctx context.Context, l storeAnnouncer, srv *admin.Server) error {
	queue := make(chan announced, 1024)
	var dropped atomic.Int64 // announcements the queue had no room for
	follow := func(job bool) func(int64) {
		return func(id int64) {
			if !srv.Hub().Active() {
				return
			}
			select {
			case queue <- announced{id, job}:
			default:
				dropped.Add(1)
			}
		}
	}
	if err := l.ListenRequests(ctx, follow(false)); err != nil {
		return fmt.Errorf("inspector: follow the store's request announcements: %w", err)
	}
	if err := l.ListenJobChanges(ctx, follow(true)); err != nil {
		return fmt.Errorf("inspector: follow the store's job announcements: %w", err)
	}
	m.admin.bg.Add(1)
	go func() {
		defer m.admin.bg.Done()
		for {
			var a announced
			select {
			case <-ctx.Done():
				return
			case a = <-queue:
			}
			var err error
			if a.job {
				err = srv.PublishStoredJob(ctx, a.id)
			} else {
				var reqs []*hooks.Request
				reqs, err = m.DB.FindRequests(ctx, hooks.RequestFilter{ID: a.id, Limit: 1})
				for _, r := range reqs {
					srv.PublishRequest(r)
				}
			}
			if err != nil && ctx.Err() == nil {
				m.Logger.Warn("inspector: read an announced change", "id", a.id, "job", a.job, "err", err)
			}
			// Lost announcements are told once the queue has room
			// again, as one event.
			if n := dropped.Swap(0); n > 0 {
				srv.Hub().Publish(admin.Event{Kind: "dropped", Data: fmt.Appendf(nil, `{"dropped":%d}`, n)})
			}
		}
	}()
	return nil
}
