// Command pace measures whether hookbay's delivery keeps pace with its
// ingest, for scripts/bench-delivery.sh. One invocation runs both the
// downstream hookbay's forward action POSTs to (the sink) and the load
// generator, in the same process, so that the sink can be held and released
// without a control API:
//
//	pace drain -url URL -sink ADDR -pid PID [-backlog 50000] [-c 200]
//	pace e2e   -url URL -sink ADDR -pid PID [-rates 500,1000,2000] [-d 10s]
//	pace low   -url URL -sink ADDR -pid PID [-rate 500] [-d 10s]
//	pace sink  -sink ADDR
//	pace load  -url URL [-pid PID] (-c N [-n COUNT | -d D] | -rate R -d D)
//
// Requests are urgent Bubblehouse hooks as scripts/bench.lua sends them: a
// ~600-byte CreateDiscount4 input, Authorization (-auth), X-BH-Urgency:
// urgent, and an X-Request-ID of "pace-<unixnano>-<n>": the time the
// request was sent and a number unique in the run. hookbay's forward action
// passes X-Request-ID on to the downstream, so the sink reads from it the
// accept->delivered latency (from the send, which precedes the accept) and
// which requests it has seen (a repeated delivery counts once).
//
// The sink is a net/http server with keep-alive. It counts distinct
// deliveries and new TCP connections (a connection reaching StateNew), and
// answers 200 with no body. While held it blocks every delivery, so a
// backlog fills at full ingest speed whatever hookbay does, its workers
// stuck on at most one held delivery each; released, it answers them all.
//
// With -pid, hookbay's CPU time (utime + stime from /proc/PID/stat, in
// clock ticks of -hz, `getconf CLK_TCK`) is read at the start and end of
// each measurement.
//
// Phases print one "key: value" a line:
//
// drain: the sink held, a closed loop of -c connections sends -backlog
// requests (ingest_rps, ingest_cpu_us_per_req, ingest_p99_ms); then the
// sink is released and pace waits, up to -timeout, until every accepted
// request has been delivered (drain_s from the release to the last
// delivery, drain_dps, drain_cpu_us_per_delivery, and
// drain_new_conns_per_delivery: new connections from the release on per
// delivery). Fewer deliveries than 2xx answers by the timeout is an error.
//
// e2e: the sink answering, an open loop at each of -rates for -d: requests
// are scheduled on a clock, R a second, and sent by up to -senders
// goroutines without waiting for one another; a request sent more than
// -late after its slot is counted late, one more than 1 s late is not sent
// (unsent). For each rate R, keys prefixed rR_: sent (scheduled), accepted
// (2xx), non2xx, errors, late, unsent, delivered_end and pending_end (at
// the end of the window, once every answer is in), p50_ms, p99_ms, max_ms
// (accept->delivered, over the deliveries of the window's requests up to
// the end of the drain that follows), drain_s (from the window's end until
// all of its accepted requests were delivered), cpu_us_per_req (hookbay's
// CPU from the window's start until then, per accepted request), pass.
// A rate passes when pending_end < R, p99 <= 100 ms, everything was
// delivered and nothing failed (non2xx, errors, unsent all 0). Between
// rates pace waits up to -drain-limit for the backlog to drain, then -gap;
// if it does not drain, higher rates are not run. max_pass_rate is the
// highest rate that passed (0 when none).
//
// low: one open-loop window at -rate (500) for -d, with the keys of a
// rate prefixed low_.
//
// sink serves alone until interrupted and prints its counts every second
// they change. load runs the generator alone (no sink): a closed loop of -c
// connections for -n requests or -d, or an open loop at -rate for -d, and
// prints sent, accepted, non2xx, errors, late, unsent, rps and the answers'
// p50_ms and p99_ms; with -pid also the server's cpu_us_per_req and
// switches_per_req over the run, as the low phase does for hookbay.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options holds every subcommand's flags; each subcommand reads its own.
type options struct {
	url, auth, sink  string
	pid, hz          int
	conns, senders   int
	backlog, count   int
	rates            []int
	rate             int
	dur, late, gap   time.Duration
	timeout, drainTO time.Duration
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	err := run(os.Args[1], os.Args[2:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pace %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pace drain|e2e|low|sink|load [flags]   (pace CMD -h for the flags)")
}

// run parses one subcommand's flags and runs it, writing its figures to out.
func run(cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var o options
	var rates string
	fs.StringVar(&o.url, "url", "http://127.0.0.1:18081/bubblehouse/CreateDiscount4", "hookbay's URL for the hook")
	fs.StringVar(&o.auth, "auth", "Bearer bench-secret", "Authorization header (empty: none)")
	fs.StringVar(&o.sink, "sink", "127.0.0.1:18090", "the sink's listen address (hookbay's forward URL points there)")
	fs.IntVar(&o.pid, "pid", 0, "the server's process id, for its CPU time (0: not measured)")
	fs.IntVar(&o.hz, "hz", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	fs.IntVar(&o.conns, "c", 200, "closed loop: connections")
	fs.IntVar(&o.senders, "senders", 512, "open loop: concurrent senders (and at most as many connections)")
	fs.IntVar(&o.backlog, "backlog", 50000, "drain: requests to queue while the sink is held")
	fs.IntVar(&o.count, "n", 0, "load: closed loop: requests to send (0: for -d)")
	fs.StringVar(&rates, "rates", "500,1000,2000,4000,8000,12000", "e2e: open-loop rates, requests/s, rising")
	fs.IntVar(&o.rate, "rate", 0, "low: the rate (default 500); load: open loop at this rate (0: closed loop)")
	fs.DurationVar(&o.dur, "d", 10*time.Second, "duration of each open-loop window (load: of the run)")
	fs.DurationVar(&o.late, "late", 10*time.Millisecond, "open loop: a request sent this long after its slot is late")
	fs.DurationVar(&o.gap, "gap", time.Second, "e2e: quiet time between rates, once the backlog has drained")
	fs.DurationVar(&o.drainTO, "drain-limit", 60*time.Second, "e2e, low: longest wait for a window's backlog to drain")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "drain: longest wait for the backlog to be delivered")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.rates, err = parseRates(rates); err != nil {
		return fmt.Errorf("-rates: %w", err)
	}
	if o.hz <= 0 || o.conns < 1 || o.senders < 1 || o.dur <= 0 {
		return errors.New("-hz, -c, -senders and -d must be positive")
	}
	switch cmd {
	case "drain":
		if o.backlog < 1 {
			return errors.New("-backlog must be positive")
		}
		return runDrain(out, o)
	case "e2e":
		return runE2E(out, o)
	case "low":
		if o.rate == 0 {
			o.rate = 500
		}
		if o.rate < 0 {
			return errors.New("-rate must be positive")
		}
		return runLow(out, o)
	case "sink":
		return runSink(out, o)
	case "load":
		return runLoad(out, o)
	default:
		usage(os.Stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// parseRates reads "500,1000,2000": positive and rising.
func parseRates(s string) ([]int, error) {
	var rates []int
	for f := range strings.SplitSeq(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("%q is not a positive whole rate", f)
		}
		if len(rates) > 0 && r <= rates[len(rates)-1] {
			return nil, fmt.Errorf("%d does not rise after %d", r, rates[len(rates)-1])
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// runSink serves the sink alone until SIGINT or SIGTERM.
func runSink(out io.Writer, o options) error {
	s, err := startSink(o.sink)
	if err != nil {
		return err
	}
	defer s.close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64 = -1
	for {
		select {
		case <-sig:
			d, dups, foreign := s.counts()
			fmt.Fprintf(out, "deliveries: %d\nduplicates: %d\nforeign: %d\nnew_conns: %d\n", d, dups, foreign, s.newConns.Load())
			return nil
		case <-tick.C:
			if d, _, _ := s.counts(); d != last {
				last = d
				fmt.Fprintf(out, "%s deliveries: %d new_conns: %d\n", time.Now().Format(time.TimeOnly), d, s.newConns.Load())
			}
		}
	}
}

// runLoad runs the generator alone, against any server.
func runLoad(out io.Writer, o options) error {
	g := newGen(o.url, o.auth, max(o.conns, o.senders))
	defer g.close()
	cpu := cpuMeter{o.pid, o.hz}
	u0, err := cpu.used()
	if err != nil {
		return err
	}
	var r result
	start := time.Now()
	if o.rate > 0 {
		r = g.open(float64(o.rate), o.dur, o.senders, o.late)
	} else {
		var dur time.Duration
		if o.count == 0 {
			dur = o.dur
		}
		r = g.closed(o.conns, o.count, dur)
	}
	el := time.Since(start)
	u1, err := cpu.used()
	if err != nil {
		return err
	}
	p := newPrinter(out, "")
	p.int("sent", r.sent)
	p.int("accepted", r.accepted)
	p.int("non2xx", r.non2xx)
	p.int("errors", r.errs)
	p.int("late", r.late)
	p.int("unsent", r.unsent)
	p.float("rps", float64(r.accepted)/el.Seconds())
	p.float("p50_ms", ms(percentile(r.lat, 0.50)))
	p.float("p99_ms", ms(percentile(r.lat, 0.99)))
	if o.pid != 0 {
		p.float("cpu_us_per_req", cpu.perUnit(u1.ticks-u0.ticks, r.accepted))
		p.float("switches_per_req", perReq(u1.switches-u0.switches, r.accepted))
	}
	r.report(os.Stderr)
	return nil
}
