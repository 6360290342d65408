package qa

// The Bloomreach Engagement sender: requests as its webhook node builds
// them and what each answer means to it (the probes of "hookbay conform
// --sender bloomreach" are in bloomreach_conform.go). The contract is
// Bloomreach Engagement's public documentation, "Creating API endpoint for
// webhooks" (statuses, retries, 1 s, 200 concurrent requests, JSON, Basic
// auth) and "Webhooks" (methods, batches of up to 1000 customers, replies
// read up to 64 KB, authentication integrations and their "Test
// settings", throughput policies).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/hookbay/hookbay/hooks"
)

// BloomreachOptions describe the webhook Bloomreach would call and how it
// authenticates.
type BloomreachOptions struct {
	URL    string // the webhook's endpoint
	Method string // GET, POST, PUT, PATCH or DELETE; default POST

	// Credentials, as Bloomreach's authentication integrations send them.
	// A client certificate (mTLS) is the Client's (NewClient certFile,
	// keyFile).
	Basic   string   // user:pass, HTTP Basic (RFC 7617)
	Headers []string // K:V custom headers, each sent as is
	OAuth2  string   // TOKEN_URL,ID,SECRET: a client-credentials token sent as Authorization: Bearer

	// Batch is 0 for a per-customer webhook (the body is Data), or the
	// number of customers in a batch: a root object holding, at
	// ItemsPointer, Batch copies of Data, each with a unique "id".
	Batch int
	// Data is one customer's payload; BadData is one whose processing
	// must fail for that customer alone (conform only).
	Data, BadData []byte
	// ItemsPointer is where a batch's customers go; default /messages.
	ItemsPointer string
	// RequestIDHeader carries a unique ID per request; default X-Request-ID.
	RequestIDHeader string
	// Concurrency is the number of simultaneous requests of the
	// concurrency probe; default 200, the contract's minimum.
	Concurrency int
	// BatchURL is a batch webhook for the oversized-batch probe when URL
	// is a per-customer webhook. With Batch > 0 the probe uses URL.
	BatchURL string
}

// brDefaultConcurrency is the concurrency probe's default: "able to handle
// at least 200 concurrent HTTP requests".
const brDefaultConcurrency = 200

// BloomreachTimeout is how long Bloomreach waits for an answer: "Bloomreach
// expects your API to respond within 10 seconds (the default timeout)".
const BloomreachTimeout = 10 * time.Second

// brStopCodes are the 4xx answers that stop a webhook for all chunks of a
// campaign (Bloomreach "Creating API endpoint for webhooks", "HTTP 4xx").
var brStopCodes = []int{400, 404, 410, 412, 413, 418}

func (o *BloomreachOptions) applyDefaults() {
	o.Method = strings.ToUpper(strings.TrimSpace(o.Method))
	if o.Method == "" {
		o.Method = http.MethodPost
	}
	if o.ItemsPointer == "" {
		o.ItemsPointer = "/messages"
	}
	if o.RequestIDHeader == "" {
		o.RequestIDHeader = "X-Request-ID"
	}
	if o.Concurrency == 0 {
		o.Concurrency = brDefaultConcurrency
	}
}

// Validate reports the first option that cannot work, after defaults.
func (o BloomreachOptions) Validate() error {
	o.applyDefaults()
	if err := brCheckURL("url", o.URL); err != nil {
		return err
	}
	if o.BatchURL != "" {
		if err := brCheckURL("batch-url", o.BatchURL); err != nil {
			return err
		}
	}
	// Bloomreach "Webhooks", "Setting up a Webhook".
	if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, o.Method) {
		return fmt.Errorf("method %q: Bloomreach sends GET, POST, PUT, PATCH or DELETE", o.Method)
	}
	if o.Basic != "" && !strings.Contains(o.Basic, ":") {
		return fmt.Errorf("basic: want user:password")
	}
	for _, h := range o.Headers {
		if k, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("header %q: want Key:Value", h)
		}
	}
	if o.OAuth2 != "" {
		if o.Basic != "" {
			return errors.New("basic and oauth2 both use the Authorization header: give one")
		}
		if _, err := brParseOAuth2(o.OAuth2); err != nil {
			return err
		}
	}
	if o.Batch < 0 || o.Batch > hooks.BloomreachMaxBatch {
		return fmt.Errorf("batch %d: Bloomreach batches hold 1 to %d customers", o.Batch, hooks.BloomreachMaxBatch)
	}
	if o.Batch > 0 || o.BatchURL != "" {
		if !strings.HasPrefix(o.ItemsPointer, "/") {
			return fmt.Errorf("items pointer %q is not a JSON pointer such as /messages", o.ItemsPointer)
		}
		for name, d := range map[string][]byte{"data": o.Data, "bad data": o.BadData} {
			if len(d) > 0 && !brIsObject(d) {
				return fmt.Errorf("%s: a batch customer must be a JSON object (it gets a unique \"id\")", name)
			}
		}
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("concurrency %d: want at least 1", o.Concurrency)
	}
	return nil
}

func brCheckURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http:// or https:// URL", name, s)
	}
	return nil
}

func brParseOAuth2(s string) (*clientcredentials.Config, error) {
	// The secret is last so that it may hold commas.
	parts := strings.SplitN(s, ",", 3)
	if len(parts) != 3 || parts[1] == "" {
		return nil, errors.New("oauth2: want TOKEN_URL,CLIENT_ID,CLIENT_SECRET")
	}
	if err := brCheckURL("oauth2 token URL", parts[0]); err != nil {
		return nil, err
	}
	return &clientcredentials.Config{TokenURL: parts[0], ClientID: parts[1], ClientSecret: parts[2]}, nil
}

func brIsObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// brCred says which credentials a request carries.
type brCred int

const (
	brGood  brCred = iota // the configured ones
	brWrong               // each configured secret altered; the client certificate kept
	brNone                // none; the client certificate kept unless it is the only credential
)

// brSender builds and sends requests as Bloomreach would, with one OAuth
// token for the whole run and unique request and customer IDs.
type brSender struct {
	o      BloomreachOptions
	c      *Client
	noCert *Client // c without its client certificate
	tokens oauth2.TokenSource
	run    string
	seq    atomic.Int64
}

func newBRSender(ctx context.Context, o BloomreachOptions, c *Client) *brSender {
	s := &brSender{o: o, c: c, noCert: brWithoutCert(c), run: brRandom()}
	if o.OAuth2 != "" {
		cc, _ := brParseOAuth2(o.OAuth2) // validated
		// The token request trusts what the probes trust (--cacert) and
		// presents the same certificate.
		s.tokens = cc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, c.HTTP))
	}
	return s
}

func brRandom() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hasCert reports whether the client presents a certificate (mTLS).
func (s *brSender) hasCert() bool { return s.noCert != s.c }

// hasSecrets reports whether any credential travels in the request.
func (s *brSender) hasSecrets() bool {
	return s.o.Basic != "" || len(s.o.Headers) > 0 || s.o.OAuth2 != ""
}

// brWithoutCert returns c without its client certificate, or c itself when
// it has none.
func brWithoutCert(c *Client) *Client {
	tr, ok := c.HTTP.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || len(tr.TLSClientConfig.Certificates) == 0 {
		return c
	}
	tr = tr.Clone()
	tr.TLSClientConfig.Certificates = nil
	hc := *c.HTTP
	hc.Transport = tr
	return &Client{HTTP: &hc}
}

