package hub

import (
	"context"
	"sync"
	"time"

	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/internal/clock"
)

// SampleWindow is how many per-second samples of the ingest the hub keeps
// for the dashboard's charts: the last ten minutes.
const SampleWindow = 600

// sampler keeps the ingest's rate and ack latency second by second, in a
// ring: what the dashboard draws. Counters and latencies are read from the
// ingest (Stats, AckLatency) and differenced, so the ingest's hot path
// pays nothing for it.
type sampler struct {
	mu   sync.Mutex
	ring [SampleWindow]dashboard.Sample
	next int
	full bool
}

// run takes a sample every second until ctx is done.
func (s *sampler) run(ctx context.Context, in *ingest.Ingest, clk clock.Clock) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prevAt, prevStats, prevLat := clk.Now(), in.Stats(), in.AckLatency()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at, st, lat := clk.Now(), in.Stats(), in.AckLatency()
		s.add(sample(at, at.Sub(prevAt), st, prevStats, lat.Sub(prevLat)))
		prevAt, prevStats, prevLat = at, st, lat
	}
}

// sample is one interval of dt ending at at, from the counters at its
// start (prev) and end (st) and the latencies counted in it.
func sample(at time.Time, dt time.Duration, st, prev ingest.Stats, lat ingest.AckLatency) dashboard.Sample {
	answered := func(s ingest.Stats) int64 { return s.Applied + s.Duplicates + s.Rejected + s.Held }
	x := dashboard.Sample{At: at.UTC(), Acks: lat.Count}
	if dt > 0 {
		x.Tx = float64(answered(st)-answered(prev)) / dt.Seconds()
	}
	if lat.Count > 0 {
		x.AckMeanMS = float64(lat.Mean()) / float64(time.Millisecond)
		x.AckP95MS = float64(lat.Quantile(0.95)) / float64(time.Millisecond)
	}
	return x
}

func (s *sampler) add(x dashboard.Sample) {
	s.mu.Lock()
	s.ring[s.next] = x
	s.next++
	if s.next == SampleWindow {
		s.next, s.full = 0, true
	}
	s.mu.Unlock()
}

// samples returns the samples kept, oldest first.
func (s *sampler) samples() []dashboard.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		return append([]dashboard.Sample(nil), s.ring[:s.next]...)
	}
	out := make([]dashboard.Sample, 0, SampleWindow)
	out = append(out, s.ring[s.next:]...)
	return append(out, s.ring[:s.next]...)
}
