// Package idempotency makes every request with the same ID answer the same:
// the first executes, repeats replay its answer, and concurrent repeats wait
// for it. The store's UNIQUE key on (sender, key) is the source of truth;
// nothing here is held only in memory.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookbay/hookbay/hooks"
)

// MaxKeyLen bounds a request ID. Senders send UUIDs; anything far longer is a
// mistake or an attack on the index.
const MaxKeyLen = 255

// DefaultRetention is hooks.DefaultRetention.
const DefaultRetention = hooks.DefaultRetention

// Store is what the guard needs from the store.
type Store interface {
	SaveReceipt(ctx context.Context, r *hooks.Receipt) (*hooks.Entry, error)
	ReserveKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error)
	FinishReserved(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error)
	ReleaseKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64) error
	LookupKey(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error)
	Record(ctx context.Context, req *hooks.Request) error
	PurgeIdempotency(ctx context.Context, before time.Time) (int64, error)
}

// NormalizeKey validates a sender's request ID and returns it trimmed of
// surrounding space. An empty ID is allowed: the request is processed
// without de-duplication. The guard de-duplicates an invalid ID on its
// SHA-256 rather than refusing the request.
func NormalizeKey(raw string) (string, error) {
	k := strings.TrimSpace(raw)
	if len(k) > MaxKeyLen {
		return "", hooks.Errorf(hooks.EINVALID, "request ID is %d bytes long; at most %d are accepted", len(k), MaxKeyLen)
	}
	if strings.IndexFunc(k, unicode.IsControl) >= 0 {
		return "", hooks.Errorf(hooks.EINVALID, "request ID contains control characters")
	}
	if !utf8.ValidString(k) {
		// Records, logs and the JSON the CLI and the inspector print hold
		// text: an ID that is not UTF-8 is kept as its digest.
		return "", hooks.Errorf(hooks.EINVALID, "request ID is not valid UTF-8")
	}
	return k, nil
}

