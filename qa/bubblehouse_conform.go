package qa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// The rules the Bubblehouse checks grade against, quoted from
// Bubblehouse's public "Hooks API" documentation: the overview and the
// reference pages of the individual hooks.
const (
	bhContractAnswer = `Bubblehouse "Hooks API", "Hook requests": "The response must be 200 OK, we also accept 201, 202 or 204. ` +
		`The response body must be a valid output JSON object."`
	bhContractHello1 = `Bubblehouse "Hooks API" reference, Hello1: input "magic" string; output "magic" (same string back), ` +
		`"hooks" array of strings (the other hooks to subscribe to)`
	bhContractNotFound = `Bubblehouse "Hooks API", "We may send unexpected Hello hooks": "Your code MUST be prepared to receive ` +
		`calls of unexpected hooks, at least in the Hello family, and MUST return a 404 error code for those."`
	bhContractUnknown = `Bubblehouse "Hooks API", "Examples": "Please ensure that your endpoint returns 404 errors for unknown hooks just as well."`
	bhContractAuth    = `Bubblehouse "Hooks API", "Authentication": "We allow you to configure a value for an Authorization: <whatever> header"; ` +
		`Bubblehouse "Hooks API" reference, "Authentication": a fixed value compared in constant time, or an HS256 JWT verified with the shared secret`
	bhContractRetry = `Bubblehouse "Hooks API", "Hook requests": "X-Request-ID: <uuid>"; "If your hook returns 4xx or 5xx, we will retry it ` +
		`several times before marking it as failed."`
	bhContractRealtime = `Bubblehouse "Hooks API", "Time Limits & Retry": real-time: call time limit 10 seconds, retry 100ms then 1 second, 5 times; ` +
		`"Real-time calls need to be processed immediately, and we cannot proceed until we get output from them."`
	bhContractHeaderCase = `Bubblehouse "Hooks API", "Real-time, urgent and regular calls": "Please be sure to follow the HTTP standard ` +
		`and use case-insensitive comparisons when looking for an HTTP header."`
	bhContractUrgency = `Bubblehouse "Hooks API", "Hook requests": "X-BH-Urgency: real-time (or urgent, or regular)"`
)

// bhMaxProbedHooks bounds how many of the hooks Hello1 lists are called:
// each call may have side effects in the integrator's systems.
const bhMaxProbedHooks = 3

// errBhTooSlow marks a call cut at its time limit, as Bubblehouse cuts it.
var errBhTooSlow = errors.New("no answer within")

// bhProber sends the conformance probes.
type bhProber struct {
	ctx context.Context
	c   *Client
	o   BubblehouseOptions
}

// call sends one hook call; mutate may change the built request. A
// real-time call is cut at the real-time limit, as Bubblehouse cuts it.
func (p *bhProber) call(o BubblehouseOptions, mutate func(*http.Request)) *Exchange {
	req, body, err := BubblehouseRequest(o)
	if err != nil {
		return &Exchange{Request: &http.Request{Method: http.MethodPost, URL: &url.URL{}, Header: http.Header{}}, Err: err}
	}
	if mutate != nil {
		mutate(req)
	}
	limit := p.o.Timeout
	if strings.EqualFold(bhHeader(req.Header, "X-BH-Urgency"), bhRealtime) {
		limit = p.o.RealtimeLimit
	}
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	x := p.c.Do(ctx, req, body)
	if x.Err != nil && errors.Is(x.Err, context.DeadlineExceeded) && p.ctx.Err() == nil {
		x.Err = fmt.Errorf("%w %s", errBhTooSlow, limit)
	}
	return x
}

// hook returns options for a call of hook with this run's URL and credentials.
func (p *bhProber) hook(hook, urgency string, data []byte) BubblehouseOptions {
	o := p.o
	o.Hook, o.Urgency, o.Data, o.RequestID = hook, urgency, data, ""
	return o
}

// bhCheck starts a check with an exchange's evidence.
func bhCheck(name string, x *Exchange, contract string) Check {
	c := Check{Name: name, Contract: contract, Latency: x.Latency}
	if x.Err == nil {
		c.HTTP, c.Body = x.Status, Excerpt(x.Answer)
	}
	return c
}

