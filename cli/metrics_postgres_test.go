package cli

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// On PostgreSQL, /metrics serves what it serves on SQLite from the store
// (the queue by state and urgency, the group commits), and besides the
// pool's connections and which replica holds the maintenance lease: of
// two replicas on one database, exactly one.
func TestMetrics_Postgres(t *testing.T) {
	schema := pgtest.New(t)
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		return nil, errors.New("the integrator's code failed")
	}))
	onPostgres := func(c *config.Config) {
		c.Store.Postgres = &config.PostgresConfig{URL: schema.URL(), MaxConns: 12}
		c.Queue.MaxAttempts = 1
	}
	var logs syncBuffer
	a := runObserved(t, actions, onPostgres, func(m *Main) { m.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b := runObserved(t, actions, onPostgres)

	if got := send(t, a, call{hook: "CreateDiscount4", body: `{"code":"A"}`, id: "pg-1", urgency: "urgent"}).status; got != 202 {
		t.Fatalf("CreateDiscount4: answered %d, want 202", got)
	}
	var s promScrape
	waitUntil(t, 10*time.Second, "the dead job in a queue snapshot", func() bool {
		s = scrapeMetrics(t, a)
		return s.value("hookbay_jobs", "state=dead", "urgency=urgent") == 1
	})
	for _, state := range []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDead} {
		for _, u := range []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular} {
			if !s.has("hookbay_jobs", "state="+string(state), "urgency="+string(u)) {
				t.Errorf("no hookbay_jobs series for %s %s jobs", state, u)
			}
		}
		if !s.has("hookbay_queue_oldest_waiting_seconds", "urgency=urgent") {
			t.Error("no hookbay_queue_oldest_waiting_seconds series")
		}
	}
	if got := s.value("hookbay_store_commit_writes"); got < 1 {
		t.Errorf("store commits: %v, want the request's counted", got)
	}
	if got := s.value("hookbay_store_pool_connections", "state=max"); got != 12 {
		t.Errorf("the pool's max connections: %v, want 12 (store.postgres.max_conns)", got)
	}
	if got := s.value("hookbay_store_pool_connections", "state=total"); got < 1 {
		t.Errorf("the pool's connections: %v, want some", got)
	}
	if got := s.value("hookbay_store_pool_acquires_total"); got < 1 {
		t.Errorf("the pool's acquires: %v, want some", got)
	}
	for _, name := range []string{"hookbay_store_pool_empty_acquires_total", "hookbay_store_pool_canceled_acquires_total",
		"hookbay_store_pool_acquire_wait_seconds_total", "hookbay_store_conflicts_total"} {
		if !s.has(name) {
			t.Errorf("no %s series", name)
		}
	}

	waitUntil(t, 10*time.Second, "one of the two replicas to lead", func() bool {
		return scrapeMetrics(t, a).value("hookbay_maintenance_leader")+scrapeMetrics(t, b).value("hookbay_maintenance_leader") == 1
	})
	for _, m := range []*Main{a, b} {
		s := scrapeMetrics(t, m)
		want := 0.0
		if m.Leading() {
			want = 1
		}
		if !s.has("hookbay_maintenance_leader") || s.value("hookbay_maintenance_leader") != want {
			t.Errorf("hookbay_maintenance_leader: %v (served: %v), want %v as Leading says", s.value("hookbay_maintenance_leader"),
				s.has("hookbay_maintenance_leader"), want)
		}
	}
	if strings.Contains(logs.String(), "does not count its jobs") {
		t.Errorf("on PostgreSQL, hookbay logged that the store does not count its jobs:\n%s", logs.String())
	}
}

// With SQLite, a store of one's own, there is no pool and no lease to
// report.
func TestMetrics_NoPoolOnSQLite(t *testing.T) {
	m := runObserved(t, hooks.Actions{}, nil)
	s := scrapeMetrics(t, m)
	for _, name := range []string{"hookbay_store_pool_connections", "hookbay_store_pool_acquires_total", "hookbay_store_conflicts_total", "hookbay_maintenance_leader"} {
		if s[name] != nil {
			t.Errorf("SQLite: %s is served", name)
		}
	}
	if !s.has("hookbay_jobs") {
		t.Error("SQLite: hookbay_jobs is not served")
	}
}
