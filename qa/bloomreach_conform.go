package qa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// The probes' limits, from the contract.
const (
	brThrottleBurst = 300 // past the 200 Bloomreach may send at once
	brMaxLatency    = time.Second
)

// The conformance checks, in the order they run. Their names are stable:
// pipelines key on them.
const (
	brCheckSuccess      = "success-shape"
	brCheckCustomerFail = "customer-failure-not-4xx"
	brCheckConcurrency  = "concurrency-200-under-1s"
	brCheckBadCreds     = "bad-credentials-401"
	brCheckAuthTest     = "auth-test-200"
	brCheckOversized    = "oversized-batch-refused"
	brCheckThrottle     = "throttle-status"
	brCheckJSON         = "json-under-64k"
)

// Contract quotes, for the report.
const (
	brReqFile = `Bloomreach "Creating API endpoint for webhooks"`
	brWhFile  = `Bloomreach "Webhooks"`

	brQuote200     = brReqFile + `: "Return HTTP 200 for success or processing failure."; "Accept and respond with JSON."; example {"success": true, "result": {...}}`
	brQuoteOne     = brReqFile + `: "If request processing fails due to input specific to a single request, return HTTP 200 with an error message."; "Do not return HTTP 4xx if the request is invalid only for one customer"; 400, 404, 410, 412, 413, 418 "stop the webhook from sending any further requests for all chunks"`
	brQuoteConc    = brReqFile + `: "Your API should be able to handle at least 200 concurrent HTTP requests."; "Respond in less than 1,000 ms."`
	brQuoteJSON    = brReqFile + `: "Accept and respond with JSON."; "Only JSON and plain text can be parsed as a response."; ` + brWhFile + `: "Webhook can process the responses up to 64KB of raw unparsed data."`
	brQuote401     = brReqFile + `: "401 Unauthorized: credentials are not provided or are invalid."`
	brQuoteTest    = brWhFile + `, "Test settings": "The test endpoint must accept an empty request body, validate the credentials, and must respond with HTTP 200 Success for the test to succeed."`
	brQuoteBatch   = brWhFile + `: "The resulting batch request may contain up to 1000 customers."; ` + brReqFile + `: "Return HTTP 400 for errors or invalid requests to notify Bloomreach to stop sending more requests."; 413 also stops the campaign`
	brQuoteThrottl = brReqFile + `: "Bloomreach retries requests on the following conditions: HTTP 500 Internal Server Error or higher. HTTP 429 Too Many Requests."; "you can use HTTP 500 or connection reject to throttle concurrent requests"; every other 4xx is unrecoverable`
)

// brSeen collects every answer of a run for the JSON and size check.
type brSeen struct {
	mu sync.Mutex
	xs []*Exchange
}

func (b *brSeen) add(xs ...*Exchange) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range xs {
		if x != nil && x.Err == nil {
			b.xs = append(b.xs, x)
		}
	}
}

// ConformBloomreach grades the webhook endpoint o.URL against what
// Bloomreach requires of a receiver. o.Data must be a customer the endpoint
// accepts; o.BadData, if given, one it refuses for that customer alone.
// Every request carries a unique request ID.
func ConformBloomreach(ctx context.Context, c *Client, o BloomreachOptions) *Report {
	o.applyDefaults()
	r := &Report{Sender: "bloomreach", Target: o.URL, Start: time.Now()}
	err := o.Validate()
	if err == nil && len(o.Data) == 0 {
		err = errors.New("data: conform needs a customer the endpoint accepts")
	}
	if err != nil {
		r.Add(Check{Name: "options", Status: Fail, Detail: err.Error()})
		return r
	}
	p := &brProbe{s: newBRSender(ctx, o, c), o: o, seen: &brSeen{}}
	first := p.successShape(ctx)
	if unreachable(p.first) {
		r.Add(unreachableCheck(o.URL, p.first))
		return r
	}
	r.Add(first)
	r.Add(p.customerFailure(ctx))
	r.Add(p.concurrency(ctx))
	r.Add(p.badCredentials(ctx))
	r.Add(p.authTest(ctx))
	r.Add(p.oversized(ctx))
	r.Add(p.throttle(ctx))
	r.Add(p.jsonUnder64K())
	return r
}

