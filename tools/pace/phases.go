package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// settle is how long pace waits after the last delivery before reading
// hookbay's CPU time, so that the last completions are in it.
const settle = 100 * time.Millisecond

// p99Limit is the accept->delivered p99 a rate must stay within to pass.
const p99Limit = 100 * time.Millisecond

// printer writes "key: value" lines, every key with one prefix.
type printer struct {
	w      io.Writer
	prefix string
}

func newPrinter(w io.Writer, prefix string) printer { return printer{w, prefix} }

func (p printer) int(k string, v int64) { fmt.Fprintf(p.w, "%s%s: %d\n", p.prefix, k, v) }
func (p printer) float(k string, v float64) {
	fmt.Fprintf(p.w, "%s%s: %s\n", p.prefix, k, strconv.FormatFloat(v, 'f', 2, 64))
}
func (p printer) str(k, v string) { fmt.Fprintf(p.w, "%s%s: %s\n", p.prefix, k, v) }

// runDrain fills a backlog with the sink held, then times its delivery.
func runDrain(out io.Writer, o options) error {
	s, err := startSink(o.sink)
	if err != nil {
		return err
	}
	defer s.close()
	g := newGen(o.url, o.auth, o.conns)
	defer g.close()
	cpu := cpuMeter{o.pid, o.hz}
	p := newPrinter(out, "")

	s.hold()
	w := s.window(g.first())
	c0, err := cpu.read()
	if err != nil {
		return err
	}
	t0 := time.Now()
	r := g.closed(o.conns, o.backlog, 0)
	ingest := time.Since(t0)
	c1, err := cpu.read()
	if err != nil {
		return err
	}
	r.report(os.Stderr)
	p.int("backlog", int64(o.backlog))
	p.int("ingest_connections", int64(o.conns))
	p.int("ingest_accepted", r.accepted)
	p.int("ingest_non2xx", r.non2xx)
	p.int("ingest_errors", r.errs)
	p.float("ingest_s", ingest.Seconds())
	p.float("ingest_rps", float64(r.accepted)/ingest.Seconds())
	p.float("ingest_p99_ms", ms(percentile(r.lat, 0.99)))
	p.float("ingest_cpu_us_per_req", cpu.perUnit(c1-c0, r.accepted))
	if r.accepted == 0 {
		return fmt.Errorf("no request was accepted (%d non-2xx, %d errors)", r.non2xx, r.errs)
	}

	p.int("held_at_release", s.waiting.Load())
	conns0 := s.newConns.Load()
	released := time.Now()
	s.release()
	if !s.waitDelivered(w, r.accepted, o.timeout) {
		d, _ := s.progress(w)
		return fmt.Errorf("%d of %d accepted requests delivered %s after the release", d, r.accepted, o.timeout)
	}
	time.Sleep(settle)
	c2, err := cpu.read()
	if err != nil {
		return err
	}
	delivered, last := s.progress(w)
	drain := last.Sub(released)
	newConns := s.newConns.Load() - conns0
	_, dups, foreign := s.counts()
	p.int("drain_delivered", delivered)
	p.int("drain_duplicates", dups)
	p.int("drain_foreign", foreign)
	p.float("drain_s", drain.Seconds())
	p.float("drain_dps", float64(delivered)/drain.Seconds())
	p.float("drain_cpu_us_per_delivery", cpu.perUnit(c2-c1, delivered))
	p.int("drain_new_conns", newConns)
	p.float("drain_new_conns_per_delivery", float64(newConns)/float64(delivered))
	p.int("total_new_conns", s.newConns.Load())
	if delivered > r.accepted {
		fmt.Fprintf(os.Stderr, "pace drain: %d distinct deliveries for %d accepted requests: some not answered 2xx were delivered\n", delivered, r.accepted)
	}
	return nil
}

// runE2E runs the open loop at each rate in turn, while they drain.
func runE2E(out io.Writer, o options) error {
	s, err := startSink(o.sink)
	if err != nil {
		return err
	}
	defer s.close()
	g := newGen(o.url, o.auth, o.senders)
	defer g.close()
	best := 0
	for i, rate := range o.rates {
		if i > 0 {
			time.Sleep(o.gap)
		}
		drained, pass, err := runRate(out, s, g, o, "r"+strconv.Itoa(rate)+"_", rate)
		if err != nil {
			return err
		}
		if pass {
			best = rate
		}
		if !drained {
			fmt.Fprintf(out, "stopped_at: %d\n", rate)
			break
		}
	}
	fmt.Fprintf(out, "max_pass_rate: %d\n", best)
	return nil
}

// runLow runs one open-loop window at the low rate.
func runLow(out io.Writer, o options) error {
	s, err := startSink(o.sink)
	if err != nil {
		return err
	}
	defer s.close()
	g := newGen(o.url, o.auth, o.senders)
	defer g.close()
	_, _, err = runRate(out, s, g, o, "low_", o.rate)
	return err
}

// runRate sends rate requests a second for o.dur, waits up to o.drainTO for
// them to be delivered, and prints the window's figures with prefix. It
// returns whether the window drained and whether the rate passed.
func runRate(out io.Writer, s *sink, g *gen, o options, prefix string, rate int) (drained, pass bool, err error) {
	cpu := cpuMeter{o.pid, o.hz}
	p := newPrinter(out, prefix)
	w := s.window(g.first())
	u0, err := cpu.used()
	if err != nil {
		return false, false, err
	}
	r := g.open(float64(rate), o.dur, o.senders, o.late)
	end := time.Now()
	atEnd, _ := s.progress(w)
	drained = s.waitDelivered(w, r.accepted, o.drainTO)
	delivered, last := s.progress(w)
	time.Sleep(settle)
	u1, err := cpu.used()
	if err != nil {
		return false, false, err
	}
	r.report(os.Stderr)
	lat := s.latencies(w)
	pending := r.accepted - atEnd
	p99 := percentile(lat, 0.99)
	pass = drained && r.accepted > 0 && pending < int64(rate) && p99 <= p99Limit &&
		r.non2xx+r.errs+r.unsent == 0
	drainS := 0.0
	if delivered > 0 && last.After(end) {
		drainS = last.Sub(end).Seconds()
	}
	p.int("sent", r.sent+r.unsent)
	p.int("accepted", r.accepted)
	p.int("non2xx", r.non2xx)
	p.int("errors", r.errs)
	p.int("late", r.late)
	p.int("unsent", r.unsent)
	p.float("accept_p99_ms", ms(percentile(r.lat, 0.99)))
	p.int("delivered_end", atEnd)
	p.int("pending_end", pending)
	p.int("delivered", delivered)
	p.float("p50_ms", ms(percentile(lat, 0.50)))
	p.float("p99_ms", ms(p99))
	p.float("max_ms", ms(percentile(lat, 1)))
	p.float("drain_s", drainS)
	p.float("cpu_us_per_req", cpu.perUnit(u1.ticks-u0.ticks, r.accepted))
	p.float("switches_per_req", perReq(u1.switches-u0.switches, r.accepted))
	p.str("drained", strconv.FormatBool(drained))
	p.str("pass", strconv.FormatBool(pass))
	return drained, pass, nil
}

// perReq is n per one of accepted, 0 when none was.
func perReq(n, accepted int64) float64 {
	if accepted <= 0 {
		return 0
	}
	return float64(n) / float64(accepted)
}
