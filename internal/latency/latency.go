// Package latency is a fixed-bucket latency histogram cheap enough for a hot
// path: an observation is three atomic adds and a short scan of the bounds,
// with no lock and no allocation. The agent's uplink (publish to ack) and the
// hub's ledger wrapper (commit time, till-to-ledger time) keep one each; the
// Prometheus collectors (internal/metrics) read a Snapshot at scrape time.
package latency

import (
	"sync/atomic"
	"time"
)

// Bounds are the buckets' upper bounds, the same as hub/ingest's
// LatencyBounds with a few longer ones for tills catching up after an
// outage.
var Bounds = [...]time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour,
}

// Histogram counts durations into Bounds; its zero value is ready.
type Histogram struct {
	count, sum atomic.Int64
	buckets    [len(Bounds) + 1]atomic.Int64
}

// Observe counts d; a negative d counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(Bounds) && d > Bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
	h.count.Add(1)
}

// Snapshot is a reading of a Histogram.
type Snapshot struct {
	// Count is the number of observations, Sum their total.
	Count int64
	Sum   time.Duration
	// Buckets[i] counts the observations at most Bounds[i] (and more than
	// the bound before it); the last one those longer than every bound.
	Buckets [len(Bounds) + 1]int64
}

// Snapshot reads h. Observations running meanwhile may be seen in part
// (a bucket counted, the count not yet): a scrape is a moment, not a
// transaction.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range s.Buckets {
		s.Buckets[i] = h.buckets[i].Load()
	}
	s.Count, s.Sum = h.count.Load(), time.Duration(h.sum.Load())
	return s
}
