package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// mustInit runs Init and fails the test on error.
func mustInit(tb testing.TB, dir string, now time.Time) certs.Files {
	tb.Helper()
	files, err := certs.Init(dir, nil, false, now)
	if err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return files
}

// readAll returns the contents of each path, by base name.
func readAll(tb testing.TB, paths ...string) map[string][]byte {
	tb.Helper()
	m := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		m[filepath.Base(p)] = b
	}
	return m
}

// mtlsServer serves, with the server pair and client CA in files, a
// handler answering the CN of the verified client certificate ("" when the
// client sent none), through certs.Load as hookbay serve does.
func mtlsServer(tb testing.TB, files certs.Files) *httptest.Server {
	tb.Helper()
	cfg, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		tb.Fatalf("ClientAuth = %v, want VerifyClientCertIfGiven", cfg.ClientAuth)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) > 0 {
			io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
		}
	}))
	srv.TLS = cfg
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// mtlsGet calls srv trusting caFile, presenting the client pair in
// certFile and keyFile unless certFile is empty, and returns the body.
func mtlsGet(tb testing.TB, srv *httptest.Server, caFile, certFile, keyFile string) (string, error) {
	tb.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(readCert(tb, caFile))
	cfg := &tls.Config{RootCAs: roots}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// verifyClient checks that the certificate in path chains to the CA in
// caPath for client authentication at now.
func verifyClient(tb testing.TB, path, caPath string, now time.Time) *x509.Certificate {
	tb.Helper()
	cert, roots := readCert(tb, path), x509.NewCertPool()
	roots.AddCert(readCert(tb, caPath))
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		tb.Fatalf("%s does not verify as a client certificate: %v", path, err)
	}
	return cert
}

func TestInit_Files(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	files := mustInit(t, dir, now)

	want := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"}
	var got []string
	for _, p := range files.Paths() {
		got = append(got, filepath.Base(p))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Paths = %v, want %v", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("dir holds %d entries, want %d (no temporary files left)", len(entries), len(want))
	}
	for _, p := range files.Paths() {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		wantMode := os.FileMode(0o644)
		if strings.HasSuffix(p, "-key.pem") {
			wantMode = 0o600
		}
		if got := fi.Mode().Perm(); got != wantMode {
			t.Errorf("%s mode = %v, want %v", filepath.Base(p), got, wantMode)
		}
		if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("-----BEGIN ")) || bytes.Contains(b, []byte("ENCRYPTED")) {
			t.Errorf("%s is not unencrypted PEM", filepath.Base(p))
		}
	}

	ca := readCert(t, files.CA)
	if !ca.IsCA {
		t.Error("ca.pem is not a CA")
	}
	server := readCert(t, files.Cert)
	if _, err := server.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), CurrentTime: now}); err == nil {
		t.Error("server.pem verifies without its CA")
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := server.VerifyHostname(h); err != nil {
			t.Errorf("server.pem: %v", err)
		}
	}
	client := verifyClient(t, files.ClientCert, files.CA, now)
	if client.Subject.CommonName != "hookbay-client" {
		t.Errorf("client CN = %q, want hookbay-client", client.Subject.CommonName)
	}
	if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client ExtKeyUsage = %v, want client auth only", client.ExtKeyUsage)
	}
	if got, want := client.NotBefore, now.Add(-time.Hour).Truncate(time.Second); !got.Equal(want) {
		t.Errorf("client NotBefore = %v, want %v", got, want)
	}
	if client.SerialNumber.BitLen() < 64 || client.SerialNumber.Cmp(server.SerialNumber) == 0 {
		t.Errorf("serials %v and %v: want random 128-bit ones", client.SerialNumber, server.SerialNumber)
	}

	// The files are the ones serve's dev mode manages: it keeps them.
	if _, generated, err := certs.EnsureDev(dir, nil, now); err != nil || generated {
		t.Errorf("EnsureDev after Init: generated = %v, err = %v; want the files reused", generated, err)
	}
}

