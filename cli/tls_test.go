package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// twoPairs makes two certificate pairs for localhost from two CAs, and a
// pool trusting both.
func twoPairs(t *testing.T) (a, b certs.DevFiles, pool *x509.CertPool) {
	t.Helper()
	pool = x509.NewCertPool()
	var out [2]certs.DevFiles
	for i := range out {
		f, _, err := certs.EnsureDev(t.TempDir(), nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pem, _ := os.ReadFile(f.CA)
		pool.AppendCertsFromPEM(pem)
		out[i] = f
	}
	return out[0], out[1], pool
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// servedSerial makes a request and returns the serial of the certificate
// the server presented and whether the connection was reused.
func servedSerial(t *testing.T, c *http.Client, url string) (serial string, reused bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.String(), reused
}

// Replacing the certificate files switches new handshakes to the new pair
// without a restart; an open connection keeps working; a broken new pair is
// refused and the old one stays. HTTP/2 is negotiated through ALPN.
func TestTLS_FilesReload(t *testing.T) {
	a, b, pool := twoPairs(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, a.Cert, cert)
	copyFile(t, a.Key, key)
	log := &syncBuffer{}
	m := mustRunMainWith(t, func(c *config.Config) {
		c.Server.TLS = config.TLSConfig{Mode: "files", CertFile: cert, KeyFile: key}
	}, func(m *Main) {
		m.CertPollInterval = 20 * time.Millisecond
		m.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	// refused waits for the file watcher to refuse a pair whose error
	// mentions what.
	refused := func(what string) {
		t.Helper()
		re := regexp.MustCompile(`new pair was refused.*` + regexp.QuoteMeta(what))
		waitUntil(t, 5*time.Second, "the file watcher to refuse the pair ("+what+")", func() bool { return re.MatchString(log.String()) })
	}
	url := "https://" + strings.Replace(m.Addr(), "127.0.0.1", "localhost", 1) + "/healthz"
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	}
	old := client()
	serialA, _ := servedSerial(t, old, url)
	if resp, err := old.Get(url); err != nil || resp.Proto != "HTTP/2.0" {
		t.Fatalf("HTTP/2 over TLS: %v %v", resp, err)
	}

	copyFile(t, b.Cert, cert)
	copyFile(t, b.Key, key)
	waitUntil(t, 5*time.Second, "a new handshake to get the new certificate", func() bool {
		s, _ := servedSerial(t, client(), url)
		return s != serialA
	})
	if s, reused := servedSerial(t, old, url); !reused || s != serialA {
		t.Fatalf("the open connection: serial %s reused %v, want the old certificate on the same connection", s, reused)
	}
	serialB, _ := servedSerial(t, client(), url)

	// A broken pair is refused; the served certificate stays.
	os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644)
	refused("load key pair")
	if err := m.ReloadTLS(); err == nil {
		t.Fatal("a broken pair was accepted")
	}
	if s, _ := servedSerial(t, client(), url); s != serialB {
		t.Fatalf("after a broken pair: serial %s, want %s still", s, serialB)
	}

	// So is a well-formed pair that start-up would refuse: one that has
	// expired.
	expired, err := certs.Init(t.TempDir(), []string{"localhost"}, false, time.Now().Add(-900*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, expired.Cert, cert)
	copyFile(t, expired.Key, key)
	if err := m.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired pair: err=%v, want it refused", err)
	}
	refused("expired") // the file watcher refuses it too
	if s, _ := servedSerial(t, client(), url); s != serialB {
		t.Fatalf("after an expired pair: serial %s, want %s still", s, serialB)
	}
}

// smallConfig is a plain-HTTP config on a loopback port with one hook.
func smallConfig(t *testing.T) config.Config {
	cfg := config.Config{}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.DataDir = t.TempDir()
	cfg.Server.TLS.Mode = "off"
	cfg.Bubblehouse.Authorization = testAuth
	cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}}
	return cfg
}

// mustRunMainWith is MustRunMain with a hook on Main before Run.
func mustRunMainWith(t *testing.T, mutate func(*config.Config), before func(*Main)) *Main {
	t.Helper()
	cfg := smallConfig(t)
	mutate(&cfg)
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg)
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	before(m)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// With --http (tls off), h2c is spoken as well as HTTP/1.1, for proxies
// and tunnels that forward HTTP/2 in the clear.
func TestTLS_H2C(t *testing.T) {
	m := MustRunMain(t, nil)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	resp, err := c.Get("http://" + m.Addr() + "/healthz")
	if err != nil || resp.Proto != "HTTP/2.0" {
		t.Fatalf("h2c: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + m.Addr() + "/healthz"); err != nil || resp.Proto != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1: %v %v", resp, err)
	}
}

// TLS below 1.2 is refused.
func TestTLS_MinVersion(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { c.Server.TLS.Mode = "dev" })
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}}}
	if _, err := c.Get("https://" + m.Addr() + "/healthz"); err == nil {
		t.Fatal("a TLS 1.1 client connected")
	}
}