// bhAnswerProblem returns why an exchange is not an accepted output
// object, or "".
func bhAnswerProblem(x *Exchange) string {
	if x.Err != nil {
		return "no answer: " + x.Err.Error()
	}
	if !bhAccepted(x.Status) {
		return fmt.Sprintf("answered %d, want 200, 201, 202 or 204: %s", x.Status, BubblehouseMeaning(x))
	}
	if _, err := bhObject(x.Answer); err != nil {
		return fmt.Sprintf("answered %d but %s: the body must be a valid output JSON object; Bubblehouse will retry", x.Status, err)
	}
	return ""
}

// bhMagicJSON is the Hello1 magic as a raw JSON string. It holds characters
// that encoders like to re-escape (<, &, >, é written as \u00e9 and as
// UTF-8, an escaped slash and quote): a receiver that echoes the decoded
// string passes however it encodes it, one that HTML-escapes,
// double-escapes or re-encodes the text fails.
func bhMagicJSON() string {
	return `"hookbay-` + bhHex(6) + ` <&> \u00e9 é \/ \"q\""`
}

// ConformBubblehouse probes an endpoint for what the Bubblehouse Hooks API
// requires of a receiver. o gives the URL template and the credentials;
// the other request fields are chosen per probe.
func ConformBubblehouse(ctx context.Context, c *Client, o BubblehouseOptions) *Report {
	o = o.withDefaults()
	r := &Report{Sender: "bubblehouse", Target: o.URLTemplate, Start: time.Now()}
	if _, _, err := BubblehouseRequest(o); err != nil {
		r.Add(Check{Name: "url-template", Status: Fail, Detail: err.Error(),
			Contract: `Bubblehouse "Hooks API": "we'll be calling a single URL for all hooks, replacing :name with an actual hook name"`})
		return r
	}
	p := &bhProber{ctx: ctx, c: c, o: o}

	magic := bhMagicJSON()
	hello := p.call(p.hook(hooks.Hello1, bhRealtime, []byte(`{"magic":`+magic+`}`)), nil)
	if unreachable(hello) {
		r.Add(unreachableCheck(o.URLTemplate, hello))
		return r
	}
	r.Add(bhHello1Magic(hello, magic))
	listed, chk := bhHello1Hooks(hello)
	r.Add(chk)

	r.Add(bhExpect404("hello2-404", p.call(p.hook("Hello2", bhRealtime, []byte(`{"magic":`+magic+`}`)), nil), bhContractNotFound))
	unknown := "HookbayProbe" + bhHex(4) + "1"
	r.Add(bhExpect404("unknown-hook-404", p.call(p.hook(unknown, bhUrgent, []byte(`{}`)), nil), bhContractUnknown))
	r.Add(p.wrongAuth())

	var probed []string
	for _, h := range listed {
		if len(probed) == bhMaxProbedHooks {
			break
		}
		if h != hooks.Hello1 && h != "" {
			probed = append(probed, h)
		}
	}
	var first *Exchange
	for _, h := range probed {
		x := p.call(p.hook(h, bhUrgent, nil), nil)
		if first == nil {
			first = x
		}
		r.Add(bhOutputObject(h, x))
	}
	if first == nil {
		// Nothing subscribed: Hello1 itself must answer a retry the same.
		first = p.call(p.hook(hooks.Hello1, bhRealtime, nil), nil)
	}
	r.Add(p.retry(first))

	realtime := []*Exchange{hello}
	for _, h := range probed {
		if bhMaybeRealtime(h) {
			realtime = append(realtime, p.call(p.hook(h, bhRealtime, nil), nil))
		}
	}
	r.Add(p.realtimeDeadline(realtime))
	r.Add(p.headerCase())
	urgentHook := hooks.Hello1
	if len(probed) > 0 {
		urgentHook = probed[0]
	}
	r.Add(p.urgencyCase(urgentHook))
	return r
}

// bhMaybeRealtime reports whether Bubblehouse may call a hook in real-time
// mode: CreateDiscount "in certain configurations", and private hooks
// (Bubblehouse "Hooks API", "Real-time, urgent and regular calls").
func bhMaybeRealtime(hook string) bool {
	switch hook {
	case "DeliverCustomReward1", "SendEvent1":
		return false
	}
	return true
}