// brProbe runs the checks of one conformance run.
type brProbe struct {
	s     *brSender
	o     BloomreachOptions
	seen  *brSeen
	first *Exchange // the run's first probe: no answer to it ends the run
}

// one sends a request of the run's shape (per-customer or batch) to URL.
func (p *brProbe) one(ctx context.Context, bad bool) *Exchange {
	body, err := p.s.body(p.o.Batch, bad)
	if err != nil {
		return &Exchange{Err: err}
	}
	x := p.s.send(ctx, p.o.Method, p.o.URL, body, brGood)
	p.seen.add(x)
	return x
}

func (p *brProbe) shape() string {
	if p.o.Batch > 0 {
		return fmt.Sprintf("a batch of %d", p.o.Batch)
	}
	return "one customer"
}

func brEvidence(c Check, x *Exchange) Check {
	c.HTTP, c.Body, c.Latency = x.Status, Excerpt(x.Answer), x.Latency
	return c
}

func (p *brProbe) successShape(ctx context.Context) Check {
	c := Check{Name: brCheckSuccess, Contract: brQuote200}
	x := p.one(ctx, false)
	p.first = x
	if x.Err != nil {
		c.Status, c.Detail, c.Latency = Fail, "no answer to --data: "+x.Err.Error(), x.Latency
		return c
	}
	c = brEvidence(c, x)
	ok, found := brSuccess(x.Answer)
	switch {
	case x.Status/100 != 2:
		c.Status, c.Detail = Fail, fmt.Sprintf("--data (%s) got %d, want 200: %s", p.shape(), x.Status, BloomreachMeaning(x.Status, x.Answer))
	case !json.Valid(x.Answer):
		c.Status, c.Detail = Fail, fmt.Sprintf("--data got %d with a reply that is not JSON", x.Status)
	case found && !ok:
		c.Status, c.Detail = Fail, "--data was refused (success false): give a customer the endpoint accepts"
	case x.Status != http.StatusOK:
		c.Status, c.Detail = Warn, fmt.Sprintf("--data got %d: the contract asks for 200", x.Status)
	case !found:
		c.Status, c.Detail = Warn, `200 without "success": the contract's replies carry {"success": true, ...}`
	default:
		c.Status, c.Detail = Pass, fmt.Sprintf(`--data (%s) got 200 {"success": true, ...}`, p.shape())
	}
	return c
}

func (p *brProbe) customerFailure(ctx context.Context) Check {
	c := Check{Name: brCheckCustomerFail, Contract: brQuoteOne}
	if len(p.o.BadData) == 0 {
		c.Status, c.Detail = Skip, "no --bad-data: give a customer the endpoint refuses (for example a text over its limit)"
		return c
	}
	x := p.one(ctx, true)
	if x.Err != nil {
		c.Status, c.Detail, c.Latency = Fail, "no answer to --bad-data: "+x.Err.Error(), x.Latency
		return c
	}
	c = brEvidence(c, x)
	what := "--bad-data"
	if p.o.Batch > 0 {
		what = fmt.Sprintf("a batch of %d whose first customer is --bad-data", p.o.Batch)
	}
	ok, found := brSuccess(x.Answer)
	switch {
	case x.Status == http.StatusTooManyRequests || x.Status >= 500:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s got %d: Bloomreach retries a customer whose data will not change, then records an unrecoverable error; answer 200 with success false", what, x.Status)
	case x.Status >= 400:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s got %d: a 4xx for one customer fails or stops the whole campaign (%s)", what, x.Status, BloomreachMeaning(x.Status, x.Answer))
	case x.Status/100 != 2:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s got %d, want 200 with success false", what, x.Status)
	case found && !ok && x.Status == http.StatusOK:
		c.Status, c.Detail = Pass, what+` got 200 {"success": false, ...}: Bloomreach records this customer's failure and goes on`
	case found && !ok:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s got %d with success false: the contract asks for 200", what, x.Status)
	default:
		c.Status, c.Detail = Warn, what+` was answered as a success: is it really refused by this endpoint? Bloomreach expects 200 {"success": false, "errors": [...]}`
	}
	return c
}

