package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/certs/certstest"
)

// testHost is the name certificates are issued for; the test DNS server
// resolves it to 127.0.0.1.
const testHost = "hookbay.test"

// newTestACME returns a manager for testHost that talks to p and caches in
// dir (a fresh temporary directory when empty); mod adjusts the options.
func newTestACME(t *testing.T, p *certstest.Pebble, dir string, mod func(*certs.ACMEOptions)) *certs.ACME {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "acme")
	}
	cache, err := certs.NewDirCache(dir)
	if err != nil {
		t.Fatalf("NewDirCache: %v", err)
	}
	o := certs.ACMEOptions{
		Hosts:        []string{testHost},
		Email:        "ops@example.com",
		DirectoryURL: p.DirectoryURL,
		AcceptTOS:    true,
		Cache:        cache,
		RootCAs:      p.APIRoots,
		Logger:       slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	}
	if mod != nil {
		mod(&o)
	}
	a, err := certs.NewACME(o)
	if err != nil {
		t.Fatalf("NewACME: %v", err)
	}
	return a
}

// testWriter passes log lines to t.Log until the test ends; autocert's
// goroutines outlive it.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// listenLoopback listens on a free loopback port.
func listenLoopback(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// serveOn runs an HTTP server on ln, over TLS when cfg is set, until the
// test ends. The default handler answers with the request's protocol.
func serveOn(t *testing.T, ln net.Listener, cfg *tls.Config, h http.Handler) {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	}
	srv := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0)}
	if cfg != nil {
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	t.Cleanup(func() { srv.Close() })
}

// fetch makes a fresh HTTPS connection to addr for host, trusting only
// roots, and returns the connection state and the body.
func fetch(addr, host string, roots *x509.CertPool) (*tls.ConnectionState, string, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.TLS, string(b), err
}

// verifiedLeaf fetches from addr, trusting only p's root, checks the chain
// ends there and returns the leaf.
func verifiedLeaf(t *testing.T, addr string, p *certstest.Pebble) *x509.Certificate {
	t.Helper()
	cs, body, err := fetch(addr, testHost, p.Roots)
	if err != nil {
		t.Fatalf("HTTPS request trusting only Pebble's root: %v", err)
	}
	if body != "HTTP/2.0" {
		t.Errorf("served over %q, want HTTP/2.0", body)
	}
	chain := cs.VerifiedChains[0]
	if len(chain) != 3 || !chain[2].Equal(p.Root) {
		t.Fatalf("chain of %d certificates not ending at Pebble's root", len(chain))
	}
	leaf := chain[0]
	if !slices.Equal(leaf.DNSNames, []string{testHost}) {
		t.Errorf("leaf names %v, want [%s]", leaf.DNSNames, testHost)
	}
	return leaf
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watch runs a.Watch until the test ends.
func watch(t *testing.T, a *certs.ACME, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Watch(ctx, interval) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// ensure runs a.Ensure, bounded to a minute, and returns how long it took.
func ensure(t *testing.T, a *certs.ACME) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := a.Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return time.Since(start).Round(time.Millisecond)
}

// A certificate is issued for real through TLS-ALPN-01 answered on the
// HTTPS listener, and a client that trusts only Pebble's root accepts it.
func TestACME_TLSALPN01(t *testing.T) {
	t.Parallel()
	ln, port := listenLoopback(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t), CommonName: true})
	dir := filepath.Join(t.TempDir(), "acme")
	a := newTestACME(t, p, dir, nil)
	serveOn(t, ln, a.TLSConfig(), nil)
	addr := ln.Addr().String()

	took := ensure(t, a)
	t.Logf("figures: Pebble issued a certificate through TLS-ALPN-01 in %v (new account, order, validation over loopback, finalisation, download)", took)

	st := a.Status()
	if !st.Ready || st.LastError != "" || st.Orders != 1 || p.Orders() != 1 {
		t.Fatalf("status %+v, Pebble orders %d: want ready, no error, one order", st, p.Orders())
	}
	leaf := verifiedLeaf(t, addr, p)
	if got, want := leaf.SerialNumber.Text(16), st.Hosts[0].Serial; got != want {
		t.Errorf("served serial %s, status says %s", got, want)
	}
	if !st.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("status NotAfter %v, leaf %v", st.NotAfter, leaf.NotAfter)
	}
	if !certs.CommonNameMatches(leaf, []string{testHost}) {
		t.Errorf("common name %q does not match %s", leaf.Subject.CommonName, testHost)
	}
	if a.Leaf(testHost) == nil || !a.Leaf(testHost).Equal(leaf) {
		t.Error("Leaf does not return the served certificate")
	}

	var unknown x509.UnknownAuthorityError
	if _, _, err := fetch(addr, testHost, x509.NewCertPool()); !errors.As(err, &unknown) {
		t.Errorf("client trusting nothing: got %v, want an unknown authority error", err)
	}
	if _, _, err := fetch(addr, "other.test", p.Roots); err == nil {
		t.Error("a host not configured got a certificate")
	}
	if p.Orders() != 1 {
		t.Errorf("Pebble orders %d after a handshake for another host, want 1", p.Orders())
	}

	// A client dialling the address without a server name (a health check)
	// gets the host's certificate.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake without server name: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(leaf) {
		t.Errorf("without server name got names %v", got.DNSNames)
	}
	conn.Close()

	if fi, err := os.Stat(dir); err != nil {
		t.Errorf("cache directory: %v", err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v, want 0700", fi.Mode().Perm())
	}
	for _, name := range []string{"acme_account+key", testHost} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("cache entry %s: %v", name, err)
		}
	}
}

