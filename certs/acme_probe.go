package certs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxProbeBody bounds how much of a CA's JSON answer caProbe reads.
const maxProbeBody = 1 << 20

// caProbe is the transport of the ACME client. It passes every request on
// unchanged and remembers the CA's last problem and how many orders were
// placed, because autocert reports neither: a failed challenge makes it
// try the next challenge type and end with "no viable challenge type
// found", and background renewals report nothing at all.
type caProbe struct {
	base         http.RoundTripper
	directoryURL string
	now          func() time.Time

	mu          sync.Mutex
	newOrderURL string
	orders      int
	problem     string
	problemAt   time.Time
}

// acmeProblem is an RFC 8555 problem document.
type acmeProblem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (p *acmeProblem) String() string {
	return strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:") + ": " + p.Detail
}

// acmeObject holds the fields of an order or an authorization that say
// why it became invalid.
type acmeObject struct {
	Status     string `json:"status"`
	Identifier struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Challenges []struct {
		Type  string       `json:"type"`
		Error *acmeProblem `json:"error"`
	} `json:"challenges"`
	Error    *acmeProblem `json:"error"`
	NewOrder string       `json:"newOrder"` // in the directory
}

// RoundTrip implements http.RoundTripper.
func (p *caProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err != nil {
		p.record(fmt.Sprintf("no answer from the CA to %s %s: %v", req.Method, req.URL.Path, err))
		return resp, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "application/problem+json" {
		return resp, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}

	if mt == "application/problem+json" {
		var prob acmeProblem
		if json.Unmarshal(body, &prob) == nil && !strings.HasSuffix(prob.Type, ":badNonce") {
			// A stale nonce is retried by the client at once.
			p.record(prob.String())
		}
		return resp, nil
	}
	var obj acmeObject
	if json.Unmarshal(body, &obj) != nil {
		return resp, nil
	}
	url := req.URL.String()
	p.mu.Lock()
	switch {
	case url == p.directoryURL && obj.NewOrder != "":
		p.newOrderURL = obj.NewOrder
	case req.Method == http.MethodPost && url == p.newOrderURL && resp.StatusCode == http.StatusCreated:
		p.orders++
	}
	p.mu.Unlock()
	if obj.Status == "invalid" {
		p.record(obj.reason())
	}
	return resp, nil
}

// reason says why an invalid order or authorization failed.
func (o *acmeObject) reason() string {
	var parts []string
	for _, c := range o.Challenges {
		if c.Error != nil {
			parts = append(parts, c.Type+" for "+o.Identifier.Value+": "+c.Error.String())
		}
	}
	if o.Error != nil {
		parts = append(parts, o.Error.String())
	}
	if len(parts) == 0 {
		return "the CA marked an order or authorization invalid without saying why"
	}
	return strings.Join(parts, "; ")
}

func (p *caProbe) record(problem string) {
	p.mu.Lock()
	p.problem, p.problemAt = problem, p.now()
	p.mu.Unlock()
}

// lastProblem returns the CA's last problem and when it was seen.
func (p *caProbe) lastProblem() (string, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.problem, p.problemAt
}

// orderCount returns how many orders the CA accepted.
func (p *caProbe) orderCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders
}
