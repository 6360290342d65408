// Package qa is hookbay's QA toolkit: it builds requests exactly as each
// sender builds them (the sender simulator behind "hookbay send"), probes
// any endpoint for what the sender's contract requires of a receiver
// ("hookbay conform"), and reports the results for people and pipelines.
//
// It talks to endpoints over HTTP only, so it grades the integrator's own
// receiver as well as hookbay. It imports nothing from this project but
// hooks' contract constants where they are shared.
package qa

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Status is a check's verdict.
type Status string

// The verdicts.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Warn Status = "WARN" // not required by the contract, but likely to hurt
	Skip Status = "SKIP" // could not be run (for example no credentials for it)
)

// Check is one probe's result, with the evidence.
type Check struct {
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Detail   string        `json:"detail"` // what was expected and what happened
	HTTP     int           `json:"status_code,omitempty"`
	Body     string        `json:"body_excerpt,omitempty"`
	Latency  time.Duration `json:"latency_ns,omitempty"`
	Contract string        `json:"contract,omitempty"` // the rule, quoted or cited
}

// Report is the outcome of a conformance run.
type Report struct {
	// Tool names what produced the report in JUnit suite and class names:
	// "conform" when empty, "report" for hookbay report.
	Tool   string    `json:"tool,omitempty"`
	Sender string    `json:"sender"`
	Target string    `json:"target"`
	Start  time.Time `json:"start"`
	Checks []Check   `json:"checks"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Add appends a check.
func (r *Report) Add(c Check) { r.Checks = append(r.Checks, c) }

// WriteTable prints one line per check for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s conformance of %s\n\n", r.Sender, r.Target)
	fmt.Fprintln(tw, "RESULT\tCHECK\tSTATUS\tLATENCY\tDETAIL")
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		code, lat := "-", "-"
		if c.HTTP != 0 {
			code = fmt.Sprint(c.HTTP)
		}
		if c.Latency != 0 {
			lat = c.Latency.Round(time.Millisecond / 10).String()
		}
		detail := c.Detail
		if c.Body != "" && c.Status != Pass {
			detail += " — body: " + c.Body
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Status, c.Name, code, lat, detail)
	}
	fmt.Fprintf(tw, "\n%d passed, %d failed, %d warnings, %d skipped\n", counts[Pass], counts[Fail], counts[Warn], counts[Skip])
	return tw.Flush()
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJUnit writes JUnit XML, one test case per check, so that QA
// pipelines show the run.
func (r *Report) WriteJUnit(path string) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string    `xml:"name,attr"`
		Classname string    `xml:"classname,attr"`
		Time      string    `xml:"time,attr"`
		Failure   *failure  `xml:"failure,omitempty"`
		Skipped   *struct{} `xml:"skipped,omitempty"`
		SystemOut string    `xml:"system-out,omitempty"`
	}
	type suite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Time     string     `xml:"time,attr"`
		Stamp    string     `xml:"timestamp,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	tool := r.Tool
	if tool == "" {
		tool = "conform"
	}
	s := suite{Name: "hookbay " + tool + " " + r.Sender, Tests: len(r.Checks), Stamp: r.Start.UTC().Format(time.RFC3339)}
	var total time.Duration
	for _, c := range r.Checks {
		total += c.Latency
		tc := testcase{Name: c.Name, Classname: tool + "." + r.Sender, Time: fmt.Sprintf("%.3f", c.Latency.Seconds()),
			SystemOut: strings.TrimSpace(c.Detail + "\n" + c.Contract)}
		switch c.Status {
		case Fail:
			s.Failures++
			text := c.Detail
			if c.HTTP != 0 {
				text = fmt.Sprintf("status %d, body: %s", c.HTTP, c.Body)
			}
			tc.Failure = &failure{Message: c.Detail, Text: text}
		case Skip:
			s.Skipped++
			tc.Skipped = &struct{}{}
		}
		s.Cases = append(s.Cases, tc)
	}
	s.Time = fmt.Sprintf("%.3f", total.Seconds())
	b, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JUnit XML: %w", err)
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

// Client sends probes. Its Transport decides TLS trust and client
// certificates.
type Client struct {
	HTTP *http.Client
}

// NewClient returns a client; caFile adds a CA to trust (a dev CA),
// insecure skips verification, certFile/keyFile present a client
// certificate (mTLS). A timeout of zero or less is Bubblehouse's 30 s call
// limit, the longest any sender waits: no probe waits forever.
func NewClient(caFile string, insecure bool, certFile, keyFile string, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = hooks.BubblehouseCallLimit
	}
	tc := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // explicit --insecure
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := systemPoolWith(pem)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	// No cap on connections per host: a probe's concurrency is the load it
	// means to put on the endpoint, and a wait for a client connection
	// would be counted as the endpoint's latency.
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1024}
	// Senders do not follow redirects: grade the answer the endpoint gave.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{HTTP: &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: noRedirect}}, nil
}

