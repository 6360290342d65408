package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/certs"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A handshake refused over an expired client certificate is logged at
// Warn, so that an operator sees why a sender's mTLS fails; handshakes
// that fail for other reasons stay at Debug.
func TestServerErrorLog_ClientCertificate(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	files, err := certs.Init(dir, nil, false, now)
	if err != nil {
		t.Fatal(err)
	}
	expiredCert, expiredKey, err := certs.IssueClient(dir, "old-client", 1, false, now.Add(-72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := certs.Load(certs.Options{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: cfg, ErrorLog: certs.ServerErrorLog(logger),
		Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(expiredCert, expiredKey)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(c *tls.Config) {
		conn, err := tls.Dial("tcp", ln.Addr().String(), c)
		if err == nil {
			conn.Read(make([]byte, 1)) // TLS 1.3 reports the refusal after the handshake
			conn.Close()
		}
	}
	dial(&tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11}) // refused for its version
	dial(&tls.Config{ServerName: "localhost"})                                               // refuses our certificate: not a warning
	dial(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair}})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "level=WARN") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logged := out.String()
	if !strings.Contains(logged, "TLS handshake refused over a client certificate") || !strings.Contains(logged, "expired") {
		t.Fatalf("log:\n%s\nwant a warning about the expired client certificate", logged)
	}
	if strings.Count(logged, "level=") != 1 {
		t.Fatalf("log:\n%s\nwant only the client certificate's warning at Info and above", logged)
	}
}
