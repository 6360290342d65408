package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// ACME directories of Let's Encrypt. Any other RFC 8555 directory works too.
const (
	// LetsEncryptProduction issues publicly trusted certificates; it is
	// the default DirectoryURL.
	LetsEncryptProduction = autocert.DefaultACMEDirectory
	// LetsEncryptStaging issues untrusted certificates under much higher
	// rate limits, for trying a set-up out.
	LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

const (
	// maxRenewBefore is where autocert caps RenewBefore.
	maxRenewBefore = 30 * 24 * time.Hour
	// minRetryWait is how long Watch waits before trying again to obtain
	// a certificate that was never obtained: autocert keeps a failed
	// attempt for a minute and answers "missing certificate" until then.
	minRetryWait = 2 * time.Minute
	// maxRetryWait caps that wait as it doubles: a CA counts failed
	// validations per hour (Let's Encrypt allows 5 per host name).
	maxRetryWait = time.Hour
	// challengePrefix is the path of HTTP-01 challenge requests.
	challengePrefix = "/.well-known/acme-challenge/"
)

// ACMEOptions configures NewACME.
type ACMEOptions struct {
	// Hosts are the DNS names certificates are obtained for, one
	// certificate each; handshakes for any other name are refused. Each
	// must resolve to this server and have a dot (autocert refuses single
	// labels such as localhost); IP addresses and wildcards are refused,
	// since they cannot be validated by TLS-ALPN-01 or HTTP-01.
	Hosts []string
	// Email is the contact address given to the CA for problems with the
	// certificates; optional.
	Email string
	// DirectoryURL is the CA's ACME directory, an https URL; the default
	// is LetsEncryptProduction.
	DirectoryURL string
	// AcceptTOS must be true: it states in the configuration that the
	// CA's terms of service (linked from its directory) are accepted.
	AcceptTOS bool
	// Cache keeps the account key and certificates across restarts and
	// between managers sharing it; without it every start would order
	// new certificates and soon hit the CA's rate limits. See NewDirCache.
	Cache autocert.Cache
	// HTTPClient, when set, is used to talk to the CA (its transport is
	// wrapped, never changed).
	HTTPClient *http.Client
	// RootCAs, when set, are the only roots trusted for the CA's own HTTPS
	// endpoint, for a private directory such as Pebble or an in-house CA.
	// Set HTTPClient or RootCAs, not both.
	RootCAs *x509.CertPool
	// RenewBefore is how long before expiry a certificate is renewed; at
	// most 30 days. Zero means autocert's default: a third of the
	// certificate's lifetime, at most 30 days.
	RenewBefore time.Duration
	// Logger receives issuance, renewal and failure reports; nil discards
	// them.
	Logger *slog.Logger
}

// OptionError is a refused ACMEOptions field. Option is the field's name
// in snake case (hosts, email, directory_url, accept_tos, cache, root_cas,
// renew_before), so that a configuration can name its own key.
type OptionError struct {
	Option string
	Err    error
}

// Error names the option and says what is wrong with it.
func (e *OptionError) Error() string { return "acme option " + e.Option + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *OptionError) Unwrap() error { return e.Err }

func optionErr(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// applyDefaults fills in zero fields.
func (o *ACMEOptions) applyDefaults() {
	if o.DirectoryURL == "" {
		o.DirectoryURL = LetsEncryptProduction
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// validate returns every refused option, joined, and the normalised
// host names.
func (o *ACMEOptions) validate() ([]string, error) {
	var errs []error
	hosts, err := normaliseHosts(o.Hosts)
	if err != nil {
		errs = append(errs, err)
	}
	if o.Email != "" {
		addr, err := mail.ParseAddress(o.Email)
		switch {
		case err != nil:
			errs = append(errs, optionErr("email", "%q is not an e-mail address: %w", o.Email, err))
		case addr.Name != "" || addr.Address != o.Email:
			errs = append(errs, optionErr("email", "%q: give the bare address, without a name or angle brackets", o.Email))
		case !strings.Contains(addr.Address[strings.LastIndexByte(addr.Address, '@')+1:], "."):
			errs = append(errs, optionErr("email", "%q: the domain has no dot; a CA refuses such contacts", o.Email))
		}
	}
	if u, err := url.Parse(o.DirectoryURL); err != nil {
		errs = append(errs, optionErr("directory_url", "%w", err))
	} else if u.Scheme != "https" || u.Host == "" {
		errs = append(errs, optionErr("directory_url", "%q must be an https URL with a host (RFC 8555 requires HTTPS)", o.DirectoryURL))
	}
	if !o.AcceptTOS {
		errs = append(errs, optionErr("accept_tos", "must be true: set it to accept the terms of service of the CA at %s", o.DirectoryURL))
	}
	if o.Cache == nil {
		errs = append(errs, optionErr("cache", "required: without a durable cache every start orders new certificates"))
	}
	if o.HTTPClient != nil && o.RootCAs != nil {
		errs = append(errs, optionErr("root_cas", "set either an HTTP client or root CAs for the CA's endpoint, not both"))
	}
	if o.RenewBefore < 0 || o.RenewBefore > maxRenewBefore {
		errs = append(errs, optionErr("renew_before", "%v is out of range: between 0 (the default) and %v", o.RenewBefore, maxRenewBefore))
	}
	return hosts, errors.Join(errs...)
}

// normaliseHosts lower-cases hosts to their ASCII form, drops duplicates
// and refuses names no ACME challenge answered here can validate.
func normaliseHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, optionErr("hosts", "at least one host name is required")
	}
	var out []string
	var errs []error
	for _, raw := range hosts {
		h := strings.TrimSuffix(strings.TrimSpace(raw), ".")
		var why string
		switch {
		case h == "":
			why = "is empty"
		case strings.ContainsAny(h, ":/@"):
			why = "must be a bare host name, without scheme, port or path"
		case net.ParseIP(strings.Trim(h, "[]")) != nil:
			why = "is an IP address; certificates are obtained for host names only"
		case strings.Contains(h, "*"):
			why = "is a wildcard, which needs the DNS-01 challenge; list each host name"
		case !strings.Contains(h, "."):
			why = "has no dot; a public host name is needed (single labels such as localhost are refused)"
		}
		if why == "" {
			ascii, err := idna.Lookup.ToASCII(h)
			if err != nil {
				why = "is not a valid host name: " + err.Error()
			}
			h = ascii
		}
		if why != "" {
			errs = append(errs, optionErr("hosts", "%q %s", raw, why))
			continue
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, errors.Join(errs...)
}

// NewDirCache returns a cache keeping the ACME account key and the
// certificates as files in dir (for the embedded store, the acme
// directory under the data directory). dir is created with mode 0700, and
// an existing one open to group or others is narrowed to 0700, because it
// holds private keys; autocert writes each file with mode 0600.
func NewDirCache(dir string) (autocert.Cache, error) {
	if dir == "" {
		return nil, errors.New("ACME cache directory: no path given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ACME cache directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("check ACME cache directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("ACME cache directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restrict ACME cache directory to its owner: %w", err)
		}
	}
	return autocert.DirCache(dir), nil
}

// ACME obtains and renews certificates for a fixed set of host names from
// an ACME CA, through golang.org/x/crypto/acme/autocert. It answers the
// TLS-ALPN-01 challenge on the HTTPS listener (TLSConfig) and, when an
// HTTP listener is given HTTPHandler, the HTTP-01 challenge too.
//
// autocert renews in the background and keeps serving the old
// certificate while renewals fail, until it expires. It reports neither
// renewals nor failures, so ACME watches the certificates it serves
// (Watch) and the CA's answers, and keeps the result for Status.
type ACME struct {
	manager *autocert.Manager
	hosts   []string
	// renewBefore is the option, to predict when autocert renews.
	renewBefore time.Duration
	logger      *slog.Logger
	probe       *caProbe
	now         func() time.Time

	mu    sync.Mutex
	state map[string]*hostState
}

// hostState is what ACME knows of one host's certificate.
type hostState struct {
	leaf      *x509.Certificate
	err       string
	errAt     time.Time
	retryAt   time.Time     // when Watch may next try to obtain a first certificate
	retryWait time.Duration // the wait after the next failure
}

// NewACME checks o and returns a manager; it contacts no CA until Ensure
// or the first handshake.
func NewACME(o ACMEOptions) (*ACME, error) {
	o.applyDefaults()
	hosts, err := o.validate()
	if err != nil {
		return nil, err
	}
	probe := &caProbe{directoryURL: o.DirectoryURL, now: time.Now}
	client := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		client = &c
	}
	probe.base = client.Transport
	if probe.base == nil {
		probe.base = http.DefaultTransport
	}
	if o.RootCAs != nil {
		t := &http.Transport{Proxy: http.ProxyFromEnvironment}
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			t = dt.Clone()
		}
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
		probe.base = t
	}
	client.Transport = probe

	a := &ACME{
		hosts:       hosts,
		renewBefore: o.RenewBefore,
		logger:      o.Logger,
		probe:       probe,
		now:         time.Now,
		state:       make(map[string]*hostState, len(hosts)),
	}
	for _, h := range hosts {
		a.state[h] = &hostState{}
	}
	a.manager = &autocert.Manager{
		Prompt:      autocert.AcceptTOS, // o.AcceptTOS is required to be true
		Cache:       o.Cache,
		HostPolicy:  autocert.HostWhitelist(hosts...),
		RenewBefore: o.RenewBefore,
		Email:       o.Email,
		Client: &acme.Client{
			DirectoryURL: o.DirectoryURL,
			HTTPClient:   client,
			UserAgent:    "hookbay",
		},
	}
	return a, nil
}

// Hosts returns the normalised host names certificates are obtained for.
func (a *ACME) Hosts() []string { return slices.Clone(a.hosts) }

// TLSConfig returns a configuration for the HTTPS listener: the TLS 1.2
// minimum and suites of Load, HTTP/2 and HTTP/1.1, and the ACME
// TLS-ALPN-01 protocol, answered with autocert's challenge certificates.
// A handshake without a server name (a client dialling an IP address,
// such as a health check over loopback) gets the first host's
// certificate.
func (a *ACME) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   slices.Clone(tls12Suites),
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		GetCertificate: a.getCertificate,
	}
}

