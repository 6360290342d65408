package hooks

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Per-customer error codes in Bloomreach replies (README lists them). A
// problem with one customer is answered 200 with success false: a 4xx
// would fail, or stop, the whole campaign (Bloomreach "Creating API endpoint for webhooks").
const (
	BRCodeSchema    = 1001 // the customer's data fails schema.item
	BRCodeNotObject = 1002 // a batch item is not a JSON object
	BRCodeNoItemID  = 1003 // a batch item lacks the configured item_id
	BRCodeAction    = 1004 // the inline action reported a failure
	// BRCodeText: the customer's data is not valid UTF-8, so it is not
	// JSON text (RFC 8259, section 8.1).
	BRCodeText = 1005
	// BRCodeNumber: the customer's data holds a number too long, or with
	// an exponent too large, to be validated against schema.item in time
	// (MaxNumberLength, MaxNumberExponent).
	BRCodeNumber = 1006
	// BRCodeDeadline: the batch's answer was due before this customer
	// could be validated; it was not queued.
	BRCodeDeadline = 1007
)

// BloomreachMaxReply is the most Bloomreach reads of a reply
// (Bloomreach "Webhooks": "up to 64KB of raw unparsed data").
const BloomreachMaxReply = 64 << 10

// BloomreachMaxBatch is the largest batch Bloomreach builds.
const BloomreachMaxBatch = 1000

// BRError is one problem with a customer.
type BRError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// BRReply answers a per-customer request, in the shape of the contract's
// examples.
type BRReply struct {
	Success bool      `json:"success"`
	Result  any       `json:"result,omitempty"`
	Errors  []BRError `json:"errors,omitempty"`
}

// BRItemResult is one customer's outcome in a batch reply.
type BRItemResult struct {
	Index   int       `json:"index"`
	ItemID  string    `json:"item_id,omitempty"`
	Success bool      `json:"success"`
	Errors  []BRError `json:"errors,omitempty"`
}

// BRBatchReply answers a batch: one result per item, in order.
type BRBatchReply struct {
	Success  bool           `json:"success"`
	Accepted int            `json:"accepted"`
	Failed   int            `json:"failed"`
	Results  []BRItemResult `json:"results"`
	Note     string         `json:"note,omitempty"`
}

// Encode returns the reply as JSON under BloomreachMaxReply: when the
// errors would not fit, later items keep their success flag but lose their
// error details, and a note says how many were left out.
func (r BRBatchReply) Encode() []byte {
	b, _ := json.Marshal(r)
	if len(b) <= BloomreachMaxReply {
		return b
	}
	over, cut := len(b)-(BloomreachMaxReply-256), 0 // room for the note
	for i := len(r.Results) - 1; i >= 0 && over > 0; i-- {
		if len(r.Results[i].Errors) == 0 {
			continue
		}
		eb, _ := json.Marshal(r.Results[i].Errors)
		over -= len(eb) + len(`,"errors":`)
		cut += len(r.Results[i].Errors)
		r.Results[i].Errors = nil
	}
	ids := 0
	for i := len(r.Results) - 1; i >= 0 && over > 0; i-- {
		if r.Results[i].ItemID != "" {
			over -= len(r.Results[i].ItemID) + len(`,"item_id":""`)
			r.Results[i].ItemID = ""
			ids++
		}
	}
	r.Note = fmt.Sprintf("%d error details left out to keep the reply under 64 KB; see hookbay events show", cut)
	if ids > 0 {
		r.Note = fmt.Sprintf("%d error details and %d item IDs left out to keep the reply under 64 KB (results stay in order by index); see hookbay events show", cut, ids)
	}
	b, _ = json.Marshal(r)
	return b
}

// pointerTokens splits an RFC 6901 JSON pointer into unescaped tokens.
func pointerTokens(ptr string) ([]string, bool) {
	if ptr == "" {
		return nil, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	toks := strings.Split(ptr[1:], "/")
	for i, tok := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
	}
	return toks, true
}

// RawPointer resolves an RFC 6901 JSON pointer in raw JSON and returns the
// raw bytes it points at, unchanged, so that a value is read as the sender
// rendered it. It checks that doc is valid JSON, then finds the value
// without decoding anything else.
func RawPointer(doc []byte, ptr string) (json.RawMessage, bool) {
	toks, ok := pointerTokens(ptr)
	if !ok {
		return nil, false
	}
	if len(toks) == 0 {
		return doc, true
	}
	if !json.Valid(doc) {
		return nil, false
	}
	return rawPointer(doc, toks)
}

