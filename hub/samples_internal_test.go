package hub

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
)

func TestSample(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	prev := ingest.Stats{Applied: 10, Duplicates: 1, Rejected: 1, Held: 0, Refused: 7}
	st := ingest.Stats{Applied: 15, Duplicates: 2, Rejected: 2, Held: 2, Refused: 70}
	var lat ingest.AckLatency
	lat.Count, lat.Sum, lat.Buckets[3] = 4, 4*time.Millisecond, 4 // (0.5ms, 1ms]
	x := sample(at, 2*time.Second, st, prev, lat)
	if x.Tx != 4.5 || x.Acks != 4 || x.AckMeanMS != 1 || x.AckP95MS <= 0.5 || x.AckP95MS > 1 || !x.At.Equal(at) {
		t.Fatalf("sample %+v: want 9 answers in 2 s, 4 acks of 1 ms (refusals are no answer)", x)
	}
	if x := sample(at, time.Second, st, st, ingest.AckLatency{}); x.Tx != 0 || x.Acks != 0 || x.AckMeanMS != 0 || x.AckP95MS != 0 {
		t.Fatalf("a quiet second: %+v", x)
	}
}

func TestSamplerRing(t *testing.T) {
	var s sampler
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := range SampleWindow + 5 {
		s.add(dashboard.Sample{At: at.Add(time.Duration(i) * time.Second)})
		got := s.samples()
		if want := min(i+1, SampleWindow); len(got) != want {
			t.Fatalf("after %d samples %d kept, want %d", i+1, len(got), want)
		}
		if !got[len(got)-1].At.Equal(at.Add(time.Duration(i)*time.Second)) || !got[0].At.Equal(at.Add(time.Duration(max(0, i+1-SampleWindow))*time.Second)) {
			t.Fatalf("after %d samples: oldest %v newest %v", i+1, got[0].At, got[len(got)-1].At)
		}
	}
}
