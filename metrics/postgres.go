package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbay/hookbay/hooks"
)

// WatchPool reports, when scraped, the store's connection pool (a shared
// store's, PostgreSQL's): its connections by state, the acquires and how
// long they waited for a connection, and the write transactions that lost
// a conflict with another replica's. stats is read once per scrape; it
// must be cheap (a snapshot of the pool's counters, no query).
func (m *Metrics) WatchPool(stats func() hooks.PoolStats) {
	m.Registry.MustRegister(&poolCollector{stats: stats,
		conns: prometheus.NewDesc("hookbay_store_pool_connections",
			"The store's pooled connections: acquired (in use), idle, total (those and the ones being opened) and max (the pool's cap).",
			[]string{"state"}, nil),
		acquires: prometheus.NewDesc("hookbay_store_pool_acquires_total",
			"Connections handed out by the store's pool.", nil, nil),
		empty: prometheus.NewDesc("hookbay_store_pool_empty_acquires_total",
			"Acquires that found no idle connection and waited for one to be freed or opened.", nil, nil),
		canceled: prometheus.NewDesc("hookbay_store_pool_canceled_acquires_total",
			"Acquires given up before a connection was free (their deadline passed).", nil, nil),
		wait: prometheus.NewDesc("hookbay_store_pool_acquire_wait_seconds_total",
			"Time acquires spent waiting for a connection, in all.", nil, nil),
		conflicts: prometheus.NewDesc("hookbay_store_conflicts_total",
			"Write transactions that lost a deadlock or serialization conflict with another replica's, and were run again.", nil, nil),
	})
}

// poolCollector serves a snapshot of the pool taken at each scrape.
type poolCollector struct {
	stats                                             func() hooks.PoolStats
	conns, acquires, empty, canceled, wait, conflicts *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.acquires
	ch <- c.empty
	ch <- c.canceled
	ch <- c.wait
	ch <- c.conflicts
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for state, n := range map[string]int{"acquired": s.Acquired, "idle": s.Idle, "total": s.Total, "max": s.Max} {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.Acquires))
	ch <- prometheus.MustNewConstMetric(c.empty, prometheus.CounterValue, float64(s.EmptyAcquires))
	ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(s.CanceledAcquires))
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.CounterValue, s.AcquireWait.Seconds())
	ch <- prometheus.MustNewConstMetric(c.conflicts, prometheus.CounterValue, float64(s.Conflicts))
}

// WatchLeader reports, when scraped, whether this replica holds the
// maintenance lease of a shared store (it rescues expired jobs and purges
// for all): 1 or 0. Across the replicas of one store the sum should be 1,
// briefly 0 while a lease changes hands.
func (m *Metrics) WatchLeader(leading func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookbay_maintenance_leader",
		Help: "1 when this replica holds the shared store's maintenance lease (it rescues expired jobs and purges), else 0."},
		func() float64 {
			if leading() {
				return 1
			}
			return 0
		}))
}
