package service

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the replica's Prometheus collector. The gauges are read from the database at
// each scrape (every replica reports the same queue); the histogram and the counter count the
// builds this replica ran. Nothing here carries document content.
type metrics struct {
	s         *Service
	queueJobs *prometheus.Desc
	invs      *prometheus.Desc
	duration  *prometheus.HistogramVec
	builds    *prometheus.CounterVec
}

func newMetrics(s *Service) *metrics {
	return &metrics{
		s:         s,
		queueJobs: prometheus.NewDesc("imagebuilder_queue_jobs", "Jobs in the queue by River state.", []string{"state"}, nil),
		invs:      prometheus.NewDesc("imagebuilder_invocations", "Invocations by state.", []string{"state"}, nil),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imagebuilder_build_duration_seconds",
			Help:    "Duration of the builds this replica ran, by final state.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5s .. ~68min
		}, []string{"state"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagebuilder_builds_total",
			Help: "Builds this replica ran, by final state.",
		}, []string{"state"}),
	}
}

func (m *metrics) observe(state State, d time.Duration) {
	m.duration.WithLabelValues(string(state)).Observe(d.Seconds())
	m.builds.WithLabelValues(string(state)).Inc()
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queueJobs
	ch <- m.invs
	m.duration.Describe(ch)
	m.builds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.counts(ctx, ch, m.queueJobs, `SELECT state, COUNT(*) FROM river_job GROUP BY state`,
		[]string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"})
	m.counts(ctx, ch, m.invs, `SELECT state, COUNT(*) FROM invocations GROUP BY state`,
		[]string{string(Pending), string(InProgress), string(Success), string(Failed), string(Canceled)})
	m.duration.Collect(ch)
	m.builds.Collect(ch)
}

// counts reports a gauge per state (0 for the states the query does not return).
func (m *metrics) counts(ctx context.Context, ch chan<- prometheus.Metric, desc *prometheus.Desc, query string, states []string) {
	n := map[string]float64{}
	for _, s := range states {
		n[s] = 0
	}
	rows, err := m.s.db.QueryContext(ctx, query)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var c int64
		if err := rows.Scan(&state, &c); err != nil {
			ch <- prometheus.NewInvalidMetric(desc, err)
			return
		}
		n[state] = float64(c)
	}
	for s, v := range n {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, s)
	}
}
