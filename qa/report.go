package qa

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Schedule is what a sender documents about its retries.
type Schedule struct {
	// Delays are the documented waits before each retry; Tolerance is the
	// share by which an observed wait may differ (jitter plus clocks).
	Delays    []time.Duration
	Tolerance float64
	// MaxAttempts is the most deliveries of one request, in all.
	MaxAttempts int
	// Stops are statuses after which no retry should come.
	Stops map[int]bool
	// Retries are statuses after which a retry is expected; any other
	// status (a 2xx) ends the request.
	Retries func(status int) bool
	Source  string
}

// Schedules are the senders' documented retry behaviour.
var Schedules = map[hooks.Sender]Schedule{
	// Bloomreach "Creating API endpoint for webhooks", "Retry policy".
	hooks.SenderBloomreach: {
		Delays: []time.Duration{7 * time.Second, 45 * time.Second, 300 * time.Second}, Tolerance: 0.10 + 0.05, MaxAttempts: 4,
		Stops:   map[int]bool{400: true, 404: true, 410: true, 412: true, 413: true, 418: true},
		Retries: func(s int) bool { return s == 429 || s >= 500 || s == 0 },
		Source:  `Bloomreach "Creating API endpoint for webhooks", "Retry policy": ~7 s, 45 s, 300 s (±10%), at most 4 attempts (8 for batches of 10 or more); 400, 404, 410, 412, 413, 418 stop`,
	},
	// Bloom "Enablement Webhooks", "Retries".
	hooks.SenderSvix: {
		Delays:      []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
		Tolerance:   0.25,
		MaxAttempts: 8,
		Retries:     func(s int) bool { return s < 200 || s > 299 },
		Source:      `Bloom "Enablement Webhooks", "Retries": 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; 8 attempts`,
	},
}

// bubblehouseWindows are Bubblehouse's limits by urgency
// (Bubblehouse "Hooks API", "Time Limits & Retry").
var bubblehouseWindows = map[hooks.Urgency]struct {
	min, max, total time.Duration
	attempts        int
}{
	hooks.UrgencyRegular:  {time.Second, 4 * time.Hour, 48 * time.Hour, 0},
	hooks.UrgencyUrgent:   {time.Second, 5 * time.Minute, time.Hour, 0},
	hooks.UrgencyRealtime: {100 * time.Millisecond, time.Second, 0, 5},
}

// Attempt is one delivery of a request as recorded.
type Attempt struct {
	At     time.Time     `json:"at"`
	Status int           `json:"status"`
	Gap    time.Duration `json:"gap_ns,omitempty"` // since the previous attempt
	Event  int64         `json:"event"`
}

// RequestBehaviour is how a sender delivered one request ID.
type RequestBehaviour struct {
	Sender    hooks.Sender `json:"sender"`
	RequestID string       `json:"request_id"`
	Name      string       `json:"name"`
	Attempts  []Attempt    `json:"attempts"`
	Findings  []string     `json:"findings,omitempty"` // departures from the contract
}

// SenderSummary counts the contract notes recorded for a sender.
type SenderSummary struct {
	Requests   int            `json:"requests"`
	RequestIDs int            `json:"request_ids"`
	Statuses   map[int]int    `json:"statuses"`
	Notes      map[string]int `json:"notes"`
	Violations int            `json:"request_ids_with_findings"`
}

// Behaviour is "hookbay report": per request ID and per sender.
type Behaviour struct {
	Since    time.Time                       `json:"since"`
	Requests []RequestBehaviour              `json:"requests"`
	Senders  map[hooks.Sender]*SenderSummary `json:"senders"`
}

// noteKind folds a recorded note into a countable kind: the part before a
// colon, without quoted values.
func noteKind(n string) string {
	if strings.HasPrefix(n, "refused: ") {
		return n // the reason is the point
	}
	if i := strings.Index(n, ":"); i > 0 {
		n = n[:i]
	}
	if i := strings.Index(n, `"`); i > 0 {
		n = strings.TrimSpace(n[:i])
	}
	if strings.HasPrefix(n, "duplicate of request") {
		return "duplicate (answered from the idempotency record)"
	}
	return n
}

