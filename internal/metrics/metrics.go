// Package metrics is what the hub's and the agent's Prometheus endpoints
// share: a registry of their own (never the global default one, so that
// two hubs or agents in one test process do not collide) with the Go
// runtime and process collectors, its HTTP handler, and the conversion of a
// bucketed latency reading (internal/latency, hub/ingest's AckLatency)
// into a Prometheus histogram at scrape time.
//
// The collectors of both programs read counters the code keeps anyway
// (atomics, the outbox's and the dashboard's figures) when Prometheus
// scrapes, so metrics add nothing to the transaction path but the few
// latency observations internal/latency makes.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tillsync/tillsync/internal/latency"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs = append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Handler serves reg in the Prometheus text (or OpenMetrics) format. A
// collector's error is served as a 500, so that a scrape never passes a
// partial reading off as whole.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError, Registry: reg})
}

// Histogram makes a constant histogram of bucketed durations: bounds are
// the buckets' upper bounds, buckets the counts per bucket (not
// cumulative; the one past the last bound counts the longer ones).
func Histogram(desc *prometheus.Desc, bounds []time.Duration, buckets []int64, count int64, sum time.Duration, labels ...string) (prometheus.Metric, error) {
	cum := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, b := range bounds {
		if i < len(buckets) {
			n += uint64(max(buckets[i], 0))
		}
		cum[b.Seconds()] = n
	}
	return prometheus.NewConstHistogram(desc, uint64(max(count, 0)), sum.Seconds(), cum, labels...)
}

// Latency makes a constant histogram of an internal/latency reading.
func Latency(desc *prometheus.Desc, s latency.Snapshot, labels ...string) (prometheus.Metric, error) {
	return Histogram(desc, latency.Bounds[:], s.Buckets[:], s.Count, s.Sum, labels...)
}
