package qa

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// The contract these probes grade against.
const svixContract = `Bloom "Enablement Webhooks"`

// svixSkew is how far off the stale and future probes put their
// timestamps: twice the 5 minutes the svix library's verify allows either
// way, so that no clock drift makes them pass by accident.
const svixSkew = 10 * time.Minute

// svixSlow is the answer time above which within-timeout warns.
const svixSlow = time.Second

// The contract's words for each check.
var svixRules = map[string]string{
	"good-signature":  svixContract + `, "Signature Verification" and "Sending the wrong response codes": a message signed with the endpoint's secret over the raw body; "When we receive a response with a 2xx status code, we interpret that as a successful delivery"`,
	"redelivery":      svixContract + `, "Retries" and "Recovering/Resending failed messages": a failed message is attempted again on a schedule, and "resend" is "to have the same message send to your endpoint again"; a redelivery carries the same svix-id with a new timestamp and signature, and must be answered 2xx and processed once`,
	"bad-signature":   svixContract + `, "Signature Verification": signatures "let you verify that webhook messages are actually sent by us and not a malicious actor"; wh.verify "Throws on error"`,
	"timestamp":       svixContract + `, "Signature Verification": verify with Svix's library, whose verify refuses a timestamp more than 5 minutes from now, either way (replay protection)`,
	"missing-headers": svixContract + `, "Signature Verification": svix-id, svix-timestamp and svix-signature "were all sent from the server"; verify throws without them`,
	"webhook-headers": `not in ` + svixContract + `: the svix library it points to also reads the Standard Webhooks set (webhook-id, webhook-timestamp, webhook-signature) when svix-* is absent`,
	"within-timeout":  svixContract + `, "Responses timing out": "We will consider any message that fails to send a response within {timeout duration} a failed message"; "We suggest having your endpoint simply receive the message and add it to a queue to be processed asynchronously so you can respond promptly"`,
}

// svixProber sends probes and keeps every exchange for within-timeout.
type svixProber struct {
	c   *Client
	o   SvixOptions
	all []*Exchange
}

// send builds a delivery from o with id, timestamp ts and the header set
// headers, lets edit change the request or body, and sends it within the
// sender's timeout.
func (p *svixProber) send(ctx context.Context, id string, ts time.Time, headers string, edit func(*http.Request, []byte) []byte) *Exchange {
	o := p.o
	o.ID, o.Timestamp, o.Headers = id, ts, headers
	req, body, err := SvixRequest(o)
	if err != nil { // the options were validated: only a bug gets here
		x := &Exchange{Err: err}
		p.all = append(p.all, x)
		return x
	}
	if edit != nil {
		body = edit(req, body)
	}
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	x := p.c.Do(ctx, req, body)
	p.all = append(p.all, x)
	return x
}

// evidence fills a check's HTTP evidence from an exchange.
func svixEvidence(c Check, x *Exchange) Check {
	c.HTTP, c.Body, c.Latency = x.Status, Excerpt(x.Answer), x.Latency
	return c
}

func svixNoAnswer(x *Exchange, timeout time.Duration) string {
	if errors.Is(x.Err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within the sender's %s timeout", timeout)
	}
	return fmt.Sprintf("no answer: %v", x.Err)
}

func svix2xx(x *Exchange) bool { return x.Err == nil && x.Status/100 == 2 }