// With nothing answering TLS-ALPN-01, a certificate is issued through
// HTTP-01 answered by the plain-HTTP handler; the failed first attempt is
// kept as the CA's last problem.
func TestACME_HTTP01(t *testing.T) {
	t.Parallel()
	httpLn, httpPort := listenLoopback(t)
	tlsLn, _ := listenLoopback(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{HTTPPort: httpPort, TLSPort: certstest.ClosedPort(t)})
	a := newTestACME(t, p, "", nil)
	var challenges atomic.Int32
	h := a.HTTPHandler(nil)
	serveOn(t, httpLn, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			challenges.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	serveOn(t, tlsLn, a.TLSConfig(), nil)

	took := ensure(t, a)
	t.Logf("figures: Pebble issued a certificate through HTTP-01 in %v, after TLS-ALPN-01 failed (two orders)", took)

	if challenges.Load() == 0 {
		t.Error("no HTTP-01 challenge request reached the handler")
	}
	st := a.Status()
	if !st.Ready || st.LastError != "" {
		t.Errorf("status %+v: want ready without error", st)
	}
	if st.Orders != 2 || p.Orders() != 2 {
		t.Errorf("orders %d (Pebble %d), want 2: TLS-ALPN-01 then HTTP-01", st.Orders, p.Orders())
	}
	if !strings.Contains(st.LastProblem, "tls-alpn-01 for "+testHost) {
		t.Errorf("last CA problem %q, want the failed TLS-ALPN-01 validation", st.LastProblem)
	}
	leaf := verifiedLeaf(t, tlsLn.Addr().String(), p)
	// This Pebble profile leaves the common name out, as some CA profiles do.
	if leaf.Subject.CommonName != "" || certs.CommonNameMatches(leaf, []string{testHost}) {
		t.Errorf("common name %q: want none, and no match", leaf.Subject.CommonName)
	}
}

// The plain-HTTP handler answers challenges for configured hosts (with or
// without a port in Host), redirects reads to https and refuses the rest.
func TestACME_HTTPHandler(t *testing.T) {
	t.Parallel()
	cache, err := certs.NewDirCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := certs.NewACME(certs.ACMEOptions{Hosts: []string{testHost}, AcceptTOS: true, Cache: cache,
		DirectoryURL: "https://acme.invalid/directory"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.HTTPHandler(nil))
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, tc := range []struct {
		method, host, path string
		status             int
		location           string
	}{
		{"GET", testHost, "/webhooks/bloomreach/x?a=1", http.StatusMovedPermanently, "https://hookbay.test/webhooks/bloomreach/x?a=1"},
		{"HEAD", testHost + ":8080", "/", http.StatusMovedPermanently, "https://hookbay.test/"},
		{"POST", testHost, "/webhooks/bloomreach/x", http.StatusBadRequest, ""},
		{"GET", "other.test", "/", http.StatusMisdirectedRequest, ""},
		// No such token: 404 from autocert, after the host policy let it
		// through, with or without a port.
		{"GET", testHost, "/.well-known/acme-challenge/nope", http.StatusNotFound, ""},
		{"GET", testHost + ":5002", "/.well-known/acme-challenge/nope", http.StatusNotFound, ""},
		{"GET", "other.test", "/.well-known/acme-challenge/nope", http.StatusForbidden, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", tc.method, tc.host, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s%s: got %d %q, want %d %q", tc.method, tc.host, tc.path,
				resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
}

// An expiring certificate is renewed in the background; Watch notices,
// and handshakes get the new certificate.
func TestACME_Renewal(t *testing.T) {
	t.Parallel()
	ln, port := listenLoopback(t)
	// 15 s certificates renewed 12 s ahead: renewal starts about 2 s after
	// issuance.
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t), Validity: 15 * time.Second})
	a := newTestACME(t, p, "", func(o *certs.ACMEOptions) { o.RenewBefore = 12 * time.Second })
	serveOn(t, ln, a.TLSConfig(), nil)
	ensure(t, a)
	issued := time.Now()
	first := a.Status().Hosts[0]
	watch(t, a, 100*time.Millisecond)

	var renewed certs.ACMEHostStatus
	waitFor(t, 20*time.Second, "renewal", func() bool {
		renewed = a.Status().Hosts[0]
		return renewed.Serial != first.Serial
	})
	t.Logf("figures: the renewed certificate was served %v after renewal fell due (%v after Ensure returned); autocert adds a jitter of up to a tenth of RenewBefore",
		time.Since(first.RenewAt).Round(time.Millisecond), time.Since(issued).Round(time.Millisecond))
	if !renewed.NotAfter.After(first.NotAfter) || renewed.Error != "" {
		t.Errorf("renewed %+v after %+v: want a later expiry and no error", renewed, first)
	}
	if leaf := verifiedLeaf(t, ln.Addr().String(), p); leaf.SerialNumber.Text(16) == first.Serial {
		t.Error("handshake still gets the first certificate")
	}
	if st := a.Status(); st.Orders < 2 || !st.Ready {
		t.Errorf("status %+v: want ready after at least two orders", st)
	}
}

// When renewal fails, the old certificate is served until it expires, and
// the failure is reported with the CA's reason; after expiry the manager
// is no longer ready.
func TestACME_RenewalFailure(t *testing.T) {
	t.Parallel()
	ln, port := listenLoopback(t)
	// 20 s certificates renewed 14 s ahead: renewal starts about 5 s after
	// issuance, time enough to make the CA refuse it first.
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t), Validity: 20 * time.Second})
	a := newTestACME(t, p, "", func(o *certs.ACMEOptions) { o.RenewBefore = 14 * time.Second })
	serveOn(t, ln, a.TLSConfig(), nil)
	ensure(t, a)
	first := a.Status().Hosts[0]
	// From now on the CA refuses to issue for the host.
	if err := p.DB.AddBlockedDomain(testHost); err != nil {
		t.Fatal(err)
	}
	watch(t, a, 100*time.Millisecond)

	var st certs.ACMEStatus
	waitFor(t, 15*time.Second, "overdue renewal reported with the CA's reason", func() bool {
		st = a.Status()
		return strings.Contains(st.LastError, "was due for renewal") && strings.Contains(st.LastError, "rejectedIdentifier")
	})
	if !st.Ready || st.Hosts[0].Serial != first.Serial {
		t.Errorf("status %+v: want still ready with the first certificate", st)
	}
	if leaf := verifiedLeaf(t, ln.Addr().String(), p); leaf.SerialNumber.Text(16) != first.Serial {
		t.Error("the old certificate is no longer served before it expired")
	}

	waitFor(t, time.Until(first.NotAfter)+5*time.Second, "expiry reported", func() bool {
		st = a.Status()
		return strings.Contains(st.LastError, "expired")
	})
	if st.Ready {
		t.Errorf("status %+v: ready with an expired certificate", st)
	}
	var invalid x509.CertificateInvalidError
	if _, _, err := fetch(ln.Addr().String(), testHost, p.Roots); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("client after expiry: got %v, want an expired certificate error", err)
	}
}

