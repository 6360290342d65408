package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// Paging bounds of the API.
const (
	defaultLimit = 50
	maxLimit     = 500
	// maxExport caps the records one export holds.
	maxExport = 10000
)

func (s *Server) routes(e *echo.Echo) {
	e.GET("/login", s.loginPage)
	e.POST("/login", s.login)
	e.POST("/logout", s.logout)
	e.GET("/static/*", s.static)
	for _, p := range []string{"/", "/requests/:id", "/dead", "/faults", "/report"} {
		e.GET(p, s.page)
	}
	api := e.Group("/api/v1")
	api.GET("/info", s.info)
	api.GET("/requests", s.listRequests)
	api.GET("/requests/export", s.exportRequests)
	api.GET("/requests/:id", s.showRequest)
	api.GET("/requests/:id/body", s.downloadBody)
	api.GET("/requests/:id/curl", s.curl)
	api.POST("/requests/:id/replay", s.replay)
	api.GET("/jobs", s.listJobs)
	api.POST("/jobs/retry", s.retryJobs)
	api.POST("/jobs/:id/retry", s.retryJob)
	api.GET("/faults", s.listFaults)
	api.POST("/faults", s.addFault)
	api.DELETE("/faults", s.clearFaults)
	api.DELETE("/faults/:id", s.deleteFault)
	api.GET("/report", s.report)
	api.GET("/stream", s.stream)
	api.Any("/*", func(c echo.Context) error {
		return errorf(http.StatusNotFound, "no API endpoint %s %s", c.Request().Method, c.Request().URL.Path)
	})
}

// info tells the UI what it needs to draw itself.
func (s *Server) info(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"version": s.opts.Version, "senders": s.senders(),
		"token": s.opts.Token != "", "replay": s.opts.Replay != nil, "report": s.opts.Report != nil})
}

func (s *Server) senders() []hooks.Sender {
	if len(s.opts.Senders) > 0 {
		return s.opts.Senders
	}
	return []hooks.Sender{hooks.SenderBubblehouse, hooks.SenderSvix, hooks.SenderBloomreach}
}

// pathID reads the :id of a path.
func pathID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusBadRequest, "id %q is not a positive number", c.Param("id"))
	}
	return id, nil
}

// parseSender reads a sender parameter: "" (all) or a sender hookbay knows.
func parseSender(v string) (hooks.Sender, error) {
	switch s := hooks.Sender(v); s {
	case "", hooks.SenderBubblehouse, hooks.SenderSvix, hooks.SenderBloomreach:
		return s, nil
	}
	return "", errorf(http.StatusBadRequest, "sender %q: want bubblehouse, svix or bloomreach", v)
}

// parseTime reads a time parameter: RFC 3339, or a duration meaning that
// long ago (2h).
func parseTime(key, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "%s %q: want an RFC 3339 time or a duration such as 2h", key, v)
	}
	return t, nil
}

func parseInt(key, v string, min int64) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		return 0, errorf(http.StatusBadRequest, "%s %q: want a whole number of at least %d", key, v, min)
	}
	return n, nil
}

// requestFilter reads the list's filters: sender, name, status (a code
// such as 503, or a class such as 5xx), request_id, q (text in the body or
// headers), since, until, before (an id: older records) and limit.
func (s *Server) requestFilter(q url.Values, maxN int) (hooks.RequestFilter, error) {
	var f hooks.RequestFilter
	var err error
	for k := range q {
		switch k {
		case "sender", "name", "status", "request_id", "q", "since", "until", "before", "limit", "format":
		default:
			return f, errorf(http.StatusBadRequest, "unknown parameter %q (sender, name, status, request_id, q, since, until, before, limit)", k)
		}
	}
	if f.Sender, err = parseSender(q.Get("sender")); err != nil {
		return f, err
	}
	f.Name, f.RequestID, f.Search = q.Get("name"), q.Get("request_id"), q.Get("q")
	if st := strings.ToLower(q.Get("status")); st != "" {
		if len(st) == 3 && st[1:] == "xx" && st[0] >= '1' && st[0] <= '5' {
			f.StatusClass = int(st[0] - '0')
		} else if n, err := strconv.Atoi(st); err == nil && n >= 100 && n <= 599 {
			f.Status = n
		} else {
			return f, errorf(http.StatusBadRequest, "status %q: want a status such as 503 or a class such as 5xx", q.Get("status"))
		}
	}
	now := s.opts.Now()
	if f.Since, err = parseTime("since", q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Get("until"), now); err != nil {
		return f, err
	}
	if f.BeforeID, err = parseInt("before", q.Get("before"), 1); err != nil {
		return f, err
	}
	limit, err := parseInt("limit", q.Get("limit"), 1)
	if err != nil {
		return f, err
	}
	f.Limit = int(min(limit, int64(maxN)))
	if f.Limit == 0 {
		f.Limit = defaultLimit
	}
	return f, nil
}

