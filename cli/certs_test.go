package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// runCerts runs "hookbay certs" with args and returns stdout and stderr.
func runCerts(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = (&CertsCommand{Stdout: &out, Stderr: &errOut}).Run(context.Background(), args)
	return out.String(), errOut.String(), err
}

// mustCerts runs "hookbay certs" with args, which must succeed.
func mustCerts(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCerts(t, args...)
	if err != nil {
		t.Fatalf("hookbay certs %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// certsReadCert parses the first certificate in a PEM file.
func certsReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// certsFiles returns the contents of every file in dir, by name.
func certsFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range entries {
		if m[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// certsHandshake serves HTTPS with dir's server pair, verifying client
// certificates against dir's CA as hookbay serve does with
// server.tls.client_ca_file, and returns the CN the server verified for a
// client presenting name.pem.
func certsHandshake(t *testing.T, dir, name string) (string, error) {
	t.Helper()
	cfg, err := certs.Load(certs.Options{
		CertFile:     filepath.Join(dir, "server.pem"),
		KeyFile:      filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) > 0 {
			io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
		}
	}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()

	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(certsReadCert(t, filepath.Join(dir, "ca.pem")))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestCertsCommand_Init(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out := mustCerts(t, "init", "--dir", dir, "--hosts", "localhost, hooks.example.test,127.0.0.1")
	names := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"}
	files := certsFiles(t, dir)
	if len(files) != len(names) {
		t.Errorf("dir holds %d files, want %d", len(files), len(names))
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if !strings.Contains(out, p) {
			t.Errorf("output does not name %s:\n%s", p, out)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(name, "-key.pem") {
			want = 0o600
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	server := certsReadCert(t, filepath.Join(dir, "server.pem"))
	for _, h := range []string{"localhost", "hooks.example.test", "127.0.0.1"} {
		if err := server.VerifyHostname(h); err != nil {
			t.Errorf("server.pem: %v", err)
		}
	}
	if got, err := certsHandshake(t, dir, "client"); err != nil || got != "hookbay-client" {
		t.Errorf("verified CN = %q, %v; want hookbay-client", got, err)
	}

	t.Run("ErrExist", func(t *testing.T) {
		_, _, err := runCerts(t, "init", "--dir", dir)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), filepath.Join(dir, "ca.pem")) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("err = %v, want fs.ErrExist naming ca.pem and --force", err)
		}
		for name, b := range certsFiles(t, dir) {
			if !bytes.Equal(b, files[name]) {
				t.Errorf("%s changed without --force", name)
			}
		}
	})
	t.Run("Force", func(t *testing.T) {
		mustCerts(t, "init", "--dir", dir, "--force")
		after := certsFiles(t, dir)
		if len(after) != len(names) {
			t.Errorf("dir holds %d files, want %d", len(after), len(names))
		}
		for name, b := range after {
			if bytes.Equal(b, files[name]) {
				t.Errorf("%s unchanged with --force", name)
			}
		}
		if err := certsReadCert(t, filepath.Join(dir, "server.pem")).VerifyHostname("hooks.example.test"); err == nil {
			t.Error("--force kept the old hosts, want the default ones")
		}
	})
	// The default directory is under the data directory, never the
	// certs/ package of a checkout the command is run from.
	t.Run("DefaultDir", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if err := os.Mkdir("certs", 0o755); err != nil {
			t.Fatal(err)
		}
		mustCerts(t, "init")
		if _, err := os.Stat(filepath.Join("hookbay-data", "certs-local", "client-key.pem")); err != nil {
			t.Errorf("default --dir: %v", err)
		}
		if entries, _ := os.ReadDir("certs"); len(entries) != 0 {
			t.Errorf("certs/ got %d files, want none", len(entries))
		}
		mustCerts(t, "client", "--cn", "second")
		if _, err := os.Stat(filepath.Join("hookbay-data", "certs-local", "second-key.pem")); err != nil {
			t.Errorf("default --dir of client: %v", err)
		}
	})
	// Private keys are not written into a directory that holds Go source.
	t.Run("ErrSourceDir", func(t *testing.T) {
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "certs.go"), []byte("package certs\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"init", "--dir", src}, {"client", "--dir", src, "--cn", "x"}} {
			_, _, err := runCerts(t, args...)
			if err == nil || !strings.Contains(err.Error(), "holds Go source (certs.go)") || exitStatus(t, err) != 2 {
				t.Errorf("%v: err=%v, want a refusal naming the Go source", args, err)
			}
		}
		if entries, _ := os.ReadDir(src); len(entries) != 1 {
			t.Errorf("source dir holds %d files, want only certs.go", len(entries))
		}
	})
}

func TestCertsCommand_Client(t *testing.T) {
	dir := t.TempDir()
	mustCerts(t, "init", "--dir", dir)
	out := mustCerts(t, "client", "--dir", dir, "--cn", "bloomreach-prod")
	certPath, keyPath := filepath.Join(dir, "bloomreach-prod.pem"), filepath.Join(dir, "bloomreach-prod-key.pem")
	if !strings.Contains(out, certPath) || !strings.Contains(out, keyPath) {
		t.Errorf("output does not name both files:\n%s", out)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: %v, %v; want mode 0600", fi.Mode().Perm(), err)
	}
	cert := certsReadCert(t, certPath)
	if cert.Subject.CommonName != "bloomreach-prod" {
		t.Errorf("CN = %q, want bloomreach-prod", cert.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(certsReadCert(t, filepath.Join(dir, "ca.pem")))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("does not chain to the CA: %v", err)
	}
	if left := time.Until(cert.NotAfter); left < 364*24*time.Hour || left > 365*24*time.Hour {
		t.Errorf("valid for %v more, want the default 365 days", left)
	}
	if got, err := certsHandshake(t, dir, "bloomreach-prod"); err != nil || got != "bloomreach-prod" {
		t.Errorf("verified CN = %q, %v; want bloomreach-prod", got, err)
	}

	mustCerts(t, "client", "--dir", dir, "--cn", "short", "--days", "7")
	if left := time.Until(certsReadCert(t, filepath.Join(dir, "short.pem")).NotAfter); left > 7*24*time.Hour {
		t.Errorf("--days 7: valid for %v more", left)
	}

	t.Run("ErrExist", func(t *testing.T) {
		before, _ := os.ReadFile(certPath)
		_, _, err := runCerts(t, "client", "--dir", dir, "--cn", "bloomreach-prod")
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), certPath) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("err = %v, want fs.ErrExist naming %s and --force", err, certPath)
		}
		if after, _ := os.ReadFile(certPath); !bytes.Equal(after, before) {
			t.Error("certificate changed without --force")
		}
		mustCerts(t, "client", "--dir", dir, "--cn", "bloomreach-prod", "--force")
		if after, _ := os.ReadFile(certPath); bytes.Equal(after, before) {
			t.Error("certificate unchanged with --force")
		}
	})
	t.Run("NoCA", func(t *testing.T) {
		empty := t.TempDir()
		_, _, err := runCerts(t, "client", "--dir", empty, "--cn", "x")
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "certs init") {
			t.Errorf("err = %v, want fs.ErrNotExist pointing at certs init", err)
		}
	})
	t.Run("BadArgs", func(t *testing.T) {
		for _, args := range [][]string{
			{"client", "--dir", dir},
			{"client", "--dir", dir, "--cn", "../escape"},
			{"client", "--dir", dir, "--cn", "ca", "--force"},
			{"client", "--dir", dir, "--cn", "x", "--days", "0"},
			{"client", "--dir", dir, "--cn", "x", "extra"},
		} {
			if _, _, err := runCerts(t, args...); err == nil {
				t.Errorf("hookbay certs %s: err = nil, want error", strings.Join(args, " "))
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.pem")); err == nil {
			t.Error("../escape.pem was written")
		}
	})
}

func TestCertsCommand_Show(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files, err := certs.Init(dir, nil, false, now)
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := certs.IssueClient(dir, "expired", 1, false, now.AddDate(0, 0, -10))
	if err != nil {
		t.Fatal(err)
	}
	soon, _, err := certs.IssueClient(dir, "soon", 365, false, now.AddDate(0, 0, -355))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Text", func(t *testing.T) {
		out := mustCerts(t, "show", files.Cert)
		for _, want := range []string{
			"CN=hookbay dev server",
			"CN=hookbay development CA",
			"localhost",
			"127.0.0.1, ::1",
			"server",
			certs.Fingerprint(certsReadCert(t, files.Cert)),
			"valid for 825 days more",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "EXPIRED") || strings.Contains(out, "WARNING") {
			t.Errorf("a fresh certificate is flagged:\n%s", out)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		out := mustCerts(t, "show", expired)
		if !strings.Contains(out, "EXPIRED") || !strings.Contains(out, "CN=expired") {
			t.Errorf("output does not flag the expired certificate:\n%s", out)
		}
	})
	t.Run("ExpiresSoon", func(t *testing.T) {
		out := mustCerts(t, "show", soon)
		if !strings.Contains(out, "WARNING: expires in 10 days") {
			t.Errorf("output does not warn of expiry in 10 days:\n%s", out)
		}
	})
	t.Run("NotYetValid", func(t *testing.T) {
		var out bytes.Buffer
		cmd := &CertsCommand{Stdout: &out, Stderr: io.Discard, Now: func() time.Time { return now.Add(-2 * time.Hour) }}
		if err := cmd.Run(context.Background(), []string{"show", files.ClientCert}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "not yet valid") {
			t.Errorf("output does not say not yet valid:\n%s", out.String())
		}
	})
	t.Run("JSON", func(t *testing.T) {
		bundle := filepath.Join(dir, "bundle.pem")
		var b []byte
		for _, p := range []string{files.ClientCert, expired, files.CA} {
			pem, _ := os.ReadFile(p)
			b = append(b, pem...)
		}
		if err := os.WriteFile(bundle, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// The flag may also follow the file name.
		out := mustCerts(t, "show", bundle, "--json")
		var got []struct {
			Subject     string    `json:"subject"`
			Issuer      string    `json:"issuer"`
			NotAfter    time.Time `json:"not_after"`
			Usage       []string  `json:"usage"`
			Fingerprint string    `json:"sha256_fingerprint"`
			Status      string    `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(got) != 3 {
			t.Fatalf("got %d certificates, want 3:\n%s", len(got), out)
		}
		if got[0].Subject != "CN=hookbay-client" || got[0].Status != "valid" || strings.Join(got[0].Usage, ",") != "client" {
			t.Errorf("client: %+v", got[0])
		}
		if got[1].Status != "expired" || got[1].Issuer != "CN=hookbay development CA" {
			t.Errorf("expired: %+v", got[1])
		}
		if strings.Join(got[2].Usage, ",") != "CA" || got[2].Fingerprint != certs.Fingerprint(certsReadCert(t, files.CA)) {
			t.Errorf("CA: %+v", got[2])
		}
	})
	t.Run("Errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"show"},
			{"show", filepath.Join(dir, "missing.pem")},
			{"show", files.Key},
			{"show", files.Cert, files.CA},
		} {
			if _, _, err := runCerts(t, args...); err == nil {
				t.Errorf("hookbay certs %s: err = nil, want error", strings.Join(args, " "))
			}
		}
	})
}

func TestCertsCommand_Usage(t *testing.T) {
	_, stderr, err := runCerts(t)
	if exitStatus(t, err) != 2 || !strings.Contains(stderr, "hookbay certs init") {
		t.Errorf("no args: err = %v, stderr = %q; want exit status 2 and the usage", err, stderr)
	}
	_, stderr, err = runCerts(t, "renew")
	if err == nil || !strings.Contains(err.Error(), "renew") || !strings.Contains(stderr, "hookbay certs show") {
		t.Errorf("unknown command: err = %v, stderr = %q", err, stderr)
	}
	stdout, _, err := runCerts(t, "init", "-h")
	if !errors.Is(err, flag.ErrHelp) || exitStatus(t, err) != 0 || !strings.Contains(stdout, "-hosts") {
		t.Errorf("init -h: err = %v, stdout = %q; want the flags and exit status 0", err, stdout)
	}
	_, _, err = runCerts(t, "init", "extra")
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("init extra: err = %v", err)
	}
}
