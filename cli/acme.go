package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// acmeStartTimeout bounds the first certificate at start-up; past it
// hookbay serves anyway and /readyz says not ready until one arrives.
const acmeStartTimeout = 3 * time.Minute

// acmeTLSConfig builds automatic certificates (server.tls.mode acme): the
// HTTPS listener's TLS configuration, answering TLS-ALPN-01 challenges, an
// optional HTTP-01 listener, and the watch that renews.
func (m *Main) acmeTLSConfig(ctx context.Context) (*tls.Config, error) {
	t := m.Config.Server.TLS
	a := t.ACME
	dir := a.CacheDir
	if dir == "" {
		dir = filepath.Join(m.Config.Server.DataDir, "acme")
	}
	cache, err := certs.NewDirCache(dir)
	if err != nil {
		return nil, fmt.Errorf("server.tls.acme.cache_dir: %w", err)
	}
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
	start, cancel := context.WithTimeout(ctx, acmeStartTimeout)
	err = acme.Ensure(start)
	cancel()
	if err != nil {
		m.Logger.Error("no certificate yet; serving, not ready, and retrying", "hosts", a.Hosts, "err", err)
	} else {
		m.Logger.Info("certificate ready", "hosts", a.Hosts, "not_after", acme.Status().NotAfter)
	}
	m.background(func() { acme.Watch(acmeCtx, time.Minute) })
	m.warnBloomreachCN(acme)
	return cfg, nil
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