// searched says which records a bounded text search looked at.
type searched struct {
	// From and To are the ids examined, oldest and newest; ids below From
	// were not searched: ask again with before=From for older matches.
	From   int64 `json:"from"`
	To     int64 `json:"to"`
	Window int64 `json:"window"`
}

// page is one page of the list and where the next one starts (0: none).
type page struct {
	Requests   []requestSummary `json:"requests"`
	NextBefore int64            `json:"next_before,omitempty"`
	Searched   *searched        `json:"searched,omitempty"`
}

// findPage reads one page of records. A text search or a request-ID
// lookup, which no index serves, reads at most the store's search window
// of records below the page's start, and says where it stopped: the next
// page goes on from there even when this one came out short.
func (s *Server) findPage(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, int64, *searched, error) {
	w, ok := s.opts.Store.(searchWindowed)
	if (f.Search == "" && f.RequestID == "") || !ok || f.ID != 0 {
		reqs, err := s.opts.Store.FindRequests(ctx, f)
		if err != nil {
			return nil, 0, nil, err
		}
		return reqs, nextBefore(reqs, f.Limit), nil, nil
	}
	top := f.BeforeID
	if top == 0 {
		newest, err := s.opts.Store.FindRequests(ctx, hooks.RequestFilter{Limit: 1})
		if err != nil || len(newest) == 0 {
			return nil, 0, nil, err
		}
		top = newest[0].ID + 1
	}
	sr := &searched{From: max(1, top-w.SearchWindow()), To: top - 1, Window: w.SearchWindow()}
	// The store bounds a text search itself; a request ID is bounded here.
	f.BeforeID, f.AfterID = top, max(f.AfterID, sr.From-1)
	reqs, err := s.opts.Store.FindRequests(ctx, f)
	if err != nil {
		return nil, 0, nil, err
	}
	next := nextBefore(reqs, f.Limit)
	if next == 0 && sr.From > 1 {
		next = sr.From
	}
	return reqs, next, sr, nil
}

// nextBefore is where the page after reqs starts: 0 when reqs is not full.
func nextBefore(reqs []*hooks.Request, limit int) int64 {
	if len(reqs) == limit {
		return reqs[len(reqs)-1].ID
	}
	return 0
}

func (s *Server) listRequests(c echo.Context) error {
	f, err := s.requestFilter(c.QueryParams(), maxLimit)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	reqs, next, sr, err := s.findPage(ctx, f)
	if err != nil {
		return err
	}
	out := page{Requests: make([]requestSummary, 0, len(reqs)), NextBefore: next, Searched: sr}
	for _, r := range reqs {
		v := summarize(r)
		jobs, err := s.opts.Store.FindJobs(ctx, hooks.JobFilter{RequestRef: r.ID, Limit: 10000})
		if err != nil {
			return err
		}
		v.Delivery = summarizeJobs(jobs)
		out.Requests = append(out.Requests, v)
	}
	return c.JSON(http.StatusOK, out)
}

