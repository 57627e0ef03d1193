package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// Past the cap, the folded stores are summed up in store="(other)":
// backlogs added, ages the oldest, in sync only if all are; the stores
// before the cap (the dashboard's most urgent) keep their own series.
func TestStoreSeriesFolded(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rows := []dashboard.StoreRow{
		{Store: "urgent", Backlog: 50, OldestUnsynced: at.Add(-time.Hour), LastSeen: at.Add(-time.Hour)},
		{Store: "b", Backlog: 1, OldestUnsynced: at.Add(-time.Minute), LastSeen: at.Add(-time.Second), InSync: false},
		{Store: "c", Backlog: 2, OldestUnsynced: at.Add(-2 * time.Minute), LastSeen: at.Add(-10 * time.Second), InSync: true},
		{Store: "d", InSync: true}, // never seen
	}
	c := &hubCollector{maxStores: 1, stores: func() ([]dashboard.StoreRow, time.Time, error) { return rows, at, nil }}
	got := map[string]float64{}
	c.collectStores(func(d *prometheus.Desc, v float64, labels ...string) {
		m := prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		name := d.String()
		name = name[strings.Index(name, `fqName: "`)+9:]
		name = name[:strings.Index(name, `"`)]
		for _, l := range pb.GetLabel() {
			name += "/" + l.GetValue()
		}
		got[name] = v
	})
	want := map[string]float64{
		"tillsync_hub_stores":                                    4,
		"tillsync_hub_store_series_folded":                       3,
		"tillsync_hub_store_backlog/urgent":                      50,
		"tillsync_hub_store_oldest_unsynced_age_seconds/urgent":  3600,
		"tillsync_hub_store_last_seen_age_seconds/urgent":        3600,
		"tillsync_hub_store_in_sync/urgent":                      0,
		"tillsync_hub_store_backlog/(other)":                     3,
		"tillsync_hub_store_oldest_unsynced_age_seconds/(other)": 120,
		"tillsync_hub_store_last_seen_age_seconds/(other)":       10,
		"tillsync_hub_store_in_sync/(other)":                     0,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// nopStore answers every Apply at once: what is left is timedStore's own cost.
type nopStore struct{ ledger.Store }

func (nopStore) Apply(batches []*protocol.Batch, _ time.Time) ([][]protocol.Ack, error) {
	return nil, nil
}

// BenchmarkTimedStoreApply is what the metrics add to a group commit of
// one batch of 100 transactions (per transaction: ns/tx).
func BenchmarkTimedStoreApply(b *testing.B) {
	s := newTimedStore(nopStore{}, nil)
	batch := &protocol.Batch{Txs: make([]protocol.Transaction, 100)}
	now := time.Now()
	for i := range batch.Txs {
		batch.Txs[i].CreatedAt = now.Add(-time.Second)
	}
	batches := []*protocol.Batch{batch}
	for b.Loop() {
		s.Apply(batches, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Txs)), "ns/tx")
}