func bhHello1Magic(x *Exchange, sent string) Check {
	c := bhCheck("hello1-magic", x, bhContractHello1)
	if p := bhAnswerProblem(x); p != "" {
		c.Status, c.Detail = Fail, "Hello1 "+p
		return c
	}
	obj, _ := bhObject(x.Answer)
	var want, got string
	json.Unmarshal([]byte(sent), &want) //nolint:errcheck // sent is valid JSON
	raw, ok := obj["magic"]
	if !ok {
		c.Status, c.Detail = Fail, "the answer has no magic; want "+sent+" back"
		return c
	}
	if json.Unmarshal(raw, &got) != nil || got != want {
		c.Status, c.Detail = Fail, fmt.Sprintf("magic %s is not the string sent, %s (re-escaped or re-encoded?)", Excerpt(raw), sent)
		return c
	}
	c.Status, c.Detail = Pass, "magic echoed byte for byte"
	if string(raw) != sent {
		c.Detail = "magic echoed: the same string, encoded as " + string(raw)
	}
	return c
}

func bhHello1Hooks(x *Exchange) ([]string, Check) {
	c := bhCheck("hello1-hooks", x, bhContractHello1)
	if p := bhAnswerProblem(x); p != "" {
		c.Status, c.Detail = Fail, "Hello1 "+p
		return nil, c
	}
	obj, _ := bhObject(x.Answer)
	raw, ok := obj["hooks"]
	var list []string
	if !ok || json.Unmarshal(raw, &list) != nil || list == nil {
		c.Status, c.Detail = Fail, "hooks must be an array of strings (the other hooks to subscribe to)"
		return nil, c
	}
	c.Status, c.Detail = Pass, fmt.Sprintf("lists %d hook(s): %s", len(list), strings.Join(list, ", "))
	if len(list) == 0 {
		c.Detail = "lists no other hook (an empty array)"
	}
	return list, c
}

func bhExpect404(name string, x *Exchange, contract string) Check {
	c := bhCheck(name, x, contract)
	hook := bhHook(x.Request)
	switch {
	case x.Err != nil:
		c.Status, c.Detail = Fail, hook+": no answer: "+x.Err.Error()
	case x.Status == http.StatusNotFound:
		c.Status, c.Detail = Pass, hook+" answered 404"
	case bhAccepted(x.Status):
		c.Status, c.Detail = Fail, fmt.Sprintf("%s answered %d, want 404: Bubblehouse would believe the hook is implemented", hook, x.Status)
	case x.Status == http.StatusUnauthorized || x.Status == http.StatusForbidden:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s answered %d, want 404: the credentials were refused (check --authorization or --jwt-secret)", hook, x.Status)
	default:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s answered %d, want 404", hook, x.Status)
	}
	return c
}

// wrongAuth calls Hello1 with a wrong Authorization value and with none.
func (p *bhProber) wrongAuth() Check {
	if p.o.Authorization == "" && p.o.JWTSecret == "" {
		return Check{Name: "wrong-auth", Status: Skip, Contract: bhContractAuth,
			Detail: "no --authorization or --jwt-secret given: a wrong value cannot be told from the right one"}
	}
	wrong := p.o.Authorization
	if wrong != "" {
		// One character off: catches prefix and length-only comparisons.
		last := wrong[len(wrong)-1]
		if last == 'x' {
			last = 'y'
		} else {
			last = 'x'
		}
		wrong = wrong[:len(wrong)-1] + string(last)
	} else {
		tok, _ := bhJWT("not-"+p.o.JWTSecret, time.Now())
		wrong = "Bearer " + tok
	}
	rank := map[Status]int{Pass: 0, Warn: 1, Fail: 2}
	var worst Check
	var passed []string
	for i, auth := range []string{wrong, ""} {
		what := "a wrong Authorization value"
		if auth == "" {
			what = "no Authorization header"
		}
		x := p.call(p.hook(hooks.Hello1, bhRealtime, nil), func(r *http.Request) {
			r.Header.Del("Authorization")
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
		})
		c := bhCheck("wrong-auth", x, bhContractAuth)
		switch {
		case x.Err != nil:
			c.Status, c.Detail = Fail, what+": no answer: "+x.Err.Error()
		case x.Status == http.StatusUnauthorized || x.Status == http.StatusForbidden:
			c.Status, c.Detail = Pass, fmt.Sprintf("%s refused with %d", what, x.Status)
			passed = append(passed, c.Detail)
		case x.Status >= 200 && x.Status < 300:
			c.Status, c.Detail = Fail, fmt.Sprintf("%s accepted with %d: anyone who knows the URL can call your hooks", what, x.Status)
		default:
			c.Status, c.Detail = Warn, fmt.Sprintf("%s refused with %d, want 401 or 403 so that a wrong setting is recognisable", what, x.Status)
		}
		if i == 0 || rank[c.Status] > rank[worst.Status] {
			worst = c
		}
	}
	if worst.Status == Pass {
		worst.Detail = strings.Join(passed, "; ")
	}
	return worst
}

