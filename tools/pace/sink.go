package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sink is the downstream: it counts what hookbay delivers, once per request
// number, and the accept->delivered latency of each, per window.
type sink struct {
	srv *http.Server
	ln  net.Listener

	newConns atomic.Int64 // connections that reached StateNew
	waiting  atomic.Int64 // deliveries blocked by hold
	gate     atomic.Pointer[chan struct{}]

	mu        sync.Mutex
	seen      []uint64 // bitset of request numbers delivered
	windows   []*window
	delivered int64 // distinct deliveries, all windows
	dups      int64 // a request number seen again
	foreign   int64 // a request that did not come from pace
	abandoned int64 // held deliveries hookbay gave up on before the release
}

// window is a range of request numbers, from start up to the next window's
// start; windows follow one another.
type window struct {
	start     uint64
	delivered int64
	last      time.Time       // the latest first delivery
	lat       []time.Duration // accept->delivered, one per distinct delivery
}

// startSink listens on addr and serves in the background.
func startSink(addr string) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: listen: %w", err)
	}
	s := &sink{ln: ln}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.newConns.Add(1)
			}
		},
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("sink: serve: %v\n", err)
		}
	}()
	return s, nil
}

func (s *sink) close() {
	s.release()
	s.srv.Close()
}

// hold blocks every delivery from now until release.
func (s *sink) hold() {
	ch := make(chan struct{})
	s.gate.Store(&ch)
}

// release answers the held deliveries and lets the next ones through.
func (s *sink) release() {
	if p := s.gate.Swap(nil); p != nil {
		close(*p)
	}
}

// ServeHTTP reads the delivery, waits while held, and counts it.
func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if g := s.gate.Load(); g != nil {
		s.waiting.Add(1)
		select {
		case <-*g:
		case <-r.Context().Done():
		}
		s.waiting.Add(-1)
		if r.Context().Err() != nil {
			// hookbay's attempt timed out: it will deliver again.
			s.mu.Lock()
			s.abandoned++
			s.mu.Unlock()
			return
		}
	}
	s.record(r.Header.Get("X-Request-ID"), time.Now())
	w.WriteHeader(http.StatusOK)
}

// parseID reads "pace-<unixnano>-<n>".
func parseID(id string) (sent time.Time, n uint64, ok bool) {
	rest, ok := strings.CutPrefix(id, "pace-")
	if !ok {
		return time.Time{}, 0, false
	}
	ns, num, ok := strings.Cut(rest, "-")
	if !ok {
		return time.Time{}, 0, false
	}
	nano, err1 := strconv.ParseInt(ns, 10, 64)
	n, err2 := strconv.ParseUint(num, 10, 64)
	if err1 != nil || err2 != nil || n == 0 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, nano), n, true
}

func (s *sink) record(id string, now time.Time) {
	sent, n, ok := parseID(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.foreign++
		return
	}
	word, bit := n/64, uint64(1)<<(n%64)
	for uint64(len(s.seen)) <= word {
		s.seen = append(s.seen, 0)
	}
	if s.seen[word]&bit != 0 {
		s.dups++
		return
	}
	s.seen[word] |= bit
	s.delivered++
	for i := len(s.windows) - 1; i >= 0; i-- {
		if w := s.windows[i]; n >= w.start {
			w.delivered++
			w.last = now
			w.lat = append(w.lat, now.Sub(sent))
			break
		}
	}
}

// window opens a window for the request numbers from start on.
func (s *sink) window(start uint64) *window {
	w := &window{start: start}
	s.mu.Lock()
	s.windows = append(s.windows, w)
	s.mu.Unlock()
	return w
}

// progress returns w's distinct deliveries so far and the time of the last.
func (s *sink) progress(w *window) (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return w.delivered, w.last
}

// latencies returns a sorted copy of w's accept->delivered latencies.
func (s *sink) latencies(w *window) []time.Duration {
	s.mu.Lock()
	lat := append([]time.Duration(nil), w.lat...)
	s.mu.Unlock()
	sortDurations(lat)
	return lat
}

// counts returns the distinct deliveries, duplicates and foreign requests.
func (s *sink) counts() (delivered, dups, foreign int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered, s.dups, s.foreign
}

// waitDelivered polls until w has want distinct deliveries or limit passes;
// it returns whether it got them.
func (s *sink) waitDelivered(w *window, want int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if d, _ := s.progress(w); d >= want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
