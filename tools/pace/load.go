package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gen sends urgent CreateDiscount4 hooks; every request gets the next
// number of the run, so the numbers a phase sends are one contiguous range.
type gen struct {
	client *http.Client
	tr     *http.Transport
	url    string
	auth   []string
	body   []byte
	next   atomic.Uint64 // the last number handed out
}

func newGen(url, auth string, conns int) *gen {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	g := &gen{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, tr: tr, url: url, body: discountBody()}
	if auth != "" {
		g.auth = []string{auth}
	}
	return g
}

func (g *gen) close() { g.tr.CloseIdleConnections() }

// first returns the number the next request will get.
func (g *gen) first() uint64 { return g.next.Load() + 1 }

// result is what a run of the generator saw; every worker keeps its own,
// merged at the end.
type result struct {
	sent, accepted, non2xx, errs int64
	late, unsent                 int64
	lat                          []time.Duration // answer latency of the 2xx
	statuses                     map[int]int64
	firstErr, firstBad           string
}

func (r *result) merge(o *result) {
	r.sent += o.sent
	r.accepted += o.accepted
	r.non2xx += o.non2xx
	r.errs += o.errs
	r.late += o.late
	r.unsent += o.unsent
	r.lat = append(r.lat, o.lat...)
	for s, n := range o.statuses {
		if r.statuses == nil {
			r.statuses = map[int]int64{}
		}
		r.statuses[s] += n
	}
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
	if r.firstBad == "" {
		r.firstBad = o.firstBad
	}
}

// report writes the failures, if any, to w (stderr: not figures).
func (r *result) report(w io.Writer) {
	for s, n := range r.statuses {
		fmt.Fprintf(w, "pace: status %d: %d\n", s, n)
	}
	if r.firstErr != "" {
		fmt.Fprintf(w, "pace: first error: %s\n", r.firstErr)
	}
	if r.firstBad != "" {
		fmt.Fprintf(w, "pace: first non-2xx: %s\n", r.firstBad)
	}
}

var (
	hdrContentType = []string{"application/json"}
	hdrUrgent      = []string{"urgent"}
)

// send POSTs one hook and records the outcome in r.
func (g *gen) send(r *result, rd *bytes.Reader, idBuf *[]byte) {
	n := g.next.Add(1)
	t0 := time.Now()
	b := append((*idBuf)[:0], "pace-"...)
	b = strconv.AppendInt(b, t0.UnixNano(), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, n, 10)
	*idBuf = b
	// Keys are already canonical, so the map is built without
	// http.Header.Set's canonicalisation.
	h := http.Header{"Content-Type": hdrContentType, "X-Bh-Urgency": hdrUrgent, "X-Request-Id": {string(b)}}
	if g.auth != nil {
		h["Authorization"] = g.auth
	}
	rd.Reset(g.body)
	req, err := http.NewRequest(http.MethodPost, g.url, rd)
	if err != nil {
		r.fail(err)
		return
	}
	req.Header = h
	req.ContentLength = int64(len(g.body))
	r.sent++
	resp, err := g.client.Do(req)
	if err != nil {
		r.fail(err)
		return
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if !ok {
		r.non2xx++
		if r.statuses == nil {
			r.statuses = map[int]int64{}
		}
		r.statuses[resp.StatusCode]++
		if r.firstBad == "" {
			snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			r.firstBad = resp.Status + " " + strings.TrimSpace(string(snippet))
		}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		r.fail(err)
		return
	}
	if ok {
		r.accepted++
		r.lat = append(r.lat, time.Since(t0))
	}
}

func (r *result) fail(err error) {
	r.errs++
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// closed runs conns workers, each sending its next request when the last
// is answered, until count requests were sent (count > 0) or for dur.
func (g *gen) closed(conns, count int, dur time.Duration) result {
	var left atomic.Int64
	left.Store(int64(count))
	end := time.Now().Add(dur)
	return g.workers(conns, func(r *result, rd *bytes.Reader, idBuf *[]byte) {
		for {
			if count > 0 && left.Add(-1) < 0 || count == 0 && !time.Now().Before(end) {
				return
			}
			errs := r.errs
			g.send(r, rd, idBuf)
			if r.errs > errs {
				time.Sleep(10 * time.Millisecond) // do not spin on a refused connection
			}
		}
	})
}

// maxLate is how late a request may be and still be sent: later than that,
// the generator, not the server, is what the run would measure.
const maxLate = time.Second

// open sends rate requests a second for dur, each at its slot on the clock,
// from up to senders goroutines: a request waits for a free sender, never
// for another's answer.
func (g *gen) open(rate float64, dur time.Duration, senders int, late time.Duration) result {
	total := int(math.Round(rate * dur.Seconds()))
	interval := time.Duration(float64(time.Second) / rate)
	slots := make(chan time.Time, min(max(total, 1), 1<<16))
	start := time.Now()
	go func() {
		defer close(slots)
		for i := 0; i < total; {
			due := min(int(float64(time.Since(start))/float64(interval))+1, total)
			for ; i < due; i++ {
				slots <- start.Add(time.Duration(i) * interval)
			}
			if i < total {
				// Waking more than once a millisecond costs more than the
				// lateness it would save.
				time.Sleep(max(time.Until(start.Add(time.Duration(i)*interval)), time.Millisecond))
			}
		}
	}()
	return g.workers(senders, func(r *result, rd *bytes.Reader, idBuf *[]byte) {
		for at := range slots {
			switch behind := time.Since(at); {
			case behind > maxLate:
				r.unsent++
				continue
			case behind > late:
				r.late++
			}
			g.send(r, rd, idBuf)
		}
	})
}

// workers runs n copies of loop and merges their results.
func (g *gen) workers(n int, loop func(r *result, rd *bytes.Reader, idBuf *[]byte)) result {
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r := &results[i]
			r.lat = make([]time.Duration, 0, 1024)
			loop(r, bytes.NewReader(nil), new([]byte))
		})
	}
	wg.Wait()
	var all result
	for i := range results {
		all.merge(&results[i])
	}
	sortDurations(all.lat)
	return all
}

// discountBody returns the ~600-byte CreateDiscount4 input that
// scripts/bench.lua sends.
func discountBody() []byte {
	fields := []string{
		`"code":"BENCH-SPRING-10OFF"`,
		`"title":"Spring sale: 10 off your next order"`,
		`"amount":"10.00"`,
		`"currency":"USD"`,
		`"kind":"fixed_amount"`,
		`"customer_email":"jane.doe+bench@example.com"`,
		`"customer_id":"cus_8f3a2b1c9d"`,
		`"min_order_amount":"50.00"`,
		`"expires_at":"2030-06-30T23:59:59Z"`,
		`"usage_limit":1`,
	}
	head := "{" + strings.Join(fields, ",") + `,"notes":"`
	tail := `"}`
	text := "Issued by the loyalty programme as a tier reward. " +
		"Valid once per customer on full-price items only; not combinable " +
		"with other offers. Support may reissue on request. "
	want := 600 - len(head) - len(tail)
	notes := strings.Repeat(text, want/len(text)+1)[:want]
	return []byte(head + notes + tail)
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

// percentile returns the q-quantile of sorted, 0 when it is empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