// A second manager on the same cache serves the cached certificate
// without placing an order.
func TestACME_SecondManagerReusesCache(t *testing.T) {
	t.Parallel()
	ln1, port := listenLoopback(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t)})
	dir := filepath.Join(t.TempDir(), "acme")
	a1 := newTestACME(t, p, dir, nil)
	serveOn(t, ln1, a1.TLSConfig(), nil)
	ensure(t, a1)

	a2 := newTestACME(t, p, dir, nil)
	ln2, _ := listenLoopback(t)
	serveOn(t, ln2, a2.TLSConfig(), nil)
	took := ensure(t, a2)
	t.Logf("figures: a second manager was ready from the cache in %v", took)

	if p.Orders() != 1 || a2.Status().Orders != 0 {
		t.Errorf("Pebble orders %d, second manager's %d: want 1 and 0", p.Orders(), a2.Status().Orders)
	}
	want := a1.Status().Hosts[0].Serial
	if got := a2.Status().Hosts[0].Serial; got != want {
		t.Errorf("second manager has serial %s, want the cached %s", got, want)
	}
	if leaf := verifiedLeaf(t, ln2.Addr().String(), p); leaf.SerialNumber.Text(16) != want {
		t.Errorf("second manager serves serial %s, want %s", leaf.SerialNumber.Text(16), want)
	}
}