// ConformSvix grades the endpoint at o.URL against what the Svix sender
// (Bloom Enablement webhooks) requires of a receiver. Each probe uses a
// fresh message id and the current time; o.ID and o.Timestamp are ignored.
func ConformSvix(ctx context.Context, c *Client, o SvixOptions) *Report {
	o.ID, o.Timestamp = "", time.Time{}
	o.applyDefaults()
	r := &Report{Sender: "svix", Target: o.URL, Start: time.Now()}
	if _, err := o.validate(); err != nil {
		r.Add(Check{Name: "options", Status: Fail, Detail: err.Error()})
		return r
	}
	p := &svixProber{c: c, o: o}
	hs := o.Headers

	// A correctly signed delivery, then Svix's retry of it five seconds
	// later: the same id and body, a new timestamp and so a new signature.
	id := NewSvixID()
	now := time.Now()
	first := p.send(ctx, id, now.Add(-5*time.Second), hs, nil)
	if unreachable(first) {
		r.Add(unreachableCheck(o.URL, first))
		return r
	}
	c1 := svixEvidence(Check{Name: "good-signature", Contract: svixRules["good-signature"]}, first)
	switch {
	case first.Err != nil:
		c1.Status, c1.Detail = Fail, svixNoAnswer(first, o.Timeout)
	case svix2xx(first):
		c1.Status, c1.Detail = Pass, fmt.Sprintf("a correctly signed %s (%s) was answered %d: delivered", o.Type, id, first.Status)
	default:
		c1.Status, c1.Detail = Fail, fmt.Sprintf("a correctly signed delivery was answered %d; to Svix that %s", first.Status, SvixMeaning(first.Status))
	}
	r.Add(c1)

	again := p.send(ctx, id, now, hs, nil)
	c2 := svixEvidence(Check{Name: "redelivery-accepted", Contract: svixRules["redelivery"]}, again)
	switch {
	case again.Err != nil:
		c2.Status, c2.Detail = Fail, svixNoAnswer(again, o.Timeout)
	case svix2xx(again):
		c2.Status, c2.Detail = Pass, fmt.Sprintf("the redelivery of %s (new timestamp and signature) was answered %d", id, again.Status)
	case svix2xx(first):
		c2.Status, c2.Detail = Fail, fmt.Sprintf("the redelivery of %s (new timestamp and signature) was answered %d: Svix keeps retrying a message the endpoint already has", id, again.Status)
	default:
		c2.Status, c2.Detail = Fail, fmt.Sprintf("the redelivery of %s (new timestamp and signature) was answered %d", id, again.Status)
	}
	r.Add(c2)
	r.Add(svixProcessedOnce(ctx, o, id, svix2xx(first) && svix2xx(again)))

	// The Standard Webhooks header set.
	x := p.send(ctx, NewSvixID(), time.Now(), "webhook", nil)
	c3 := svixEvidence(Check{Name: "webhook-headers", Contract: svixRules["webhook-headers"]}, x)
	switch {
	case x.Err != nil:
		c3.Status, c3.Detail = Warn, "webhook-* headers: "+svixNoAnswer(x, o.Timeout)
	case svix2xx(x):
		c3.Status, c3.Detail = Pass, fmt.Sprintf("a delivery signed in webhook-id/-timestamp/-signature was answered %d", x.Status)
	default:
		c3.Status, c3.Detail = Warn, fmt.Sprintf("a delivery signed in webhook-id/-timestamp/-signature was answered %d: not every receiver supports it, but a sender using Standard Webhooks headers fails here", x.Status)
	}
	r.Add(c3)

	// Refusals: each must be a 4xx.
	refuse := func(name, rule, what string, xs ...*Exchange) {
		r.Add(svixRefusal(name, svixRules[rule], what, svix2xx(first), o.Timeout, xs))
	}
	wrong := svixWrongSecret()
	refuse("bad-signature", "bad-signature", "a delivery signed with another secret, and one whose body was changed after signing",
		p.send(ctx, NewSvixID(), time.Now(), hs, func(req *http.Request, body []byte) []byte {
			ts, _ := strconv.ParseInt(req.Header.Get(hs+"-timestamp"), 10, 64)
			sig, _ := wrong.Sign(req.Header.Get(hs+"-id"), time.Unix(ts, 0), body)
			req.Header.Set(hs+"-signature", sig)
			return body
		}),
		p.send(ctx, NewSvixID(), time.Now(), hs, func(_ *http.Request, body []byte) []byte {
			return svixTamper(body)
		}))
	refuse("stale-timestamp", "timestamp", fmt.Sprintf("a correctly signed delivery timestamped %s ago", svixSkew),
		p.send(ctx, NewSvixID(), time.Now().Add(-svixSkew), hs, nil))
	refuse("future-timestamp", "timestamp", fmt.Sprintf("a correctly signed delivery timestamped %s ahead", svixSkew),
		p.send(ctx, NewSvixID(), time.Now().Add(svixSkew), hs, nil))
	var missing []*Exchange
	for _, h := range []string{"id", "timestamp", "signature"} {
		missing = append(missing, p.send(ctx, NewSvixID(), time.Now(), hs, func(req *http.Request, body []byte) []byte {
			req.Header.Del(hs + "-" + h)
			return body
		}))
	}
	refuse("missing-headers", "missing-headers", "deliveries each missing one of "+hs+"-id, "+hs+"-timestamp, "+hs+"-signature", missing...)

	r.Add(svixWithinTimeout(p.all, o.Timeout))
	return r
}

// svixWrongSecret is a signer whose secret no endpoint has.
func svixWrongSecret() *svix.Webhook {
	key := make([]byte, 24)
	rand.Read(key)
	wh, _ := svix.NewWebhookRaw(key)
	return wh
}

// svixTamper adds a field to the body after signing, the way an attacker
// would, keeping it JSON when it was.
func svixTamper(body []byte) []byte {
	out := bytes.Clone(body)
	if i := bytes.LastIndexByte(out, '}'); i >= 0 {
		return append(out[:i:i], append([]byte(`,"tampered":true`), out[i:]...)...)
	}
	return append(out, ' ')
}

