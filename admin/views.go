package admin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookbay/hookbay/hooks"
)

// requestSummary is a request in the list and on the live stream: what it
// was, how it was answered, and what that answer means to its sender.
type requestSummary struct {
	ID          int64         `json:"id"`
	ReceivedAt  time.Time     `json:"received_at"`
	Sender      hooks.Sender  `json:"sender"`
	Name        string        `json:"name"`
	RequestID   string        `json:"request_id"`
	Urgency     hooks.Urgency `json:"urgency"`
	Method      string        `json:"method"`
	Path        string        `json:"path"`
	Status      int           `json:"status"`
	LatencyMS   float64       `json:"latency_ms"`
	Size        int           `json:"size"`
	DuplicateOf int64         `json:"duplicate_of,omitempty"`
	Verdict     hooks.Verdict `json:"verdict"`
	// Delivery is the state of the request's jobs; nil on the live stream,
	// where job events follow.
	Delivery *delivery `json:"delivery,omitempty"`
}

// delivery sums up a request's jobs: one state when they agree, "mixed"
// with the counts otherwise, "none" when nothing was queued.
type delivery struct {
	State  string         `json:"state"`
	Jobs   int            `json:"jobs"`
	Counts map[string]int `json:"counts,omitempty"`
}

func summarize(r *hooks.Request) requestSummary {
	return requestSummary{ID: r.ID, ReceivedAt: r.ReceivedAt, Sender: r.Sender, Name: r.Name, RequestID: r.RequestID,
		Urgency: r.Urgency, Method: r.Method, Path: r.Path, Status: r.Status,
		LatencyMS: float64(r.Latency.Microseconds()) / 1000, Size: len(r.Body), DuplicateOf: r.DuplicateOf,
		Verdict: hooks.Judge(r.Sender, r.Name, r.Status, r.Response)}
}

func summarizeJobs(jobs []*hooks.Job) *delivery {
	d := &delivery{State: "none", Jobs: len(jobs)}
	if len(jobs) == 0 {
		return d
	}
	d.Counts = map[string]int{}
	for _, j := range jobs {
		d.Counts[string(j.State)]++
	}
	if len(d.Counts) == 1 {
		d.State = string(jobs[0].State)
		d.Counts = nil
	} else {
		d.State = "mixed"
	}
	return d
}

// body is stored bytes as the API shows them: always exactly, in base64,
// with the size; also as JSON when they are JSON, or as text when they
// are UTF-8 text.
type body struct {
	Size   int             `json:"size"`
	JSON   json.RawMessage `json:"json,omitempty"`
	Text   *string         `json:"text,omitempty"`
	Base64 string          `json:"base64"`
}

func bodyOf(b []byte) body {
	out := body{Size: len(b), Base64: base64.StdEncoding.EncodeToString(b)}
	if len(b) == 0 {
		return out
	}
	if utf8.Valid(b) {
		s := string(b)
		out.Text = &s
		if hooks.CheckText(b) == nil && hooks.CheckDepth(b) == nil && json.Valid(b) {
			out.JSON = json.RawMessage(b)
		}
	}
	return out
}

// authVerdict says whether the request's credentials or signature were
// accepted, and why not when they were not.
type authVerdict struct {
	// State is accepted, refused or unchecked (answered before the check:
	// an injected fault, an unknown route).
	State string `json:"state"`
	Text  string `json:"text"`
}

// errorAnswer is the shape of hookbay's error answers (handlers.ErrorBody).
type errorAnswer struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