// RawItems resolves an RFC 6901 JSON pointer in doc and returns the raw
// bytes of each element of the array there, in order and unchanged, so
// that a batch's customers are delivered byte for byte as Bloomreach
// rendered them. ok is false when the pointer does not resolve or the
// value there is not an array.
//
// doc must already be known to be valid JSON (decoded or checked by the
// caller): RawItems only scans it, so that a batch is parsed once. The
// items share doc's memory: at holds where each starts in doc, so that
// items[i] is doc[at[i]:at[i]+len(items[i])].
func RawItems(doc []byte, ptr string) (items []json.RawMessage, at []int, ok bool) {
	toks, ok := pointerTokens(ptr)
	if !ok {
		return nil, nil, false
	}
	raw, ok := rawPointer(doc, toks)
	if !ok {
		return nil, nil, false
	}
	// raw is doc resliced (two-index slices all the way), so the capacity
	// it lost is its offset in doc.
	return arrayElements(raw, cap(doc)-cap(raw))
}

// PointerValue resolves an RFC 6901 JSON pointer in an already parsed
// document (maps, slices and json.Number, as jsonschema.UnmarshalJSON
// gives them).
func PointerValue(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	// Token by token, without splitting the pointer into a slice: a batch
	// reads each customer's item_id through here.
	cur, rest := doc, ptr[1:]
	for more := true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, "/")
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = v[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// ReplacePointer puts v where an RFC 6901 JSON pointer (not the root)
// points in a parsed document and returns what was there, so that a
// caller can look at the document without one part and put it back.
func ReplacePointer(doc any, ptr string, v any) (any, bool) {
	toks, ok := pointerTokens(ptr)
	if !ok || len(toks) == 0 {
		return nil, false
	}
	parent, ok := PointerValue(doc, "/"+strings.Join(escapeTokens(toks[:len(toks)-1]), "/"))
	if len(toks) == 1 {
		parent, ok = doc, true
	}
	if !ok {
		return nil, false
	}
	last := toks[len(toks)-1]
	switch p := parent.(type) {
	case map[string]any:
		old, found := p[last]
		if !found {
			return nil, false
		}
		p[last] = v
		return old, true
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(p) {
			return nil, false
		}
		old := p[i]
		p[i] = v
		return old, true
	}
	return nil, false
}

// escapeTokens escapes pointer tokens again (RFC 6901: ~ as ~0, / as ~1).
func escapeTokens(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
	}
	return out
}

// PointerID resolves an RFC 6901 JSON pointer in an already parsed
// document and returns the string or number there as text, like
// ScalarString on the raw bytes, without parsing the JSON again.
func PointerID(doc any, ptr string) (string, bool) {
	cur, ok := PointerValue(doc, ptr)
	if !ok {
		return "", false
	}
	switch v := cur.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// ScalarString returns a JSON string or number as text, for IDs.
func ScalarString(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// Throttle is a throughput policy, shared by the webhooks that name it.
type Throttle struct {
	limiter *rate.Limiter // nil: no rate limit
	slots   chan struct{} // nil: no cap on requests in flight
	// Status answers a throttled request: 429 (Bloomreach retries it) or
	// 503.
	Status int
}

// NewThrottle returns a policy; zero rate or inFlight means no limit of
// that kind.
func NewThrottle(perSecond float64, burst, inFlight, status int) *Throttle {
	t := &Throttle{Status: status}
	if perSecond > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	if inFlight > 0 {
		t.slots = make(chan struct{}, inFlight)
	}
	if t.Status == 0 {
		t.Status = 429
	}
	return t
}

// Acquire admits a request now or says how long to wait. release must be
// called when an admitted request is answered.
func (t *Throttle) Acquire(now time.Time) (release func(), retryAfter time.Duration, ok bool) {
	if t.slots != nil {
		select {
		case t.slots <- struct{}{}:
		default:
			return nil, time.Second, false
		}
	}
	release = func() {
		if t.slots != nil {
			<-t.slots
		}
	}
	if t.limiter != nil {
		r := t.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			release()
			return nil, d, false
		}
	}
	return release, 0, true
}
