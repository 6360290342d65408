package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

// syncBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs "hookbay serve args..." until the returned stop is called.
func startServe(t *testing.T, args ...string) (out *syncBuffer, stop func() error) {
	t.Helper()
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, append([]string{"serve"}, args...), out, out) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Try Hello1") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out, func() error { cancel(); return <-done }
}

var (
	bannerURL  = regexp.MustCompile(`Bubblehouse hook URL:\s+(\S+)`)
	bannerAuth = regexp.MustCompile(`Authorization value:\s+(Bearer \S+)`)
	bannerCA   = regexp.MustCompile(`CA certificate:\s+(\S+)`)
	bannerCurl = regexp.MustCompile(`(?m)^\s+(curl .*)$`)
)

// Dev mode with no config: HTTPS with a generated CA kept across restarts,
// generated credentials, and a banner whose curl command works.
func TestServe_DevMode(t *testing.T) {
	dir := t.TempDir()
	out, stop := startServe(t, "--data", dir, "--listen", "127.0.0.1:0")
	banner := out.String()
	url, auth, ca := bannerURL.FindStringSubmatch(banner), bannerAuth.FindStringSubmatch(banner), bannerCA.FindStringSubmatch(banner)
	if url == nil || auth == nil || ca == nil || bannerCurl.FindString(banner) == "" {
		t.Fatalf("banner lacks URL, Authorization, CA or curl:\n%s", banner)
	}
	if !strings.HasPrefix(url[1], "https://localhost:") || !strings.HasSuffix(url[1], "/bubblehouse/:name") {
		t.Fatalf("hook URL template=%s", url[1])
	}
	for _, want := range []string{"config: none", "Listening on:          127.0.0.1 only (loopback); to accept other machines: hookbay serve --listen :"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	pem := readFile(t, ca[1])
	client := trustingClient(t, ca[1])
	hello := func(u string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", strings.Replace(u, ":name", "Hello1", 1), strings.NewReader(`{"magic":"dev"}`))
		req.Header.Set("Authorization", auth[1])
		req.Header.Set("X-BH-Urgency", "real-time")
		req.Header.Set("X-Request-ID", "dev-hello")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := hello(url[1])
	if resp.StatusCode != 200 || !strings.Contains(body, `"magic":"dev"`) || resp.Proto != "HTTP/2.0" {
		t.Fatalf("Hello1 over TLS: %s %d %s", resp.Proto, resp.StatusCode, body)
	}
	// The banner's Svix endpoint accepts an event signed with its secret.
	svixURL := regexp.MustCompile(`Svix endpoint URL:\s+(\S+)`).FindStringSubmatch(banner)
	svixSec := regexp.MustCompile(`Svix signing secret:\s+(whsec_\S+)`).FindStringSubmatch(banner)
	if svixURL == nil || svixSec == nil {
		t.Fatalf("banner lacks the Svix endpoint or secret:\n%s", banner)
	}
	ev := `{"type":"user.created"}`
	req, _ := http.NewRequest("POST", svixURL[1], strings.NewReader(ev))
	req.Header.Set("svix-id", "msg_dev")
	req.Header.Set("svix-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("svix-signature", hmacSign(svixSec[1], "msg_dev", time.Now(), ev))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed event to the dev endpoint: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A client that does not trust the dev CA cannot connect.
	if _, err := http.Post(strings.Replace(url[1], ":name", "Hello1", 1), "application/json", nil); err == nil {
		t.Fatal("untrusted client connected")
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	creds, _ := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if fi, err := os.Stat(filepath.Join(dir, "credentials.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials.json mode: %v %v", fi, err)
	}

	// A restart keeps the CA and the credentials.
	out2, stop2 := startServe(t, "--data", dir, "--listen", "127.0.0.1:0")
	defer stop2()
	if a2 := bannerAuth.FindStringSubmatch(out2.String()); a2 == nil || a2[1] != auth[1] {
		t.Fatalf("credentials changed across restart")
	}
	if creds2, _ := os.ReadFile(filepath.Join(dir, "credentials.json")); !bytes.Equal(creds, creds2) {
		t.Fatal("credentials.json rewritten")
	}
	if pem2 := readFile(t, ca[1]); pem != pem2 {
		t.Fatal("CA regenerated across restart")
	}
	resp, body = hello(bannerURL.FindStringSubmatch(out2.String())[1])
	if resp.StatusCode != 200 {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
}

// --http serves plain HTTP for ngrok, with the same credentials.
func TestServe_HTTP(t *testing.T) {
	out, stop := startServe(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http")
	defer stop()
	u := bannerURL.FindStringSubmatch(out.String())[1]
	if !strings.HasPrefix(u, "http://localhost:") || strings.Contains(out.String(), "--cacert") {
		t.Fatalf("banner for --http:\n%s", out)
	}
	req, _ := http.NewRequest("POST", strings.Replace(u, ":name", "Hello1", 1), strings.NewReader(`{"magic":"x"}`))
	req.Header.Set("Authorization", bannerAuth.FindStringSubmatch(out.String())[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Hello1 over HTTP: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestRun_Commands(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"version"}, &out, &out); err != nil || !strings.HasPrefix(out.String(), "hookbay ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	if err := Run(context.Background(), nil, &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("no command: %v", err)
	}
	if err := Run(context.Background(), []string{"bogus"}, &out, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := Run(context.Background(), []string{"serve", "--nope"}, &out, &out); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

// A configured server without credentials refuses to start, naming the key;
// so does one that serves no sender, or whose values are wrong.
func TestServe_ConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, yaml, says string }{
		{"NoSender", "server: {listen: '127.0.0.1:0', tls: {mode: 'off'}}\n", "no sender is configured: set bubblehouse.authorization (or bubblehouse.jwt_secret) and bubblehouse.hooks, svix.endpoints, or bloomreach.webhooks"},
		{"NoSecret", "server: {listen: '127.0.0.1:0', tls: {mode: 'off'}}\nbubblehouse: {hooks: {CreateDiscount4: {}}}\n", "bubblehouse.authorization or bubblehouse.jwt_secret must be set"},
		{"NestedPaths", "bubblehouse: {authorization: x, path: /hooks}\nsvix: {path: /hooks/svix}\n", `svix.path "/hooks/svix" is inside bubblehouse.path "/hooks"`},
		{"DevTLSWithFiles", "server: {tls: {mode: dev, cert_file: /etc/hookbay/cert.pem, key_file: /etc/hookbay/key.pem}}\nbubblehouse: {authorization: x}\n", "server.tls.cert_file and server.tls.key_file: read only when server.tls.mode is files"},
		{"NoSvixSecret", "bubblehouse: {authorization: x}\nsvix: {endpoints: {bloom: {}}}\n", "svix.endpoints.bloom.secrets: at least one whsec_ signing secret is required"},
		{"UnknownKey", "server: {listen: '127.0.0.1:0', lisen: x}\n", "server.lisen: unknown key"},
		{"MissingEnv", "bubblehouse: {authorization: '${HOOKBAY_TEST_UNSET_VAR}'}\n", "bubblehouse.authorization: environment variable HOOKBAY_TEST_UNSET_VAR is not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			os.WriteFile(path, []byte(tt.yaml+"server_data_placeholder: 1\n"[:0]), 0o600)
			var out bytes.Buffer
			err := Run(context.Background(), []string{"serve", "--config", path, "--data", dir}, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want %q", err, tt.says)
			}
		})
	}
}

// Slow clients cannot hold a connection: one that never finishes its
// headers is cut off by server.timeouts.read_header.
func TestServe_SlowClient(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) { c.Server.Timeouts.ReadHeader = config.Duration(200 * time.Millisecond) })
	conn, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /bubblehouse/Hello1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server kept a stalled connection open for 5 s")
			}
			break // closed by the server
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cut off after %s, want about 200ms", d)
	}
}

// A body that stalls or is cut off before Content-Length bytes arrive gets
// a JSON error that names the cause, with a status the sender retries: 408,
// and 503 for Bloomreach, which stops a campaign on most 4xx
// (bloomreach-endpoint-requirements.txt, "Retry policy"). SendEvent1 gets
// the error too, not 200 invalid_data, which would settle its request ID
// with the event undelivered. Nothing is queued.
func TestServe_SlowBody(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Server.Timeouts.Read = config.Duration(300 * time.Millisecond)
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
	})
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(brUser+":"+brPass))
	for _, tt := range []struct {
		name, path, auth string
		cut              bool // close the write side instead of stalling
		want             int
		wantCause        string
	}{
		{"BubblehouseStalled", "/bubblehouse/CreateDiscount4", testAuth, false, 408, "read timeout"},
		{"BubblehouseCutOff", "/bubblehouse/CreateDiscount4", testAuth, true, 408, "connection ended"},
		{"SendEvent1Stalled", "/bubblehouse/SendEvent1", testAuth, false, 408, "read timeout"},
		{"BloomreachStalled", "/bloomreach/sms", basic, false, 503, "read timeout"},
		{"BloomreachCutOff", "/bloomreach/sms", basic, true, 503, "connection ended"},
		{"SvixStalled", "/svix/bloom", "", false, 408, "read timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				"Authorization: %s\r\nX-BH-Urgency: urgent\r\nX-Request-ID: slow-%s\r\nContent-Length: 100\r\n\r\n{\"a\":",
				tt.path, tt.auth, tt.name)
			if tt.cut {
				conn.(*net.TCPConn).CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			defer resp.Body.Close()
			var eb struct{ Code, Error string }
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if resp.StatusCode != tt.want || eb.Code != "incomplete" || !strings.Contains(eb.Error, tt.wantCause) {
				t.Fatalf("answer %d %+v, want %d incomplete naming %q", resp.StatusCode, eb, tt.want, tt.wantCause)
			}
			if strings.Contains(eb.Error, "127.0.0.1") {
				t.Fatalf("error %q shows a socket address", eb.Error)
			}
		})
	}
	jobs, err := m.DB.FindJobs(context.Background(), hooks.JobFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Fatalf("jobs=%d, want none queued from incomplete bodies", len(jobs))
	}
	// Bloomreach's token requests read it the same way, in OAuth's format.
	t.Run("TokenCutOff", func(t *testing.T) {
		conn, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: 100\r\n\r\ngrant_type=client")
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := oauthError(t, resp)
		if resp.StatusCode != 503 || got.Error != "invalid_request" || !strings.Contains(got.Desc, "connection ended") {
			t.Fatalf("answer %d %+v, want 503 invalid_request naming the cut", resp.StatusCode, got)
		}
	})
}

