package config

import (
	"net/http"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Defaults that README, "Configuration", documents.
const (
	// DefaultListen is server.listen with TLS; DefaultListenHTTP with
	// server.tls.mode off.
	DefaultListen     = ":8443"
	DefaultListenHTTP = ":8080"
	// DefaultDataDir is server.data_dir.
	DefaultDataDir = "hookbay-data"
	// DefaultRequestIDHeader is where a Bloomreach webhook reads its request
	// ID unless request_id says otherwise.
	DefaultRequestIDHeader = "X-Request-ID"
	// DefaultAdminListen is admin.listen: loopback, so that no token is
	// needed on a laptop.
	DefaultAdminListen = "127.0.0.1:8081"
	// DefaultPostgresMaxConns is store.postgres.max_conns.
	DefaultPostgresMaxConns = 16
	// DefaultTokenField is the body or query field an OAuth 2.0 access
	// token is read from (token_in body or query).
	DefaultTokenField = "access_token"
)

// MinRetention is the shortest idempotency retention: the longest retry
// window among the senders, Bubblehouse's 48 h for regular hooks (Svix's
// schedule spans about 27.6 h, Bloomreach's minutes).
const MinRetention = 48 * time.Hour

// ApplyDefaults fills every key left unset with its default (README,
// "Configuration"), and writes Bloomreach methods in upper case. Keys set
// stay as they are; calling it again changes nothing. The queue's lease
// defaults to the longest action timeout plus 30 s (at least a minute),
// so it is filled after the actions' timeouts.
func (c *Config) ApplyDefaults() {
	s := &c.Server
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Log.Requests == nil {
		on := true
		c.Log.Requests = &on
	}
	if pg := c.Store.Postgres; pg != nil && pg.MaxConns == 0 {
		pg.MaxConns = DefaultPostgresMaxConns
	}
	if s.TLS.Mode == "" {
		s.TLS.Mode = "dev"
		if s.TLS.CertFile != "" || s.TLS.KeyFile != "" {
			s.TLS.Mode = "files" // the files are what the user meant to serve
		}
	}
	if s.Listen == "" {
		s.Listen = DefaultListen
		if s.TLS.Mode == "off" {
			s.Listen = DefaultListenHTTP
		}
	}
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = 1 << 20
	}
	setDuration(&s.Timeouts.ReadHeader, 10*time.Second)
	setDuration(&s.Timeouts.Read, time.Minute)
	setDuration(&s.Timeouts.Write, time.Minute)
	setDuration(&s.Timeouts.Idle, 2*time.Minute)
	setDuration(&c.Idempotency.Retention, hooks.DefaultRetention)
	setDuration(&s.RecordRetention, 30*24*time.Hour)
	if c.Queue.Workers == 0 {
		c.Queue.Workers = 8
	}
	if c.Queue.Prefetch == 0 {
		c.Queue.Prefetch = hooks.DefaultPrefetch
	}
	if c.Queue.MaxAttempts == 0 {
		c.Queue.MaxAttempts = hooks.DefaultRetryPolicy.MaxAttempts
	}
	setDuration(&c.Queue.MaxAge, hooks.DefaultRetryPolicy.MaxAge)
	setDuration(&c.Queue.Backoff.Initial, hooks.DefaultRetryPolicy.Initial)
	setDuration(&c.Queue.Backoff.Max, hooks.DefaultRetryPolicy.Max)
	if c.Bubblehouse.Path == "" {
		c.Bubblehouse.Path = "/bubblehouse"
	}
	if c.Svix.Path == "" {
		c.Svix.Path = "/svix"
	}
	c.Bloomreach.applyDefaults()
	c.actions(func(_ string, a *ActionConfig) { a.applyDefaults() })
	if c.Queue.Lease == 0 {
		c.Queue.Lease = Duration(max(c.longestAction()+30*time.Second, time.Minute))
	}
}

// applyDefaults fills the Bloomreach section's defaults: its paths, the
// token lifetime, and per webhook the methods (POST), the request ID's
// header, a batch's maximum and where an OAuth 2.0 token is read.
func (b *BloomreachConfig) applyDefaults() {
	if b.Path == "" {
		b.Path = "/bloomreach"
	}
	if b.OAuth2.TokenPath == "" {
		b.OAuth2.TokenPath = "/oauth/token"
	}
	setDuration(&b.OAuth2.TokenTTL, time.Hour)
	for name, w := range b.Webhooks {
		methods := make([]string, 0, len(w.Methods))
		for _, m := range w.Methods {
			methods = append(methods, strings.ToUpper(m))
		}
		if len(methods) == 0 {
			methods = []string{http.MethodPost}
		}
		w.Methods = methods
		if w.RequestID.Header == "" && w.RequestID.JSON == "" {
			w.RequestID.Header = DefaultRequestIDHeader
		}
		if w.Batch != nil && w.Batch.Max == 0 {
			batch := *w.Batch
			batch.Max = hooks.BloomreachMaxBatch
			w.Batch = &batch
		}
		if o := w.Auth.OAuth2; o != nil && (o.TokenIn == "" || o.Field == "") {
			auth := *o
			if auth.TokenIn == "" {
				auth.TokenIn = "header"
			}
			if auth.Field == "" {
				auth.Field = DefaultTokenField
			}
			w.Auth.OAuth2 = &auth
		}
		b.Webhooks[name] = w
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}
