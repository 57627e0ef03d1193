package perf

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

func txs(n int) []protocol.Transaction {
	out := make([]protocol.Transaction, n)
	for i := range out {
		out[i] = protocol.Transaction{ID: fmt.Sprintf("tx%04d", i+1), CreatedAt: time.Unix(int64(i), 0).UTC()}
	}
	return out
}

func pendingIDs(t *testing.T, o *Outbox, after uint64, limit int) []string {
	t.Helper()
	p, err := o.Pending(after, limit)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tx := range p {
		ids = append(ids, tx.ID)
	}
	return ids
}

// The in-memory outbox keeps what the uplink relies on of the real one:
// Seq order, Pending after a cursor, removal only by a final answer (held
// keeps it), the oldest's creation time, and one answer per transaction.
func TestOutbox(t *testing.T) {
	var answered []string
	queuedAt := time.Unix(100, 0)
	o := NewOutbox(func(a protocol.Ack, at time.Time) {
		if !at.Equal(queuedAt) {
			t.Errorf("ack %s: queued at %v, want %v", a.ID, at, queuedAt)
		}
		answered = append(answered, a.ID)
	})
	o.Add(queuedAt, txs(5)...)
	if got := pendingIDs(t, o, 0, 3); !slices.Equal(got, []string{"tx0001", "tx0002", "tx0003"}) {
		t.Fatalf("Pending(0, 3) = %v", got)
	}
	if got := pendingIDs(t, o, 3, 10); !slices.Equal(got, []string{"tx0004", "tx0005"}) {
		t.Fatalf("Pending(3, 10) = %v", got)
	}
	done, held, err := o.Acked([]protocol.Ack{
		{ID: "tx0002", Status: protocol.StatusApplied},
		{ID: "tx0001", Status: protocol.StatusHeld},
		{ID: "tx0003", Status: protocol.StatusDuplicate},
		{ID: "nope", Status: protocol.StatusApplied},
	}, time.Now())
	if err != nil || len(done) != 2 || len(held) != 1 {
		t.Fatalf("Acked: done %v, held %v, err %v", done, held, err)
	}
	if got := pendingIDs(t, o, 0, 10); !slices.Equal(got, []string{"tx0001", "tx0004", "tx0005"}) {
		t.Fatalf("after the acks, Pending = %v", got)
	}
	if n, oldest, _ := o.Stats(); n != 3 || !oldest.Equal(time.Unix(0, 0).UTC()) {
		t.Fatalf("Stats = %d, %v", n, oldest)
	}
	if q, _ := o.Queued("tx0002"); q {
		t.Error("tx0002 still queued after its ack")
	}
	// A second ack for an answered transaction changes nothing.
	if done, _, _ := o.Acked([]protocol.Ack{{ID: "tx0002", Status: protocol.StatusDuplicate}}, time.Now()); len(done) != 0 {
		t.Errorf("a second ack removed %v", done)
	}
	if a, d, r, h := o.Answers(); a != 1 || d != 1 || r != 0 || h != 1 {
		t.Errorf("Answers = %d %d %d %d, want 1 applied, 1 duplicate, 1 held", a, d, r, h)
	}
	if !slices.Equal(answered, []string{"tx0002", "tx0003"}) {
		t.Errorf("onAck saw %v", answered)
	}
}

// A long run answers most of what it queued: the outbox drops what was
// answered from its front (keeping positions right) and still finds the
// rest.
func TestOutboxLongRun(t *testing.T) {
	o := NewOutbox(nil)
	all := txs(5000)
	o.Add(time.Now(), all...)
	ack := func(from, to int) {
		t.Helper()
		var acks []protocol.Ack
		for _, tx := range all[from:to] {
			acks = append(acks, protocol.Ack{ID: tx.ID, Status: protocol.StatusApplied})
		}
		if done, _, err := o.Acked(acks, time.Now()); err != nil || len(done) != to-from {
			t.Fatalf("Acked %d..%d: %d done, %v", from, to, len(done), err)
		}
	}
	ack(0, 4000) // the front is dropped
	if got := pendingIDs(t, o, 0, 2); !slices.Equal(got, []string{"tx4001", "tx4002"}) {
		t.Fatalf("Pending = %v", got)
	}
	ack(4001, 4990) // a gap at tx4001, the front stays
	if got := pendingIDs(t, o, 0, 3); !slices.Equal(got, []string{"tx4001", "tx4991", "tx4992"}) {
		t.Fatalf("Pending = %v", got)
	}
	ack(4000, 4001)
	ack(4990, 4999)
	if got := pendingIDs(t, o, 0, 10); !slices.Equal(got, []string{"tx5000"}) {
		t.Fatalf("Pending = %v", got)
	}
	if n, oldest, _ := o.Stats(); n != 1 || !oldest.Equal(all[4999].CreatedAt) || o.Len() != 1 {
		t.Fatalf("Stats = %d, %v", n, oldest)
	}
	// More, after the drop: new transactions are found and answered.
	o.Add(time.Now(), protocol.Transaction{ID: "late"})
	if got := pendingIDs(t, o, 5000, 10); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("Pending after 5000 = %v", got)
	}
	if done, _, _ := o.Acked([]protocol.Ack{{ID: "late", Status: protocol.StatusApplied}, {ID: "tx5000", Status: protocol.StatusApplied}}, time.Now()); len(done) != 2 || o.Len() != 0 {
		t.Fatalf("last acks: %v, %d left", done, o.Len())
	}
}

func TestSamplesQuantile(t *testing.T) {
	var s Samples
	if s.Quantile(0.99) != 0 {
		t.Error("empty samples have a quantile")
	}
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0.001: time.Millisecond} {
		if got := s.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	before := Histogram{Bounds: []float64{0.001, 0.01, 0.1, inf}, Counts: []float64{0, 0, 0, 0}}
	after := Histogram{Bounds: before.Bounds, Counts: []float64{50, 98, 100, 100}, Sum: 0.5, Count: 100}
	h := after.Sub(before)
	if got := h.Quantile(0.5); got != time.Millisecond {
		t.Errorf("p50 = %v, want the first bucket's bound", got)
	}
	if got := h.Quantile(0.99); got != 100*time.Millisecond {
		t.Errorf("p99 = %v, want 100ms", got)
	}
	if got := h.Mean(); got != 5*time.Millisecond {
		t.Errorf("mean = %v", got)
	}
	if got := h.upTo(0.99); got != "≤ 100.00 ms" {
		t.Errorf("p99 says %q", got)
	}
	// Past the last finite bound: said so, not as the largest duration.
	over := Histogram{Bounds: before.Bounds, Counts: []float64{50, 60, 90, 100}, Count: 100}
	if got := over.upTo(0.99); got != "> 100.00 ms" {
		t.Errorf("p99 in the +Inf bucket says %q, want > 100.00 ms", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

var inf = math.Inf(1)
