package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// mustEnsure runs EnsureDev and fails the test on error.
func mustEnsure(tb testing.TB, dir string, hosts []string, now time.Time) (certs.DevFiles, bool) {
	tb.Helper()
	files, generated, err := certs.EnsureDev(dir, hosts, now)
	if err != nil {
		tb.Fatalf("EnsureDev: %v", err)
	}
	return files, generated
}

// snapshot returns the contents of every file in files.
func snapshot(tb testing.TB, files certs.DevFiles) map[string][]byte {
	tb.Helper()
	m := map[string][]byte{}
	for _, p := range []string{files.CA, files.CAKey, files.Cert, files.Key} {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		m[filepath.Base(p)] = b
	}
	return m
}

// readCert parses the first certificate in a PEM file.
func readCert(tb testing.TB, path string) *x509.Certificate {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// serve runs an http.Server with cfg on a loopback listener for network
// address addr and returns the listener address. The handler echoes r.Proto.
func serve(tb testing.TB, cfg *tls.Config, addr string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Skipf("listen %s: %v", addr, err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0), // handshake failures are expected
	}
	go srv.ServeTLS(ln, "", "")
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// client returns an HTTP client that trusts roots (nil: nothing) and dials
// addr whatever the URL host, so the URL host is only used for SNI and
// hostname verification.
func client(roots *x509.CertPool, addr string) *http.Client {
	if roots == nil {
		roots = x509.NewCertPool()
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, addr)
		},
	}}
}

// get fetches https://host/ and returns the response body (r.Proto).
func get(c *http.Client, host string) (string, error) {
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if got := string(body); err == nil && got != resp.Proto {
		return "", errors.New("server saw " + got + ", client " + resp.Proto)
	}
	return resp.Proto, err
}

func caPool(tb testing.TB, files certs.DevFiles) *x509.CertPool {
	tb.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(tb, files.CA))
	return pool
}

func TestEnsureDev_CreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	files, generated := mustEnsure(t, dir, nil, now)
	if !generated {
		t.Fatal("first call: generated = false, want true")
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode: %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	for path, want := range map[string]fs.FileMode{files.CA: 0o644, files.CAKey: 0o600, files.Cert: 0o644, files.Key: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", filepath.Base(path), got, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("dir has %d entries, want 4 (temp files left behind?)", len(entries))
	}

	ca, leaf := readCert(t, files.CA), readCert(t, files.Cert)
	if ca.Subject.CommonName != "hookbay development CA" || !ca.IsCA || !ca.MaxPathLenZero {
		t.Errorf("CA = %q IsCA=%v MaxPathLenZero=%v", ca.Subject.CommonName, ca.IsCA, ca.MaxPathLenZero)
	}
	if leaf.Subject.CommonName != "hookbay dev server" || len(leaf.IPAddresses) != 2 || len(leaf.DNSNames) != 1 {
		t.Errorf("leaf = %q IPs=%v DNS=%v", leaf.Subject.CommonName, leaf.IPAddresses, leaf.DNSNames)
	}
	if got, want := leaf.NotAfter.Sub(leaf.NotBefore), 825*24*time.Hour; got != want {
		t.Errorf("leaf validity = %v, want %v", got, want)
	}
	if leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Errorf("serials: leaf %v, CA %v", leaf.SerialNumber, ca.SerialNumber)
	}
	if !strings.Contains(string(snapshot(t, files)["server-key.pem"]), "-----BEGIN PRIVATE KEY-----") {
		t.Error("server key is not PKCS#8 PEM")
	}

	before := snapshot(t, files)
	files2, generated := mustEnsure(t, dir, nil, now.Add(time.Hour))
	if generated {
		t.Error("second call: generated = true, want false")
	}
	if files2 != files {
		t.Errorf("files = %+v, want %+v", files2, files)
	}
	for name, b := range snapshot(t, files) {
		if !bytes.Equal(b, before[name]) {
			t.Errorf("%s changed on reuse", name)
		}
	}
}