// Analyse groups records by request ID and compares each with its
// sender's documented retry behaviour.
func Analyse(reqs []*hooks.Request, since time.Time) *Behaviour {
	b := &Behaviour{Since: since, Senders: map[hooks.Sender]*SenderSummary{}}
	// IDs are unique per hook, webhook or endpoint: Svix sends one message
	// id to every endpoint subscribed to it.
	type key struct {
		s        hooks.Sender
		name, id string
	}
	groups := map[key][]*hooks.Request{}
	var order []key
	for _, r := range reqs {
		sum := b.Senders[r.Sender]
		if sum == nil {
			sum = &SenderSummary{Statuses: map[int]int{}, Notes: map[string]int{}}
			b.Senders[r.Sender] = sum
		}
		sum.Requests++
		sum.Statuses[r.Status]++
		for _, n := range r.Notes {
			sum.Notes[noteKind(n)]++
		}
		if r.RequestID == "" {
			continue
		}
		k := key{r.Sender, r.Name, r.RequestID}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		rs := groups[k]
		sort.Slice(rs, func(i, j int) bool { return rs[i].ReceivedAt.Before(rs[j].ReceivedAt) })
		rb := RequestBehaviour{Sender: k.s, RequestID: k.id, Name: rs[0].Name}
		for i, r := range rs {
			a := Attempt{At: r.ReceivedAt, Status: r.Status, Event: r.ID}
			if i > 0 {
				a.Gap = r.ReceivedAt.Sub(rs[i-1].ReceivedAt)
			}
			rb.Attempts = append(rb.Attempts, a)
		}
		rb.Findings = findings(k.s, rs)
		b.Senders[k.s].RequestIDs++
		if len(rb.Findings) > 0 {
			b.Senders[k.s].Violations++
		}
		b.Requests = append(b.Requests, rb)
	}
	return b
}

// settlesBubblehouse reports whether Bubblehouse takes an answer as final:
// a 200-204, except SendEvent1's outcome failure, which it retries.
func settlesBubblehouse(r *hooks.Request) bool {
	if r.Status < 200 || r.Status > 204 {
		return false
	}
	return hooks.CatalogueHook(r.Name).Settles(r.Response)
}

// senderTimeout is how long a sender waits for an answer: an answer that
// took longer never reached it, and it saw a timeout instead.
func senderTimeout(s hooks.Sender, u hooks.Urgency) time.Duration {
	switch {
	case s == hooks.SenderBloomreach:
		return BloomreachTimeout
	case s == hooks.SenderSvix:
		return SvixDefaultTimeout
	case u == hooks.UrgencyRealtime:
		return hooks.BubblehouseRealtimeLimit
	}
	return hooks.BubblehouseCallLimit
}

// heard is what the sender made of an attempt's answer: its status, or 0
// when the answer came after the sender's timeout; and when the attempt
// ended for it, from which its next wait counts ("each period is started
// following the failure of the preceding attempt").
func heard(s hooks.Sender, r *hooks.Request) (status int, ended time.Time) {
	timeout := senderTimeout(s, r.Urgency)
	if r.Latency > timeout {
		return 0, r.ReceivedAt.Add(timeout)
	}
	return r.Status, r.ReceivedAt.Add(r.Latency)
}

