package hub

import (
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
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

// A till last seen before the hub started counts as seen at the start: a
// restarted hub does not call every quiet store offline for hours. One
// never seen stays never seen; an online one is online.
func TestAlertSourceFacts(t *testing.T) {
	st, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a1, a2, b1 := ledgertest.NewTill("s1", "t1", "p1"), ledgertest.NewTill("s1", "t2", "p1"), ledgertest.NewTill("s2", "t1", "p2")
	ledgertest.Register(t, st, a1, a2, b1)
	ledgertest.Apply(t, st, ledgertest.T0.Add(-3*time.Hour), a1.Batch(t, a1.Earn("e1", "m1", 10)), b1.Batch(t, b1.Earn("e2", "m1", 10)))
	started := ledgertest.T0.Add(-time.Minute)
	clk := clock.NewFake(ledgertest.T0)
	dash := dashboard.New(dashboard.Options{Store: st, Clock: clk, Connected: func() []string { return []string{protocol.AgentClientID("s2", "t1")} }})
	src := &alertSource{dash: dash, rejections: func() []ingest.Rejection { return nil }, started: started}
	f, err := src.Facts()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]alerts.TerminalFacts{}
	for _, s := range f.Stores {
		for _, tf := range s.Terminals {
			got[s.Store+"/"+tf.Terminal] = tf
		}
		if s.Store == "s1" && (s.Partner != "p1" || s.Applied != 1) {
			t.Errorf("store %+v", s)
		}
	}
	if tf := got["s1/t1"]; tf.Online == nil || *tf.Online || !tf.LastSeen.Equal(started) {
		t.Errorf("s1/t1 (quiet since before the start): %+v", tf)
	}
	if tf, ok := got["s1/t2"]; ok && (tf.Online == nil || *tf.Online || !tf.LastSeen.IsZero()) {
		t.Errorf("s1/t2 (never seen): %+v", tf)
	}
	if tf := got["s2/t1"]; tf.Online == nil || !*tf.Online {
		t.Errorf("s2/t1 (connected): %+v", tf)
	}
}
