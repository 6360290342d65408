// Package hooks is hookbay's domain: the senders and urgencies it knows, the
// request record every delivery leaves behind, the jobs that hand accepted
// hooks to the integrator's code, and the worker pool that runs them.
//
// It imports nothing from this project; the store, the HTTP handlers and the
// idempotency guard all speak in these types.
package hooks

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sender names a webhook sender whose endpoint contract hookbay implements.
type Sender string

// The senders hookbay receives from.
const (
	SenderBubblehouse Sender = "bubblehouse"
	SenderBloomreach  Sender = "bloomreach"
	SenderSvix        Sender = "svix"
)

// Urgency is how soon a sender needs a hook processed. Bubblehouse sends it
// in X-BH-Urgency; the other senders' requests are regular.
type Urgency string

// The urgencies, from most to least pressing.
const (
	// UrgencyRealtime hooks are run inline: the sender waits for the output.
	UrgencyRealtime Urgency = "real-time"
	// UrgencyUrgent hooks are queued and always taken before regular ones.
	UrgencyUrgent Urgency = "urgent"
	// UrgencyRegular hooks are queued and may take their time.
	UrgencyRegular Urgency = "regular"
)

// ParseUrgency reads an urgency header value, ignoring case and surrounding
// space. A missing or unknown value gives UrgencyRegular and ok=false, so
// that the caller can note it on the request record.
func ParseUrgency(s string) (u Urgency, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "real-time":
		return UrgencyRealtime, true
	case "urgent":
		return UrgencyUrgent, true
	case "regular":
		return UrgencyRegular, true
	}
	return UrgencyRegular, false
}

// NoPriority is above every job's priority (0 to 9): ClaimPressing with
// it claims any job.
const NoPriority = 10

// Priority orders queued jobs: lower runs first.
func (u Urgency) Priority() int {
	switch u {
	case UrgencyRealtime:
		return 0
	case UrgencyUrgent:
		return 1
	}
	return 2
}

// Request is the record of one HTTP request that reached a hook route,
// accepted or not. It is what the CLI, admin and QA tools read back.
type Request struct {
	ID         int64
	Sender     Sender
	Name       string // hook, webhook or endpoint name from the URL
	RequestID  string // the sender's request ID, "" when it sent none
	Urgency    Urgency
	Method     string
	Path       string
	RemoteAddr string
	// Header holds the request headers with secrets redacted.
	Header http.Header
	Body   []byte
	// Status and Response are what hookbay answered.
	Status   int
	Response []byte
	// Latency is the time from receiving the request to committing its record.
	Latency time.Duration
	// Notes explain anything unusual: a missing request ID, an unknown
	// urgency, a replayed answer.
	Notes []string
	// DuplicateOf is the ID of the original request when this one was answered
	// from the idempotency record; 0 otherwise.
	DuplicateOf int64
	// DuplicateKey is the idempotency key the repeat was found under, set
	// with DuplicateOf, so that metrics can tell a repeated request ID from
	// a repeated content key. It is not stored.
	DuplicateKey string
	ReceivedAt   time.Time
}

// Note appends a note to the request record.
func (r *Request) Note(s string) { r.Notes = append(r.Notes, s) }

// MarkDuplicate turns the record of a repeat into one answered from the
// idempotency entry e: same status and body, no processing.
func (r *Request) MarkDuplicate(e *Entry) {
	r.DuplicateOf, r.DuplicateKey = e.RequestRef, e.Key
	r.Status, r.Response = e.Response.Status, e.Response.Body
	r.Note(fmt.Sprintf("duplicate of request %d (idempotency key %q): first answer replayed, not processed again", e.RequestRef, e.Key))
}

// Response is a status and JSON body as answered to a sender.
type Response struct {
	Status int
	Body   []byte
}

// EntryState is the state of an idempotency entry.
type EntryState string

const (
	// EntryPending marks a key whose request is executing inline; others
	// with the same key wait for it until LockedUntil.
	EntryPending EntryState = "pending"
	// EntryDone marks a key whose answer is final and is replayed to repeats.
	EntryDone EntryState = "done"
)

// Entry is an idempotency record: the answer given to the first request with
// a key, replayed to every later one within the retention period.
type Entry struct {
	Sender      Sender
	Key         string
	State       EntryState
	Response    Response
	RequestRef  int64 // Request.ID of the request that produced the answer
	LockedUntil time.Time
	CreatedAt   time.Time
}

// ReceiptItem is one customer of a batch.
type ReceiptItem struct {
	// Key is the item's idempotency key (ItemKey), "" when the item has
	// no ID: it is then always queued. Item keys and the request's keys
	// are never alike (the request's carry its Scope instead), so a store
	// may keep them apart.
	Key string
	Job *Job // required; its Payload is the item's own JSON
	// InBody is set when the job's Payload is a part of the request's
	// Body, Body[At:At+len(Payload)] (a batch's customer): a store may
	// keep those bounds rather than a second copy of the bytes.
	InBody bool
	At     int
	// Duplicate is set by the store when the key was already taken: the
	// item was accepted before and is not queued again.
	Duplicate bool
}

// ItemKeyMark joins a batch's webhook and an item's ID in the item's
// idempotency key (ItemKey).
const ItemKeyMark = "/item:"

// ItemKey is the idempotency key of a batch's item: its webhook and its ID.
func ItemKey(webhook, id string) string { return webhook + ItemKeyMark + id }

// PayloadInBody reports whether the item's job payload may be kept as its
// bounds in body, the request's body (At and the payload's length), rather
// than as a second copy of its bytes, which halves what a batch writes:
// the item says it is a part of the body (InBody), and body holds those
// bytes there. A request's record and its jobs are purged together, so the
// body outlives the job.
func (it *ReceiptItem) PayloadInBody(body []byte) bool {
	if !it.InBody || it.Job == nil {
		return false
	}
	p := it.Job.Payload
	return len(p) > 0 && it.At >= 0 && it.At <= len(body)-len(p) && bytes.Equal(body[it.At:it.At+len(p)], p)
}

// Receipt is everything written when a request is accepted: the request
// record, its idempotency keys and the job that delivers it. A store writes a
// receipt in one transaction, so none of the three exists without the others.
type Receipt struct {
	Request *Request
	// Keys are the idempotency keys in the sender's namespace. A handler
	// puts content keys here (for example SendEvent1's bhid); the idempotency
	// guard puts the sender's request ID, when there is one, in front.
	Keys []string
	// Job is queued with the request; nil when nothing is left to do.
	Job *Job
	// Items are a batch's customers: each is de-duplicated on its own key
	// and queued as its own job, so that a retried batch, even under a new
	// request ID, does not deliver an item twice.
	Items []*ReceiptItem
	// Scope prefixes the request ID in its idempotency key when IDs are
	// unique only within a part of the sender: Svix sends one message, with
	// one id, to every endpoint that subscribes to it.
	Scope string
}
