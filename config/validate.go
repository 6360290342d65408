package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Validate checks what parsing alone cannot, naming the key at fault. It
// changes nothing: run ApplyDefaults first (Finish does both), since a key
// left unset where a default exists is refused here. Secrets are checked
// by the serve command, which may generate dev ones.
func (c *Config) Validate() error {
	if err := c.Server.validate(); err != nil {
		return err
	}
	if err := c.validateOps(); err != nil {
		return err
	}
	if time.Duration(c.Idempotency.Retention) < MinRetention {
		return fmt.Errorf("idempotency.retention: %s is shorter than Bubblehouse's 48 h retry window: a retry after the purge would run again", time.Duration(c.Idempotency.Retention))
	}
	if r := time.Duration(c.Server.RecordRetention); r > 0 && r < time.Duration(c.Idempotency.Retention) {
		return fmt.Errorf("server.record_retention: %s is shorter than idempotency.retention (%s): repeats would lose their original", r, time.Duration(c.Idempotency.Retention))
	}
	if c.Queue.Prefetch < 1 || c.Queue.Prefetch > 64 {
		return fmt.Errorf("queue.prefetch: %d is not between 1 and 64 (jobs per worker)", c.Queue.Prefetch)
	}
	if c.Queue.Workers < 1 || c.Queue.Workers > 1024 {
		return fmt.Errorf("queue.workers: %d is not between 1 and 1024", c.Queue.Workers)
	}
	if c.Queue.MaxAttempts < 1 {
		return fmt.Errorf("queue.max_attempts: %d must be at least 1", c.Queue.MaxAttempts)
	}
	if c.Queue.Backoff.Initial > c.Queue.Backoff.Max {
		return fmt.Errorf("queue.backoff.initial: %s is longer than queue.backoff.max", time.Duration(c.Queue.Backoff.Initial))
	}
	var err error
	c.actions(func(key string, a *ActionConfig) {
		if err == nil {
			err = a.validate(key)
		}
	})
	if err != nil {
		return err
	}
	if err := c.checkPaths(); err != nil {
		return err
	}
	if _, err := c.Bubblehouse.HookSet(); err != nil {
		return fmt.Errorf("bubblehouse.hooks: %s", hooks.ErrorMessage(err))
	}
	for name, ep := range c.Svix.Endpoints {
		if !endpointNameRE.MatchString(name) {
			return fmt.Errorf("svix.endpoints.%s: a name is letters, digits, '-' and '_'", name)
		}
		for i, sec := range ep.Secrets {
			if _, err := hooks.ParseSvixSecret(sec); err != nil {
				return fmt.Errorf("svix.endpoints.%s.secrets[%d]: %v", name, i, err)
			}
		}
		if _, err := ep.routes(nil); err != nil {
			return fmt.Errorf("svix.endpoints.%s.events: %v", name, err)
		}
	}
	if err := c.validateBloomreach(); err != nil {
		return err
	}
	if longest := c.longestAction(); time.Duration(c.Queue.Lease) <= longest {
		return fmt.Errorf("queue.lease: %s must exceed the longest action timeout (%s), or a slow action would run twice", time.Duration(c.Queue.Lease), longest)
	}
	return nil
}

// validate checks the server section.
func (s ServerConfig) validate() error {
	switch s.TLS.Mode {
	case "off":
	case "dev":
		// The files would be silently ignored: dev mode serves a
		// certificate of its own.
		var set []string
		if s.TLS.CertFile != "" {
			set = append(set, "server.tls.cert_file")
		}
		if s.TLS.KeyFile != "" {
			set = append(set, "server.tls.key_file")
		}
		if len(set) > 0 {
			return fmt.Errorf("%s: read only when server.tls.mode is files, but it is dev (which generates its own certificate): set server.tls.mode: files to serve them, or remove them", strings.Join(set, " and "))
		}
	case "files":
		if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
			return fmt.Errorf("server.tls.cert_file and server.tls.key_file are required when server.tls.mode is files")
		}
	case "acme":
		if err := s.TLS.validateACME(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("server.tls.mode: %q is not one of dev, files, acme, off", s.TLS.Mode)
	}
	if _, err := s.TrustedPrefixes(); err != nil {
		return err
	}
	if s.PublicHost != "" {
		if err := hooks.CheckHost(s.PublicHost); err != nil {
			return fmt.Errorf("server.public_host: %w", err)
		}
	}
	if s.Listen == "" {
		return fmt.Errorf("server.listen: an address such as %s is required", DefaultListen)
	}
	if s.DataDir == "" {
		return fmt.Errorf("server.data_dir: a directory is required")
	}
	if s.MaxBodyBytes < 1024 {
		return fmt.Errorf("server.max_body_bytes: %d is too small (at least 1024)", s.MaxBodyBytes)
	}
	if time.Duration(s.Timeouts.Write) <= hooks.BubblehouseCallLimit {
		return fmt.Errorf("server.timeouts.write: %s leaves no room for a 30s inline hook", time.Duration(s.Timeouts.Write))
	}
	return nil
}

// TrustedPrefixes parses server.trusted_proxies: an address is the range
// of that one address, a CIDR its masked range. IPv4-mapped IPv6 forms
// (::ffff:10.0.0.1, ::ffff:10.0.0.0/104) are their IPv4 address or range,
// since that is how an IPv4 peer's address is compared. An IPv6 zone, or
// a mapped range shorter than /96 (which is not an IPv4 range), is
// refused.
func (s ServerConfig) TrustedPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for i, p := range s.TrustedProxies {
		pfx, err := parseTrusted(p)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies[%d]: %q %v", i, p, err)
		}
		out = append(out, pfx)
	}
	return out, nil
}

