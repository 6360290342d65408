package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// Stream tuning.
const (
	// streamBuffer is how many events wait for one subscriber before it
	// starts losing them.
	streamBuffer = 512
	// flushEvery is how long the stream gathers events before it writes
	// them, and flushMax how many of each kind one write sends at most.
	flushEvery = 500 * time.Millisecond
	flushMax   = 10
	// heartbeat keeps idle streams open through proxies, and notices
	// browsers that left.
	heartbeat = 15 * time.Second
	// writeWait bounds one write to a subscriber.
	writeWait = 10 * time.Second
)

// PublishRequest puts a recorded request on the live stream. It costs
// nothing when no inspector is open, and never blocks; the event's JSON
// (and the verdict in it) is made by the stream that sends it, off the
// request's path.
func (s *Server) PublishRequest(r *hooks.Request) {
	if !s.hub.Active() {
		return
	}
	// A copy of what the summary needs, without the body, so that buffered
	// events hold no request's bytes.
	c := *r
	c.Body, c.Header, c.Notes = nil, nil, nil
	size := len(r.Body)
	s.hub.Publish(lazyEvent("request", func() []byte {
		v := summarize(&c)
		v.Size = size
		data, _ := json.Marshal(v)
		return data
	}))
}

// PublishAttempt puts a job's attempt, and the state it left the job in,
// on the live stream.
func (s *Server) PublishAttempt(j *hooks.Job, res hooks.AttemptResult) {
	if !s.hub.Active() {
		return
	}
	ev := jobEventOf(j, stateAfter(res.Outcome))
	ev.Outcome, ev.DurationMS = res.Outcome, float64(res.Duration.Microseconds())/1000
	if res.Err != nil {
		ev.Error = res.Err.Error()
	}
	if !res.RetryAt.IsZero() {
		t := res.RetryAt
		ev.RetryAt = &t
	}
	s.publishJob(ev)
}

// PublishStoredJob puts a job's state, as stored, and its latest attempt on
// the live stream: for a change another replica announced. ID 0 says that
// jobs changed without being listed, and tells the inspector to read what
// it shows again.
func (s *Server) PublishStoredJob(ctx context.Context, id int64) error {
	if !s.hub.Active() {
		return nil
	}
	if id == 0 {
		s.publishJobsChanged()
		return nil
	}
	j, err := s.job(ctx, id)
	if err != nil || j == nil {
		return err
	}
	ev := jobEventOf(j, j.State)
	atts, err := s.opts.Store.FindAttempts(ctx, id)
	if err != nil {
		return err
	}
	if len(atts) > 0 {
		a := atts[len(atts)-1]
		ev.Outcome, ev.Error, ev.DurationMS = a.Outcome, a.Error, float64(a.Duration.Microseconds())/1000
	}
	if j.State == hooks.JobAvailable && j.Attempts > 0 {
		t := j.ScheduledAt
		ev.RetryAt = &t
	}
	s.publishJob(ev)
	return nil
}

// publishJobsChanged tells the stream that jobs changed in numbers not
// worth listing (a retry of every dead job).
func (s *Server) publishJobsChanged() {
	s.hub.Publish(Event{Kind: "jobs", Data: []byte(`{}`)})
}

// jobEventOf is the event that says j is now in state.
func jobEventOf(j *hooks.Job, state hooks.JobState) jobEvent {
	return jobEvent{ID: j.ID, RequestRef: j.RequestRef, Sender: j.Sender, Name: j.Name, State: state, Attempts: j.Attempts}
}

func (s *Server) publishJob(ev jobEvent) {
	s.hub.Publish(lazyEvent("job", func() []byte {
		data, _ := json.Marshal(ev)
		return data
	}))
}

// stream serves the live stream as Server-Sent Events: "request" events
// (a request summary, as in the list), "job" events (a job's new state),
// "jobs" when jobs changed without being listed (read them again), and
// "dropped" when this subscriber lost events because it read too
// slowly; it should then read the list again. It ends when the client
// leaves or the server shuts down.
func (s *Server) stream(c echo.Context) error {
	sub := s.hub.Subscribe(streamBuffer)
	defer sub.Close()
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(write func() error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if write() != nil || rc.Flush() != nil {
			return false
		}
		return true
	}
	if !send(func() error { _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); return err }) {
		return nil
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	ctx := c.Request().Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !send(func() error {
				if n := sub.Dropped(); n > 0 {
					_, err := fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n)
					return err
				}
				_, err := fmt.Fprint(w, ": ping\n\n")
				return err
			}) {
				return nil
			}
		case ev, ok := <-sub.C:
			if !ok {
				return nil // shutting down
			}
			// Gather what arrives for a moment, and send at most
			// flushMax events of each kind, the newest: at ten
			// thousand requests a second a browser gets 20 rows a
			// second, as many as a reader follows, and reads the list
			// again for the rest.
			batch, open := gather(ctx, sub, ev)
			batch, skipped := newest(batch, flushMax)
			ok = send(func() error {
				if n := sub.Dropped() + int64(skipped); n > 0 {
					if _, err := fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n); err != nil {
						return err
					}
				}
				for _, ev := range batch {
					if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Kind, ev.JSON()); err != nil {
						return err
					}
				}
				return nil
			})
			if !ok || !open {
				return nil
			}
		}
	}
}

// gather returns first and what else sub receives within flushEvery, and
// whether the subscription is still open.
func gather(ctx context.Context, sub *Subscription, first Event) ([]Event, bool) {
	batch := []Event{first}
	t := time.NewTimer(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return batch, true
		case <-t.C:
			return batch, true
		case ev, ok := <-sub.C:
			if !ok {
				return batch, false
			}
			batch = append(batch, ev)
		}
	}
}

// newest keeps the last max events of each kind, in order, and says how
// many it left out. Events left out are never encoded.
func newest(batch []Event, max int) ([]Event, int) {
	count := map[string]int{}
	for _, ev := range batch {
		count[ev.Kind]++
	}
	out := batch[:0:0]
	skipped := 0
	for _, ev := range batch {
		if count[ev.Kind] > max {
			count[ev.Kind]--
			skipped++
			continue
		}
		out = append(out, ev)
	}
	return out, skipped
}
