package hooks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// SvixTolerance is how far a message's timestamp may be from now, either way.
const SvixTolerance = 5 * time.Minute

// Why a Svix-signed delivery was refused. The svix library hides its error
// kinds, so SvixVerifier classifies before it lets the library decide.
const (
	ReasonMissingHeaders = "missing_headers"   // 400
	ReasonBadTimestamp   = "invalid_timestamp" // 400: not a Unix time
	ReasonStale          = "stale_timestamp"   // 401
	ReasonFuture         = "future_timestamp"  // 401
	ReasonNoMatch        = "signature_mismatch"
)

// SvixHeaders are a delivery's id, timestamp and signatures, from the svix-*
// headers or, when any of those is missing, the Standard Webhooks webhook-*
// ones (the library reads them in the same order).
type SvixHeaders struct {
	ID, Timestamp, Signature string
	// Prefix is "svix" or "webhook": which set was used.
	Prefix string
}

// ParseSvixHeaders reads the headers; ok is false when neither set is
// complete.
func ParseSvixHeaders(h http.Header) (SvixHeaders, bool) {
	for _, p := range []string{"svix", "webhook"} {
		s := SvixHeaders{ID: h.Get(p + "-id"), Timestamp: h.Get(p + "-timestamp"), Signature: h.Get(p + "-signature"), Prefix: p}
		if s.ID != "" && s.Timestamp != "" && s.Signature != "" {
			return s, true
		}
	}
	return SvixHeaders{}, false
}

// SvixError is a refused delivery, with an exported reason.
type SvixError struct {
	Reason string
	Err    *Error
}

// Error implements the error interface.
func (e *SvixError) Error() string { return e.Reason + ": " + e.Err.Message }

// ReasonCode is the refusal's reason, for the answer's JSON.
func (e *SvixError) ReasonCode() string { return e.Reason }

// Unwrap lets errors.As find the application error, and so its class.
func (e *SvixError) Unwrap() error { return e.Err }

func svixErr(reason, code, hint, format string, args ...any) *SvixError {
	return &SvixError{Reason: reason, Err: &Error{Code: code, Message: fmt.Sprintf(format, args...), Hint: hint}}
}

// ParseSvixSecret decodes a whsec_ secret as the library does, refusing
// what would make every delivery fail.
func ParseSvixSecret(s string) (*svix.Webhook, error) {
	if strings.HasPrefix(s, "v1,") {
		return nil, fmt.Errorf("%q is a signature (v1,...), not a signing secret; copy the endpoint's whsec_ secret", s[:min(len(s), 8)]+"…")
	}
	raw := strings.TrimPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("not a whsec_ secret: base64 of at least 16 bytes is expected after whsec_")
	}
	return svix.NewWebhook(s)
}

// SvixVerifier checks a delivery against an endpoint's secrets; several
// are accepted at once while a secret is being rotated.
type SvixVerifier struct {
	Secrets []*svix.Webhook
	Now     func() time.Time
}

// NewSvixVerifier returns a verifier for an endpoint's whsec_ secrets.
func NewSvixVerifier(secrets []string) (*SvixVerifier, error) {
	v := &SvixVerifier{}
	for i, s := range secrets {
		wh, err := ParseSvixSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		v.Secrets = append(v.Secrets, wh)
	}
	if len(v.Secrets) == 0 {
		return nil, fmt.Errorf("at least one whsec_ secret is required")
	}
	return v, nil
}