// Guard runs requests through the idempotency records.
type Guard struct {
	Store Store
	// Notify is called after a job was committed, to wake the workers,
	// with the priority of the most pressing job queued
	// (hooks.Queue.Queued).
	Notify func(priority int)
	// Offer, when set, is asked before a receipt's job is written whether
	// a worker waits for it (hooks.Queue.Offer): if one does, the job is
	// written leased to it and handed over in memory after the commit,
	// without a claim.
	Offer func(*hooks.Job) (hand func(written bool))
	// Now is the clock.
	Now func() time.Time
	// PollInterval is how often a waiting repeat checks for the answer.
	PollInterval time.Duration
	// Retention is how long an answer is kept for replay.
	Retention time.Duration
	Logger    *slog.Logger
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// prepare puts the request ID in front of the receipt's content keys.
func (g *Guard) prepare(r *hooks.Receipt, header string) error {
	id, err := NormalizeKey(r.Request.RequestID)
	if err != nil {
		// Refusing would be worse than de-duplicating on a digest: a 400
		// stops a Bloomreach campaign and holds Bubblehouse's event queue.
		sum := sha256.Sum256([]byte(strings.TrimSpace(r.Request.RequestID)))
		id = "sha256:" + hex.EncodeToString(sum[:])
		r.Request.Note(fmt.Sprintf("%s is malformed (%s): de-duplicated on its SHA-256, passed on as %s", header, hooks.ErrorMessage(err), id))
	}
	r.Request.RequestID = id
	if id == "" {
		r.Request.Note(fmt.Sprintf("no %s header: processed without de-duplication on the request ID", header))
		return nil
	}
	r.Keys = append([]string{r.Scope + id}, r.Keys...)
	return nil
}

// Commit accepts a request whose answer is already known (it is queued, or
// answered without running any action): the record, keys and job are
// written in one transaction, and only then is the answer returned. A repeat
// gets the first answer; a repeat of a request still executing inline waits
// for it until ctx's deadline. header names the request ID header, for notes.
func (g *Guard) Commit(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error) {
	if err := g.prepare(r, header); err != nil {
		return hooks.Response{}, err
	}
	for {
		r.Request.Latency = g.now().Sub(r.Request.ReceivedAt)
		var hand func(bool)
		if g.Offer != nil && r.Job != nil {
			hand = g.Offer(r.Job)
		}
		e, err := g.Store.SaveReceipt(ctx, r)
		if hand != nil {
			if err == nil && e == nil {
				handOver(r)
			}
			// A job written leased whose commit failed after all is
			// rescued when its lease ends.
			hand(err == nil && e == nil)
		}
		if err != nil {
			return hooks.Response{}, err
		}
		if e == nil {
			g.notify(r)
			return hooks.Response{Status: r.Request.Status, Body: r.Request.Response}, nil
		}
		if e.State == hooks.EntryDone {
			return e.Response, nil // recorded as a duplicate by the store
		}
		if done, err := g.wait(ctx, e); err != nil {
			return hooks.Response{}, err
		} else if done != nil {
			return g.replay(ctx, r.Request, done)
		}
		// The executing request gave up its keys: try again ourselves.
	}
}

// Run executes a request inline under its keys: exactly one request with a
// given ID runs fn at a time, repeats replay its answer or wait for it until
// ctx's deadline. An error from fn is an answer that asks the sender to
// retry: it is not stored, and the retry executes again.
func (g *Guard) Run(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error) {
	if err := g.prepare(r, header); err != nil {
		return hooks.Response{}, err
	}
	owner := rand.Int64() // this execution's reservation token
	if len(r.Keys) > 0 {
		for {
			leaseUntil := g.now().Add(hooks.BubblehouseCallLimit)
			if d, ok := ctx.Deadline(); ok {
				leaseUntil = d.Add(5 * time.Second)
			}
			e, err := g.Store.ReserveKeys(ctx, r.Request.Sender, r.Keys, owner, leaseUntil)
			if err != nil {
				return hooks.Response{}, err
			}
			if e == nil {
				break // ours to execute
			}
			if e.State == hooks.EntryDone {
				return g.replay(ctx, r.Request, e)
			}
			if done, err := g.wait(ctx, e); err != nil {
				return hooks.Response{}, err
			} else if done != nil {
				return g.replay(ctx, r.Request, done)
			}
		}
	}
	resp, err := fn(ctx)
	if err != nil {
		if len(r.Keys) > 0 {
			if rerr := g.Store.ReleaseKeys(context.WithoutCancel(ctx), r.Request.Sender, r.Keys, owner); rerr != nil {
				g.logger().Error("release idempotency keys", "err", rerr)
			}
		}
		return hooks.Response{}, err
	}
	r.Request.Status, r.Request.Response = resp.Status, resp.Body
	r.Request.Latency = g.now().Sub(r.Request.ReceivedAt)
	lost, err := g.Store.FinishReserved(context.WithoutCancel(ctx), r, owner)
	if err != nil {
		// Keys this execution still holds are freed for the retry; those
		// another request took over are left to it.
		if rerr := g.Store.ReleaseKeys(context.WithoutCancel(ctx), r.Request.Sender, r.Keys, owner); rerr != nil {
			g.logger().Error("release idempotency keys", "err", rerr)
		}
		return hooks.Response{}, err
	}
	if lost != nil {
		// Our lease ran out and a retry answered first: answers stay equal.
		return lost.Response, nil
	}
	g.notify(r)
	return resp, nil
}

// handOver gives r's job what a claim reads from the request record.
func handOver(r *hooks.Receipt) {
	j, req := r.Job, r.Request
	j.RequestID, j.Source, j.Header, j.Body = req.RequestID, req.Name, req.Header, req.Body
	if j.Payload != nil {
		j.Body = j.Payload
	}
}

// notify wakes the workers when the receipt queued a job for them.
func (g *Guard) notify(r *hooks.Receipt) {
	if g.Notify == nil {
		return
	}
	pressing := hooks.NoPriority
	if j := r.Job; j != nil && j.State == hooks.JobAvailable {
		pressing = j.Priority
	}
	for _, it := range r.Items {
		if j := it.Job; !it.Duplicate && j != nil && j.State == hooks.JobAvailable {
			pressing = min(pressing, j.Priority)
		}
	}
	if pressing < hooks.NoPriority {
		g.Notify(pressing)
	}
}

// replay records a repeat answered from entry e and returns e's answer.
func (g *Guard) replay(ctx context.Context, req *hooks.Request, e *hooks.Entry) (hooks.Response, error) {
	req.MarkDuplicate(e)
	req.Latency = g.now().Sub(req.ReceivedAt)
	if err := g.Store.Record(context.WithoutCancel(ctx), req); err != nil {
		return hooks.Response{}, err
	}
	return e.Response, nil
}

// wait polls a pending entry until it is done (returned), vanishes (nil, nil:
// its request gave up and the caller may execute), or its lease expires (nil,
// nil: its process died). It gives up with ECONFLICT at ctx's deadline.
func (g *Guard) wait(ctx context.Context, e *hooks.Entry) (*hooks.Entry, error) {
	interval := g.PollInterval
	if interval <= 0 {
		interval = 20 * time.Millisecond
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, &hooks.Error{Code: hooks.ECONFLICT,
				Message: fmt.Sprintf("a request with ID %q is still being processed; retry later", e.Key)}
		case <-t.C:
		}
		cur, err := g.Store.LookupKey(ctx, e.Sender, e.Key)
		switch {
		case hooks.ErrorCode(err) == hooks.ENOTFOUND:
			return nil, nil
		case err != nil && ctx.Err() == nil:
			return nil, err
		case err == nil && cur.State == hooks.EntryDone:
			return cur, nil
		case err == nil && !cur.LockedUntil.After(g.now()):
			return nil, nil
		}
		t.Reset(interval)
	}
}

// Record writes the record of a request that was refused before it reached
// the idempotency records.
func (g *Guard) Record(ctx context.Context, req *hooks.Request) error {
	req.Latency = g.now().Sub(req.ReceivedAt)
	return g.Store.Record(context.WithoutCancel(ctx), req)
}

// Purge deletes answers older than the retention period every interval
// until ctx ends.
func (g *Guard) Purge(ctx context.Context, interval time.Duration) {
	retention := g.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := g.Store.PurgeIdempotency(ctx, g.now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			g.logger().Error("purge idempotency records", "err", err)
		} else if n > 0 {
			g.logger().Info("purged idempotency records", "count", n, "older_than", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}
