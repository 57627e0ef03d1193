package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestRejectionsRecorded: a transaction the ledger rejects, one rejected
// before the ledger and a message refused outright are each kept with what
// the dashboard shows of them, newest first.
func TestRejectionsRecorded(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	f.run(t)
	till := ledgertest.NewTill("s1", "t1", "p1")
	bad := till.Earn("bad-cur", "m1", 100)
	bad.Currency = "eur"
	b := &protocol.Batch{Version: protocol.Version, Store: "s1", Terminal: "t1", SentAt: ledgertest.T0,
		Txs: []protocol.Transaction{till.Earn("e1", "m1", 10), till.Burn("b1", "m1", 500), bad}}
	f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, b))
	testkit.WaitFor(t, wait, "the ack batch", func() bool { return f.rec.count() == 1 })

	// A batch on another terminal's topic is refused before the ledger.
	f.clock.Advance(time.Second)
	other := ledgertest.NewTill("s2", "t1", "p1")
	f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, other.Batch(t, other.Earn("x1", "m2", 10))))

	got := f.in.Rejections()
	if len(got) != 3 {
		t.Fatalf("Rejections() = %+v, want 3", got)
	}
	if r := got[0]; !r.Refused || r.Store != "s1" || r.Terminal != "t1" || r.Tx != "" || r.Code != "" ||
		!strings.Contains(r.Reason, "another terminal") || !r.At.Equal(ledgertest.T0.Add(time.Second)) {
		t.Errorf("newest: %+v, want the refused batch", r)
	}
	byTx := map[string]ingest.Rejection{got[1].Tx: got[1], got[2].Tx: got[2]}
	if r := byTx["b1"]; r.Code != protocol.CodeInsufficientPoints || r.Kind != protocol.KindBurn || r.Refused || r.Store != "s1" || r.Terminal != "t1" || !r.At.Equal(ledgertest.T0) {
		t.Errorf("ledger rejection: %+v", r)
	}
	if r := byTx["bad-cur"]; r.Code != protocol.CodeInvalidCurrency || r.Refused || r.Store != "s1" {
		t.Errorf("rejection before the ledger: %+v", r)
	}
	if st := f.in.Stats(); st.Rejected != 2 || st.Refused != 1 {
		t.Errorf("stats %+v: the counters and the list disagree", st)
	}
}

// TestRejectionsBounded: the list keeps the newest MaxRejections.
func TestRejectionsBounded(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	for i := range ingest.MaxRejections + 10 {
		f.in.HandleTx(fmt.Sprintf("tillsync/v1/stores/s1/terminals/t%d/tx", i), []byte("{"))
	}
	got := f.in.Rejections()
	if len(got) != ingest.MaxRejections {
		t.Fatalf("%d rejections kept, want %d", len(got), ingest.MaxRejections)
	}
	if got[0].Terminal != fmt.Sprintf("t%d", ingest.MaxRejections+9) || got[len(got)-1].Terminal != "t10" {
		t.Fatalf("kept %s … %s, want the newest first down to t10", got[0].Terminal, got[len(got)-1].Terminal)
	}
}

// TestAckLatencyAndLag: the wait from arrival to the ack's publication is
// counted in its bucket, and the terminal's lag is its oldest transaction's
// age at the commit.
func TestAckLatencyAndLag(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	// The ack leaves 30 ms after the batch arrived, by the hub's clock.
	f.rec.before = func(string, []byte) { f.clock.Advance(30 * time.Millisecond) }
	f.run(t)
	till := ledgertest.NewTill("s1", "t1", "p1")
	e1, e2 := till.Earn("e1", "m1", 10), till.Earn("e2", "m1", 10)
	f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, till.Batch(t, e2, e1)))
	testkit.WaitFor(t, wait, "the ack batch", func() bool { return f.rec.count() == 1 })

	lat := f.in.AckLatency()
	if lat.Count != 1 || lat.Sum != 30*time.Millisecond || lat.Mean() != 30*time.Millisecond {
		t.Fatalf("latency %+v, want one batch of 30ms", lat)
	}
	if lat.Buckets[8] != 1 { // (20ms, 50ms]
		t.Fatalf("buckets %v: 30ms not in (20ms, 50ms]", lat.Buckets)
	}
	lags := f.in.SyncLags()
	lag, ok := lags[ingest.TerminalKey{Store: "s1", Terminal: "t1"}]
	if want := ledgertest.T0.Add(30 * time.Millisecond).Sub(e1.CreatedAt); !ok || lag.Lag != want || !lag.At.Equal(ledgertest.T0.Add(30*time.Millisecond)) {
		t.Fatalf("lag %+v (found %v), want %v at the commit", lag, ok, want)
	}
	if len(lags) != 1 {
		t.Fatalf("lags %v: only s1/t1 sent", lags)
	}
}

func TestAckLatencyQuantile(t *testing.T) {
	var a ingest.AckLatency
	if a.Quantile(0.95) != 0 || a.Mean() != 0 {
		t.Fatal("an empty reading has no quantile or mean")
	}
	// 90 batches in (1ms, 2ms], 10 in (100ms, 200ms].
	a.Count, a.Buckets[4], a.Buckets[10] = 100, 90, 10
	if q := a.Quantile(0.5); q <= time.Millisecond || q > 2*time.Millisecond {
		t.Errorf("median %v, want within (1ms, 2ms]", q)
	}
	if q := a.Quantile(0.95); q != 150*time.Millisecond {
		t.Errorf("p95 %v, want 150ms (halfway through (100ms, 200ms])", q)
	}
	b := a
	b.Count, b.Buckets[len(b.Buckets)-1] = 101, 1
	if d := b.Sub(a); d.Count != 1 || d.Quantile(1) != ingest.LatencyBounds[len(ingest.LatencyBounds)-1] {
		t.Errorf("the difference %+v: one wait past the last bound", d)
	}
}