func TestEnsureDev_Regenerate(t *testing.T) {
	now := time.Now()
	setup := func(t *testing.T) (string, certs.DevFiles, map[string][]byte) {
		dir := t.TempDir()
		files, _ := mustEnsure(t, dir, nil, now)
		return dir, files, snapshot(t, files)
	}
	// check asserts that only the server files changed.
	check := func(t *testing.T, files certs.DevFiles, before map[string][]byte, generated bool) {
		t.Helper()
		if !generated {
			t.Error("generated = false, want true")
		}
		after := snapshot(t, files)
		for _, name := range []string{"ca.pem", "ca-key.pem"} {
			if !bytes.Equal(after[name], before[name]) {
				t.Errorf("%s changed, want CA kept", name)
			}
		}
		for _, name := range []string{"server.pem", "server-key.pem"} {
			if bytes.Equal(after[name], before[name]) {
				t.Errorf("%s unchanged, want regenerated", name)
			}
		}
	}

	t.Run("MissingServerCert", func(t *testing.T) {
		dir, files, before := setup(t)
		os.Remove(files.Cert)
		_, generated := mustEnsure(t, dir, nil, now)
		check(t, files, before, generated)
	})
	t.Run("Expiring", func(t *testing.T) {
		dir, files, before := setup(t)
		later := now.Add(824 * 24 * time.Hour)
		_, generated := mustEnsure(t, dir, nil, later)
		check(t, files, before, generated)
		if leaf := readCert(t, files.Cert); !leaf.NotBefore.Equal(later.Add(-time.Hour).Truncate(time.Second)) {
			t.Errorf("NotBefore = %v, want %v", leaf.NotBefore, later.Add(-time.Hour))
		}
	})
	t.Run("ExtraHost", func(t *testing.T) {
		dir, files, before := setup(t)
		_, generated := mustEnsure(t, dir, []string{"localhost", "hooks.example.test", "10.1.2.3"}, now)
		check(t, files, before, generated)
		leaf := readCert(t, files.Cert)
		for _, h := range []string{"localhost", "hooks.example.test", "10.1.2.3"} {
			if err := leaf.VerifyHostname(h); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("ForeignCA", func(t *testing.T) {
		dir, files, before := setup(t)
		other, _ := mustEnsure(t, t.TempDir(), nil, now)
		for _, p := range [][2]string{{other.Cert, files.Cert}, {other.Key, files.Key}} {
			b, _ := os.ReadFile(p[0])
			if err := os.WriteFile(p[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		before["server.pem"], before["server-key.pem"] = snapshot(t, other)["server.pem"], snapshot(t, other)["server-key.pem"]
		_, generated := mustEnsure(t, dir, nil, now)
		check(t, files, before, generated)
	})
	t.Run("MissingCA", func(t *testing.T) {
		dir, files, before := setup(t)
		os.Remove(files.CAKey)
		_, generated := mustEnsure(t, dir, nil, now)
		if !generated {
			t.Error("generated = false, want true")
		}
		for name, b := range snapshot(t, files) {
			if bytes.Equal(b, before[name]) {
				t.Errorf("%s unchanged, want everything regenerated", name)
			}
		}
	})
}

func TestLoad_Handshake(t *testing.T) {
	files, _ := mustEnsure(t, t.TempDir(), nil, time.Now())
	cfg, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: files.Key})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
	}
	roots := caPool(t, files)

	for _, tt := range []struct{ host, listen string }{
		{"localhost", "127.0.0.1:0"},
		{"127.0.0.1", "127.0.0.1:0"},
		{"[::1]", "[::1]:0"},
	} {
		t.Run(tt.host, func(t *testing.T) {
			addr := serve(t, cfg, tt.listen)
			_, port, _ := net.SplitHostPort(addr)
			host := tt.host + ":" + port
			if proto, err := get(client(roots, addr), host); err != nil {
				t.Fatalf("trusted client: %v", err)
			} else if proto != "HTTP/2.0" {
				t.Errorf("Proto = %q, want HTTP/2.0", proto)
			}

			_, err := get(client(nil, addr), host)
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("untrusted client: err = %v, want x509.UnknownAuthorityError", err)
			}
		})
	}
}

func TestLoad_Chain(t *testing.T) {
	dir := t.TempDir()
	files, _ := mustEnsure(t, dir, nil, time.Now())
	leaf, _ := os.ReadFile(files.Cert)
	ca, _ := os.ReadFile(files.CA)
	chain := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(chain, append(leaf, ca...), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := certs.Load(certs.Options{CertFile: chain, KeyFile: files.Key, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(cfg.Certificates[0].Certificate); got != 2 {
		t.Errorf("served chain length = %d, want 2", got)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %#x, want TLS 1.3", cfg.MinVersion)
	}
}

func TestLoad_Errors(t *testing.T) {
	dir := t.TempDir()
	files, _ := mustEnsure(t, dir, nil, time.Now())
	missing := filepath.Join(dir, "nope.pem")

	t.Run("MissingCert", func(t *testing.T) {
		_, err := certs.Load(certs.Options{CertFile: missing, KeyFile: files.Key})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want not-exist naming %s", err, missing)
		}
	})
	t.Run("MissingKey", func(t *testing.T) {
		_, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: missing})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want not-exist naming %s", err, missing)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		if _, err := certs.Load(certs.Options{}); err == nil {
			t.Error("err = nil, want error")
		}
	})
	t.Run("KeyMismatch", func(t *testing.T) {
		_, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: files.CAKey})
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("err = %v, want key mismatch", err)
		}
	})
	t.Run("OldTLS", func(t *testing.T) {
		_, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: files.Key, MinVersion: tls.VersionTLS10})
		if err == nil {
			t.Error("err = nil, want unsupported MinVersion")
		}
	})
}

func TestFingerprint(t *testing.T) {
	files, _ := mustEnsure(t, t.TempDir(), nil, time.Now())
	got := certs.Fingerprint(readCert(t, files.CA))
	if !regexp.MustCompile(`^[0-9A-F]{2}(:[0-9A-F]{2}){31}$`).MatchString(got) {
		t.Errorf("Fingerprint = %q, want 32 upper-case hex pairs joined by colons", got)
	}
}