// record reads one request record, or answers 404.
func (s *Server) record(ctx context.Context, id int64) (*hooks.Request, error) {
	reqs, err := s.opts.Store.FindRequests(ctx, hooks.RequestFilter{ID: id, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, errorf(http.StatusNotFound, "no request %d", id)
	}
	return reqs[0], nil
}

func (s *Server) showRequest(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	r, err := s.record(ctx, id)
	if err != nil {
		return err
	}
	d, err := s.detail(ctx, r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// detail is everything known about a record: its jobs with every attempt,
// and the other records with its request ID.
func (s *Server) detail(ctx context.Context, r *hooks.Request) (*requestDetail, error) {
	d := &requestDetail{requestSummary: summarize(r), RemoteAddr: r.RemoteAddr, Header: r.Header, Body: bodyOf(r.Body),
		Response: bodyOf(r.Response), Notes: r.Notes, Auth: judgeAuth(r), Duplicates: []int64{}, Jobs: []jobDetail{},
		Related: []requestSummary{}}
	if d.Header == nil {
		d.Header = map[string][]string{}
	}
	if d.Notes == nil {
		d.Notes = []string{}
	}
	jobs, err := s.opts.Store.FindJobs(ctx, hooks.JobFilter{RequestRef: r.ID, Limit: 10000})
	if err != nil {
		return nil, err
	}
	d.Delivery = summarizeJobs(jobs)
	for _, j := range jobs {
		jd := jobOf(j)
		atts, err := s.opts.Store.FindAttempts(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		if atts != nil {
			jd.History = atts
		}
		d.Jobs = append(d.Jobs, jd)
	}
	if r.RequestID != "" {
		// Related requests are looked for among the records near this
		// one: a sender retries within hours or days, not a million
		// records later, and no index serves a request ID.
		same, err := s.opts.Store.FindRequests(ctx, hooks.RequestFilter{Sender: r.Sender, RequestID: r.RequestID,
			AfterID: max(0, r.ID-relatedWindow), BeforeID: r.ID + relatedWindow, Limit: 50})
		if err != nil {
			return nil, err
		}
		for _, o := range same {
			if o.ID == r.ID || o.Name != r.Name {
				continue
			}
			if o.DuplicateOf == r.ID {
				d.Duplicates = append(d.Duplicates, o.ID)
			}
			d.Related = append(d.Related, summarize(o))
		}
	}
	return d, nil
}

// downloadBody sends a record's body, its exact bytes, as a file. It is
// never rendered: what a sender sent must not run as a page here.
func (s *Server) downloadBody(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.record(c.Request().Context(), id)
	if err != nil {
		return err
	}
	name := "request-" + strconv.FormatInt(id, 10) + ".body"
	if hooks.CheckText(r.Body) == nil && json.Valid(r.Body) {
		name = "request-" + strconv.FormatInt(id, 10) + ".json"
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Content-Security-Policy", "sandbox")
	return c.Blob(http.StatusOK, "application/octet-stream", r.Body)
}

func (s *Server) curl(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.record(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.String(http.StatusOK, curlCommand(r, s.opts.BaseURL()))
}

// relatedWindow is how many records on either side of a request its page
// looks through for the sender's other requests with the same request ID.
const relatedWindow = 50_000

// replayResult is one replayed job's outcome.
type replayResult struct {
	Job        int64         `json:"job"`
	Name       string        `json:"name"`
	OK         bool          `json:"ok"`
	Outcome    hooks.Outcome `json:"outcome"`
	StoredOnly bool          `json:"stored_only,omitempty"`
	Error      string        `json:"error,omitempty"`
	RetryAt    *time.Time    `json:"retry_at,omitempty"`
	Output     body          `json:"output"`
}

func (s *Server) replay(c echo.Context) error {
	if s.opts.Replay == nil {
		return errorf(http.StatusNotImplemented, "replay is not available here")
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	force := c.QueryParam("force") == "true" || c.QueryParam("force") == "1"
	replayed, err := s.opts.Replay(c.Request().Context(), id, force)
	if err != nil && len(replayed) == 0 {
		return err
	}
	out := struct {
		Event int64          `json:"event"`
		OK    bool           `json:"ok"`
		Error string         `json:"error,omitempty"`
		Jobs  []replayResult `json:"jobs"`
	}{Event: id, OK: err == nil, Jobs: []replayResult{}}
	if err != nil {
		out.Error = err.Error()
	}
	for _, r := range replayed {
		v := replayResult{Job: r.Job.ID, Name: r.Job.Name, OK: r.OK(), Outcome: r.Outcome, StoredOnly: r.StoredOnly,
			Output: bodyOf(r.Output)}
		if r.Taken {
			v.Outcome, v.Error = "taken", "taken by a running hookbay before its turn came"
		} else if r.Err != nil {
			v.Error = r.Err.Error()
		}
		if !r.RetryAt.IsZero() {
			t := r.RetryAt
			v.RetryAt = &t
		}
		out.OK = out.OK && v.OK
		out.Jobs = append(out.Jobs, v)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listJobs(c echo.Context) error {
	q := c.QueryParams()
	var f hooks.JobFilter
	for k := range q {
		switch k {
		case "state", "sender", "name", "after", "limit":
		default:
			return errorf(http.StatusBadRequest, "unknown parameter %q (state, sender, name, after, limit)", k)
		}
	}
	switch st := hooks.JobState(q.Get("state")); st {
	case "", hooks.JobAvailable, hooks.JobRunning, hooks.JobDone, hooks.JobDead:
		f.State = st
	default:
		return errorf(http.StatusBadRequest, "state %q: want available, running, done or dead", st)
	}
	var err error
	if f.Sender, err = parseSender(q.Get("sender")); err != nil {
		return err
	}
	f.Name = q.Get("name")
	if f.AfterID, err = parseInt("after", q.Get("after"), 0); err != nil {
		return err
	}
	limit, err := parseInt("limit", q.Get("limit"), 1)
	if err != nil {
		return err
	}
	f.Limit = int(min(limit, maxLimit))
	if f.Limit == 0 {
		f.Limit = defaultLimit
	}
	jobs, err := s.opts.Store.FindJobs(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Jobs      []jobDetail `json:"jobs"`
		NextAfter int64       `json:"next_after,omitempty"`
	}{Jobs: make([]jobDetail, 0, len(jobs))}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobOf(j))
	}
	if len(jobs) == f.Limit {
		out.NextAfter = jobs[len(jobs)-1].ID
	}
	return c.JSON(http.StatusOK, out)
}

// job reads one job by id; nil when there is none.
func (s *Server) job(ctx context.Context, id int64) (*hooks.Job, error) {
	jobs, err := s.opts.Store.FindJobs(ctx, hooks.JobFilter{AfterID: id - 1, Limit: 1})
	if err != nil || len(jobs) == 0 || jobs[0].ID != id {
		return nil, err
	}
	return jobs[0], nil
}

// retried tells the queue and the live stream about jobs queued again.
func (s *Server) retried(ctx context.Context, ids []int64) {
	if s.opts.Notify != nil {
		s.opts.Notify()
	}
	if !s.hub.Active() || s.opts.JobsAnnounced {
		return
	}
	for _, id := range ids {
		// The retry is done either way; an event not sent is read with
		// the inspector's next look at the list.
		_ = s.PublishStoredJob(ctx, id)
	}
}

func (s *Server) retryJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	n, err := s.opts.Store.RetryJobs(ctx, []int64{id}, s.opts.Now())
	if err != nil {
		return err
	}
	if n == 0 {
		if j, err := s.job(ctx, id); err != nil {
			return err
		} else if j == nil {
			return errorf(http.StatusNotFound, "no job %d", id)
		} else {
			return errorf(http.StatusConflict, "job %d is %s: retry takes dead jobs and jobs waiting for a retry (a done job is delivered again by replaying its request, %d)", id, j.State, j.RequestRef)
		}
	}
	s.retried(ctx, []int64{id})
	return c.JSON(http.StatusOK, map[string]any{"retried": n, "not_retried": []int64{}})
}

// retryRequest is the body of POST jobs/retry: ids, or every dead job
// (since a time).
type retryRequest struct {
	IDs   []int64 `json:"ids"`
	Dead  bool    `json:"dead"`
	Since string  `json:"since"`
}

func (s *Server) retryJobs(c echo.Context) error {
	var in retryRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Dead == (len(in.IDs) > 0) {
		return errorf(http.StatusBadRequest, `give either "ids": [job ids] or "dead": true (with an optional "since")`)
	}
	if in.Since != "" && !in.Dead {
		return errorf(http.StatusBadRequest, `"since" goes with "dead": true`)
	}
	ctx := c.Request().Context()
	now := s.opts.Now()
	missed := []int64{}
	var n int64
	if in.Dead {
		since, err := parseTime("since", in.Since, now)
		if err != nil {
			return err
		}
		if n, err = s.opts.Store.RetryDead(ctx, since, now); err != nil {
			return err
		}
		if s.opts.Notify != nil {
			s.opts.Notify()
		}
		if n > 0 && !s.opts.JobsAnnounced {
			s.publishJobsChanged()
		}
		return c.JSON(http.StatusOK, map[string]any{"retried": n, "not_retried": missed})
	}
	var done []int64
	for _, id := range in.IDs {
		k, err := s.opts.Store.RetryJobs(ctx, []int64{id}, now)
		if err != nil {
			return err
		}
		if k == 0 {
			missed = append(missed, id)
		} else {
			done = append(done, id)
		}
		n += k
	}
	s.retried(ctx, done)
	return c.JSON(http.StatusOK, map[string]any{"retried": n, "not_retried": missed})
}

// decodeJSON reads a JSON body of at most 64 KiB into v, refusing unknown
// members.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "a JSON body is required")
		}
		return errorf(http.StatusBadRequest, "the body is not the JSON expected: %v", err)
	}
	return nil
}

func (s *Server) listFaults(c echo.Context) error {
	list, err := s.opts.Store.Faults(c.Request().Context(), s.opts.Now())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*hooks.Fault{}
	}
	return c.JSON(http.StatusOK, map[string]any{"faults": list})
}

// faultRequest is the body of POST faults, as "hookbay faults add" takes
// it: one of status, delay or drop.
type faultRequest struct {
	Sender  hooks.Sender `json:"sender"`
	Name    string       `json:"name"`
	Status  int          `json:"status"`
	Delay   string       `json:"delay"`
	Drop    bool         `json:"drop"`
	Count   *int         `json:"count"`
	Percent *int         `json:"percent"`
	For     string       `json:"for"`
}

func (s *Server) addFault(c echo.Context) error {
	var in faultRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	now := s.opts.Now()
	f := &hooks.Fault{Sender: in.Sender, Name: in.Name, Remaining: -1, Percent: 100, CreatedAt: now}
	var delay time.Duration
	if in.Delay != "" {
		d, err := time.ParseDuration(in.Delay)
		if err != nil {
			return errorf(http.StatusBadRequest, "delay %q is not a duration such as 2s", in.Delay)
		}
		delay = d
	}
	switch {
	case in.Status != 0 && delay == 0 && !in.Drop:
		f.Kind, f.Status = hooks.FaultStatus, in.Status
	case delay != 0 && in.Status == 0 && !in.Drop:
		f.Kind, f.Delay = hooks.FaultDelay, delay
	case in.Drop && in.Status == 0 && delay == 0:
		f.Kind = hooks.FaultDrop
	default:
		return errorf(http.StatusBadRequest, `exactly one of "status", "delay" or "drop" is required`)
	}
	if in.Count != nil {
		if *in.Count < 1 {
			return errorf(http.StatusBadRequest, "count %d: want a positive number (leave it out for no limit)", *in.Count)
		}
		f.Remaining = *in.Count
	}
	if in.Percent != nil {
		f.Percent = *in.Percent
	}
	if in.For != "" {
		d, err := time.ParseDuration(in.For)
		if err != nil || d <= 0 {
			return errorf(http.StatusBadRequest, "for %q is not a positive duration such as 10m", in.For)
		}
		f.ExpiresAt = now.Add(d)
	}
	if err := s.opts.Store.AddFault(c.Request().Context(), f); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, f)
}

func (s *Server) deleteFault(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ok, err := s.opts.Store.DeleteFault(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "no fault %d", id)
	}
	return c.JSON(http.StatusOK, map[string]int64{"removed": id})
}

func (s *Server) clearFaults(c echo.Context) error {
	if c.QueryParam("all") != "true" {
		return errorf(http.StatusBadRequest, "DELETE faults removes every fault: say so with ?all=true (DELETE faults/{id} removes one)")
	}
	sender, err := parseSender(c.QueryParam("sender"))
	if err != nil {
		return err
	}
	n, err := s.opts.Store.ClearFaults(c.Request().Context(), sender)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int64{"cleared": n})
}

func (s *Server) report(c echo.Context) error {
	if s.opts.Report == nil {
		return errorf(http.StatusNotImplemented, "the sender report is not available here")
	}
	sender, err := parseSender(c.QueryParam("sender"))
	if err != nil {
		return err
	}
	since := c.QueryParam("since")
	if since == "" {
		since = "24h"
	}
	t, err := parseTime("since", since, s.opts.Now())
	if err != nil {
		return err
	}
	b, err := s.opts.Report(c.Request().Context(), sender, t)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, b)
}
