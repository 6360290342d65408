// Package certstest runs an ACME CA for tests: Pebble
// (github.com/letsencrypt/pebble/v2), in this process, with a DNS server
// of its own that resolves every name to 127.0.0.1, so that the CA
// validates challenges against the test's loopback listeners. Tests of
// certs and of cli (a whole hookbay with server.tls.mode acme) share it.
package certstest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// PebbleConfig says how to run an in-process Pebble ACME server.
type PebbleConfig struct {
	// HTTPPort and TLSPort are where Pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges; every name resolves to 127.0.0.1. A port
	// nothing listens on makes that challenge fail (see ClosedPort).
	HTTPPort, TLSPort int
	// Validity of issued certificates; zero means Pebble's 90 days.
	Validity time.Duration
	// CommonName puts the first host name in the subject common name, as
	// Let's Encrypt's classic profile does; otherwise it is left out.
	CommonName bool
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory, served over HTTPS.
	DirectoryURL string
	// Roots holds only the root that issued certificates chain to.
	Roots *x509.CertPool
	// Root is that root.
	Root *x509.Certificate
	// APIRoots trusts the directory's HTTPS endpoint.
	APIRoots *x509.CertPool
	// APICert is the directory's HTTPS certificate, the one APIRoots holds.
	APICert *x509.Certificate
	// DB is Pebble's store, e.g. to block a domain.
	DB *db.MemoryStore

	srv    *httptest.Server
	orders atomic.Int64
}

// Orders returns how many orders Pebble created.
func (p *Pebble) Orders() int { return int(p.orders.Load()) }

// Stop takes the CA down: its directory no longer answers (connections
// are refused). The test's cleanup stops it too.
func (p *Pebble) Stop() { p.srv.Close() }

// RootFile writes Root as PEM into a temporary directory and returns the
// path: what a client trusting only Pebble's issued certificates reads.
func (p *Pebble) RootFile(tb testing.TB) string {
	tb.Helper()
	return writePEM(tb, "pebble-root.pem", p.Root)
}

// APIRootFile writes APICert as PEM and returns the path: what an ACME
// client reads to trust the directory (server.tls.acme.ca_file).
func (p *Pebble) APIRootFile(tb testing.TB) string {
	tb.Helper()
	return writePEM(tb, "pebble-api.pem", p.APICert)
}

func writePEM(tb testing.TB, name string, c *x509.Certificate) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		tb.Fatalf("write %s: %v", name, err)
	}
	return path
}

var pebbleEnv sync.Once

// StartPebble runs Pebble's CA, validation authority and ACME front end
// in this process, behind an httptest TLS server, with a DNS server of its
// own that resolves every name to 127.0.0.1, so challenges reach the
// test's loopback listeners. Pebble's log is shown when the test fails.
// Everything stops when the test ends.
func StartPebble(tb testing.TB, cfg PebbleConfig) *Pebble {
	tb.Helper()
	// Pebble's validation authority waits a random 0-5 s before each
	// check, to imitate a real CA; the figures tests log are without it.
	// It reads the variable when it starts; t.Setenv cannot be used in
	// parallel tests.
	pebbleEnv.Do(func() { os.Setenv("PEBBLE_VA_NOSLEEP", "1") })

	logs := &lockedBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pebble log:\n%s", strings.TrimRight(logs.String(), "\n"))
		}
	})
	logger := log.New(logs, "pebble ", log.Lmicroseconds)

	resolver := startLoopbackDNS(tb)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {
		Description:       "test profile",
		ValidityPeriod:    uint64(cfg.Validity / time.Second),
		PromoteCommonName: cfg.CommonName,
	}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, cfg.HTTPPort, cfg.TLSPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &Pebble{DB: store, Root: authority.GetRootCert(0).Cert}
	handler := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		handler.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" && rec.status == http.StatusCreated {
			p.orders.Add(1)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	p.srv = srv

	p.DirectoryURL = srv.URL + wfe.DirectoryPath
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(p.Root)
	p.APICert = srv.Certificate()
	p.APIRoots = x509.NewCertPool()
	p.APIRoots.AddCert(p.APICert)
	return p
}

// ClosedPort returns a loopback port nothing listens on, for a challenge
// that must fail.
func ClosedPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// startLoopbackDNS serves DNS over TCP (what Pebble uses with a custom
// resolver) answering 127.0.0.1 for every A query and nothing else, and
// returns its address.
func startLoopbackDNS(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen for DNS: %v", err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		for _, q := range req.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	tb.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// lockedBuffer collects Pebble's log from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