func TestInit_Hosts(t *testing.T) {
	files, err := certs.Init(t.TempDir(), []string{"hooks.example.test", "[2001:db8::1]", "10.0.0.7"}, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	server := readCert(t, files.Cert)
	for _, h := range []string{"hooks.example.test", "2001:db8::1", "10.0.0.7"} {
		if err := server.VerifyHostname(h); err != nil {
			t.Errorf("server.pem: %v", err)
		}
	}
	if err := server.VerifyHostname("localhost"); err == nil {
		t.Error("server.pem covers localhost, which was not asked for")
	}
	if _, err := certs.Init(t.TempDir(), []string{"localhost", " "}, false, time.Now()); err == nil {
		t.Error("empty host: err = nil, want error")
	}
}

func TestInit_Overwrite(t *testing.T) {
	t.Run("ErrExist", func(t *testing.T) {
		dir := t.TempDir()
		files := mustInit(t, dir, time.Now())
		before := readAll(t, files.Paths()...)
		_, err := certs.Init(dir, nil, false, time.Now())
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), files.CA) {
			t.Fatalf("second Init: err = %v, want fs.ErrExist naming %s", err, files.CA)
		}
		for name, b := range readAll(t, files.Paths()...) {
			if !bytes.Equal(b, before[name]) {
				t.Errorf("%s changed", name)
			}
		}
	})
	t.Run("OneFileExists", func(t *testing.T) {
		dir := t.TempDir()
		key := filepath.Join(dir, "client-key.pem")
		if err := os.WriteFile(key, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := certs.Init(dir, nil, false, time.Now())
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), key) {
			t.Fatalf("err = %v, want fs.ErrExist naming %s", err, key)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("dir holds %d entries, want only client-key.pem: nothing written", len(entries))
		}
	})
	t.Run("Force", func(t *testing.T) {
		dir := t.TempDir()
		files := mustInit(t, dir, time.Now())
		before := readAll(t, files.Paths()...)
		if _, err := certs.Init(dir, nil, true, time.Now()); err != nil {
			t.Fatalf("Init --force: %v", err)
		}
		for name, b := range readAll(t, files.Paths()...) {
			if bytes.Equal(b, before[name]) {
				t.Errorf("%s unchanged, want regenerated", name)
			}
		}
		if fi, err := os.Stat(files.CAKey); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("ca-key.pem after --force: %v, %v; want 0600", fi.Mode().Perm(), err)
		}
		verifyClient(t, files.ClientCert, files.CA, time.Now())
	})
}

