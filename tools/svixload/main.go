// Command svixload is the signed-event load generator for scripts/bench.sh:
// wrk's Lua cannot compute an HMAC, so this sends Svix-signed events itself.
//
// It opens -c keep-alive connections and runs -c workers in a closed loop,
// each POSTing the same ~-body-bytes Bloom event JSON to -url with a fresh
// svix-id per request ("msg_<run>_<worker>_<n>"), the current svix-timestamp
// and a v1 signature, HMAC-SHA256 over id.timestamp.body with the key
// decoded from -secret (whsec_<base64>). With an empty -secret the requests
// go unsigned, which is the bare Echo baseline.
//
// Latency is recorded for requests started after -warmup, for -d; the
// result is printed one "key: value" a line:
//
//	requests/sec: N   (requests started in the measured window, per second)
//	p50_ms: X
//	p99_ms: Y
//	non2xx: N         (whole run, warm-up included)
//	errors: N         (transport errors, whole run)
//
// followed by "status CODE: N" for every non-2xx status seen; the first
// error and the first non-2xx body go to stderr.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:18081/svix/bloom", "endpoint to POST to")
	conns := flag.Int("c", 200, "connections (and workers)")
	dur := flag.Duration("d", 10*time.Second, "measured duration, after the warm-up")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up, not measured")
	secret := flag.String("secret", "", "whsec_ signing secret; empty sends unsigned requests")
	bodyBytes := flag.Int("body-bytes", 600, "approximate request body size")
	run := flag.String("run", strconv.FormatInt(time.Now().UnixNano(), 36), "run id, part of every svix-id")
	flag.Parse()
	if *conns < 1 || *dur <= 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "svixload: -c must be >= 1, -d > 0, -warmup >= 0")
		os.Exit(2)
	}

	var key []byte
	if *secret != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(*secret, "whsec_"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "svixload: -secret: not whsec_<base64>: %v\n", err)
			os.Exit(2)
		}
		key = k
	}
	body := bloomEvent(*bodyBytes)

	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*dur)

	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{
			client:      client,
			url:         *url,
			body:        body,
			idPrefix:    "msg_" + *run + "_" + strconv.Itoa(i) + "_",
			measureFrom: measureFrom,
			end:         end,
			statuses:    map[int]int{},
			lat:         make([]time.Duration, 0, 4096),
		}
		if key != nil {
			w.mac = hmacSigner(key)
		}
		workers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.loop() }()
	}
	wg.Wait()
	tr.CloseIdleConnections()

	var lat []time.Duration
	var non2xx, errs int
	statuses := map[int]int{}
	var firstErr error
	var firstBad string
	for _, w := range workers {
		lat = append(lat, w.lat...)
		non2xx += w.non2xx
		errs += w.errs
		for s, n := range w.statuses {
			statuses[s] += n
		}
		if firstErr == nil {
			firstErr = w.firstErr
		}
		if firstBad == "" {
			firstBad = w.firstBad
		}
	}
	slices.Sort(lat)

	fmt.Printf("requests: %d\n", len(lat))
	fmt.Printf("duration_s: %.2f\n", dur.Seconds())
	fmt.Printf("body_bytes: %d\n", len(body))
	fmt.Printf("signed: %t\n", key != nil)
	fmt.Printf("requests/sec: %.2f\n", float64(len(lat))/dur.Seconds())
	fmt.Printf("p50_ms: %.2f\n", ms(percentile(lat, 0.50)))
	fmt.Printf("p99_ms: %.2f\n", ms(percentile(lat, 0.99)))
	fmt.Printf("max_ms: %.2f\n", ms(percentile(lat, 1)))
	fmt.Printf("non2xx: %d\n", non2xx)
	fmt.Printf("errors: %d\n", errs)
	codes := make([]int, 0, len(statuses))
	for s := range statuses {
		codes = append(codes, s)
	}
	sort.Ints(codes)
	for _, s := range codes {
		fmt.Printf("status %d: %d\n", s, statuses[s])
	}
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "svixload: first error: %v\n", firstErr)
	}
	if firstBad != "" {
		fmt.Fprintf(os.Stderr, "svixload: first non-2xx: %s\n", firstBad)
	}
}