func (p *brProbe) concurrency(ctx context.Context) Check {
	n := p.o.Concurrency
	c := Check{Name: brCheckConcurrency, Contract: brQuoteConc}
	xs := p.s.sendAll(ctx, n, func() ([]byte, error) { return p.s.body(p.o.Batch, false) })
	p.seen.add(xs...)
	lat := make([]time.Duration, 0, n)
	var errs, slow, stop, retried int
	var firstErr error
	statuses := map[int]int{}
	var worst *Exchange
	for _, x := range xs {
		lat = append(lat, x.Latency)
		if worst == nil || x.Latency > worst.Latency {
			worst = x
		}
		if x.Err != nil {
			errs++
			if firstErr == nil {
				firstErr = x.Err
			}
			continue
		}
		statuses[x.Status]++
		if x.Latency >= brMaxLatency {
			slow++
		}
		switch {
		case x.Status == http.StatusTooManyRequests || x.Status >= 500:
			retried++
		case x.Status >= 300:
			stop++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[max(0, (len(lat)*99+99)/100-1)]
	c.Latency = lat[len(lat)-1]
	if worst != nil && worst.Err == nil {
		c.HTTP, c.Body = worst.Status, Excerpt(worst.Answer)
	}
	stats := fmt.Sprintf("%d concurrent requests (%s each): %s; max %s, p99 %s",
		n, p.shape(), brStatuses(statuses, errs), lat[len(lat)-1].Round(time.Millisecond), p99.Round(time.Millisecond))
	switch {
	case errs > 0:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s; %d got no answer (first: %v)", stats, errs, firstErr)
	case slow > 0:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s; %d took 1 s or more", stats, slow)
	case stop > 0:
		c.Status, c.Detail = Fail, stats+"; under load some got a status Bloomreach does not retry"
	case retried > 0:
		c.Status, c.Detail = Warn, stats+"; some were throttled (Bloomreach retries them), but the contract asks for at least 200 at once"
	default:
		c.Status, c.Detail = Pass, stats
	}
	return c
}

// brStatuses summarises answers as "200×198, 429×2, 1 no answer".
func brStatuses(m map[int]int, errs int) string {
	codes := make([]int, 0, len(m))
	for k := range m {
		codes = append(codes, k)
	}
	sort.Ints(codes)
	var parts []string
	for _, k := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", k, m[k]))
	}
	if errs > 0 {
		parts = append(parts, fmt.Sprintf("%d no answer", errs))
	}
	return strings.Join(parts, ", ")
}

func (p *brProbe) badCredentials(ctx context.Context) Check {
	c := Check{Name: brCheckBadCreds, Contract: brQuote401}
	body, err := p.s.body(p.o.Batch, false)
	if err != nil {
		c.Status, c.Detail = Fail, err.Error()
		return c
	}
	if !p.s.hasSecrets() && !p.s.hasCert() {
		x := p.s.send(ctx, p.o.Method, p.o.URL, body, brNone)
		p.seen.add(x)
		switch {
		case x.Err != nil:
			c.Status, c.Detail = Warn, "no credentials given, and a request without them got no answer: "+x.Err.Error()
		case x.Status == http.StatusUnauthorized:
			c = brEvidence(c, x)
			c.Status, c.Detail = Pass, "no credentials given: a request without them got 401 (the other probes need --basic, --header, --oauth2 or --cert)"
		case x.Status/100 == 2:
			c = brEvidence(c, x)
			c.Status, c.Detail = Warn, `a request without credentials was accepted: the contract asks to "Authenticate requests with an HTTP authorization header"; give --basic, --header, --oauth2 or --cert`
		default:
			c = brEvidence(c, x)
			c.Status, c.Detail = Warn, fmt.Sprintf("no credentials given; a request without them got %d", x.Status)
		}
		return c
	}
	type variant struct {
		name string
		cred brCred
	}
	variants := []variant{{"wrong credentials", brWrong}, {"no credentials", brNone}}
	if !p.s.hasSecrets() { // the certificate is the only credential
		variants = []variant{{"no client certificate", brNone}}
	}
	var notes []string
	worst := Pass
	raise := func(s Status) {
		rank := map[Status]int{Pass: 0, Warn: 1, Fail: 2}
		if rank[s] > rank[worst] {
			worst = s
		}
	}
	for _, v := range variants {
		x := p.s.send(ctx, p.o.Method, p.o.URL, body, v.cred)
		p.seen.add(x)
		switch {
		case x.Err != nil && v.name == "no client certificate" && strings.Contains(x.Err.Error(), "tls"):
			notes = append(notes, v.name+": refused in the TLS handshake")
			continue
		case x.Err != nil:
			raise(Fail)
			notes = append(notes, v.name+": no answer: "+x.Err.Error())
			continue
		}
		if c.HTTP == 0 || x.Status != http.StatusUnauthorized {
			c = brEvidence(c, x)
		}
		switch {
		case x.Status == http.StatusUnauthorized:
			notes = append(notes, v.name+": 401")
		case x.Status/100 == 2:
			raise(Fail)
			notes = append(notes, fmt.Sprintf("%s: %d, accepted", v.name, x.Status))
		case x.Status == http.StatusForbidden:
			raise(Warn)
			notes = append(notes, v.name+": 403, want 401 (Bloomreach records either as a failed campaign event)")
		default:
			raise(Fail)
			notes = append(notes, fmt.Sprintf("%s: %d, want 401 (%s)", v.name, x.Status, BloomreachMeaning(x.Status, x.Answer)))
		}
	}
	c.Status, c.Detail = worst, strings.Join(notes, "; ")
	return c
}

// brAuthTestURL is hookbay's convention for the credential test route:
// {webhook URL}/auth-test.
func brAuthTestURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u + "/auth-test"
	}
	pu.Path = strings.TrimSuffix(pu.Path, "/") + "/auth-test"
	pu.RawPath = ""
	return pu.String()
}

