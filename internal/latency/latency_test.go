package latency_test

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/latency"
)

func TestHistogram(t *testing.T) {
	var h latency.Histogram
	for _, d := range []time.Duration{-time.Second, 0, 150 * time.Microsecond, time.Millisecond, 48 * time.Hour} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if s.Count != 5 {
		t.Errorf("count %d, want 5", s.Count)
	}
	if want := 150*time.Microsecond + time.Millisecond + 48*time.Hour; s.Sum != want {
		t.Errorf("sum %s, want %s", s.Sum, want)
	}
	want := map[int]int64{0: 2, 1: 1, 3: 1, len(latency.Bounds): 1}
	for i, n := range s.Buckets {
		if n != want[i] {
			t.Errorf("bucket %d: %d, want %d", i, n, want[i])
		}
	}
}

// BenchmarkObserve is the cost an observation adds to a hot path.
func BenchmarkObserve(b *testing.B) {
	var h latency.Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			h.Observe(d)
		}
	})
}