// svixRefusal grades probes that must all be refused with a 4xx. A 2xx
// fails, and so does no answer; a 5xx or 3xx warns (Svix retries a 5xx on
// its schedule). The check's evidence is the worst probe's.
func svixRefusal(name, rule, what string, good bool, timeout time.Duration, xs []*Exchange) Check {
	rank := map[Status]int{Pass: 0, Warn: 1, Fail: 2}
	status, worst := Pass, xs[0]
	var answered []string
	for _, x := range xs {
		s, code := Pass, fmt.Sprint(x.Status)
		switch {
		case x.Err != nil:
			s, code = Fail, "no answer"
		case x.Status/100 == 2:
			s = Fail
		case x.Status/100 != 4:
			s = Warn
		}
		answered = append(answered, code)
		if rank[s] > rank[status] {
			status, worst = s, x
		}
	}
	c := svixEvidence(Check{Name: name, Contract: rule, Status: status}, worst)
	all := strings.Join(answered, ", ")
	switch {
	case status == Pass && good:
		c.Detail = fmt.Sprintf("%s: refused with %s", what, all)
	case status == Pass:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s: refused with %s, but the correctly signed delivery was refused too, so this shows nothing about verification", what, all)
	case status == Warn:
		c.Detail = fmt.Sprintf("%s: answered %s; refuse with a 4xx (400 or 401): Svix retries a 5xx on its schedule", what, all)
	case worst.Err != nil:
		c.Detail = fmt.Sprintf("%s: answered %s (%s)", what, all, svixNoAnswer(worst, timeout))
	default:
		c.Detail = fmt.Sprintf("%s: answered %s; a 2xx accepts it: anyone who knows the URL can post events, or replay captured ones", what, all)
	}
	return c
}

// svixProcessedOnce asks the receiver's records how often the redelivered
// message was processed.
func svixProcessedOnce(ctx context.Context, o SvixOptions, id string, delivered bool) Check {
	c := Check{Name: "redelivery-processed-once", Contract: svixRules["redelivery"]}
	switch {
	case o.EventsCheck == nil:
		c.Status, c.Detail = Skip, "needs the receiver's records to count how often "+id+" was processed (for hookbay: --hookbay-data DIR or --hookbay-admin URL); over HTTP a redelivery only shows its answer"
		return c
	case !delivered:
		c.Status, c.Detail = Skip, "the delivery and its redelivery were not both accepted, so there is nothing to count"
		return c
	}
	start := time.Now()
	n, err := o.EventsCheck(ctx, id)
	c.Latency = time.Since(start)
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, fmt.Sprintf("could not count how often %s was processed: %v", id, err)
	case n == 1:
		c.Status, c.Detail = Pass, fmt.Sprintf("%s was delivered twice and processed once", id)
	case n == 0:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s was answered 2xx twice but the receiver's records show it processed 0 times", id)
	default:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s was delivered twice and processed %d times: de-duplicate on the svix-id", id, n)
	}
	return c
}

// svixWithinTimeout grades every answer's time against the sender's
// timeout.
func svixWithinTimeout(xs []*Exchange, timeout time.Duration) Check {
	c := Check{Name: "within-timeout", Contract: svixRules["within-timeout"]}
	var slowest *Exchange
	late, answered := 0, 0
	for _, x := range xs {
		if slowest == nil || x.Latency > slowest.Latency {
			slowest = x
		}
		if x.Err == nil {
			answered++
		}
		if (x.Err != nil && errors.Is(x.Err, context.DeadlineExceeded)) || x.Latency >= timeout {
			late++
		}
	}
	switch {
	case slowest == nil:
		c.Status, c.Detail = Skip, "no probe was sent"
		return c
	case answered == 0 && late == 0:
		// Failures to connect are quick, not answers within the timeout.
		c.Status, c.Detail = Fail, fmt.Sprintf("none of %d probes was answered: %v", len(xs), slowest.Err)
		return c
	}
	c.Latency = slowest.Latency
	c.HTTP = slowest.Status
	switch {
	case late > 0:
		c.Status, c.Detail = Fail, fmt.Sprintf("%d of %d answers took the sender's %s timeout or longer: each is a failed delivery, retried", late, len(xs), timeout)
	case slowest.Latency > svixSlow:
		c.Status, c.Detail = Warn, fmt.Sprintf("the slowest of %d answers took %s (limit %s): Svix recommends answering quickly and processing asynchronously", len(xs), slowest.Latency.Round(time.Millisecond), timeout)
	default:
		c.Status, c.Detail = Pass, fmt.Sprintf("all %d answers within %s (limit %s)", len(xs), slowest.Latency.Round(time.Millisecond/10), timeout)
	}
	return c
}