func (p *brProbe) authTest(ctx context.Context) Check {
	c := Check{Name: brCheckAuthTest, Contract: brQuoteTest}
	u := brAuthTestURL(p.o.URL)
	var ok, missing []string
	var bad []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		x := p.s.send(ctx, m, u, nil, brGood)
		p.seen.add(x)
		switch {
		case x.Err != nil:
			bad = append(bad, m+": no answer: "+x.Err.Error())
		case x.Status == http.StatusOK:
			ok = append(ok, m)
			if c.HTTP == 0 {
				c = brEvidence(c, x)
			}
		case x.Status == http.StatusNotFound || x.Status == http.StatusMethodNotAllowed:
			missing = append(missing, fmt.Sprintf("%s %d", m, x.Status))
		default:
			c = brEvidence(c, x)
			bad = append(bad, fmt.Sprintf("%s with an empty body and good credentials: %d", m, x.Status))
		}
	}
	const convention = "hookbay's convention is {webhook URL}/auth-test; Bloomreach's Test settings take any method and path that accepts an empty body, checks the credentials and answers 200"
	switch {
	case len(bad) > 0:
		c.Status, c.Detail = Fail, u+": "+strings.Join(bad, "; ")
		return c
	case len(ok) == 0:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s: %s: no auth-test route (%s)", u, strings.Join(missing, ", "), convention)
		return c
	}
	c.Status, c.Detail = Pass, fmt.Sprintf("%s: %s with an empty body answered 200", u, strings.Join(ok, " and "))
	if len(missing) > 0 {
		c.Status, c.Detail = Warn, fmt.Sprintf("%s: %s answered 200 but %s: set Test settings to %s", u, strings.Join(ok, ", "), strings.Join(missing, ", "), ok[0])
	}
	// The route must also check the credentials.
	if p.s.hasSecrets() || p.s.hasCert() {
		x := p.s.send(ctx, ok[0], u, nil, brNone)
		p.seen.add(x)
		switch {
		case x.Err != nil:
			c.Detail += "; without credentials: refused (" + x.Err.Error() + ")"
		case x.Status/100 == 2:
			c = brEvidence(c, x)
			c.Status, c.Detail = Fail, fmt.Sprintf("%s: without credentials %s answered %d: the route does not validate the credentials, so Test settings prove nothing", u, ok[0], x.Status)
		default:
			c.Detail += fmt.Sprintf("; without credentials %d", x.Status)
		}
	}
	return c
}

