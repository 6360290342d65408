package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// tlsConfig returns the server's TLS configuration, or nil for plain HTTP.
func (m *Main) tlsConfig(ctx context.Context) (*tls.Config, error) {
	t := m.Config.Server.TLS
	certFile, keyFile := t.CertFile, t.KeyFile
	switch t.Mode {
	case "off":
		return nil, nil
	case "acme":
		return m.acmeTLSConfig(ctx)
	case "dev":
		var hosts []string // localhost, 127.0.0.1 and ::1
		if h := m.Config.Server.PublicHost; h != "" {
			hosts = []string{h} // also issued for the defaults when it is reissued
		}
		files, generated, err := certs.EnsureDev(filepath.Join(m.Config.Server.DataDir, "certs"), hosts, time.Now())
		if err != nil {
			return nil, fmt.Errorf("dev certificate: %w", err)
		}
		if generated {
			m.Logger.Info("generated dev certificate", "ca", files.CA)
		}
		m.devCerts = files
		certFile, keyFile = files.Cert, files.Key
	}
	cfg, err := certs.Load(certs.Options{CertFile: certFile, KeyFile: keyFile, ClientCAFile: t.ClientCAFile})
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	// New handshakes take the pair the reloader holds: replacing the
	// files, or SIGHUP, switches certificates without a restart.
	if m.reloader, err = certs.NewReloader(certFile, keyFile); err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	cfg.Certificates, cfg.GetCertificate = nil, m.reloader.GetCertificate
	leaf := m.reloader.Leaf()
	// The same checks vet a reloaded pair, which is refused as start-up
	// refuses the first.
	check := func(leaf *x509.Certificate) error {
		return certs.CheckServing(leaf, m.Config.Server.PublicHost, time.Now())
	}
	if err := check(leaf); err != nil {
		return nil, fmt.Errorf("server.tls: %s: %w", certFile, err)
	}
	m.reloader.Check = check
	if left := time.Until(leaf.NotAfter); left < 30*24*time.Hour {
		m.Logger.Warn("the server certificate expires soon", "file", certFile, "not_after", leaf.NotAfter, "days_left", int(left.Hours()/24))
	}
	return cfg, nil
}

// ReloadTLS reads the certificate files again (SIGHUP); a broken pair is
// refused and the old one stays.
func (m *Main) ReloadTLS() error {
	if m.reloader == nil {
		return nil
	}
	if err := m.reloader.Reload(); err != nil {
		return err
	}
	m.Logger.Info("certificate reloaded", "subject", m.reloader.Leaf().Subject.String())
	return nil
}