// worker is one connection's closed loop; its counters are its own, merged
// after the run.
type worker struct {
	client           *http.Client
	url              string
	body             []byte
	idPrefix         string
	mac              *signer
	measureFrom, end time.Time

	lat          []time.Duration
	non2xx, errs int
	statuses     map[int]int
	firstErr     error
	firstBad     string
}

var (
	hdrContentType = []string{"application/json"}
	hdrUserAgent   = []string{"Svix-Webhooks/1.0 (svixload)"}
)

func (w *worker) loop() {
	rd := bytes.NewReader(w.body)
	var n uint64
	var idBuf []byte
	for {
		t0 := time.Now()
		if !t0.Before(w.end) {
			return
		}
		n++
		idBuf = strconv.AppendUint(append(idBuf[:0], w.idPrefix...), n, 10)
		id := string(idBuf)
		// Keys are already canonical, so the map is built without
		// http.Header.Set's canonicalisation.
		h := http.Header{"Content-Type": hdrContentType, "User-Agent": hdrUserAgent}
		if w.mac != nil {
			ts := strconv.FormatInt(t0.Unix(), 10)
			h["Svix-Id"] = []string{id}
			h["Svix-Timestamp"] = []string{ts}
			h["Svix-Signature"] = []string{w.mac.sign(id, ts, w.body)}
		} else {
			h["X-Request-Id"] = []string{id}
		}
		rd.Reset(w.body)
		req, err := http.NewRequest(http.MethodPost, w.url, rd)
		if err != nil {
			w.fail(err)
			return
		}
		req.Header = h
		req.ContentLength = int64(len(w.body))
		resp, err := w.client.Do(req)
		if err != nil {
			w.fail(err)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			w.non2xx++
			w.statuses[resp.StatusCode]++
			if w.firstBad == "" {
				snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				w.firstBad = resp.Status + " " + strings.TrimSpace(string(snippet))
			}
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			w.fail(err)
			continue
		}
		if !t0.Before(w.measureFrom) {
			w.lat = append(w.lat, time.Since(t0))
		}
	}
}

func (w *worker) fail(err error) {
	w.errs++
	if w.firstErr == nil {
		w.firstErr = err
	}
	// Do not spin on a refused connection.
	time.Sleep(10 * time.Millisecond)
}

// signer computes v1 Svix signatures with one reusable HMAC state and
// buffers, so a request costs one HMAC and two small allocations.
type signer struct {
	mac      hash.Hash
	sum, buf []byte
}

func hmacSigner(key []byte) *signer {
	return &signer{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
}

var dot = []byte{'.'}

// sign returns "v1,<base64(HMAC-SHA256(key, id.ts.body))>".
func (s *signer) sign(id, ts string, body []byte) string {
	s.mac.Reset()
	io.WriteString(s.mac, id)
	s.mac.Write(dot)
	io.WriteString(s.mac, ts)
	s.mac.Write(dot)
	s.mac.Write(body)
	s.sum = s.mac.Sum(s.sum[:0])
	s.buf = append(s.buf[:0], "v1,"...)
	s.buf = base64.StdEncoding.AppendEncode(s.buf, s.sum)
	return string(s.buf)
}

// bloomEvent returns a tradeline.transactions_added event of about size
// bytes, padded in a description field.
func bloomEvent(size int) []byte {
	head := `{"type":"tradeline.transactions_added","timestamp":"2030-06-30T12:00:00Z","data":{` +
		`"user_id":"usr_2b7e151628aed2a6","connection_id":"con_abf7158809cf4f3c",` +
		`"tradeline_id":"trl_762e7160f38b4da5","institution":"Example Federal Credit Union",` +
		`"transactions_added":3,"currency":"USD","amount_total":"-142.37",` +
		`"description":"`
	tail := `"}}`
	text := "Posted card transactions synced from the institution since the last refresh. "
	want := max(size-len(head)-len(tail), 0)
	pad := strings.Repeat(text, want/len(text)+1)[:want]
	return []byte(head + pad + tail)
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