func (p *brProbe) oversized(ctx context.Context) Check {
	c := Check{Name: brCheckOversized, Contract: brQuoteBatch}
	u := p.o.URL
	switch {
	case p.o.Batch > 0:
	case p.o.BatchURL != "":
		u = p.o.BatchURL
	default:
		c.Status, c.Detail = Skip, "a per-customer webhook gets one customer per request; give --batch N (URL is a batch webhook) or --batch-url to probe a batch webhook"
		return c
	}
	n := hooks.BloomreachMaxBatch + 1
	body, err := p.s.body(n, false)
	if err != nil {
		c.Status, c.Detail = Fail, err.Error()
		return c
	}
	x := p.s.send(ctx, p.o.Method, u, body, brGood)
	p.seen.add(x)
	if x.Err != nil {
		c.Status, c.Detail, c.Latency = Fail, fmt.Sprintf("%s: %d customers at %s (%d bytes) got no answer: %v; Bloomreach retries a dropped connection, and this batch can never pass: refuse it with 400 or 413", u, n, p.o.ItemsPointer, len(body), x.Err), x.Latency
		return c
	}
	c = brEvidence(c, x)
	what := fmt.Sprintf("%s: %d customers at %s (%d bytes)", u, n, p.o.ItemsPointer, len(body))
	switch {
	case x.Status == http.StatusBadRequest || x.Status == http.StatusRequestEntityTooLarge:
		c.Status, c.Detail = Pass, fmt.Sprintf("%s got %d; both 400 and 413 stop the campaign, which is right: Bloomreach never builds more than 1000, so the webhook definition is wrong", what, x.Status)
	case x.Status/100 == 2:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s got %d: accepted more customers than Bloomreach ever sends", what, x.Status)
	case x.Status == http.StatusTooManyRequests || x.Status >= 500:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s got %d: Bloomreach retries a batch that can never pass; 400 or 413 stop it", what, x.Status)
	case slices.Contains(brStopCodes, x.Status):
		c.Status, c.Detail = Warn, fmt.Sprintf("%s got %d: a documented code that stops the campaign, as it should stop, but 400 or 413 say why", what, x.Status)
	default:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s got %d (%s); the documented answers are 400 or 413", what, x.Status, BloomreachMeaning(x.Status, x.Answer))
	}
	return c
}

