package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

// Guard is a func-field fake of handlers.Guard. A nil field behaves as the
// idempotency guard does for a request seen for the first time: Commit
// answers the receipt's own answer, Run executes fn and answers its
// result. Every receipt and record is kept for the test to read.
type Guard struct {
	CommitFn func(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error)
	RunFn    func(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error)
	RecordFn func(ctx context.Context, req *hooks.Request) error

	mu       sync.Mutex
	receipts []*hooks.Receipt
	records  []*hooks.Request // every record written: receipts' and refusals'
	headers  []string         // the header names passed to Commit and Run
	runs     int              // Run calls
}

var _ handlers.Guard = (*Guard)(nil)

// Commit implements handlers.Guard.
func (g *Guard) Commit(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error) {
	g.keep(r, header)
	if g.CommitFn != nil {
		return g.CommitFn(ctx, r, header)
	}
	return hooks.Response{Status: r.Request.Status, Body: r.Request.Response}, nil
}

// Run implements handlers.Guard.
func (g *Guard) Run(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error) {
	g.mu.Lock()
	g.runs++
	g.mu.Unlock()
	if g.RunFn != nil {
		g.keep(r, header)
		return g.RunFn(ctx, r, header, fn)
	}
	resp, err := fn(ctx)
	if err != nil {
		return resp, err
	}
	r.Request.Status, r.Request.Response = resp.Status, resp.Body
	g.keep(r, header)
	return resp, nil
}

// Record implements handlers.Guard.
func (g *Guard) Record(ctx context.Context, req *hooks.Request) error {
	if g.RecordFn != nil {
		if err := g.RecordFn(ctx, req); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.records = append(g.records, req)
	return nil
}

func (g *Guard) keep(r *hooks.Receipt, header string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.receipts = append(g.receipts, r)
	g.records = append(g.records, r.Request)
	g.headers = append(g.headers, header)
}

// last returns the newest record, failing the test when there is none.
func (g *Guard) last(t *testing.T) *hooks.Request {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.records) == 0 {
		t.Fatal("nothing was recorded")
	}
	return g.records[len(g.records)-1]
}

// lastReceipt returns the newest receipt, or nil when none was written.
func (g *Guard) lastReceipt() *hooks.Receipt {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.receipts) == 0 {
		return nil
	}
	return g.receipts[len(g.receipts)-1]
}

// counts returns how many receipts and records were written.
func (g *Guard) counts() (receipts, records int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.receipts), len(g.records)
}

// TokenStore is a func-field fake of handlers.TokenStore.
type TokenStore struct {
	SaveTokenFn   func(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error
	TokenClientFn func(ctx context.Context, hash []byte, now time.Time) (string, []string, error)
}

var _ handlers.TokenStore = (*TokenStore)(nil)

// SaveToken implements handlers.TokenStore.
func (s *TokenStore) SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error {
	return s.SaveTokenFn(ctx, hash, clientID, scopes, expires, now)
}

// TokenClient implements handlers.TokenStore.
func (s *TokenStore) TokenClient(ctx context.Context, hash []byte, now time.Time) (string, []string, error) {
	return s.TokenClientFn(ctx, hash, now)
}

// FaultStore is a func-field fake of handlers.FaultStore.
type FaultStore struct {
	FaultsFn   func(ctx context.Context, now time.Time) ([]*hooks.Fault, error)
	UseFaultFn func(ctx context.Context, id int64) (bool, error)
}

var _ handlers.FaultStore = (*FaultStore)(nil)

// Faults implements handlers.FaultStore.
func (s *FaultStore) Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error) {
	return s.FaultsFn(ctx, now)
}

// UseFault implements handlers.FaultStore.
func (s *FaultStore) UseFault(ctx context.Context, id int64) (bool, error) {
	return s.UseFaultFn(ctx, id)
}

// Pinger is a func-field fake of handlers.Pinger.
type Pinger struct {
	PingFn func(ctx context.Context) error
}

var _ handlers.Pinger = (*Pinger)(nil)

// Ping implements handlers.Pinger.
func (p *Pinger) Ping(ctx context.Context) error { return p.PingFn(ctx) }

// discard is a logger for tests that do not read the log.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// newEcho returns an Echo with the real error handler, whose refusals are
// recorded through g, as cli wires it.
func newEcho(g *Guard) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = handlers.ErrorHandler(discard, func(c echo.Context, req *hooks.Request) error {
		return g.Record(c.Request().Context(), req)
	})
	return e
}

// answer is an answer as the sender reads it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes an answer that must be one JSON object.
func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", a.status, a.body)
	}
	return m
}

// code is the error class of an error answer.
func (a answer) code(t *testing.T) string {
	t.Helper()
	s, _ := a.json(t)["code"].(string)
	return s
}

// serve sends req through e, routing, error handler and all.
func serve(e *echo.Echo, req *http.Request) answer {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Header(), rec.Body.Bytes()}
}

// post builds a POST of body with Content-Type application/json and the
// given headers (name, value, name, value, ...).
func post(target, body string, header ...string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// hasNote reports whether a record carries a note that contains s.
func hasNote(req *hooks.Request, s string) bool {
	return slices.ContainsFunc(req.Notes, func(n string) bool { return strings.Contains(n, s) })
}

// validJSON reports whether b is JSON that any reader can decode: valid
// syntax and valid UTF-8 (RFC 8259 section 8.1).
func validJSON(b []byte) bool {
	return json.Valid(b) && utf8.Valid(b)
}