// Verify checks headers and timestamp skew (with the injectable clock),
// then lets the svix library check the signature over the exact bytes with
// each secret in turn.
func (v *SvixVerifier) Verify(body []byte, h http.Header) (SvixHeaders, error) {
	sh, ok := ParseSvixHeaders(h)
	if !ok {
		return sh, svixErr(ReasonMissingHeaders, EINVALID, "", "svix-id, svix-timestamp and svix-signature (or webhook-id, webhook-timestamp and webhook-signature) are required")
	}
	secs, err := strconv.ParseInt(sh.Timestamp, 10, 64)
	if err != nil {
		return sh, svixErr(ReasonBadTimestamp, EINVALID, "", "%s-timestamp must be a Unix time in seconds", sh.Prefix)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	// Compare in whole seconds: time.Unix overflows for extreme values.
	tol, nowSec := int64(SvixTolerance/time.Second), now.Unix()
	if secs < nowSec-tol {
		return sh, svixErr(ReasonStale, EUNAUTHORIZED, "check the sender's clock, or whether the delivery was held up on the way",
			"%s-timestamp is %s old; at most %s is accepted", sh.Prefix, describeSkew(nowSec, secs), SvixTolerance)
	}
	if secs > nowSec+tol {
		return sh, svixErr(ReasonFuture, EUNAUTHORIZED, "check the sender's clock",
			"%s-timestamp is %s in the future; at most %s is accepted", sh.Prefix, describeSkew(secs, nowSec), SvixTolerance)
	}
	// The library reads the svix-* set first; pass it only the set chosen
	// here so that both agree.
	only := http.Header{}
	only.Set("svix-id", sh.ID)
	only.Set("svix-timestamp", sh.Timestamp)
	only.Set("svix-signature", sh.Signature)
	if v.matches(body, only) {
		return sh, nil
	}
	return sh, svixErr(ReasonNoMatch, EUNAUTHORIZED, v.hint(body, sh, only),
		"no signature in %s-signature matches this endpoint's secrets", sh.Prefix)
}

// describeSkew says how far later is after earlier, in seconds that do not
// overflow.
func describeSkew(later, earlier int64) string {
	const century = 100 * 365 * 24 * 3600
	if later-earlier > century || later-earlier < 0 {
		return "more than a century"
	}
	return (time.Duration(later-earlier) * time.Second).String()
}

func (v *SvixVerifier) matches(body []byte, h http.Header) bool {
	for _, wh := range v.Secrets {
		if wh.VerifyIgnoringTimestamp(body, h) == nil {
			return true
		}
	}
	return false
}

// hint names a common mistake when the evidence shows it; never the
// expected signature.
func (v *SvixVerifier) hint(body []byte, sh SvixHeaders, h http.Header) string {
	versioned := false
	for _, s := range strings.Fields(sh.Signature) {
		if strings.HasPrefix(s, "v1,") {
			versioned = true
		}
	}
	if !versioned {
		return "signatures look like v1,<base64>, space-separated"
	}
	// A proxy that parsed and re-serialised the JSON changes the bytes.
	// Only small, shallow bodies are tried: re-indenting deep nesting of
	// an unauthenticated body would cost far more than the body itself.
	if len(body) <= 16<<10 && jsonDepth(body, 32) <= 32 && json.Valid(body) {
		var compact, indented bytes.Buffer
		json.Compact(&compact, body)
		json.Indent(&indented, body, "", "  ")
		for _, alt := range [][]byte{compact.Bytes(), indented.Bytes()} {
			if !bytes.Equal(alt, body) && v.matches(alt, h) {
				return "the body was changed on the way (re-serialised JSON); verify the raw bytes as sent"
			}
		}
	}
	return "check that the endpoint's secret is the one this sender signs with (keys are per endpoint)"
}

// SvixEventType reads a Svix payload's event type from its "type" field
// ("eventType" and "event_type" are accepted too); "" when there is none
// or the body is not valid JSON.
func SvixEventType(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	return SvixEventTypeOf(body)
}

// SvixEventTypeOf is SvixEventType for a body already checked to be valid
// JSON (CheckObject passed), which every accepted event is: the fields are
// picked from its top level, as decoding it into a map would find them,
// without scanning or decoding the whole event again.
func SvixEventTypeOf(body []byte) string {
	for _, field := range []string{"type", "eventType", "event_type"} {
		var t string
		if json.Unmarshal(objectMember(body, field), &t) == nil && t != "" {
			return t
		}
	}
	return ""
}

// BloomEventTypes are the event types Bloom documents
// (Bloom "Enablement Webhooks", "Event Types").
var BloomEventTypes = map[string]bool{
	"connection.closed": true, "connection.created": true, "connection.refresh_required": true,
	"tradeline.closed_by_user": true, "tradeline.closed_inactivity": true, "tradeline.created": true,
	"tradeline.opened": true, "tradeline.transactions_added": true,
	"user.closed": true, "user.created": true, "user.synced": true, "user.updated": true,
}

// EventRoutes maps event-type patterns to actions: an exact type, a prefix
// wildcard ("tradeline.*") or "*". The most specific pattern wins.
type EventRoutes struct {
	patterns []string // most specific first
	actions  map[string]Action
}

// NewEventRoutes builds routes; a nil action means the store action.
func NewEventRoutes(routes map[string]Action) (*EventRoutes, error) {
	r := &EventRoutes{actions: routes}
	for p := range routes {
		if i := strings.IndexByte(p, '*'); i >= 0 && (i != len(p)-1 || (p != "*" && !strings.HasSuffix(p, ".*"))) {
			return nil, fmt.Errorf("event pattern %q: a wildcard may only end a pattern, as in tradeline.* or *", p)
		}
		r.patterns = append(r.patterns, p)
	}
	sort.Slice(r.patterns, func(i, j int) bool {
		a, b := r.patterns[i], r.patterns[j]
		wa, wb := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*")
		if wa != wb {
			return !wa // exact types first
		}
		if len(a) != len(b) {
			return len(a) > len(b) // longer prefixes first
		}
		return a < b
	})
	return r, nil
}

// Match returns the action for an event type, and whether any pattern
// matched (an unrouted type is still accepted and stored).
func (r *EventRoutes) Match(eventType string) (Action, bool) {
	for _, p := range r.patterns {
		if p == eventType || p == "*" || (strings.HasSuffix(p, ".*") && strings.HasPrefix(eventType, strings.TrimSuffix(p, "*"))) {
			return r.actions[p], true
		}
	}
	return nil, false
}
