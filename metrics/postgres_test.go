package metrics_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/metrics"
	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// The pool's figures are read at each scrape, and served as gauges of
// connections by state and counters of acquires and their waits; the
// leader gauge follows the lease.
func TestMetrics_WatchPool(t *testing.T) {
	m := metrics.New(metrics.Options{})
	if s := scrape(t, m); s["hookbay_store_pool_connections"] != nil || s["hookbay_maintenance_leader"] != nil {
		t.Fatal("pool and leader series served before they are watched")
	}
	var mu sync.Mutex
	st := hooks.PoolStats{Acquired: 2, Idle: 3, Total: 6, Max: 10, Acquires: 40, EmptyAcquires: 7, CanceledAcquires: 1,
		AcquireWait: 1500 * time.Millisecond, Conflicts: 3}
	m.WatchPool(func() hooks.PoolStats {
		mu.Lock()
		defer mu.Unlock()
		return st
	})
	var leading atomic.Bool
	m.WatchLeader(leading.Load)

	s := scrape(t, m)
	for state, want := range map[string]float64{"acquired": 2, "idle": 3, "total": 6, "max": 10} {
		if got := s["hookbay_store_pool_connections"]["state="+state+","]; got != want {
			t.Errorf("%s connections: %v, want %v", state, got, want)
		}
	}
	for name, want := range map[string]float64{"hookbay_store_pool_acquires_total": 40, "hookbay_store_pool_empty_acquires_total": 7,
		"hookbay_store_pool_canceled_acquires_total": 1, "hookbay_store_pool_acquire_wait_seconds_total": 1.5,
		"hookbay_store_conflicts_total": 3} {
		if got, ok := s[name][""]; !ok || got != want {
			t.Errorf("%s: %v (served: %v), want %v", name, got, ok, want)
		}
	}
	if got, ok := s["hookbay_maintenance_leader"][""]; !ok || got != 0 {
		t.Errorf("leader while not leading: %v (served: %v), want 0", got, ok)
	}

	mu.Lock()
	st.Acquired, st.Idle, st.Acquires = 5, 0, 41
	mu.Unlock()
	leading.Store(true)
	s = scrape(t, m)
	if got := s["hookbay_store_pool_connections"]["state=acquired,"]; got != 5 {
		t.Errorf("acquired connections at the next scrape: %v, want 5", got)
	}
	if got := s["hookbay_store_pool_acquires_total"][""]; got != 41 {
		t.Errorf("acquires at the next scrape: %v, want 41", got)
	}
	if got := s["hookbay_maintenance_leader"][""]; got != 1 {
		t.Errorf("leader while leading: %v, want 1", got)
	}
}

// On a real PostgreSQL store, the pool series show its cap and the
// connections it handed out.
func TestMetrics_WatchPool_Postgres(t *testing.T) {
	db := pgtest.New(t).Open(t, postgres.WithMaxConns(7))
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{})
	m.WatchPool(db.PoolStats)
	s := scrape(t, m)
	if got := s["hookbay_store_pool_connections"]["state=max,"]; got != 7 {
		t.Errorf("max connections: %v, want 7", got)
	}
	if got := s["hookbay_store_pool_connections"]["state=idle,"]; got < 1 {
		t.Errorf("idle connections after a query: %v, want at least 1", got)
	}
	before := s["hookbay_store_pool_acquires_total"][""]
	if before < 1 {
		t.Errorf("acquires after a query: %v, want at least 1", before)
	}
	for range 3 {
		if err := db.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrape(t, m)["hookbay_store_pool_acquires_total"][""]; got < before+3 {
		t.Errorf("acquires after 3 more queries: %v, want at least %v", got, before+3)
	}
}
