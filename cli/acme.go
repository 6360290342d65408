package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// acmeStartTimeout bounds the first certificate at start-up; past it
// hookbay serves anyway and /readyz says not ready until one arrives.
const acmeStartTimeout = 3 * time.Minute

// acmeTLSConfig builds automatic certificates (server.tls.mode acme): the
// HTTPS listener's TLS configuration, answering TLS-ALPN-01 challenges, an
// optional HTTP-01 listener, and the watch that renews.
func (m *Main) acmeTLSConfig(ctx context.Context) (_ *tls.Config, err error) {
	t := m.Config.Server.TLS
	a := t.ACME
	cache, closeCache, err := m.acmeCache(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeCache()
		}
	}()
	opts := certs.ACMEOptions{Hosts: a.Hosts, Email: a.Email, DirectoryURL: a.DirectoryURL, AcceptTOS: a.AcceptTOS,
		Cache: cache, RenewBefore: time.Duration(a.RenewBefore), Logger: m.Logger}
	if a.DirectoryURL == "staging" {
		opts.DirectoryURL = certs.LetsEncryptStaging
	}
	if a.CAFile != "" {
		if opts.RootCAs, err = certs.ReadPool(a.CAFile); err != nil {
			return nil, fmt.Errorf("server.tls.acme.ca_file: %w", err)
		}
	}
	acme, err := certs.NewACME(opts)
	if err != nil {
		var oe *certs.OptionError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("server.tls.acme.%s: %w", oe.Option, oe.Err)
		}
		return nil, fmt.Errorf("server.tls.acme: %w", err)
	}
	m.acme = acme
	cfg := acme.TLSConfig()
	if cfg.GetCertificate, err = withPlaceholder(cfg.GetCertificate, acme.Hosts()); err != nil {
		return nil, err
	}
	if t.ClientCAFile != "" {
		// Client certificates are verified as in the other modes.
		base, err := certs.ReadPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = base, tls.VerifyClientCertIfGiven
	}
	var acmeCtx context.Context
	acmeCtx, m.stopACME = context.WithCancel(context.Background())
	if a.HTTPListen != "" {
		ln, err := net.Listen("tcp", a.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("server.tls.acme.http_listen: %w", err)
		}
		srv := &http.Server{Handler: acme.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: certs.ServerErrorLog(m.Logger)}
		m.background(func() { srv.Serve(ln) })
		m.background(func() {
			<-acmeCtx.Done()
			srv.Close()
		})
	}
	// The first certificate: from the cache, or from the CA. A CA that is
	// down does not stop start-up; /readyz says why until it is there.
	stopChallenges, err := startChallengeListener(m.Config.Server.Listen, acme)
	if err != nil {
		return nil, err
	}
	start, cancel := context.WithTimeout(ctx, acmeStartTimeout)
	err = acme.Ensure(start)
	cancel()
	stopChallenges()
	if err != nil {
		m.Logger.Error("no certificate yet; serving, not ready, and retrying", "hosts", a.Hosts, "err", err)
	} else {
		m.Logger.Info("certificate ready", "hosts", a.Hosts, "not_after", acme.Status().NotAfter)
	}
	m.background(func() {
		acme.Watch(acmeCtx, time.Minute)
		closeCache()
	})
	m.warnBloomreachCN(acme)
	return cfg, nil
}

// acmeCache picks where the ACME account key and certificates are kept,
// says so in the log, and returns the cache with what closes it:
//
//   - with store.postgres and no cache_dir, the store's acme_cache table:
//     replicas on one database serve one certificate, and a replica that
//     starts or renews after another finds its certificate instead of
//     ordering one (replicas starting together may each order once);
//   - otherwise the directory cache_dir, by default <data_dir>/acme. A
//     cache_dir set with store.postgres is kept, with a warning: it is
//     what the config says (a volume every replica mounts, say), and
//     ignoring a setting would be worse than warning about it.
func (m *Main) acmeCache(ctx context.Context) (autocert.Cache, func(), error) {
	a := m.Config.Server.TLS.ACME
	pg := m.Config.Store.Postgres
	if pg != nil && a.CacheDir == "" {
		// Run builds the TLS configuration before it opens the store, so
		// the cache has a handle of its own on the same database: its
		// writer stays idle, and its pool holds a connection or two, busy
		// only at start-up and when a certificate is renewed.
		db, err := postgres.Open(ctx, pg.URL, postgres.WithWriters(1), postgres.WithLogger(m.Logger))
		if err != nil {
			return nil, nil, fmt.Errorf("server.tls.acme: open the PostgreSQL store %s for the ACME cache: %w", redactURL(pg.URL), err)
		}
		m.Logger.Info("ACME cache in the PostgreSQL store, shared by the replicas", "store", describeStore(&m.Config))
		notFound := func(err error) bool { return hooks.ErrorCode(err) == hooks.ENOTFOUND }
		return certs.NewStoreCache(db, notFound), func() { db.Close() }, nil
	}
	dir := a.CacheDir
	if dir == "" {
		dir = filepath.Join(m.Config.Server.DataDir, "acme")
	}
	cache, err := certs.NewDirCache(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("server.tls.acme.cache_dir: %w", err)
	}
	if pg != nil {
		m.Logger.Warn("ACME cache in server.tls.acme.cache_dir, not in the PostgreSQL store: replicas share it only if they share the directory, else each orders its own certificate; remove cache_dir to share it through the store",
			"dir", dir)
	} else {
		m.Logger.Info("ACME cache in a directory", "dir", dir)
	}
	return cache, func() {}, nil
}