func (a *ACME) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = a.hosts[0]
		hello = &h
	}
	return a.manager.GetCertificate(hello)
}

// HTTPHandler returns the handler of an optional plain-HTTP listener
// (port 80 as the CA sees it). It answers HTTP-01 challenges, so the CA
// can validate a host over HTTP too, and passes every other request to
// fallback; a nil fallback redirects GET and HEAD requests for a
// configured host to https on the default port and refuses everything
// else: a webhook sent over plain HTTP has already exposed its
// credentials, and should fail rather than be redirected.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.HandlerFunc(a.redirect)
	}
	challenge := a.manager.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, challengePrefix) {
			fallback.ServeHTTP(w, r)
			return
		}
		// autocert checks the Host header against the host policy as it
		// is, port included. The CA asks on port 80 and sends none, but a
		// listener reached through a port mapping may see one.
		r2 := r.Clone(r.Context())
		r2.Host = hostOnly(r.Host)
		challenge.ServeHTTP(w, r2)
	})
}

// redirect sends requests for a configured host to https.
func (a *ACME) redirect(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	if !slices.Contains(a.hosts, host) {
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "use HTTPS", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
}

// hostOnly returns the lower-case host of a Host header, without port or
// trailing dot.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// Ensure obtains a certificate for every host, from the cache when it
// holds a valid one and from the CA otherwise, and returns once every
// host was tried, joining the failures. It is the readiness gate at
// start-up. Failures are logged with the CA's reason and kept for Status
// until Watch obtains the certificate. If ctx ends first, the attempt
// carries on in the background (autocert bounds it to 5 minutes).
func (a *ACME) Ensure(ctx context.Context) error {
	var errs []error
	for _, h := range a.hosts {
		if err := a.obtain(ctx, h); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hello is a ClientHello for host from a client supporting ECDSA, the
// certificate type modern clients get.
func hello(host string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:   host,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// current asks autocert for host's certificate, as a handshake would:
// from memory, else from the cache, else from the CA.
func (a *ACME) current(ctx context.Context, host string) (*x509.Certificate, error) {
	type result struct {
		cert *tls.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := a.manager.GetCertificate(hello(host))
		done <- result{c, err}
	}()
	var r result
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r = <-done:
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.cert.Leaf != nil {
		return r.cert.Leaf, nil
	}
	leaf, err := x509.ParseCertificate(r.cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse certificate for %s: %w", host, err)
	}
	return leaf, nil
}

// obtain gets host's certificate and records the outcome.
func (a *ACME) obtain(ctx context.Context, host string) error {
	start := a.now()
	orders := a.probe.orderCount()
	leaf, err := a.current(ctx, host)
	if err != nil {
		if p, at := a.probe.lastProblem(); p != "" && !at.Before(start) {
			err = fmt.Errorf("%w; the CA said: %s", err, p)
		}
		err = fmt.Errorf("obtain certificate for %s: %w", host, err)
		a.mu.Lock()
		if st := a.state[host]; st.leaf == nil {
			st.retryWait = min(max(2*st.retryWait, minRetryWait), maxRetryWait)
			st.retryAt = a.now().Add(st.retryWait)
		}
		a.mu.Unlock()
		a.fail(host, err.Error())
		return err
	}
	source := "stored" // in memory or in the cache
	if a.probe.orderCount() > orders {
		source = "CA"
	}
	a.mu.Lock()
	st := a.state[host]
	st.leaf, st.err, st.errAt, st.retryWait = leaf, "", time.Time{}, 0
	a.mu.Unlock()
	a.logger.Info("certificate ready", "host", host, "from", source, "serial", serial(leaf),
		"issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter, "took", a.now().Sub(start).Round(time.Millisecond))
	return nil
}

// fail records and logs a failure for host; a repeated failure is logged
// once.
func (a *ACME) fail(host, msg string) {
	a.mu.Lock()
	st := a.state[host]
	repeated := st.err == msg
	st.err, st.errAt = msg, a.now()
	a.mu.Unlock()
	if !repeated {
		a.logger.Error("ACME certificate problem", "host", host, "err", msg)
	}
}

// Watch checks the certificates every interval until ctx ends: it logs a
// renewal, reports a renewal that is overdue or a certificate that
// expired (with the CA's last reason), and retries obtaining a
// certificate for a host that has none, two minutes after a failure and
// then waiting twice as long each time, at most an hour. One minute is a
// sensible interval.
func (a *ACME) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range a.hosts {
			a.check(ctx, h)
		}
	}
}

// check looks at host's certificate once.
func (a *ACME) check(ctx context.Context, host string) {
	now := a.now()
	a.mu.Lock()
	st := a.state[host]
	old, retryAt := st.leaf, st.retryAt
	a.mu.Unlock()
	if old == nil {
		if !now.Before(retryAt) {
			_ = a.obtain(ctx, host) // recorded and logged
		}
		return
	}

	leaf, err := a.current(ctx, host)
	if err != nil {
		if ctx.Err() == nil {
			a.fail(host, fmt.Sprintf("read certificate for %s: %v", host, err))
		}
		return
	}
	if !leaf.Equal(old) {
		a.mu.Lock()
		st.leaf, st.err, st.errAt = leaf, "", time.Time{}
		a.mu.Unlock()
		a.logger.Info("certificate renewed", "host", host, "serial", serial(leaf), "issuer", leaf.Issuer.CommonName,
			"not_after", leaf.NotAfter, "previous_not_after", old.NotAfter)
		return
	}
	due, overdue := a.renewal(leaf)
	var why string
	switch {
	case now.After(leaf.NotAfter):
		why = fmt.Sprintf("certificate for %s expired at %s and was not renewed", host, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.After(overdue):
		why = fmt.Sprintf("certificate for %s was due for renewal at %s and was not renewed; it expires at %s",
			host, due.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		return
	}
	if p, at := a.probe.lastProblem(); p != "" && at.After(due) {
		why += "; the CA said: " + p
	}
	a.fail(host, why)
}

// renewal predicts when autocert starts renewing leaf (due) and when a
// renewal should have succeeded (overdue). autocert renews RenewBefore
// (or a third of the lifetime) ahead of expiry, capped at 30 days, plus a
// jitter of up to a tenth of that, at most an hour; an attempt is allowed
// another tenth, at most 10 minutes.
func (a *ACME) renewal(leaf *x509.Certificate) (due, overdue time.Time) {
	threshold := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, maxRenewBefore)
	if a.renewBefore > 0 {
		threshold = min(a.renewBefore, maxRenewBefore)
	}
	due = leaf.NotAfter.Add(-threshold)
	return due, due.Add(min(threshold/10, time.Hour) + min(threshold/10, 10*time.Minute))
}

// Leaf returns the certificate last seen for host, nil if none yet.
func (a *ACME) Leaf(host string) *x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.state[hostOnly(host)]; st != nil {
		return st.leaf
	}
	return nil
}

// ACMEStatus is a snapshot for readiness and metrics.
type ACMEStatus struct {
	// Ready is true when every host has a certificate valid now.
	Ready bool
	// NotAfter is the earliest expiry among the hosts' certificates; zero
	// while a host has none.
	NotAfter time.Time
	// LastError is the latest unresolved failure: a certificate not
	// obtained, a renewal overdue, a certificate expired. Empty when none.
	LastError   string
	LastErrorAt time.Time
	// LastProblem is the last problem the CA reported, resolved or not
	// (a failed challenge is followed by another type); for diagnosis.
	LastProblem   string
	LastProblemAt time.Time
	// Orders counts the certificate orders this process placed.
	Orders int
	// Hosts has one entry per host, in configuration order.
	Hosts []ACMEHostStatus
}

// ACMEHostStatus is one host's certificate.
type ACMEHostStatus struct {
	Host string
	// Serial is the certificate's serial number in hex; empty when there
	// is no certificate yet.
	Serial              string
	Issuer              string
	NotBefore, NotAfter time.Time
	// RenewAt is when autocert starts renewing.
	RenewAt time.Time
	// Error is this host's unresolved failure, if any.
	Error   string
	ErrorAt time.Time
}

// Status returns a snapshot.
func (a *ACME) Status() ACMEStatus {
	now := a.now()
	var s ACMEStatus
	s.LastProblem, s.LastProblemAt = a.probe.lastProblem()
	s.Orders = a.probe.orderCount()
	s.Ready = true
	all := true // every host has a certificate
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.hosts {
		st := a.state[h]
		hs := ACMEHostStatus{Host: h, Error: st.err, ErrorAt: st.errAt}
		if st.err != "" && st.errAt.After(s.LastErrorAt) {
			s.LastError, s.LastErrorAt = st.err, st.errAt
		}
		if st.leaf == nil {
			s.Ready, all = false, false
			s.Hosts = append(s.Hosts, hs)
			continue
		}
		hs.Serial, hs.Issuer = serial(st.leaf), st.leaf.Issuer.CommonName
		hs.NotBefore, hs.NotAfter = st.leaf.NotBefore, st.leaf.NotAfter
		hs.RenewAt, _ = a.renewal(st.leaf)
		if now.Add(clockSkew).Before(st.leaf.NotBefore) || now.After(st.leaf.NotAfter) {
			s.Ready = false
		}
		s.Hosts = append(s.Hosts, hs)
	}
	if all {
		for _, hs := range s.Hosts {
			if s.NotAfter.IsZero() || hs.NotAfter.Before(s.NotAfter) {
				s.NotAfter = hs.NotAfter
			}
		}
	}
	return s
}

// serial is a certificate's serial number in hex.
func serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// CommonNameMatches reports whether leaf's subject common name names one
// of hosts (directly, or as a wildcard for one label). Bloomreach checks
// it ("Creating API endpoint for webhooks": the common name of the
// certificate must match the API endpoint), while browsers read only the
// subject alternative names, and some CA profiles leave the common name
// out; start-up warns when a Bloomreach webhook is served with such a
// certificate.
func CommonNameMatches(leaf *x509.Certificate, hosts []string) bool {
	if leaf == nil {
		return false
	}
	cn := strings.ToLower(strings.TrimSuffix(leaf.Subject.CommonName, "."))
	if cn == "" {
		return false
	}
	for _, h := range hosts {
		h = hostOnly(h)
		if cn == h {
			return true
		}
		if suffix, ok := strings.CutPrefix(cn, "*."); ok {
			if _, rest, found := strings.Cut(h, "."); found && rest == suffix {
				return true
			}
		}
	}
	return false
}