func judgeAuth(r *hooks.Request) authVerdict {
	var ea errorAnswer
	_ = json.Unmarshal(r.Response, &ea)
	for _, n := range r.Notes {
		if strings.HasPrefix(n, "fault injected") {
			return authVerdict{"unchecked", "held up by an injected fault, then checked as usual: see the answer"}
		}
	}
	switch {
	case ea.Code == hooks.EUNAUTHORIZED || r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		why := ea.Error
		if ea.Reason != "" {
			why += " (" + ea.Reason + ")"
		}
		if why == "" {
			why = fmt.Sprintf("answered %d", r.Status)
		}
		return authVerdict{"refused", "refused: " + why}
	case ea.Code == "injected":
		return authVerdict{"unchecked", "not checked: answered by an injected fault"}
	case ea.Code == hooks.ENOTFOUND || ea.Code == hooks.EMETHOD:
		return authVerdict{"unchecked", "not checked: " + ea.Error}
	}
	if r.Sender == hooks.SenderSvix {
		return authVerdict{"accepted", "Svix signature verified (" + headerList(r.Header, "Svix-Id", "Webhook-Id") + ")"}
	}
	how := "credentials accepted"
	if a := r.Header.Get("Authorization"); a != "" {
		how += " (Authorization: " + a + ")" // redacted when stored
	}
	return authVerdict{"accepted", how}
}

func headerList(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return n + " " + v
		}
	}
	return "no message id"
}

// jobDetail is one job of a request, with every attempt.
type jobDetail struct {
	ID          int64            `json:"id"`
	RequestRef  int64            `json:"event"`
	Sender      hooks.Sender     `json:"sender"`
	Name        string           `json:"name"`
	Urgency     hooks.Urgency    `json:"urgency"`
	State       hooks.JobState   `json:"state"`
	Attempts    int              `json:"attempts"`
	ScheduledAt time.Time        `json:"scheduled_at"`
	NextRetry   *time.Time       `json:"next_retry,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	FinishedAt  *time.Time       `json:"finished_at,omitempty"`
	LastError   string           `json:"last_error,omitempty"`
	History     []*hooks.Attempt `json:"history"`
}

func jobOf(j *hooks.Job) jobDetail {
	d := jobDetail{ID: j.ID, RequestRef: j.RequestRef, Sender: j.Sender, Name: j.Name, Urgency: j.Urgency, State: j.State,
		Attempts: j.Attempts, ScheduledAt: j.ScheduledAt, CreatedAt: j.CreatedAt, LastError: j.LastError,
		History: []*hooks.Attempt{}}
	if j.State == hooks.JobAvailable && j.Attempts > 0 {
		t := j.ScheduledAt
		d.NextRetry = &t
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		d.FinishedAt = &t
	}
	return d
}

// requestDetail is one request with everything known about it.
type requestDetail struct {
	requestSummary
	RemoteAddr string              `json:"remote_addr"`
	Header     map[string][]string `json:"headers"`
	Body       body                `json:"body"`
	Response   body                `json:"response"`
	Notes      []string            `json:"notes"`
	Auth       authVerdict         `json:"auth"`
	// Duplicates are the later requests answered from this one's record.
	Duplicates []int64 `json:"duplicates"`
	// Related are the other records of the same sender, name and request
	// ID: the sender's retries and repeats.
	Related []requestSummary `json:"related"`
	Jobs    []jobDetail      `json:"jobs"`
}

// jobEvent is a job's change on the live stream.
type jobEvent struct {
	ID         int64          `json:"id"`
	RequestRef int64          `json:"event"`
	Sender     hooks.Sender   `json:"sender"`
	Name       string         `json:"name"`
	State      hooks.JobState `json:"state"`
	Attempts   int            `json:"attempts"`
	Outcome    hooks.Outcome  `json:"outcome,omitempty"`
	Error      string         `json:"error,omitempty"`
	RetryAt    *time.Time     `json:"retry_at,omitempty"`
	DurationMS float64        `json:"duration_ms,omitempty"`
}

// stateAfter is the state an attempt's outcome leaves its job in.
func stateAfter(outcome hooks.Outcome) hooks.JobState {
	switch outcome {
	case hooks.OutcomeOK:
		return hooks.JobDone
	case hooks.OutcomeDead:
		return hooks.JobDead
	}
	return hooks.JobAvailable
}
