package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// relay stands in for hookbay: it answers 202 at once and delivers each
// request's X-Request-ID to the sink from a few workers, as the forward
// action does. Every skip-th delivery is dropped when skip > 0, and each
// waits delay first.
type relay struct {
	srv     *httptest.Server
	ids     chan string
	skip    int64
	delay   time.Duration
	n       atomic.Int64
	badAuth atomic.Int64
}

func startRelay(t *testing.T, sinkAddr string, skip int64, delay time.Duration) *relay {
	t.Helper()
	rl := &relay{ids: make(chan string, 100000), skip: skip, delay: delay}
	rl.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") != "Bearer t" || r.Header.Get("X-BH-Urgency") != "urgent" {
			rl.badAuth.Add(1)
		}
		rl.ids <- r.Header.Get("X-Request-ID")
		w.WriteHeader(http.StatusAccepted)
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for range 4 {
		go func() {
			for id := range rl.ids {
				if rl.skip > 0 && rl.n.Add(1)%rl.skip == 0 {
					continue
				}
				time.Sleep(rl.delay)
				req, _ := http.NewRequest(http.MethodPost, "http://"+sinkAddr+"/", strings.NewReader("{}"))
				req.Header.Set("X-Request-ID", id)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	t.Cleanup(func() { rl.srv.Close(); close(rl.ids) })
	return rl
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// figures reads pace's "key: value" lines.
func figures(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			t.Fatalf("line %q is not key: value", sc.Text())
		}
		m[k] = v
	}
	return m
}

func num(t *testing.T, m map[string]string, k string) float64 {
	t.Helper()
	v, ok := m[k]
	if !ok {
		t.Fatalf("no %s in %v", k, m)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", k, v, err)
	}
	return f
}

func TestDrain(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		sink := freeAddr(t)
		rl := startRelay(t, sink, 0, 0)
		var out bytes.Buffer
		args := []string{"-url", rl.srv.URL, "-auth", "Bearer t", "-sink", sink, "-backlog", "500", "-c", "8",
			"-pid", strconv.Itoa(os.Getpid()), "-timeout", "20s"}
		if err := run("drain", args, &out); err != nil {
			t.Fatalf("drain: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		if got, want := num(t, m, "ingest_accepted"), 500.0; got != want {
			t.Errorf("ingest_accepted: got %v, want %v", got, want)
		}
		if got, want := num(t, m, "drain_delivered"), 500.0; got != want {
			t.Errorf("drain_delivered: got %v, want %v", got, want)
		}
		// The relay's four workers block on the held sink, one delivery each.
		if got, want := num(t, m, "held_at_release"), 4.0; got != want {
			t.Errorf("held_at_release: got %v, want %v", got, want)
		}
		// Keep-alive: the four workers' connections, opened before the release.
		if got := num(t, m, "drain_new_conns"); got != 0 {
			t.Errorf("drain_new_conns: got %v, want 0", got)
		}
		if got := num(t, m, "drain_dps"); got <= 0 {
			t.Errorf("drain_dps: got %v, want > 0", got)
		}
		if n := rl.badAuth.Load(); n != 0 {
			t.Errorf("%d requests without the Authorization or urgency header", n)
		}
	})
	t.Run("ErrLost", func(t *testing.T) {
		sink := freeAddr(t)
		rl := startRelay(t, sink, 10, 0)
		var out bytes.Buffer
		args := []string{"-url", rl.srv.URL, "-auth", "Bearer t", "-sink", sink, "-backlog", "100", "-c", "4", "-timeout", "1s"}
		err := run("drain", args, &out)
		if err == nil || !strings.Contains(err.Error(), "90 of 100 accepted requests delivered") {
			t.Fatalf("got %v, want 90 of 100 delivered", err)
		}
	})
}