// Exchange is one request sent and its answer.
type Exchange struct {
	Request *http.Request
	Body    []byte // the request body as sent
	Status  int
	Header  http.Header
	Answer  []byte
	Latency time.Duration
	Proto   string
	Err     error // transport error: no answer
}

// Do sends req (whose body is body) and reads the whole answer.
func (c *Client) Do(ctx context.Context, req *http.Request, body []byte) *Exchange {
	x := &Exchange{Request: req, Body: body}
	req = req.WithContext(ctx)
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		x.Err, x.Latency = err, time.Since(start)
		return x
	}
	defer resp.Body.Close()
	x.Answer, x.Err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	x.Latency = time.Since(start)
	if x.Err == nil {
		x.Status, x.Header, x.Proto = resp.StatusCode, resp.Header, resp.Proto
	}
	return x
}

// Excerpt shortens an answer body for evidence.
func Excerpt(b []byte) string {
	s := []rune(strings.Join(strings.Fields(string(b)), " "))
	if len(s) > 160 {
		return string(s[:160]) + "…"
	}
	return string(s)
}

func sortedHeader(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Print writes an exchange for people: the request line and headers, the
// body, and the answer.
func (x *Exchange) Print(w io.Writer) {
	r := x.Request
	fmt.Fprintf(w, "> %s %s\n", r.Method, r.URL)
	for _, k := range sortedHeader(r.Header) {
		for _, v := range r.Header[k] {
			if strings.EqualFold(k, "Authorization") {
				// Keep the scheme, hide the secret: output ends up in logs.
				if scheme, _, ok := strings.Cut(v, " "); ok {
					v = scheme + " [redacted]"
				} else {
					v = "[redacted]"
				}
			}
			fmt.Fprintf(w, "> %s: %s\n", k, v)
		}
	}
	if len(x.Body) > 0 {
		fmt.Fprintf(w, ">\n> %s\n", Excerpt(x.Body))
	}
	if x.Err != nil {
		fmt.Fprintf(w, "\n< no answer after %s: %v\n", x.Latency.Round(time.Millisecond), x.Err)
		return
	}
	fmt.Fprintf(w, "\n< %s %d in %s\n", x.Proto, x.Status, x.Latency.Round(time.Microsecond*100))
	for _, k := range sortedHeader(x.Header) {
		for _, v := range x.Header[k] {
			fmt.Fprintf(w, "< %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "<\n< %s\n", string(x.Answer))
}

// unreachable reports whether an exchange got no answer because no
// connection could be made at all: refused, a name that does not resolve,
// no route, or a server certificate this client does not trust. Every
// other probe would fail the same way, so a run stops there.
func unreachable(x *Exchange) bool {
	if x == nil || x.Err == nil {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	return errors.Is(x.Err, syscall.ECONNREFUSED) || errors.As(x.Err, &dns) || errors.As(x.Err, &cert) ||
		(errors.As(x.Err, &op) && op.Op == "dial")
}

// unreachableCheck is the one check of a run against an endpoint that
// never answered: it passes nothing, and says why nothing else was probed.
func unreachableCheck(target string, x *Exchange) Check {
	host := target
	if u, err := url.Parse(strings.ReplaceAll(target, ":name", "name")); err == nil && u.Host != "" {
		host = u.Host
	}
	cause := x.Err.Error()
	var op *net.OpError
	var cert *tls.CertificateVerificationError
	switch {
	case errors.Is(x.Err, syscall.ECONNREFUSED):
		cause = "connection refused: nothing listens there"
	case errors.As(x.Err, &cert):
		cause = cert.Error() + "; give its CA with --cacert"
	case errors.As(x.Err, &op) && op.Err != nil:
		cause = op.Err.Error()
	}
	if strings.HasPrefix(x.Err.Error(), "get an OAuth 2.0 token") {
		cause = "its OAuth 2.0 token endpoint: " + cause
	}
	return Check{Name: "reachable", Status: Fail, Latency: x.Latency,
		Detail: fmt.Sprintf("no answer from %s (%s); is the receiver running, at this address? Nothing else was probed: an endpoint that never answered passes nothing", host, cause)}
}
