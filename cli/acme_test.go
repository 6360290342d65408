package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs/certstest"
)

// acmeTestHost is the name certificates are issued for; Pebble's DNS
// server resolves every name to 127.0.0.1.
const acmeTestHost = "hookbay.test"

// acmeYAML is a production config: automatic certificates from p for
// acmeTestHost, served on port, with one Bubblehouse hook.
func acmeYAML(port int, dataDir string, p *certstest.Pebble, apiRoot string) string {
	return fmt.Sprintf(`server:
  listen: 127.0.0.1:%d
  data_dir: %s
  tls:
    mode: acme
    acme:
      hosts: [%s]
      email: ops@example.com
      directory_url: %s
      accept_tos: true
      ca_file: %s
admin: {listen: "off"}
bubblehouse:
  authorization: %q
  hooks: {CreateDiscount4: {}}
`, port, dataDir, acmeTestHost, p.DirectoryURL, apiRoot, testAuth)
}

// tlsClient dials 127.0.0.1:port for any URL and verifies the server as
// acmeTestHost against roots only; roots nil verifies nothing.
func tlsClient(port int, roots *x509.CertPool) *http.Client {
	tc := &tls.Config{RootCAs: roots, ServerName: acmeTestHost, InsecureSkipVerify: roots == nil}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}}
}

// acmeGet asks c for path on acmeTestHost and returns the answer and body.
func acmeGet(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get("https://" + acmeTestHost + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// A whole hookbay with server.tls.mode acme obtains its certificate from
// an ACME CA (Pebble, in process) through TLS-ALPN-01 answered on its own
// HTTPS port at start-up, and serves hooks with it to a client that
// trusts only the CA's root; a second hookbay on the same data directory
// serves the cached certificate without a new order.
func TestACME_EndToEnd(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t), CommonName: true})
	dataDir := t.TempDir()
	path := writeHookbayYAML(t, acmeYAML(port, dataDir, p, p.APIRootFile(t)))

	log1 := newLogSink(t)
	m1, took := runMainFromFile(t, path, log1)
	t.Logf("figures: hookbay started with a new certificate in %v (Run: ACME account, order, TLS-ALPN-01 validation on its own HTTPS port, finalisation, download)", took)
	if got := p.Orders(); got != 1 {
		t.Fatalf("Pebble orders %d after start-up, want 1", got)
	}
	if !strings.Contains(log1.String(), "certificate ready") || !strings.Contains(log1.String(), "from=CA") {
		t.Errorf("the log does not say the certificate came from the CA:\n%s", log1)
	}

	// A hook request over TLS, trusting only Pebble's root.
	client := tlsClient(port, p.Roots)
	req, _ := http.NewRequest(http.MethodPost, "https://"+acmeTestHost+"/bubblehouse/Hello1", strings.NewReader(`{"magic":"xyzzy"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", testAuth)
	req.Header.Set("X-BH-Urgency", "real-time")
	req.Header.Set("X-Request-ID", "acme-hello-1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("hook over TLS trusting only Pebble's root: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"xyzzy"`) {
		t.Fatalf("Hello1: %d %s, want 200 with the magic", resp.StatusCode, body)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("served over %s, want HTTP/2.0", resp.Proto)
	}
	chain := resp.TLS.VerifiedChains[0]
	leaf := chain[0]
	if !chain[len(chain)-1].Equal(p.Root) || !slices.Equal(leaf.DNSNames, []string{acmeTestHost}) {
		t.Fatalf("chain of %d ending at %q for %v: want Pebble's root and [%s]", len(chain), chain[len(chain)-1].Subject, leaf.DNSNames, acmeTestHost)
	}
	if resp, body := acmeGet(t, client, "/readyz"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"certificate":"ok"`) {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}

	// The health check, trusting Pebble's root; without it the system's
	// roots do not trust the certificate, which is not ready for senders.
	if code, out := runHealthcheck(t, "--config", path, "--ca", p.RootFile(t)); code != 0 || !strings.Contains(out, "ready: https://127.0.0.1:") {
		t.Errorf("healthcheck --ca pebble: exit %d, %q; want 0", code, out)
	}
	if code, out := runHealthcheck(t, "--config", path); code != 1 || !strings.Contains(out, "not trusted for "+acmeTestHost) || !strings.Contains(out, "/readyz says ok") {
		t.Errorf("healthcheck with the system's roots: exit %d, %q; want 1, not trusted, /readyz ok", code, out)
	}

	// A second hookbay on the same data directory (the first stopped,
	// the same port) serves the cached certificate; the CA sees no order.
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	log2 := newLogSink(t)
	m2, took := runMainFromFile(t, path, log2)
	t.Logf("figures: a second hookbay on the same data directory was ready from the cached certificate in %v", took)
	if got := p.Orders(); got != 1 {
		t.Errorf("Pebble orders %d after the second start, want still 1", got)
	}
	if st := m2.acme.Status(); st.Orders != 0 || !st.Ready {
		t.Errorf("second hookbay's status %+v: want ready, no order", st)
	}
	if !strings.Contains(log2.String(), "from=stored") {
		t.Errorf("the second log does not say the certificate was stored:\n%s", log2)
	}
	resp, _ = acmeGet(t, tlsClient(port, p.Roots), "/readyz")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz of the second hookbay: %d", resp.StatusCode)
	}
	if got := resp.TLS.PeerCertificates[0]; !got.Equal(leaf) {
		t.Errorf("second hookbay serves serial %s, want the cached %s", got.SerialNumber.Text(16), leaf.SerialNumber.Text(16))
	}
}

// With the CA down, hookbay starts anyway: it serves a placeholder that no
// client trusts, /readyz answers 503 naming the certificate and the CA's
// silence, and the health check says not ready with that reason.
func TestACME_CADown(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t)})
	path := writeHookbayYAML(t, acmeYAML(port, t.TempDir(), p, p.APIRootFile(t)))
	p.Stop()

	log := newLogSink(t)
	m, took := runMainFromFile(t, path, log)
	t.Logf("figures: with the CA down, hookbay was serving (not ready) %v after Run began", took)
	if !strings.Contains(log.String(), "no certificate yet; serving, not ready, and retrying") {
		t.Errorf("the log does not say start-up went on without a certificate:\n%s", log)
	}
	if st := m.acme.Status(); st.Ready {
		t.Fatalf("status %+v: ready without a certificate", st)
	}

	// Clients trusting the CA refuse the placeholder.
	var unknown x509.UnknownAuthorityError
	if _, err := tlsClient(port, p.Roots).Get("https://" + acmeTestHost + "/readyz"); !errors.As(err, &unknown) {
		t.Errorf("a client trusting Pebble's root: %v, want an unknown authority", err)
	}
	resp, body := acmeGet(t, tlsClient(port, nil), "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "certificate: no valid certificate") ||
		!strings.Contains(body, "no answer from the CA") {
		t.Errorf("/readyz: %d %s; want 503 naming the certificate and the CA", resp.StatusCode, body)
	}
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; !strings.Contains(cn, "placeholder") {
		t.Errorf("served certificate %q, want the placeholder", cn)
	}
	// A host name not configured is refused, as before.
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "other.test"}}}
	if _, err := other.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", port)); err == nil {
		t.Error("a handshake for a host not configured got a certificate")
	}

	code, out := runHealthcheck(t, "--config", path, "--ca", p.RootFile(t))
	if code != 1 || !strings.Contains(out, "not trusted") || !strings.Contains(out, "503") || !strings.Contains(out, "certificate: no valid certificate") {
		t.Errorf("healthcheck: exit %d, %q; want 1 naming the certificate", code, out)
	}
}
