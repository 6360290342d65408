package qa_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

func attempts(s hooks.Sender, id string, u hooks.Urgency, start time.Time, steps ...any) []*hooks.Request {
	var out []*hooks.Request
	at := start
	for i := 0; i < len(steps); i += 2 {
		at = at.Add(steps[i].(time.Duration))
		out = append(out, &hooks.Request{ID: int64(len(out) + 1), Sender: s, Name: "n", RequestID: id, Urgency: u, ReceivedAt: at, Status: steps[i+1].(int)})
	}
	return out
}

// slow sets the latency of attempt i.
func slow(rs []*hooks.Request, i int, d time.Duration) []*hooks.Request {
	rs[i].Latency = d
	return rs
}

// sendEvents is a SendEvent1 answered 200 with first, then retried 2 s
// later (a regular hook) and answered sent.
func sendEvents(start time.Time, first string) []*hooks.Request {
	rs := attempts(hooks.SenderBubblehouse, "ev", hooks.UrgencyRegular, start, time.Duration(0), 200, 2*time.Second, 200)
	rs[0].Response, rs[1].Response = []byte(first), []byte(`{"outcome":"sent"}`)
	for _, r := range rs {
		r.Name = "SendEvent1"
	}
	return rs
}

func TestAnalyse(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		reqs []*hooks.Request
		want []string // substrings of the findings; none when empty
	}{
		// Bloomreach "Creating API endpoint for webhooks", "Retry policy": ~7 s, 45 s,
		// 300 s (±10%), after 429 or 5xx only.
		{"BloomreachOnSchedule", attempts(hooks.SenderBloomreach, "a", "", t0, time.Duration(0), 500, 7*time.Second, 429, 44*time.Second, 503, 310*time.Second, 200), nil},
		{"BloomreachAfterStop", attempts(hooks.SenderBloomreach, "b", "", t0, time.Duration(0), 400, 7*time.Second, 200), []string{"followed a 400, which should stop the campaign"}},
		{"BloomreachAfterSuccess", attempts(hooks.SenderBloomreach, "c", "", t0, time.Duration(0), 200, 7*time.Second, 200), []string{"followed a 200, which the sender counts as delivered"}},
		{"BloomreachTooSoon", attempts(hooks.SenderBloomreach, "d", "", t0, time.Duration(0), 500, time.Second, 200), []string{"the schedule says about 7s"}},
		{"BloomreachTooMany", attempts(hooks.SenderBloomreach, "e", "", t0, time.Duration(0), 500, 7*time.Second, 500, 45*time.Second, 500, 300*time.Second, 500, 300*time.Second, 500), []string{"5 attempts; at most 4"}},
		// Bloom "Enablement Webhooks", "Retries": 5 s, 5 min, 30 min, ...
		{"SvixOnSchedule", attempts(hooks.SenderSvix, "f", "", t0, time.Duration(0), 500, 5*time.Second, 500, 5*time.Minute, 200), nil},
		{"SvixOffSchedule", attempts(hooks.SenderSvix, "g", "", t0, time.Duration(0), 500, time.Minute, 200), []string{"the schedule says about 5s"}},
		// Bubblehouse "Hooks API", "Time Limits & Retry".
		{"BubblehouseUrgentOK", attempts(hooks.SenderBubblehouse, "h", hooks.UrgencyUrgent, t0, time.Duration(0), 503, 2*time.Second, 202), nil},
		{"BubblehouseUrgentTooLate", attempts(hooks.SenderBubblehouse, "i", hooks.UrgencyUrgent, t0, time.Duration(0), 503, 10*time.Minute, 202), []string{"urgent retries wait 1s to 5m0s"}},
		{"BubblehouseAfterSuccess", attempts(hooks.SenderBubblehouse, "j", hooks.UrgencyRegular, t0, time.Duration(0), 202, 2*time.Second, 202), []string{"after a 202"}},
		// The wait counts from the end of the previous attempt, and an
		// answer slower than the sender's timeout never reached it
		// (Bloom "Enablement Webhooks": "each period is started following the
		// failure of the preceding attempt").
		{"SvixAfterTimeout", slow(attempts(hooks.SenderSvix, "l", "", t0, time.Duration(0), 200, 20*time.Second, 200), 0, 18*time.Second), nil},
		{"BloomreachWaitFromEnd", slow(attempts(hooks.SenderBloomreach, "m", "", t0, time.Duration(0), 500, 10*time.Second, 200), 0, 3*time.Second), nil},
		{"BloomreachAfter401", attempts(hooks.SenderBloomreach, "n", "", t0, time.Duration(0), 401, 7*time.Second, 200), []string{"followed a 401, which the sender counts as a failure and does not retry"}},
		// Bubblehouse "Hooks API" reference, SendEvent1: a 200 with outcome
		// failure is retried; invalid_data is final.
		{"SendEvent1AfterFailure", sendEvents(t0, `{"outcome":"failure"}`), nil},
		{"SendEvent1AfterInvalid", sendEvents(t0, `{"outcome":"invalid_data","error":"no bhid"}`), []string{"after a 200, which Bubblehouse accepts as final"}},
		{"BubblehouseRealtimeTooMany", attempts(hooks.SenderBubblehouse, "k", hooks.UrgencyRealtime, t0, time.Duration(0), 503, 100*time.Millisecond, 503,
			time.Second, 503, time.Second, 503, time.Second, 503, time.Second, 503), []string{"6 attempts; real-time hooks are tried at most 5 times"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := qa.Analyse(tt.reqs, t0)
			if len(b.Requests) != 1 {
				t.Fatalf("request IDs=%d, want 1", len(b.Requests))
			}
			got := strings.Join(b.Requests[0].Findings, "; ")
			if len(tt.want) == 0 && got != "" {
				t.Fatalf("findings %q, want none", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Fatalf("findings %q, want one containing %q", got, w)
				}
			}
			rep := b.ToReport()
			if rep.Failed() != (len(tt.want) > 0) {
				t.Fatalf("report failed=%v, want %v", rep.Failed(), len(tt.want) > 0)
			}
		})
	}
	t.Run("NotesCounted", func(t *testing.T) {
		reqs := []*hooks.Request{
			{Sender: hooks.SenderBubblehouse, Status: 202, Notes: []string{"X-BH-Urgency missing: handled as regular"}},
			{Sender: hooks.SenderBubblehouse, Status: 202, Notes: []string{`X-BH-Urgency has unknown value "x": handled as regular`}},
			{Sender: hooks.SenderSvix, Status: 401, Notes: []string{"refused: signature_mismatch"}},
		}
		b := qa.Analyse(reqs, t0)
		if n := b.Senders[hooks.SenderBubblehouse].Notes["X-BH-Urgency missing"]; n != 1 {
			t.Fatalf("notes=%v", b.Senders[hooks.SenderBubblehouse].Notes)
		}
		if n := b.Senders[hooks.SenderSvix].Notes["refused: signature_mismatch"]; n != 1 || b.Senders[hooks.SenderSvix].Statuses[401] != 1 {
			t.Fatalf("svix summary=%+v", b.Senders[hooks.SenderSvix])
		}
	})
}