// body renders a request body: Data for a per-customer webhook; for a
// batch of n, a root with n customers at ItemsPointer. bad puts BadData
// in place of Data (for a batch, as its first customer).
func (s *brSender) body(n int, bad bool) ([]byte, error) {
	tmpl := s.o.Data
	if n == 0 {
		if bad {
			tmpl = s.o.BadData
		}
		return tmpl, nil
	}
	if len(tmpl) == 0 {
		tmpl = []byte(`{}`)
	}
	prefix := fmt.Sprintf("qa-%s-%d", s.run, s.seq.Add(1))
	items := make([]json.RawMessage, n)
	for i := range items {
		t := tmpl
		if bad && i == 0 {
			t = s.o.BadData
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(t, &m); err != nil || m == nil {
			return nil, errors.New("a batch customer must be a JSON object")
		}
		m["id"], _ = json.Marshal(fmt.Sprintf("%s-%d", prefix, i))
		items[i], _ = json.Marshal(m)
	}
	return brRoot(s.o.ItemsPointer, items)
}

// brRoot builds the Root template's output: the customers at pointer.
func brRoot(pointer string, items []json.RawMessage) ([]byte, error) {
	var v any = items
	tokens := strings.Split(strings.TrimPrefix(pointer, "/"), "/")
	for i := len(tokens) - 1; i >= 0; i-- {
		key := strings.ReplaceAll(strings.ReplaceAll(tokens[i], "~1", "/"), "~0", "~")
		v = map[string]any{key: v}
	}
	return json.Marshal(v)
}

// request builds one request to u with a fresh request ID.
func (s *brSender) request(ctx context.Context, method, u string, body []byte, cred brCred) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if len(body) > 0 {
		req, err = http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	}
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", brContentType(body))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hookbay-qa (Bloomreach Engagement webhook simulator)")
	req.Header.Set(s.o.RequestIDHeader, fmt.Sprintf("qa-%s-r%d", s.run, s.seq.Add(1)))
	if cred == brNone {
		return req, nil
	}
	wrong := func(v string) string {
		if cred == brWrong {
			return "wrong-" + v
		}
		return v
	}
	if s.o.Basic != "" {
		user, pass, _ := strings.Cut(s.o.Basic, ":")
		req.SetBasicAuth(user, wrong(pass))
	}
	for _, h := range s.o.Headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), wrong(strings.TrimSpace(v)))
	}
	if s.tokens != nil {
		token := "hookbay-qa-not-a-token-" + s.run
		if cred == brGood {
			tok, err := s.tokens.Token()
			if err != nil {
				return nil, fmt.Errorf("get an OAuth 2.0 token: %w", err)
			}
			token = tok.AccessToken
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// brContentType is what Bloomreach's payload formats declare: JSON, XML or
// TEXT (Bloomreach "Webhooks", "Setting up a Webhook").
func brContentType(body []byte) string {
	t := bytes.TrimSpace(body)
	switch {
	case json.Valid(t):
		return "application/json"
	case bytes.HasPrefix(t, []byte("<")):
		return "application/xml"
	}
	return "text/plain; charset=utf-8"
}

// client is the client for cred: without the certificate when it is the
// only credential and the request must go without credentials.
func (s *brSender) client(cred brCred) *Client {
	if cred != brGood && !s.hasSecrets() {
		return s.noCert
	}
	return s.c
}

// send builds and sends one request; a build error is reported as an
// exchange without an answer.
func (s *brSender) send(ctx context.Context, method, u string, body []byte, cred brCred) *Exchange {
	req, err := s.request(ctx, method, u, body, cred)
	if err != nil {
		return &Exchange{Body: body, Err: err}
	}
	return s.client(cred).Do(ctx, req, body)
}

// sendAll sends n requests at once: every request (and the token) is
// ready before the first leaves, so latencies measure the endpoint.
func (s *brSender) sendAll(ctx context.Context, n int, body func() ([]byte, error)) []*Exchange {
	xs := make([]*Exchange, n)
	reqs := make([]*http.Request, n)
	bodies := make([][]byte, n)
	for i := range n {
		b, err := body()
		if err == nil {
			reqs[i], err = s.request(ctx, s.o.Method, s.o.URL, b, brGood)
		}
		bodies[i] = b
		if err != nil {
			xs[i] = &Exchange{Body: b, Err: err}
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		if xs[i] != nil {
			continue
		}
		wg.Go(func() {
			<-start
			xs[i] = s.c.Do(ctx, reqs[i], bodies[i])
		})
	}
	close(start)
	wg.Wait()
	return xs
}

// BloomreachRequest builds the request Bloomreach's webhook node would send
// for o: the body (Data, or a batch of Batch customers), a unique request
// ID and the credentials. With OAuth2 it first gets a token from the token
// endpoint through c.
func BloomreachRequest(ctx context.Context, o BloomreachOptions, c *Client) (*http.Request, []byte, error) {
	o.applyDefaults()
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	s := newBRSender(ctx, o, c)
	body, err := s.body(o.Batch, false)
	if err != nil {
		return nil, nil, err
	}
	req, err := s.request(ctx, o.Method, o.URL, body, brGood)
	if err != nil {
		return nil, nil, err
	}
	return req, body, nil
}

// BloomreachMeaning says what an answer means to Bloomreach
// (Bloomreach "Creating API endpoint for webhooks", "Response codes" and "Retry
// policy"; Bloomreach "Webhooks" on the 64 KB it reads).
func BloomreachMeaning(status int, body []byte) string {
	var m string
	switch {
	case status == http.StatusOK:
		m = "delivered"
		if ok, found := brSuccess(body); found && !ok {
			m = "delivered; Bloomreach records the customer's failure"
		}
	case status >= 200 && status < 300:
		m = fmt.Sprintf("delivered (the contract asks for 200, not %d)", status)
	case status == http.StatusTooManyRequests || status >= 500:
		m = "Bloomreach will retry (up to 3 times, ~7 s, 45 s, 300 s)"
	case slices.Contains(brStopCodes, status):
		m = fmt.Sprintf("Bloomreach would stop this campaign: %d", status)
	case status >= 400:
		m = "recorded as a failed campaign event, not retried"
	default:
		m = fmt.Sprintf("%d is not an answer the contract describes", status)
	}
	if len(body) > hooks.BloomreachMaxReply {
		m += "; Bloomreach reads only the first 64 KB"
	}
	return m
}

// brSuccess reads a reply's top-level member named exactly "success", as
// Bloomreach reads it ("SUCCESS" is another member).
func brSuccess(body []byte) (ok, found bool) {
	switch string(hooks.Member(body, "success")) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}