func (p *brProbe) throttle(ctx context.Context) Check {
	c := Check{Name: brCheckThrottle, Contract: brQuoteThrottl}
	start := time.Now()
	xs := p.s.sendAll(ctx, brThrottleBurst, func() ([]byte, error) { return p.s.body(p.o.Batch, false) })
	took := time.Since(start)
	p.seen.add(xs...)
	statuses := map[int]int{}
	var errs, throttled int
	var wrong []*Exchange
	for _, x := range xs {
		if x.Err != nil {
			errs++
			continue
		}
		statuses[x.Status]++
		switch {
		case x.Status/100 == 2:
		case x.Status == http.StatusTooManyRequests || x.Status >= 500:
			throttled++
		default:
			wrong = append(wrong, x)
		}
	}
	stats := fmt.Sprintf("a burst of %d requests in %s: %s", brThrottleBurst, took.Round(time.Millisecond), brStatuses(statuses, errs))
	switch {
	case len(wrong) > 0:
		c = brEvidence(c, wrong[0])
		c.Status, c.Detail = Fail, fmt.Sprintf("%s; a throttled request must get 429 or 5xx, which Bloomreach retries: %d is %s", stats, wrong[0].Status, BloomreachMeaning(wrong[0].Status, wrong[0].Answer))
	case errs == len(xs):
		c.Status, c.Detail = Fail, stats+"; no request was answered"
	case throttled > 0 || errs > 0:
		c.Status, c.Detail = Pass, stats+"; throttled with statuses Bloomreach retries"
		if errs > 0 {
			c.Detail += " (connection rejects are retried too)"
		}
	default:
		// Nothing was throttled, so there is no throttling answer to grade.
		c.Status, c.Detail = Skip, stats+"; not throttled at this rate, so the throttling status could not be checked"
	}
	return c
}

func (p *brProbe) jsonUnder64K() Check {
	c := Check{Name: brCheckJSON, Contract: brQuoteJSON}
	p.seen.mu.Lock()
	xs := slices.Clone(p.seen.xs)
	p.seen.mu.Unlock()
	var big, notJSON2xx, plain2xx, notJSONErr []*Exchange
	largest := 0
	for _, x := range xs {
		largest = max(largest, len(x.Answer))
		if len(x.Answer) > hooks.BloomreachMaxReply {
			big = append(big, x)
		}
		if json.Valid(x.Answer) {
			continue
		}
		if x.Status/100 == 2 && len(bytes.TrimSpace(x.Answer)) == 0 && strings.HasSuffix(x.Request.URL.Path, "/auth-test") {
			continue // Test settings ask for a 200, nothing more
		}
		mt, _, _ := mime.ParseMediaType(x.Header.Get("Content-Type"))
		switch {
		case x.Status/100 == 2 && mt == "text/plain":
			plain2xx = append(plain2xx, x)
		case x.Status/100 == 2:
			notJSON2xx = append(notJSON2xx, x)
		default:
			notJSONErr = append(notJSONErr, x)
		}
	}
	stats := fmt.Sprintf("%d answers, largest %d bytes (Bloomreach reads %d)", len(xs), largest, hooks.BloomreachMaxReply)
	switch {
	case len(xs) == 0:
		c.Status, c.Detail = Fail, "no answers to check"
	case len(big) > 0:
		c = brEvidence(c, big[0])
		c.Status, c.Detail = Fail, fmt.Sprintf("%s; %d over 64 KB: Bloomreach reads only the first 64 KB", stats, len(big))
	case len(notJSON2xx) > 0:
		c = brEvidence(c, notJSON2xx[0])
		c.Status, c.Detail = Fail, fmt.Sprintf("%s; %d successful answers are not JSON (Content-Type %q)", stats, len(notJSON2xx), notJSON2xx[0].Header.Get("Content-Type"))
	case len(plain2xx) > 0:
		c = brEvidence(c, plain2xx[0])
		c.Status, c.Detail = Warn, fmt.Sprintf("%s; %d successful answers are plain text: Bloomreach parses them, JSON is recommended", stats, len(plain2xx))
	case len(notJSONErr) > 0:
		c = brEvidence(c, notJSONErr[0])
		c.Status, c.Detail = Warn, fmt.Sprintf("%s; %d error answers are not JSON (first: %d)", stats, len(notJSONErr), notJSONErr[0].Status)
	default:
		c.Status, c.Detail = Pass, stats+"; all JSON"
	}
	return c
}