// A certificate that cannot be obtained makes Ensure fail with the CA's
// reason, and the manager is not ready.
func TestACME_EnsureFailure(t *testing.T) {
	t.Parallel()
	// Nothing listens where Pebble validates.
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: certstest.ClosedPort(t), HTTPPort: certstest.ClosedPort(t)})
	a := newTestACME(t, p, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := a.Ensure(ctx)
	if err == nil {
		t.Fatal("Ensure succeeded without any challenge answered")
	}
	for _, want := range []string{"obtain certificate for " + testHost, "the CA said: tls-alpn-01 for " + testHost, "Failed to connect"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	st := a.Status()
	if st.Ready || st.LastError != err.Error() || st.Hosts[0].Serial != "" || a.Leaf(testHost) != nil {
		t.Errorf("status %+v: want not ready, the error, no certificate", st)
	}

	// autocert answers "missing certificate" for a minute after a failed
	// attempt; Watch waits longer before retrying, so the reason stays.
	watch(t, a, 50*time.Millisecond)
	time.Sleep(time.Second)
	if got := a.Status().LastError; got != err.Error() {
		t.Errorf("LastError became %q, want the CA's reason kept", got)
	}
}

// Refused options are named.
func TestNewACME_Options(t *testing.T) {
	t.Parallel()
	cache, err := certs.NewDirCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	valid := func() certs.ACMEOptions {
		return certs.ACMEOptions{Hosts: []string{"Hooks.Example.com.", "hooks.example.com"}, Email: "ops@example.com",
			AcceptTOS: true, Cache: cache}
	}
	a, err := certs.NewACME(valid())
	if err != nil {
		t.Fatalf("valid options: %v", err)
	}
	if got := a.Hosts(); !slices.Equal(got, []string{"hooks.example.com"}) {
		t.Errorf("hosts %v, want [hooks.example.com]", got)
	}

	for _, tc := range []struct {
		name   string
		mod    func(*certs.ACMEOptions)
		option string
	}{
		{"no hosts", func(o *certs.ACMEOptions) { o.Hosts = nil }, "hosts"},
		{"empty host", func(o *certs.ACMEOptions) { o.Hosts = []string{""} }, "hosts"},
		{"single label", func(o *certs.ACMEOptions) { o.Hosts = []string{"localhost"} }, "hosts"},
		{"IP address", func(o *certs.ACMEOptions) { o.Hosts = []string{"192.0.2.1"} }, "hosts"},
		{"wildcard", func(o *certs.ACMEOptions) { o.Hosts = []string{"*.example.com"} }, "hosts"},
		{"port", func(o *certs.ACMEOptions) { o.Hosts = []string{"hooks.example.com:443"} }, "hosts"},
		{"URL", func(o *certs.ACMEOptions) { o.Hosts = []string{"https://hooks.example.com"} }, "hosts"},
		{"invalid name", func(o *certs.ACMEOptions) { o.Hosts = []string{"hooks_.exa mple.com"} }, "hosts"},
		{"terms not accepted", func(o *certs.ACMEOptions) { o.AcceptTOS = false }, "accept_tos"},
		{"not an e-mail", func(o *certs.ACMEOptions) { o.Email = "ops" }, "email"},
		{"e-mail with name", func(o *certs.ACMEOptions) { o.Email = "Ops <ops@example.com>" }, "email"},
		{"e-mail without dot", func(o *certs.ACMEOptions) { o.Email = "ops@localhost" }, "email"},
		{"http directory", func(o *certs.ACMEOptions) { o.DirectoryURL = "http://acme.example.com/directory" }, "directory_url"},
		{"directory not a URL", func(o *certs.ACMEOptions) { o.DirectoryURL = "::not a url" }, "directory_url"},
		{"directory without host", func(o *certs.ACMEOptions) { o.DirectoryURL = "https:///directory" }, "directory_url"},
		{"no cache", func(o *certs.ACMEOptions) { o.Cache = nil }, "cache"},
		{"client and roots", func(o *certs.ACMEOptions) { o.HTTPClient, o.RootCAs = &http.Client{}, x509.NewCertPool() }, "root_cas"},
		{"negative renew_before", func(o *certs.ACMEOptions) { o.RenewBefore = -time.Hour }, "renew_before"},
		{"renew_before over 30 days", func(o *certs.ACMEOptions) { o.RenewBefore = 31 * 24 * time.Hour }, "renew_before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.mod(&o)
			a, err := certs.NewACME(o)
			var oe *certs.OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option {
				t.Fatalf("got %v, %v; want an error for option %s", a, err, tc.option)
			}
			if !strings.Contains(err.Error(), "acme option "+tc.option+": ") {
				t.Errorf("error %q does not name the option", err)
			}
		})
	}

	// Every refused option is reported at once.
	_, err = certs.NewACME(certs.ACMEOptions{Email: "ops"})
	for _, want := range []string{"hosts", "email", "accept_tos", "cache"} {
		if !strings.Contains(err.Error(), "acme option "+want+":") {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestCommonNameMatches(t *testing.T) {
	t.Parallel()
	hosts := []string{"hooks.example.com", "api.example.org"}
	for _, tc := range []struct {
		cn   string
		want bool
	}{
		{"hooks.example.com", true},
		{"API.Example.org.", true},
		{"*.example.com", true},
		{"", false},
		{"example.com", false},
		{"*.hooks.example.com", false},
		{"Pebble leaf", false},
	} {
		leaf := &x509.Certificate{Subject: pkix.Name{CommonName: tc.cn}}
		if got := certs.CommonNameMatches(leaf, hosts); got != tc.want {
			t.Errorf("CN %q: got %v, want %v", tc.cn, got, tc.want)
		}
	}
	if certs.CommonNameMatches(nil, hosts) {
		t.Error("nil certificate matches")
	}
}

func TestNewDirCache(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	t.Run("OK", func(t *testing.T) {
		dir := filepath.Join(root, "data", "acme")
		if _, err := certs.NewDirCache(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("got %v, %v; want a 0700 directory", fi, err)
		}
	})
	t.Run("Narrowed", func(t *testing.T) {
		dir := filepath.Join(root, "open")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.NewDirCache(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("got %v, %v; want mode narrowed to 0700", fi, err)
		}
	})
	t.Run("NotADirectory", func(t *testing.T) {
		file := filepath.Join(root, "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.NewDirCache(file); err == nil {
			t.Error("a file was accepted as cache directory")
		}
	})
}
