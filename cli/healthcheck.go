package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
)

// HealthcheckCommand is "hookbay healthcheck": a container's health check
// that needs no curl. It asks the server started with the same config for
// /readyz over loopback.
type HealthcheckCommand struct {
	Stdout, Stderr io.Writer
}

const healthcheckAbout = `Asks a running hookbay for GET /readyz over loopback, on the port of
server.listen, with the scheme of server.tls.mode (https for dev, files and
acme; http for off). The config is read as serve reads it, so give the same
--config, --data, --listen and --http as serve was given.

The certificate is verified: against the dev CA in the data directory in
dev mode, else against the system's roots (or --ca) for the host name
clients use (server.public_host, the first ACME host, or the certificate
file's first name). A certificate clients cannot trust means not ready.

Exit status: 0 ready; 1 not ready (/readyz answered otherwise, nothing
answered, or the certificate is not trusted); 2 it cannot check (flags,
config, CA file).`

// Run parses flags and checks readiness once.
func (cmd *HealthcheckCommand) Run(ctx context.Context, args []string) error {
	flags := newFlagSet("healthcheck", "[--config FILE] [--data DIR] [--timeout 5s]", healthcheckAbout)
	var o serveOptions
	flags.StringVar(&o.config, "config", "", "YAML config file, as for serve")
	flags.StringVar(&o.data, "data", "", "data directory (overrides server.data_dir), as for serve")
	flags.StringVar(&o.listen, "listen", "", "listen address (overrides server.listen), as for serve; a wildcard address is asked on loopback")
	flags.BoolVar(&o.plain, "http", false, "plain HTTP (server.tls.mode: off), as for serve")
	timeout := flags.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	caFile := flags.String("ca", "", "PEM file of the CA to trust for the server's certificate instead of the system's roots (e.g. a staging or private ACME CA)")
	if err := parseOnlyFlags(flags, args, cmd.Stdout, cmd.Stderr); err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("healthcheck: --timeout %v must be positive", *timeout)
	}
	cfg, _, err := o.load()
	if err != nil {
		return err
	}
	target, err := newHealthTarget(&cfg, *caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := target.check(ctx); err != nil {
		return err
	}
	fmt.Fprintln(cmd.Stdout, "ready:", target.url)
	return nil
}

// healthTarget is where and how the health check asks.
type healthTarget struct {
	url string
	// tls is nil for plain HTTP.
	tls *tls.Config
}

// newHealthTarget returns the /readyz URL on loopback for cfg's listen
// address, and how to verify its certificate.
func newHealthTarget(cfg *config.Config, caFile string) (*healthTarget, error) {
	s := cfg.Server
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return nil, fmt.Errorf("server.listen: %q is not host:port: %w", s.Listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	addr := net.JoinHostPort(host, port)
	if s.TLS.Mode == "off" {
		return &healthTarget{url: "http://" + addr + "/readyz"}, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	devCA := false // caFile is the dev CA, which serve creates
	switch s.TLS.Mode {
	case "dev":
		// The dev certificate names localhost, 127.0.0.1 and ::1.
		tc.ServerName = "localhost"
		if caFile == "" {
			caFile, devCA = filepath.Join(s.DataDir, "certs", "ca.pem"), true
		}
	case "acme":
		// As the ACME manager names it: lower case, ASCII.
		name := strings.ToLower(strings.TrimSuffix(s.TLS.ACME.Hosts[0], "."))
		if tc.ServerName, err = idna.Lookup.ToASCII(name); err != nil {
			return nil, fmt.Errorf("server.tls.acme.hosts[0]: %w", err)
		}
	case "files":
		tc.ServerName = s.PublicHost
		if tc.ServerName == "" {
			if tc.ServerName, err = firstName(s.TLS.CertFile); err != nil {
				return nil, err
			}
		}
	}
	if caFile != "" {
		if tc.RootCAs, err = certs.ReadPool(caFile); err != nil {
			if errors.Is(err, fs.ErrNotExist) && devCA {
				// serve creates the dev CA at start-up: it has not started.
				return nil, answerNo("not ready: no dev CA yet (%v); serve creates it when it starts", err)
			}
			return nil, fmt.Errorf("CA to trust: %w", err)
		}
	}
	return &healthTarget{url: "https://" + addr + "/readyz", tls: tc}, nil
}

// firstName returns the first DNS name (else IP address) of the first
// certificate in file, the name the health check verifies when
// server.public_host is not set.
func firstName(file string) (string, error) {
	buf, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("server.tls.cert_file: %w", err)
	}
	for {
		var b *pem.Block
		if b, buf = pem.Decode(buf); b == nil {
			return "", fmt.Errorf("server.tls.cert_file %s: no certificate", file)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("server.tls.cert_file %s: %w", file, err)
		}
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0], nil
		}
		if len(c.IPAddresses) > 0 {
			return c.IPAddresses[0].String(), nil
		}
		return "", fmt.Errorf("server.tls.cert_file %s: the certificate names no host; set server.public_host", file)
	}
}

// check asks for /readyz once: nil when it answers 200, a negative
// answer (exit 1) when it does not, or nothing answers, or the
// certificate cannot be trusted.
func (h *healthTarget) check(ctx context.Context) error {
	status, reason, err := h.get(ctx, h.tls)
	if err == nil {
		if status == http.StatusOK {
			return nil
		}
		return answerNo("not ready: %s answered %d: %s", h.url, status, reason)
	}
	var verify *tls.CertificateVerificationError
	if h.tls == nil || !errors.As(err, &verify) {
		return answerNo("not ready: nothing answers at %s: %v", h.url, err)
	}
	// Say what /readyz says, read without verification: a server without
	// a certificate from its CA yet serves a placeholder, and says why.
	insecure := h.tls.Clone()
	insecure.InsecureSkipVerify = true
	msg := fmt.Sprintf("not ready: the certificate served at %s is not trusted for %s: %v", h.url, h.tls.ServerName, verify.Err)
	if status, reason, err := h.get(ctx, insecure); err == nil {
		if status == http.StatusOK {
			msg += "; /readyz says ok (--ca FILE trusts a private or staging CA)"
		} else {
			msg += fmt.Sprintf("; /readyz answered %d: %s", status, reason)
		}
	}
	return answerNo("%s", msg)
}

// get makes one request and returns the status and, for an error, the
// reason in the answer.
func (h *healthTarget) get(ctx context.Context, tc *tls.Config) (int, string, error) {
	// No proxy: the server is on loopback, whatever HTTPS_PROXY says.
	tr := &http.Transport{Proxy: nil, TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return 0, "", fmt.Errorf("health check request: %w", err)
	}
	if tc != nil && tc.ServerName != "" {
		req.Host = tc.ServerName
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the method and URL, which the caller names
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", nil
	}
	var answer struct {
		Error string `json:"error"`
	}
	reason := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &answer) == nil && answer.Error != "" {
		reason = answer.Error
	}
	return resp.StatusCode, reason, nil
}