func TestInit_MTLSHandshake(t *testing.T) {
	dir := t.TempDir()
	files := mustInit(t, dir, time.Now())
	srv := mtlsServer(t, files)

	t.Run("ClientCert", func(t *testing.T) {
		got, err := mtlsGet(t, srv, files.CA, files.ClientCert, files.ClientKey)
		if err != nil || got != "hookbay-client" {
			t.Errorf("verified CN = %q, %v; want hookbay-client", got, err)
		}
	})
	t.Run("IssuedClient", func(t *testing.T) {
		certPath, keyPath, err := certs.IssueClient(dir, "bloomreach-prod", 30, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, err := mtlsGet(t, srv, files.CA, certPath, keyPath)
		if err != nil || got != "bloomreach-prod" {
			t.Errorf("verified CN = %q, %v; want bloomreach-prod", got, err)
		}
	})
	t.Run("NoClientCert", func(t *testing.T) {
		got, err := mtlsGet(t, srv, files.CA, "", "")
		if err != nil || got != "" {
			t.Errorf("verified CN = %q, %v; want none", got, err)
		}
	})
	t.Run("ForeignClient", func(t *testing.T) {
		other := mustInit(t, t.TempDir(), time.Now())
		if _, err := mtlsGet(t, srv, files.CA, other.ClientCert, other.ClientKey); err == nil {
			t.Error("client certificate from another CA accepted")
		}
	})
	t.Run("ServerCertAsClient", func(t *testing.T) {
		if _, err := mtlsGet(t, srv, files.CA, files.Cert, files.Key); err == nil {
			t.Error("server certificate accepted for client authentication")
		}
	})
}

func TestIssueClient(t *testing.T) {
	dir := t.TempDir()
	files := mustInit(t, dir, time.Now())

	t.Run("OK", func(t *testing.T) {
		now := time.Now()
		certPath, keyPath, err := certs.IssueClient(dir, "bloomreach-prod", 90, false, now)
		if err != nil {
			t.Fatal(err)
		}
		if certPath != filepath.Join(dir, "bloomreach-prod.pem") || keyPath != filepath.Join(dir, "bloomreach-prod-key.pem") {
			t.Errorf("paths = %s, %s", certPath, keyPath)
		}
		if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key mode: %v, %v; want 0600", fi.Mode().Perm(), err)
		}
		cert := verifyClient(t, certPath, files.CA, now)
		if cert.Subject.CommonName != "bloomreach-prod" {
			t.Errorf("CN = %q, want bloomreach-prod", cert.Subject.CommonName)
		}
		if got, want := cert.NotAfter, now.AddDate(0, 0, 90).Truncate(time.Second); !got.Equal(want) {
			t.Errorf("NotAfter = %v, want %v", got, want)
		}
		if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			t.Errorf("pair: %v", err)
		}

		before := readAll(t, certPath, keyPath)
		_, _, err = certs.IssueClient(dir, "bloomreach-prod", 90, false, now)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), certPath) {
			t.Errorf("again without force: err = %v, want fs.ErrExist naming %s", err, certPath)
		}
		for name, b := range readAll(t, certPath, keyPath) {
			if !bytes.Equal(b, before[name]) {
				t.Errorf("%s changed without force", name)
			}
		}
		if _, _, err := certs.IssueClient(dir, "bloomreach-prod", 90, true, now); err != nil {
			t.Fatalf("with force: %v", err)
		}
		for name, b := range readAll(t, certPath, keyPath) {
			if bytes.Equal(b, before[name]) {
				t.Errorf("%s unchanged with force", name)
			}
		}
	})
	t.Run("ClampedToCA", func(t *testing.T) {
		certPath, _, err := certs.IssueClient(dir, "long-lived", 100*365, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readCert(t, certPath).NotAfter, readCert(t, files.CA).NotAfter; !got.Equal(want) {
			t.Errorf("NotAfter = %v, want the CA's %v", got, want)
		}
	})
	t.Run("ErrNotExist", func(t *testing.T) {
		_, _, err := certs.IssueClient(t.TempDir(), "x", 1, false, time.Now())
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "ca.pem") {
			t.Errorf("err = %v, want fs.ErrNotExist naming ca.pem", err)
		}
	})
	t.Run("NotACA", func(t *testing.T) {
		other := t.TempDir()
		for _, pair := range [][2]string{{files.Cert, "ca.pem"}, {files.Key, "ca-key.pem"}} {
			b, _ := os.ReadFile(pair[0])
			if err := os.WriteFile(filepath.Join(other, pair[1]), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := certs.IssueClient(other, "x", 1, false, time.Now()); err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Errorf("err = %v, want not a CA", err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, cn := range []string{"", "../evil", "a/b", `a\b`, ".hidden", "-flag", "has space", "ca", "server", "client-key", strings.Repeat("x", 65)} {
			if _, _, err := certs.IssueClient(dir, cn, 1, true, time.Now()); err == nil {
				t.Errorf("CN %q: err = nil, want refusal", cn)
			}
		}
		if _, _, err := certs.IssueClient(dir, "ok", 0, false, time.Now()); err == nil {
			t.Error("days 0: err = nil, want error")
		}
		for name, b := range readAll(t, files.CA, files.CAKey, files.Cert, files.Key) {
			if len(b) == 0 || !bytes.HasPrefix(b, []byte("-----BEGIN ")) {
				t.Errorf("%s damaged", name)
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil.pem")); err == nil {
			t.Error("../evil.pem was written")
		}
	})
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := mustInit(t, dir, now)

	t.Run("Server", func(t *testing.T) {
		b, _ := os.ReadFile(files.Cert)
		infos, err := certs.Describe(b, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 {
			t.Fatalf("got %d infos, want 1", len(infos))
		}
		got := infos[0]
		if got.Subject != "CN=hookbay dev server" || got.Issuer != "CN=hookbay development CA" {
			t.Errorf("Subject, Issuer = %q, %q", got.Subject, got.Issuer)
		}
		if !slices.Equal(got.DNSNames, []string{"localhost"}) || !slices.Equal(got.IPAddresses, []string{"127.0.0.1", "::1"}) {
			t.Errorf("SANs = %v, %v", got.DNSNames, got.IPAddresses)
		}
		if !slices.Equal(got.Usage, []string{"server"}) {
			t.Errorf("Usage = %v, want [server]", got.Usage)
		}
		if want := certs.Fingerprint(readCert(t, files.Cert)); got.Fingerprint != want {
			t.Errorf("Fingerprint = %s, want %s", got.Fingerprint, want)
		}
		if got.Status != certs.StatusValid || got.DaysLeft != 825 {
			t.Errorf("Status, DaysLeft = %q, %d; want valid, 825", got.Status, got.DaysLeft)
		}
		if _, err := json.Marshal(infos); err != nil {
			t.Error(err)
		}
	})
	t.Run("Bundle", func(t *testing.T) {
		// Keys between certificates are skipped, not errors.
		var b []byte
		for _, p := range []string{files.ClientKey, files.ClientCert, files.CA} {
			pem, _ := os.ReadFile(p)
			b = append(b, pem...)
		}
		infos, err := certs.Describe(b, now)
		if err != nil {
			t.Fatal(err)
		}
		var usages [][]string
		for _, in := range infos {
			usages = append(usages, in.Usage)
		}
		if len(infos) != 2 || !slices.Equal(usages[0], []string{"client"}) || !slices.Equal(usages[1], []string{"CA"}) {
			t.Errorf("usages = %v, want [client] then [CA]", usages)
		}
	})
	t.Run("Status", func(t *testing.T) {
		past := now.AddDate(0, 0, -10)
		expired, _, err := certs.IssueClient(dir, "expired", 1, false, past)
		if err != nil {
			t.Fatal(err)
		}
		soon, _, err := certs.IssueClient(dir, "soon", 15, false, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			path     string
			at       time.Time
			status   string
			daysLeft int
		}{
			{expired, now, certs.StatusExpired, -9},
			{soon, now, certs.StatusExpiring, 15},
			{soon, now.Add(-2 * time.Hour), certs.StatusNotYetValid, 16},
			{files.ClientCert, now, certs.StatusValid, 365},
		} {
			b, _ := os.ReadFile(tt.path)
			infos, err := certs.Describe(b, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if got := infos[0]; got.Status != tt.status || got.DaysLeft != tt.daysLeft {
				t.Errorf("%s at %v: Status, DaysLeft = %q, %d; want %q, %d", filepath.Base(tt.path), tt.at, got.Status, got.DaysLeft, tt.status, tt.daysLeft)
			}
		}
	})
	t.Run("Errors", func(t *testing.T) {
		key, _ := os.ReadFile(files.Key)
		for name, b := range map[string][]byte{
			"Empty":   nil,
			"KeyOnly": key,
			"NotPEM":  []byte("hello"),
			"Garbled": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		} {
			if _, err := certs.Describe(b, now); err == nil {
				t.Errorf("%s: err = nil, want error", name)
			}
		}
	})
}

// Dev mode with a public host keeps a certificate "certs init" made for
// that host (issue 6: "existing files are never overwritten without
// --force"); one that does not cover it is reissued for it and the
// default hosts alike.
func TestEnsureDev_PublicHost(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	files, err := certs.Init(dir, []string{"hooks.lan"}, false, now)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, generated, err := certs.EnsureDev(dir, []string{"hooks.lan"}, now); err != nil || generated {
		t.Fatalf("EnsureDev for the host Init covered: generated = %v, err = %v; want the files kept", generated, err)
	}
	if after, _ := os.ReadFile(files.Cert); !bytes.Equal(before, after) {
		t.Fatal("server.pem was rewritten")
	}
	if _, generated, err := certs.EnsureDev(dir, []string{"other.lan"}, now); err != nil || !generated {
		t.Fatalf("EnsureDev for another host: generated = %v, err = %v; want a new certificate", generated, err)
	}
	server := readCert(t, files.Cert)
	for _, h := range []string{"other.lan", "localhost", "127.0.0.1", "::1"} {
		if err := server.VerifyHostname(h); err != nil {
			t.Errorf("reissued server.pem: %v", err)
		}
	}
}

// A host that can never match is refused, not written into a certificate.
func TestInit_BadHosts(t *testing.T) {
	for _, h := range []string{"", "localhost:8443", "https://hooks.example.com", "hooks.example.com/x", "a b"} {
		if _, err := certs.Init(t.TempDir(), []string{h}, false, time.Now()); err == nil {
			t.Errorf("host %q accepted", h)
		}
	}
	for _, h := range []string{"hooks.example.com", "*.example.com", "10.0.0.7", "[2001:db8::1]", "::1"} {
		if err := certs.CheckHost(h); err != nil {
			t.Errorf("host %q: %v", h, err)
		}
	}
}