// A chunked body whose encoding is malformed is bad input, not a transfer
// that may succeed on retry: 400 invalid, saying so. SendEvent1 gets the
// 400 too, not 200 invalid_data, which would settle its request ID: a
// sender whose chunking was garbled on the way retries with the event.
func TestServe_MalformedChunked(t *testing.T) {
	m := MustRunMain(t, nil)
	for _, tt := range []struct{ name, hook, chunks string }{
		{"BadSize", "CreateDiscount4", "zz\r\n{}\r\n0\r\n\r\n"},
		{"LongSizeLine", "CreateDiscount4", "2" + strings.Repeat(" ", 5000) + "\r\n{}\r\n0\r\n\r\n"},
		{"SendEvent1", "SendEvent1", "zz\r\n{}\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /bubblehouse/%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nX-Request-ID: chunk-%s\r\n"+
				"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%s", tt.hook, testAuth, tt.name, tt.chunks)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb struct{ Code, Error string }
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 400 || eb.Code != "invalid" || !strings.Contains(eb.Error, "chunked") {
				t.Fatalf("answer %d %+v, want 400 invalid naming the chunked encoding", resp.StatusCode, eb)
			}
		})
	}
}

// The answer to a stalled body goes out even when the write deadline, set
// when the headers arrived, runs out with the read timeout (read and write
// timeouts alike, as in the defaults): hookbay extends it for the answer.
func TestServe_SlowBodyWriteDeadline(t *testing.T) {
	cfg := smallConfig(t)
	cfg.ApplyDefaults()
	// Below what Validate allows, to keep the test short: the deadlines
	// relate as with the defaults.
	cfg.Server.Timeouts.Read, cfg.Server.Timeouts.Write = config.Duration(300*time.Millisecond), config.Duration(300*time.Millisecond)
	m := NewMain(cfg)
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	conn, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /bubblehouse/CreateDiscount4 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{", testAuth)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 408 {
		t.Fatalf("status=%d, want 408", resp.StatusCode)
	}
}

