package hub

import (
	"maps"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
)

// The rejection counts grow by what is new in the ingest's ring at each
// call, rejections at the same instant included, refusals left out.
func TestAlertSourceCountsRejections(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var ring []ingest.Rejection // newest first
	add := func(at time.Time, store string) {
		ring = append([]ingest.Rejection{{At: at, Store: store, Terminal: "t1", Tx: "x"}}, ring...)
	}
	a := &alertSource{rejections: func() []ingest.Rejection { return ring }}
	check := func(want map[string]int64) {
		t.Helper()
		if got := a.countRejections(); !maps.Equal(got, want) {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
	check(map[string]int64{})
	add(t0, "s1")
	add(t0, "s2")
	ring = append([]ingest.Rejection{{At: t0, Store: "s1", Refused: true, Reason: "malformed"}}, ring...)
	check(map[string]int64{"s1": 1, "s2": 1})
	check(map[string]int64{"s1": 1, "s2": 1})
	add(t0, "s1") // the same instant as the last counted
	add(t0.Add(time.Second), "s1")
	check(map[string]int64{"s1": 3, "s2": 1})
	ring = ring[:1] // the ring moved on
	add(t0.Add(2*time.Second), "s2")
	check(map[string]int64{"s1": 3, "s2": 2})
}