// warnBloomreachCN warns when Bloomreach webhooks are served and the
// certificate's common name matches no configured host: Bloomreach checks
// the CN, and some CA profiles leave it out.
func (m *Main) warnBloomreachCN(acme *certs.ACME) {
	if len(m.Config.Bloomreach.Webhooks) == 0 {
		return
	}
	for _, h := range acme.Hosts() {
		if leaf := acme.Leaf(h); leaf != nil && !certs.CommonNameMatches(leaf, acme.Hosts()) {
			m.Logger.Warn("Bloomreach checks the certificate's common name, and it matches no configured host",
				"host", h, "common_name", leaf.Subject.CommonName)
		}
	}
}

// acmeReady is the certificate's part of /readyz.
func (m *Main) acmeReady(context.Context) error {
	if m.acme == nil {
		return nil
	}
	st := m.acme.Status()
	if st.Ready {
		return nil
	}
	reason := st.LastProblem
	if reason == "" {
		reason = st.LastError
	}
	if reason == "" {
		reason = "not obtained yet"
	}
	return fmt.Errorf("no valid certificate: %s", reason)
}

// alpnACME is the TLS-ALPN-01 challenge's protocol (RFC 8737): a
// handshake offering only it is the CA validating a host.
const alpnACME = "acme-tls/1"

// isChallenge reports whether hello is a TLS-ALPN-01 validation.
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == alpnACME
}

// startChallengeListener listens on the HTTPS address while the first
// certificate is obtained, answering TLS-ALPN-01 challenges only: Run
// opens the HTTPS listener after the TLS configuration is built, and a CA
// validating on that port would otherwise find nothing there and fail the
// order. Every other handshake is refused. stop closes the listener, and
// waits for the handshakes under way, so that Run can listen on the
// address again. With port 0 (a test's address, which no CA could be told
// of) there is nothing to answer, and no listener.
func startChallengeListener(addr string, acme *certs.ACME) (stop func(), err error) {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s to answer the CA's TLS-ALPN-01 challenges: %w", addr, err)
	}
	cfg := acme.TLSConfig()
	answer := cfg.GetCertificate
	cfg.NextProtos = []string{alpnACME}
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if !isChallenge(hello) {
			return nil, errors.New("starting: only ACME challenges are answered until the first certificate is there")
		}
		return answer(hello)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				tls.Server(conn, cfg).Handshake() // the CA checks the certificate; nothing follows
			})
		}
	})
	return func() {
		ln.Close()
		wg.Wait()
	}, nil
}

// withPlaceholder wraps the ACME certificate source: while a configured
// host has no valid certificate (none obtained yet, or expired and not
// renewed), handshakes for it, or without a server name, get a
// self-signed placeholder instead of failing. Clients cannot trust it, so
// no webhook is delivered over it, but /readyz can be read and says why
// (hookbay healthcheck reads it so), and a sender's error names an
// untrusted certificate rather than a failed handshake. Challenges and
// other host names are answered as before.
func withPlaceholder(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), hosts []string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	placeholder, err := placeholderCertificate(hosts, time.Now())
	if err != nil {
		return nil, err
	}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := get(hello)
		if err == nil || isChallenge(hello) {
			return c, err
		}
		name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
		if name != "" && !slices.Contains(hosts, name) {
			return c, err
		}
		return placeholder, nil
	}, nil
}

// placeholderCertificate is a self-signed certificate for hosts, which
// says in its subject that it stands in for the CA's.
func placeholderCertificate(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("placeholder certificate: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "hookbay placeholder: no certificate from the CA yet", Organization: []string{"hookbay"}},
		DNSNames:     hosts,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("placeholder certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("placeholder certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
