package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
)

// logSink keeps a Main's log and passes each line to t.Log until the test
// ends (background loops outlive it).
type logSink struct {
	mu   sync.Mutex
	t    *testing.T
	buf  bytes.Buffer
	done bool
}

func newLogSink(t *testing.T) *logSink {
	s := &logSink{t: t}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.done {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// freeLoopbackPort returns a loopback port free a moment ago: hookbay's
// HTTPS port, which Pebble must be told before hookbay starts.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeHookbayYAML writes a config file into a temporary directory and
// returns its path.
func writeHookbayYAML(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookbay.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runMainFromFile starts hookbay as serve --config path does, logging to
// log, and returns it with how long Run took; the test's end closes it.
func runMainFromFile(t *testing.T, path string, log io.Writer) (*Main, time.Duration) {
	t.Helper()
	cfg, file, err := serveOptions{config: path}.load()
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg)
	m.ConfigFile = file
	m.Logger = slog.New(slog.NewTextHandler(log, nil))
	start := time.Now()
	err = m.Run(context.Background())
	took := time.Since(start).Round(time.Millisecond)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return m, took
}

// runHealthcheck runs hookbay healthcheck with args and returns its exit
// status and output.
func runHealthcheck(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), append([]string{"healthcheck"}, args...), &out, &errOut)
	code := Exit(err, &errOut)
	return code, out.String() + errOut.String()
}

// plainYAML is a config serving Bubblehouse on 127.0.0.1:port with the
// given TLS mode (off or dev).
func plainYAML(port int, dataDir, mode string) string {
	return fmt.Sprintf(`server:
  listen: 127.0.0.1:%d
  data_dir: %s
  tls: {mode: %s}
admin: {listen: "off"}
bubblehouse:
  authorization: %q
  hooks: {CreateDiscount4: {}}
`, port, dataDir, mode, testAuth)
}

// Plain HTTP (tls off): ready is 0; a store that no longer answers makes
// /readyz 503, and nothing listening is not ready either: 1.
func TestHealthcheck_Off(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	path := writeHookbayYAML(t, plainYAML(port, t.TempDir(), "off"))
	m, _ := runMainFromFile(t, path, newLogSink(t))

	code, out := runHealthcheck(t, "--config", path)
	if want := fmt.Sprintf("ready: http://127.0.0.1:%d/readyz", port); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("ready: exit %d, %q; want 0 and %q", code, out, want)
	}

	// The store stops answering: /readyz says so.
	if err := m.DB.Close(); err != nil {
		t.Fatal(err)
	}
	code, out = runHealthcheck(t, "--config", path)
	if code != 1 || !strings.Contains(out, "answered 503") || !strings.Contains(out, "store is not reachable") {
		t.Fatalf("store closed: exit %d, %q; want 1 and /readyz's 503", code, out)
	}

	if err := m.Close(context.Background()); err != nil {
		t.Log(err) // the store was closed under the workers
	}
	code, out = runHealthcheck(t, "--config", path, "--timeout", "2s")
	if code != 1 || !strings.Contains(out, "nothing answers") {
		t.Fatalf("stopped: exit %d, %q; want 1, nothing answers", code, out)
	}
}

// Dev TLS: the certificate is verified against the dev CA in the data
// directory; another CA does not trust it (1), and the answer says
// /readyz itself is fine. Before serve made the CA there is nothing to
// check against: 1.
func TestHealthcheck_Dev(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	dataDir := t.TempDir()
	path := writeHookbayYAML(t, plainYAML(port, dataDir, "dev"))

	code, out := runHealthcheck(t, "--config", path)
	if code != 1 || !strings.Contains(out, "no dev CA yet") {
		t.Errorf("before start-up: exit %d, %q; want 1, no dev CA yet", code, out)
	}

	runMainFromFile(t, path, newLogSink(t))
	code, out = runHealthcheck(t, "--config", path)
	if want := fmt.Sprintf("ready: https://127.0.0.1:%d/readyz", port); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("ready: exit %d, %q; want 0 and %q", code, out, want)
	}

	other, _, err := certs.EnsureDev(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, out = runHealthcheck(t, "--config", path, "--ca", other.CA)
	if code != 1 || !strings.Contains(out, "not trusted for localhost") || !strings.Contains(out, "/readyz says ok") {
		t.Errorf("another CA: exit %d, %q; want 1, not trusted, /readyz ok", code, out)
	}
}