// buildBinary builds hookbay into the test's temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hookbay")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// hookbayProcess is the real binary, running.
type hookbayProcess struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	addr string
}

// listeningRE finds the address in the start-up line, in text (dev mode)
// or JSON (the default with a config file).
var listeningRE = regexp.MustCompile(`hookbay listening"?(?: addr=|,"addr":")([^"\s]+)`)

// startBinary runs the binary with args until it listens; it is killed
// when the test ends if it is still running.
func startBinary(t *testing.T, bin string, args ...string) *hookbayProcess {
	t.Helper()
	p := &hookbayProcess{out: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	// Generous: under the whole suite with -race, a start has taken over 10 s.
	deadline := time.Now().Add(30 * time.Second)
	for !listeningRE.MatchString(p.out.String()) || (contains(args, "--http") && bannerAuth.FindString(p.out.String()) == "") {
		if time.Now().After(deadline) {
			t.Fatalf("hookbay did not start:\n%s", p.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.addr = listeningRE.FindStringSubmatch(p.out.String())[1]
	return p
}

// SIGTERM stops the real binary gracefully: in-flight work finishes, the
// store is closed and the exit status is 0. What was acknowledged before the
// signal is in the database afterwards.
func TestServe_SIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t)
	p := startBinary(t, bin, "serve", "--http", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	cmd, out := p.cmd, p.out
	// Exit statuses a pipeline tells apart: 1 when conform's checks ran and
	// some failed, 2 when the command could not do its work.
	template := bannerURL.FindStringSubmatch(out.String())[1]
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"conform", "--sender", "bubblehouse"}, 2}, // no --url
		{[]string{"conform", "--sender", "bubblehouse", "--url", template, "--authorization", "Bearer wrong"}, 1},
	} {
		err := exec.Command(bin, tt.args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.want {
			t.Fatalf("hookbay %v: %v, want exit status %d", tt.args, err, tt.want)
		}
	}
	u := strings.Replace(template, ":name", "CreateDiscount4", 1)
	req, _ := http.NewRequest("POST", u, strings.NewReader(`{"code":"TERM"}`))
	req.Header.Set("Authorization", bannerAuth.FindStringSubmatch(out.String())[1])
	req.Header.Set("X-BH-Urgency", "urgent")
	req.Header.Set("X-Request-ID", "before-sigterm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("hook before SIGTERM: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
	}
	db, err := sqlite.Open(filepath.Join(dir, "data", "hookbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.FindRequests(context.Background(), hooks.RequestFilter{RequestID: "before-sigterm"})
	if err != nil || len(recs) != 1 || recs[0].Status != 202 {
		t.Fatalf("acknowledged request after restart: %v %v", recs, err)
	}
}

// Never acknowledge before it is durable: hookbay is killed with SIGKILL
// while 16 clients send hooks; every request that got a 2xx is in the
// database when it is opened again.
func TestServe_SIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	p := startBinary(t, buildBinary(t), "serve", "--http", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	cmd, out := p.cmd, p.out
	u := strings.Replace(bannerURL.FindStringSubmatch(out.String())[1], ":name", "CreateDiscount4", 1)
	auth := bannerAuth.FindStringSubmatch(out.String())[1]

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("kill-%d-%d", w, i)
				req, _ := http.NewRequest("POST", u, strings.NewReader(`{"code":"K"}`))
				req.Header.Set("Authorization", auth)
				req.Header.Set("X-BH-Urgency", "urgent")
				req.Header.Set("X-Request-ID", id)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	waitUntil(t, 10*time.Second, "requests acknowledged while the clients send", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no request was acknowledged before the kill")
	}
	db, err := sqlite.Open(filepath.Join(dir, "data", "hookbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range acked {
		recs, err := db.FindRequests(context.Background(), hooks.RequestFilter{RequestID: id})
		if err != nil || len(recs) != 1 {
			t.Fatalf("request %s was acknowledged but is not in the store after SIGKILL (%v)", id, err)
		}
	}
	t.Logf("%d acknowledged requests, all in the store after SIGKILL", len(acked))
}

// serveFile runs "hookbay serve" with the config text, plain HTTP on a
// loopback port and a data directory under t.TempDir() unless the text
// says otherwise, until the test ends. It returns the address and the
// output.
func serveFile(t *testing.T, yaml string, args ...string) (addr string, out *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hookbay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"serve", "--config", path, "--http", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, args...)
	go func() { done <- Run(ctx, args, out, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !listeningRE.MatchString(out.String()) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve exited: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return listeningRE.FindStringSubmatch(out.String())[1], out
}

// status POSTs body to addr+path with the headers and returns the status.
func status(t *testing.T, addr, path, body string, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A config with only a Svix endpoint, or only Bloomreach webhooks,
// starts; only the configured sender is served, and the others' routes
// answer 404 (they used to refuse to start for want of a Bubblehouse
// secret).
func TestServe_SingleSender(t *testing.T) {
	t.Run("SvixOnly", func(t *testing.T) {
		addr, out := serveFile(t, "svix: {endpoints: {bloom: {secrets: ['"+svixSecret+"']}}}\n")
		if !strings.Contains(out.String(), `"senders":"svix"`) { // JSON: a config file's default
			t.Fatalf("the log does not say which senders are served:\n%s", out)
		}
		ev := `{"type":"user.created"}`
		now := time.Now()
		if got := status(t, addr, "/svix/bloom", ev, map[string]string{"svix-id": "msg_1", "svix-timestamp": fmt.Sprint(now.Unix()),
			"svix-signature": hmacSign(svixSecret, "msg_1", now, ev)}); got != 200 {
			t.Fatalf("signed event: %d, want 200", got)
		}
		for _, path := range []string{"/bubblehouse/Hello1", "/bloomreach/sample", "/oauth/token"} {
			if got := status(t, addr, path, `{"magic":"x"}`, map[string]string{"Authorization": "Bearer x"}); got != 404 {
				t.Errorf("%s: %d, want 404 for a sender that is not configured", path, got)
			}
		}
	})
	t.Run("BloomreachOnly", func(t *testing.T) {
		addr, _ := serveFile(t, "bloomreach: {webhooks: {sms: {auth: {headers: {X-Api-Key: k3y}}}}}\n")
		if got := status(t, addr, "/bloomreach/sms", `{"to":"+1"}`, map[string]string{"X-Api-Key": "k3y", "X-Request-ID": "br-1"}); got != 200 {
			t.Fatalf("webhook: %d, want 200", got)
		}
		for _, path := range []string{"/bubblehouse/Hello1", "/svix/bloom"} {
			if got := status(t, addr, path, `{}`, nil); got != 404 {
				t.Errorf("%s: %d, want 404", path, got)
			}
		}
	})
}

// hookbay.yaml in the working directory is read when --config is not
// given, and the log says so; it used to be ignored for dev mode.
func TestServe_ConfigInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	yaml := "server: {listen: '127.0.0.1:0', tls: {mode: 'off'}, data_dir: data}\nbubblehouse: {authorization: 'Bearer from-file', hooks: {CreateDiscount4: {}}}\n"
	if err := os.WriteFile(config.DefaultPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"serve"}, out, out) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, 10*time.Second, "the server to listen", func() bool { return listeningRE.MatchString(out.String()) })
	log := out.String()
	if !strings.Contains(log, "config: hookbay.yaml") || !strings.Contains(log, `"config":"hookbay.yaml"`) || strings.Contains(log, "dev mode") {
		t.Fatalf("the log does not say hookbay.yaml was read, or dev mode started:\n%s", log)
	}
	addr := listeningRE.FindStringSubmatch(log)[1]
	if got := status(t, addr, "/bubblehouse/Hello1", `{"magic":"m"}`, map[string]string{"Authorization": "Bearer from-file"}); got != 200 {
		t.Fatalf("Hello1 with the file's Authorization: %d", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "hookbay.db")); err != nil {
		t.Fatalf("the file's data_dir is not used: %v", err)
	}
}

// The configuration serve runs with: dev mode listens on loopback unless
// --listen says otherwise; a config file keeps its documented default.
func TestServe_Options(t *testing.T) {
	t.Chdir(t.TempDir())
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("bubblehouse: {authorization: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		o          serveOptions
		listen     string
		mode, path string
	}{
		{"Dev", serveOptions{}, DevListen, "dev", ""},
		{"DevHTTP", serveOptions{plain: true}, DevListenHTTP, "off", ""},
		{"DevListen", serveOptions{listen: ":8443"}, ":8443", "dev", ""},
		{"File", serveOptions{config: file}, config.DefaultListen, "dev", file},
		{"FileHTTP", serveOptions{config: file, plain: true}, config.DefaultListenHTTP, "off", file},
		{"FileListen", serveOptions{config: file, listen: "127.0.0.1:9"}, "127.0.0.1:9", "dev", file},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, path, err := tt.o.load()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.Listen != tt.listen || cfg.Server.TLS.Mode != tt.mode || path != tt.path {
				t.Fatalf("listen %q mode %q file %q, want %q %q %q", cfg.Server.Listen, cfg.Server.TLS.Mode, path, tt.listen, tt.mode, tt.path)
			}
			if time.Duration(cfg.Queue.Lease) == 0 {
				t.Fatal("defaults not applied")
			}
		})
	}
	t.Run("ErrInWorkingDirectoryFile", func(t *testing.T) {
		if err := os.WriteFile(config.DefaultPath, []byte("sever: {}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(config.DefaultPath)
		_, _, err := serveOptions{}.load()
		if err == nil || !strings.Contains(err.Error(), "hookbay.yaml (read from the working directory") || !strings.Contains(err.Error(), "sever: unknown key") {
			t.Fatalf("err=%v, want one naming hookbay.yaml and the key", err)
		}
	})
}

// unwritableDir returns an existing directory in which no file can be
// created, or skips the test (root writes through permissions).
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	for _, d := range []string{dir, "/sys/kernel"} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if f, err := os.CreateTemp(d, "probe-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
			continue
		}
		return d
	}
	t.Skip("no directory here refuses to be written to")
	return ""
}

// --data that cannot be used fails with a message naming the directory
// and why, not with the store's "unable to open database file".
func TestServe_DataDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "hookbay.yaml")
	if err := os.WriteFile(cfgPath, []byte("bubblehouse: {authorization: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, data, says string }{
		{"NotWritable", unwritableDir(t), "not writable"},
		{"AFile", file, "cannot create it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(context.Background(), []string{"serve", "--config", cfgPath, "--http", "--listen", "127.0.0.1:0", "--data", tt.data}, &out, &out)
			if err == nil || !strings.Contains(err.Error(), "data directory "+tt.data+": "+tt.says) {
				t.Fatalf("err=%v, want one naming data directory %s and saying %q", err, tt.data, tt.says)
			}
		})
	}
}
