package certs_test

import (
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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

// pebbleConfig says how to run an in-process Pebble ACME server.
type pebbleConfig struct {
	// HTTPPort and TLSPort are where Pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges; every name resolves to 127.0.0.1.
	HTTPPort, TLSPort int
	// Validity of issued certificates; zero means Pebble's 90 days.
	Validity time.Duration
	// CommonName puts the first host name in the subject common name, as
	// Let's Encrypt's classic profile does; otherwise it is left out.
	CommonName bool
}

// pebbleCA is a running Pebble.
type pebbleCA struct {
	// DirectoryURL is the ACME directory, served over HTTPS.
	DirectoryURL string
	// Roots holds only the root that issued certificates chain to.
	Roots *x509.CertPool
	// Root is that root.
	Root *x509.Certificate
	// APIRoots trusts the directory's HTTPS endpoint.
	APIRoots *x509.CertPool
	// DB is Pebble's store, e.g. to block a domain.
	DB *db.MemoryStore

	orders atomic.Int64
}

// Orders returns how many orders Pebble created.
func (p *pebbleCA) Orders() int { return int(p.orders.Load()) }

var pebbleEnv sync.Once

// startPebble runs Pebble's CA, validation authority and ACME front end in
// this process, behind an httptest TLS server, with a DNS server of its
// own that resolves every name to 127.0.0.1, so challenges reach this
// test's loopback listeners. Pebble's log is shown when the test fails.
func startPebble(t *testing.T, cfg pebbleConfig) *pebbleCA {
	t.Helper()
	// Pebble's validation authority waits a random 0-5 s before each
	// check, to imitate a real CA; the figures logged here are without it.
	// It reads the variable when it starts; t.Setenv cannot be used in
	// parallel tests.
	pebbleEnv.Do(func() { os.Setenv("PEBBLE_VA_NOSLEEP", "1") })

	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", strings.TrimRight(logs.String(), "\n"))
		}
	})
	logger := log.New(logs, "pebble ", log.Lmicroseconds)

	resolver := startLoopbackDNS(t)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {
		Description:       "test profile",
		ValidityPeriod:    uint64(cfg.Validity / time.Second),
		PromoteCommonName: cfg.CommonName,
	}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, cfg.HTTPPort, cfg.TLSPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &pebbleCA{DB: store, Root: authority.GetRootCert(0).Cert}
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
	t.Cleanup(srv.Close)

	p.DirectoryURL = srv.URL + wfe.DirectoryPath
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(p.Root)
	p.APIRoots = x509.NewCertPool()
	p.APIRoots.AddCert(srv.Certificate())
	return p
}

// startLoopbackDNS serves DNS over TCP (what Pebble uses with a custom
// resolver) answering 127.0.0.1 for every A query and nothing else, and
// returns its address.
func startLoopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for DNS: %v", err)
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
	t.Cleanup(func() { srv.Shutdown() })
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