func parseTrusted(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("is not an IP address or CIDR")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("is not an IP address or CIDR")
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("has an IPv6 zone: name the address alone")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, fmt.Errorf("is an IPv4-mapped range shorter than /96, which is not an IPv4 range")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

var endpointNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)

// checkPaths checks each sender's path, and that no sender's path equals
// or contains another's: a request under both could not be told apart
// (routes and fault injection match by prefix).
func (c *Config) checkPaths() error {
	paths := []struct{ key, path string }{
		{"bubblehouse.path", c.Bubblehouse.Path},
		{"svix.path", c.Svix.Path},
		{"bloomreach.path", c.Bloomreach.Path},
	}
	for _, p := range paths {
		if err := checkPath(p.key, p.path); err != nil {
			return err
		}
	}
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			switch {
			case a.path == b.path:
				return fmt.Errorf("%s and %s are both %q: each sender needs a path of its own", b.key, a.key, a.path)
			case strings.HasPrefix(b.path, a.path+"/"):
				return fmt.Errorf("%s %q is inside %s %q: a sender's path may not contain another's", b.key, b.path, a.key, a.path)
			case strings.HasPrefix(a.path, b.path+"/"):
				return fmt.Errorf("%s %q is inside %s %q: a sender's path may not contain another's", a.key, a.path, b.key, b.path)
			}
		}
	}
	return nil
}

func checkPath(key, p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, ":*") {
		return fmt.Errorf("%s: %q must start with / and not end with / (for example /bubblehouse)", key, p)
	}
	return nil
}

// validateOps checks the admin listener, the log and the store.
func (c *Config) validateOps() error {
	if a := c.Admin; a.Listen != "off" {
		host, _, err := net.SplitHostPort(a.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %q is not host:port (or off): %v", a.Listen, err)
		}
		if !IsLoopback(host) && a.Token == "" {
			return fmt.Errorf("admin.listen: %q is not a loopback address, so admin.token must be set (use ${ENV_VAR})", a.Listen)
		}
		if a.Token != "" && len(a.Token) < 16 {
			return fmt.Errorf("admin.token: at least 16 characters")
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	if pg := c.Store.Postgres; pg != nil {
		u, err := url.Parse(pg.URL)
		if pg.URL == "" || err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return fmt.Errorf("store.postgres.url: want a URL such as postgres://user:password@host:5432/hookbay")
		}
		if pg.MaxConns < 1 || pg.MaxConns > 1000 {
			return fmt.Errorf("store.postgres.max_conns: %d is not between 1 and 1000", pg.MaxConns)
		}
	}
	return nil
}

// IsLoopback reports whether a listen host is loopback only: a loopback
// address or "localhost". An empty host listens on every interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// validateACME checks server.tls.acme for mode acme.
func (t TLSConfig) validateACME() error {
	a := t.ACME
	if t.CertFile != "" || t.KeyFile != "" {
		return fmt.Errorf("server.tls.cert_file and server.tls.key_file: read only when server.tls.mode is files, but it is acme")
	}
	if len(a.Hosts) == 0 {
		return fmt.Errorf("server.tls.acme.hosts: at least one host name is required with server.tls.mode acme")
	}
	for i, h := range a.Hosts {
		if err := hooks.CheckHost(h); err != nil {
			return fmt.Errorf("server.tls.acme.hosts[%d]: %w", i, err)
		}
	}
	if !a.AcceptTOS {
		return fmt.Errorf("server.tls.acme.accept_tos: set it to true to accept the CA's terms of service (Let's Encrypt's unless directory_url says otherwise)")
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		return fmt.Errorf("server.tls.acme.email: %q is not an e-mail address", a.Email)
	}
	if a.DirectoryURL != "" && a.DirectoryURL != "staging" {
		u, err := url.Parse(a.DirectoryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("server.tls.acme.directory_url: %q is not an https URL (or staging)", a.DirectoryURL)
		}
	}
	if a.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(a.HTTPListen); err != nil {
			return fmt.Errorf("server.tls.acme.http_listen: %q is not host:port such as :80", a.HTTPListen)
		}
	}
	if a.RenewBefore < 0 {
		return fmt.Errorf("server.tls.acme.renew_before: must not be negative")
	}
	return nil
}

// Warnings lists what start-up should warn about without refusing it:
// secrets weak enough to guess. Each names the key.
func (c *Config) Warnings() []string {
	var w []string
	if n := len(c.Bubblehouse.JWTSecret); n > 0 && n < 32 {
		w = append(w, fmt.Sprintf("bubblehouse.jwt_secret: %d bytes is short for an HS256 key; use at least 32 random bytes", n))
	}
	for name, wh := range c.Bloomreach.Webhooks {
		if b := wh.Auth.Basic; b != nil && len(b.Password) < 12 {
			w = append(w, fmt.Sprintf("bloomreach.webhooks.%s.auth.basic.password: %d characters is short; use at least 12 random ones", name, len(b.Password)))
		}
	}
	for i, cl := range c.Bloomreach.OAuth2.Clients {
		if len(cl.Secret) < 16 {
			w = append(w, fmt.Sprintf("bloomreach.oauth2.clients[%d].secret: %d characters is short; use at least 16 random ones", i, len(cl.Secret)))
		}
	}
	sort.Strings(w)
	return w
}
