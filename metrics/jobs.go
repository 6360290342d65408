package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbay/hookbay/hooks"
)

// JobStatsFunc reads a snapshot of the queue from the store.
type JobStatsFunc func(ctx context.Context, now time.Time) (hooks.JobStats, error)

// DefaultJobStatsEvery is how long a snapshot of the queue is reused.
const DefaultJobStatsEvery = 5 * time.Second

// jobStatsTimeout bounds one read of the snapshot during a scrape.
const jobStatsTimeout = 3 * time.Second

// WatchJobs reports the queue's jobs by state and urgency, and the age of
// the oldest job waiting for a worker, by urgency. The store is asked at
// most once every `every` (DefaultJobStatsEvery when 0), however often
// Prometheus scrapes; between reads, and when a read fails (counted as a
// store read error), the last snapshot is served.
func (m *Metrics) WatchJobs(stats JobStatsFunc, every time.Duration) {
	if every <= 0 {
		every = DefaultJobStatsEvery
	}
	m.Registry.MustRegister(&jobCollector{m: m, stats: stats, every: every, now: time.Now,
		jobs: prometheus.NewDesc("hookbay_jobs",
			"Jobs by state (available, running, dead; done jobs are not counted) and urgency, sampled at most every few seconds.",
			[]string{"state", "urgency"}, nil),
		oldest: prometheus.NewDesc("hookbay_queue_oldest_waiting_seconds",
			"Age of the oldest available job whose time has come, by urgency; 0 when none waits. Sampled at most every few seconds.",
			[]string{"urgency"}, nil),
		age: prometheus.NewDesc("hookbay_jobs_sample_age_seconds",
			"How old the queue snapshot behind hookbay_jobs is.", nil, nil),
	})
}

// jobCollector serves a cached snapshot of the queue.
type jobCollector struct {
	m                 *Metrics
	stats             JobStatsFunc
	every             time.Duration
	now               func() time.Time
	jobs, oldest, age *prometheus.Desc

	mu    sync.Mutex
	last  hooks.JobStats
	taken time.Time // when last was read; zero before the first read
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	ch <- c.age
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.taken.IsZero() || now.Sub(c.taken) >= c.every {
		ctx, cancel := context.WithTimeout(context.Background(), jobStatsTimeout)
		st, err := c.stats(ctx, now)
		cancel()
		if err != nil {
			c.m.StoreError(StoreRead)
		} else {
			c.last, c.taken = st, now
		}
	}
	if c.taken.IsZero() {
		return // never read: no figures rather than false zeros
	}
	urgencies := []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular}
	for _, state := range []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDead} {
		for _, u := range urgencies {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(c.last.Counts[state][u]), string(state), string(u))
		}
	}
	for _, u := range urgencies {
		age := 0.0
		if t, ok := c.last.OldestDue[u]; ok {
			// As of now, not of the snapshot: a stuck queue's age keeps
			// growing between two reads.
			age = max(now.Sub(t), 0).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, string(u))
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(c.taken).Seconds())
}