// Start-up refuses a certificate it could not serve: one that does not
// cover server.public_host, one that has expired. Dev mode issues its
// certificate for the public host as well.
func TestTLS_StartupChecks(t *testing.T) {
	now := time.Now()
	current, err := certs.Init(t.TempDir(), []string{"localhost"}, false, now)
	if err != nil {
		t.Fatal(err)
	}
	old, err := certs.Init(t.TempDir(), []string{"localhost"}, false, now.Add(-900*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, mode, publicHost string
		files                  certs.Files
		says                   string // "" when start-up must succeed
	}{
		{"NotCovered", "files", "hooks.example.com", current, "does not cover server.public_host hooks.example.com"},
		{"Expired", "files", "", old, "the certificate expired"},
		{"Covered", "files", "localhost", current, ""},
		{"DevIssuesForPublicHost", "dev", "hooks.example.com", certs.Files{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Config{}
			cfg.Server.Listen, cfg.Server.DataDir, cfg.Server.PublicHost = "127.0.0.1:0", t.TempDir(), tt.publicHost
			cfg.Server.TLS.Mode, cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile = tt.mode, tt.files.Cert, tt.files.Key
			cfg.Bubblehouse.Authorization = testAuth
			cfg.ApplyDefaults()
			m := NewMain(cfg)
			m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			err := m.Run(context.Background())
			defer m.Close(context.Background())
			if tt.says == "" && err != nil {
				t.Fatalf("start-up: %v", err)
			}
			if tt.says != "" && (err == nil || !strings.Contains(err.Error(), tt.says)) {
				t.Fatalf("err=%v, want a refusal saying %q", err, tt.says)
			}
		})
	}
}

// server.trusted_proxies decides whether X-Forwarded-For is believed. An
// IPv4-mapped address is its IPv4 address: it used to be taken as the
// IPv6 range ::/32, which trusted ::1 and not the proxy.
func TestTLS_TrustedProxies(t *testing.T) {
	ipv6 := true
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		ipv6 = false
	} else {
		ln.Close()
	}
	for _, tt := range []struct {
		name    string
		listen  string
		proxies []string
		want    string
	}{
		{"NotTrusted", "", nil, "127.0.0.1"},
		{"Trusted", "", []string{"127.0.0.1"}, "203.0.113.9"},
		{"TrustedCIDR", "", []string{"127.0.0.0/8"}, "203.0.113.9"},
		{"OtherProxy", "", []string{"10.0.0.0/8"}, "127.0.0.1"},
		{"TrustedMapped", "", []string{"::ffff:127.0.0.1"}, "203.0.113.9"},
		{"TrustedMappedCIDR", "", []string{"::ffff:127.0.0.0/104"}, "203.0.113.9"},
		{"IPv6LoopbackNotTrustedByMapped", "[::1]:0", []string{"::ffff:10.0.0.1"}, "::1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.listen != "" && !ipv6 {
				t.Skip("no IPv6 loopback here")
			}
			m := MustRunMain(t, func(c *config.Config) {
				c.Server.TrustedProxies = tt.proxies
				if tt.listen != "" {
					c.Server.Listen = tt.listen
				}
			})
			send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: "xff", header: map[string]string{"X-Forwarded-For": "203.0.113.9"}})
			recs := requests(t, m, hooks.RequestFilter{RequestID: "xff"})
			if len(recs) != 1 || recs[0].RemoteAddr != tt.want {
				t.Fatalf("recorded address %q, want %q", recs[0].RemoteAddr, tt.want)
			}
		})
	}
}

// SIGHUP makes "hookbay serve" read the certificate files again at once.
func TestTLS_SIGHUP(t *testing.T) {
	a, b, pool := twoPairs(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, a.Cert, cert)
	copyFile(t, a.Key, key)
	cfgPath := filepath.Join(dir, "hookbay.yaml")
	os.WriteFile(cfgPath, []byte(`
server: {listen: "127.0.0.1:0", data_dir: "`+filepath.Join(dir, "data")+`", tls: {mode: files, cert_file: "`+cert+`", key_file: "`+key+`"}}
bubblehouse: {authorization: "x"}
`), 0o600)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"serve", "--config", cfgPath}, out, out) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, 10*time.Second, "the server to listen", func() bool { return listeningRE.MatchString(out.String()) })
	addr := strings.Replace(listeningRE.FindStringSubmatch(out.String())[1], "127.0.0.1", "localhost", 1)
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	before, _ := servedSerial(t, client(), "https://"+addr+"/healthz")
	copyFile(t, b.Cert, cert)
	copyFile(t, b.Key, key)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, "SIGHUP to switch the certificate", func() bool {
		s, _ := servedSerial(t, client(), "https://"+addr+"/healthz")
		return s != before
	})
}