func bhOutputObject(hook string, x *Exchange) Check {
	c := bhCheck("output-object/"+hook, x, bhContractAnswer)
	if p := bhAnswerProblem(x); p != "" {
		c.Status, c.Detail = Fail, p
		if x.Err == nil && x.Status == http.StatusNoContent {
			c.Detail = "answered 204 with an empty body: it must be a valid output JSON object; Bubblehouse will retry"
		}
		return c
	}
	meaning := BubblehouseMeaning(x)
	c.Status, c.Detail = Pass, fmt.Sprintf("answered %d with a JSON object: %s", x.Status, meaning)
	switch hook {
	case "DeliverCustomReward1":
		c.Contract = bhContractAnswer + `; Bubblehouse "Hooks API" reference, DeliverCustomReward1: "delivered boolean (required; false causes a refund and a failure)"`
	case "SendEvent1":
		c.Contract = bhContractAnswer + `; Bubblehouse "Hooks API" reference, SendEvent1: outcome sent, skipped, invalid_data, unsubscribed or failure; ` +
			`"failure — or ANY HTTP error — is a temporary failure that HOLDS THEIR ENTIRE QUEUE"`
	}
	switch {
	case strings.HasPrefix(meaning, "not a valid output object"):
		c.Status, c.Detail = Fail, meaning
	case strings.HasPrefix(meaning, "delivered=false"), strings.HasPrefix(meaning, "temporary failure"):
		c.Status, c.Detail = Warn, "our test input got: "+meaning
	}
	return c
}

// retry sends first again with the same X-Request-ID and body, as
// Bubblehouse does when an answer was lost.
func (p *bhProber) retry(first *Exchange) Check {
	hook := bhHook(first.Request)
	o := p.hook(hook, bhHeader(first.Request.Header, "X-BH-Urgency"), first.Body)
	o.RequestID = bhHeader(first.Request.Header, "X-Request-ID")
	x := p.call(o, nil)
	c := bhCheck("retry-same-answer", x, bhContractRetry)
	if pr := bhAnswerProblem(first); pr != "" {
		c.Status, c.Detail = Fail, hook+" first call: "+pr
		return c
	}
	if pr := bhAnswerProblem(x); pr != "" {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s retried with X-Request-ID %s: %s (a duplicate must not be answered as an error: "+
			"Bubblehouse would retry it until it marks the hook failed)", hook, o.RequestID, pr)
		return c
	}
	switch {
	case x.Status != first.Status:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s retried with the same X-Request-ID: %d, first %d (processed twice?)", hook, x.Status, first.Status)
	case !bhSameJSON(first.Answer, x.Answer):
		c.Status, c.Detail = Fail, fmt.Sprintf("%s retried with the same X-Request-ID: a different body (first: %s); "+
			"a retry must get the first answer, and Bubblehouse keeps the output of whichever call it heard", hook, Excerpt(first.Answer))
	default:
		c.Status, c.Detail = Pass, fmt.Sprintf("%s retried with the same X-Request-ID: the same %d and body", hook, x.Status)
	}
	return c
}

func bhSameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// realtimeDeadline grades the slowest real-time call.
func (p *bhProber) realtimeDeadline(xs []*Exchange) Check {
	var slow *Exchange
	var calls []string
	for _, x := range xs {
		calls = append(calls, fmt.Sprintf("%s %s", bhHook(x.Request), x.Latency.Round(time.Millisecond)))
		if slow == nil || (x.Err != nil && slow.Err == nil) || ((x.Err == nil) == (slow.Err == nil) && x.Latency > slow.Latency) {
			slow = x
		}
	}
	c := bhCheck("realtime-deadline", slow, bhContractRealtime)
	limit := p.o.RealtimeLimit
	hook := bhHook(slow.Request)
	all := " (real-time calls: " + strings.Join(calls, ", ") + ")"
	switch {
	case errors.Is(slow.Err, errBhTooSlow):
		c.Status, c.Detail = Fail, fmt.Sprintf("%s real-time: %v: Bubblehouse gives up at %s and retries (100ms, then 1 second, 5 times)%s",
			hook, slow.Err, limit, all)
	case slow.Err != nil:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s real-time: no answer: %v", hook, slow.Err)
	case slow.Latency > limit:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s real-time answered in %s, over the %s limit%s", hook, slow.Latency.Round(time.Millisecond), limit, all)
	case slow.Latency > limit/2:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s real-time answered in %s, over half the %s limit: little margin%s", hook, slow.Latency.Round(time.Millisecond), limit, all)
	default:
		c.Status, c.Detail = Pass, fmt.Sprintf("every real-time call answered within %s%s", limit/2, all)
	}
	return c
}

// headerCase calls Hello1 with every header name in lower case, as
// HTTP/2 always sends them.
func (p *bhProber) headerCase() Check {
	x := p.call(p.hook(hooks.Hello1, bhRealtime, nil), func(r *http.Request) {
		for _, k := range []string{"Content-Type", "Accepts", "X-Request-ID", "X-BH-Urgency", "Authorization"} {
			if v := r.Header.Get(k); v != "" {
				r.Header.Del(k)
				r.Header[strings.ToLower(k)] = []string{v} // raw key: Header.Set would canonicalise it
			}
		}
	})
	c := bhCheck("header-case", x, bhContractHeaderCase)
	switch pr := bhAnswerProblem(x); {
	case pr == "":
		c.Status, c.Detail = Pass, "Hello1 with lower-case header names (x-request-id, x-bh-urgency, authorization, …) accepted"
		if x.Proto == "HTTP/2.0" {
			c.Detail += " (over HTTP/2, where every header name is lower case anyway)"
		}
	case x.Err == nil && (x.Status == http.StatusUnauthorized || x.Status == http.StatusForbidden):
		c.Status, c.Detail = Fail, fmt.Sprintf("Hello1 with a lower-case authorization header refused with %d: header names must be compared case-insensitively", x.Status)
	default:
		c.Status, c.Detail = Fail, "Hello1 with lower-case header names: "+pr
	}
	return c
}

// urgencyCase sends X-BH-Urgency values in other cases.
func (p *bhProber) urgencyCase(hook string) Check {
	var c Check
	for i, call := range []struct{ hook, urgency string }{{hooks.Hello1, "Real-Time"}, {hook, "URGENT"}} {
		x := p.call(p.hook(call.hook, call.urgency, nil), nil)
		cc := bhCheck("urgency-case", x, bhContractUrgency+
			`; values are not said to be case-sensitive, and Bubblehouse asks for case-insensitive header handling ("Real-time, urgent and regular calls")`)
		if x.Err != nil {
			cc.Status, cc.Detail = Fail, fmt.Sprintf("%s with X-BH-Urgency: %s: no answer: %v", call.hook, call.urgency, x.Err)
			return cc
		}
		if pr := bhAnswerProblem(x); pr != "" {
			cc.Status, cc.Detail = Warn, fmt.Sprintf("%s with X-BH-Urgency: %s: %s (Bubblehouse sends lower case today; "+
				"compare urgencies case-insensitively so that a change does not fail every call)", call.hook, call.urgency, pr)
			return cc
		}
		if i == 0 {
			// Whether the magic is right is hello1-magic's to grade; here,
			// that a handshake came back at all (not a queued receipt).
			if obj, _ := bhObject(x.Answer); obj["magic"] == nil {
				cc.Status, cc.Detail = Warn, fmt.Sprintf("%s with X-BH-Urgency: %s answered %d without a magic: not run as real-time "+
					"(compare urgencies case-insensitively)", call.hook, call.urgency, x.Status)
				return cc
			}
			c = cc
			c.Status, c.Detail = Pass, fmt.Sprintf("%s with X-BH-Urgency: %s answered %d with a handshake", call.hook, call.urgency, x.Status)
			continue
		}
		c.Detail += fmt.Sprintf("; %s with X-BH-Urgency: %s answered %d", call.hook, call.urgency, x.Status)
		if x.Latency > c.Latency {
			c.Latency = x.Latency
		}
	}
	return c
}