// findings compares one request's deliveries with the sender's contract.
func findings(s hooks.Sender, rs []*hooks.Request) []string {
	var out []string
	if s == hooks.SenderBubblehouse {
		w, ok := bubblehouseWindows[rs[0].Urgency]
		if !ok {
			return nil
		}
		for i := 1; i < len(rs); i++ {
			status, ended := heard(s, rs[i-1])
			gap := rs[i].ReceivedAt.Sub(ended)
			if status != 0 && settlesBubblehouse(rs[i-1]) {
				out = append(out, fmt.Sprintf("attempt %d came after a %d, which Bubblehouse accepts as final", i+1, rs[i-1].Status))
			}
			if gap < w.min*9/10 || gap > w.max*11/10 {
				out = append(out, fmt.Sprintf("attempt %d came %s after the previous one; %s retries wait %s to %s", i+1, gap.Round(time.Millisecond), rs[0].Urgency, w.min, w.max))
			}
		}
		if w.attempts > 0 && len(rs) > w.attempts {
			out = append(out, fmt.Sprintf("%d attempts; %s hooks are tried at most %d times", len(rs), rs[0].Urgency, w.attempts))
		}
		if w.total > 0 && rs[len(rs)-1].ReceivedAt.Sub(rs[0].ReceivedAt) > w.total {
			out = append(out, fmt.Sprintf("retried for %s; %s hooks stop after %s", rs[len(rs)-1].ReceivedAt.Sub(rs[0].ReceivedAt).Round(time.Second), rs[0].Urgency, w.total))
		}
		return out
	}
	sch, ok := Schedules[s]
	if !ok {
		return nil
	}
	max := sch.MaxAttempts
	if s == hooks.SenderBloomreach && isBigBatch(rs[0]) {
		max = 8
	}
	if len(rs) > max {
		out = append(out, fmt.Sprintf("%d attempts; at most %d are documented", len(rs), max))
	}
	for i := 1; i < len(rs); i++ {
		prev, ended := heard(s, rs[i-1])
		switch {
		case prev == 0: // a timeout: retried
		case sch.Stops[prev]:
			out = append(out, fmt.Sprintf("attempt %d followed a %d, which should stop the campaign", i+1, prev))
		case !sch.Retries(prev) && prev/100 == 2:
			out = append(out, fmt.Sprintf("attempt %d followed a %d, which the sender counts as delivered", i+1, prev))
		case !sch.Retries(prev):
			out = append(out, fmt.Sprintf("attempt %d followed a %d, which the sender counts as a failure and does not retry", i+1, prev))
		}
		if i-1 < len(sch.Delays) {
			want, gap := sch.Delays[i-1], rs[i].ReceivedAt.Sub(ended)
			lo, hi := time.Duration(float64(want)*(1-sch.Tolerance)), time.Duration(float64(want)*(1+sch.Tolerance))
			if gap < lo || gap > hi {
				out = append(out, fmt.Sprintf("attempt %d came %s after the previous one; the schedule says about %s", i+1, gap.Round(time.Millisecond), want))
			}
		}
	}
	return out
}

// isBigBatch tells a Bloomreach batch of 10 or more customers, which may
// be retried up to 8 times, from its recorded note.
func isBigBatch(r *hooks.Request) bool {
	for _, n := range r.Notes {
		var size int
		if _, err := fmt.Sscanf(n, "batch of %d", &size); err == nil && size >= 10 {
			return true
		}
	}
	return false
}

// ToReport turns the analysis into check results, one per request ID, for
// JUnit.
func (b *Behaviour) ToReport() *Report {
	r := &Report{Tool: "report", Sender: "all", Target: "recorded requests since " + b.Since.Format(time.RFC3339), Start: time.Now()}
	for _, rb := range b.Requests {
		c := Check{Name: string(rb.Sender) + "/" + rb.RequestID, Status: Pass,
			Detail: fmt.Sprintf("%d attempt(s) of %s", len(rb.Attempts), rb.Name)}
		if len(rb.Findings) > 0 {
			c.Status, c.Detail = Fail, strings.Join(rb.Findings, "; ")
		}
		if s, ok := Schedules[rb.Sender]; ok {
			c.Contract = s.Source
		}
		r.Add(c)
	}
	return r
}