// What the health check cannot do is exit status 2.
func TestHealthcheck_CannotCheck(t *testing.T) {
	t.Parallel()
	path := writeHookbayYAML(t, plainYAML(freeLoopbackPort(t), t.TempDir(), "off"))
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"UnknownFlag", []string{"--config", path, "--nope"}, "flag provided but not defined"},
		{"Argument", []string{"--config", path, "now"}, `unexpected argument "now"`},
		{"Timeout", []string{"--config", path, "--timeout", "0s"}, "--timeout 0s must be positive"},
		{"NoConfig", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{"BadConfig", []string{"--config", writeHookbayYAML(t, "server: {tls: {mode: on}}")}, "server.tls.mode"},
		{"NoCAFile", []string{"--config", writeHookbayYAML(t, plainYAML(1, t.TempDir(), "dev")), "--ca", filepath.Join(t.TempDir(), "ca.pem")}, "CA to trust"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runHealthcheck(t, tc.args...)
			if code != 2 || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, %q; want 2 saying %q", code, out, tc.says)
			}
		})
	}
	code, out := runHealthcheck(t, "-h")
	if code != 0 || !strings.Contains(out, "usage: hookbay healthcheck [--config FILE] [--data DIR] [--timeout 5s]") || !strings.Contains(out, "-ca") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
}

// The address asked is the listen port on loopback, with the scheme and
// the name the mode implies.
func TestHealthcheck_Target(t *testing.T) {
	t.Parallel()
	files, _, err := certs.EnsureDev(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		server     config.ServerConfig
		url, sname string
	}{
		{"OffWildcard", config.ServerConfig{Listen: ":8080", TLS: config.TLSConfig{Mode: "off"}}, "http://127.0.0.1:8080/readyz", ""},
		{"OffAddress", config.ServerConfig{Listen: "127.0.0.2:9000", TLS: config.TLSConfig{Mode: "off"}}, "http://127.0.0.2:9000/readyz", ""},
		{"ACMEIPv6Wildcard", config.ServerConfig{Listen: "[::]:8443", TLS: config.TLSConfig{Mode: "acme", ACME: config.ACMEConfig{Hosts: []string{"Hooks.Example.com."}}}},
			"https://[::1]:8443/readyz", "hooks.example.com"},
		{"ACMEAllIPv4", config.ServerConfig{Listen: "0.0.0.0:443", TLS: config.TLSConfig{Mode: "acme", ACME: config.ACMEConfig{Hosts: []string{"a.example.com", "b.example.com"}}}},
			"https://127.0.0.1:443/readyz", "a.example.com"},
		{"ACMEUnicode", config.ServerConfig{Listen: ":443", TLS: config.TLSConfig{Mode: "acme", ACME: config.ACMEConfig{Hosts: []string{"Bücher.Example.com"}}}},
			"https://127.0.0.1:443/readyz", "xn--bcher-kva.example.com"},
		{"FilesPublicHost", config.ServerConfig{Listen: ":8443", PublicHost: "hooks.example.com", TLS: config.TLSConfig{Mode: "files", CertFile: files.Cert}},
			"https://127.0.0.1:8443/readyz", "hooks.example.com"},
		{"FilesFirstName", config.ServerConfig{Listen: ":8443", TLS: config.TLSConfig{Mode: "files", CertFile: files.Cert}},
			"https://127.0.0.1:8443/readyz", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Config{Server: tc.server}
			h, err := newHealthTarget(&cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			if h.url != tc.url {
				t.Errorf("url %s, want %s", h.url, tc.url)
			}
			switch {
			case tc.sname == "" && h.tls != nil:
				t.Errorf("TLS for plain HTTP")
			case tc.sname != "" && (h.tls == nil || h.tls.ServerName != tc.sname || h.tls.InsecureSkipVerify):
				t.Errorf("TLS %+v, want verification for %s", h.tls, tc.sname)
			}
		})
	}
}