func TestE2E(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		sink := freeAddr(t)
		rl := startRelay(t, sink, 0, 0)
		var out bytes.Buffer
		args := []string{"-url", rl.srv.URL, "-auth", "Bearer t", "-sink", sink, "-rates", "100,200", "-d", "500ms",
			"-gap", "10ms", "-drain-limit", "10s"}
		if err := run("e2e", args, &out); err != nil {
			t.Fatalf("e2e: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		for _, k := range []string{"r100_sent", "r100_accepted", "r100_delivered"} {
			if got, want := num(t, m, k), 50.0; got != want {
				t.Errorf("%s: got %v, want %v", k, got, want)
			}
		}
		if got, want := num(t, m, "r200_delivered"), 100.0; got != want {
			t.Errorf("r200_delivered: got %v, want %v", got, want)
		}
		num(t, m, "max_pass_rate")
	})
	t.Run("SlowFails", func(t *testing.T) {
		// Every delivery takes 150 ms: p99 over 100 ms, so no rate passes.
		sink := freeAddr(t)
		rl := startRelay(t, sink, 0, 150*time.Millisecond)
		var out bytes.Buffer
		args := []string{"-url", rl.srv.URL, "-auth", "Bearer t", "-sink", sink, "-rates", "20", "-d", "500ms",
			"-drain-limit", "10s"}
		if err := run("e2e", args, &out); err != nil {
			t.Fatalf("e2e: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		if got := m["r20_pass"]; got != "false" {
			t.Errorf("r20_pass: got %q, want false", got)
		}
		if got := num(t, m, "r20_p99_ms"); got < 150 {
			t.Errorf("r20_p99_ms: got %v, want >= 150", got)
		}
		if got := num(t, m, "max_pass_rate"); got != 0 {
			t.Errorf("max_pass_rate: got %v, want 0", got)
		}
	})
	t.Run("StopsWhenNotDrained", func(t *testing.T) {
		// Half the deliveries are lost: the first rate never drains.
		sink := freeAddr(t)
		rl := startRelay(t, sink, 2, 0)
		var out bytes.Buffer
		args := []string{"-url", rl.srv.URL, "-auth", "Bearer t", "-sink", sink, "-rates", "50,100", "-d", "200ms",
			"-drain-limit", "300ms"}
		if err := run("e2e", args, &out); err != nil {
			t.Fatalf("e2e: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		if got, want := m["stopped_at"], "50"; got != want {
			t.Errorf("stopped_at: got %q, want %q", got, want)
		}
		if _, ok := m["r100_sent"]; ok {
			t.Errorf("rate 100 ran after 50 did not drain")
		}
	})
}

func TestLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	t.Run("PID", func(t *testing.T) {
		var out bytes.Buffer
		args := []string{"-url", srv.URL, "-rate", "200", "-d", "500ms", "-pid", strconv.Itoa(os.Getpid())}
		if err := run("load", args, &out); err != nil {
			t.Fatalf("load: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		if got, want := num(t, m, "accepted"), 100.0; got != want {
			t.Errorf("accepted: got %v, want %v", got, want)
		}
		// Clock ticks are 10 ms: 100 requests may cost this process less.
		if got := num(t, m, "cpu_us_per_req"); got < 0 {
			t.Errorf("cpu_us_per_req: got %v, want >= 0", got)
		}
		// Each request, 5 ms apart, wakes a thread of this process.
		if got := num(t, m, "switches_per_req"); got <= 0 {
			t.Errorf("switches_per_req: got %v, want > 0", got)
		}
	})
	t.Run("NoPID", func(t *testing.T) {
		var out bytes.Buffer
		if err := run("load", []string{"-url", srv.URL, "-c", "2", "-n", "10"}, &out); err != nil {
			t.Fatalf("load: %v\n%s", err, out.String())
		}
		m := figures(t, out.String())
		if got, want := num(t, m, "accepted"), 10.0; got != want {
			t.Errorf("accepted: got %v, want %v", got, want)
		}
		for _, k := range []string{"cpu_us_per_req", "switches_per_req"} {
			if v, ok := m[k]; ok {
				t.Errorf("%s: %s without -pid, want none", k, v)
			}
		}
	})
}

func TestParseID(t *testing.T) {
	sent, n, ok := parseID("pace-1700000000123456789-42")
	if !ok || n != 42 || sent.UnixNano() != 1700000000123456789 {
		t.Errorf("got %v, %d, %t", sent, n, ok)
	}
	for _, bad := range []string{"", "bench-1-2", "pace-1", "pace-x-2", "pace-1-0", "pace-1-y"} {
		if _, _, ok := parseID(bad); ok {
			t.Errorf("%q: parsed, want refused", bad)
		}
	}
}

func TestCPUTicks(t *testing.T) {
	c0, err := cpuTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1000000 {
			x += i
		}
		if c1, err := cpuTicks(os.Getpid()); err != nil {
			t.Fatal(err)
		} else if c1 > c0 {
			return
		}
	}
	t.Errorf("CPU time did not grow in 10 s of spinning (%d)", x)
}

func TestContextSwitches(t *testing.T) {
	x0, err := contextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		time.Sleep(time.Millisecond) // each sleep switches a thread out
	}
	x1, err := contextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if x1 < x0+10 {
		t.Errorf("context switches went from %d to %d over 20 sleeps, want at least 10 more", x0, x1)
	}
	if _, err := contextSwitches(-1); err == nil {
		t.Error("a process that does not exist: got no error")
	}
}

func TestParseRates(t *testing.T) {
	if got, err := parseRates("500, 1000,2000"); err != nil || len(got) != 3 || got[2] != 2000 {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "500,500", "1000,500", "0", "x"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("%q: accepted, want an error", bad)
		}
	}
}
