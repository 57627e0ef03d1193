package uplink

import (
	"strconv"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

func TestAckTimes(t *testing.T) {
	var a ackTimes
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	txs := []protocol.Transaction{{ID: "a"}, {ID: "b"}}
	a.published(txs, t0)
	a.published(txs[1:], t0.Add(time.Second)) // a re-send counts from the first
	a.acked([]protocol.Ack{{ID: "a"}, {ID: "b"}, {ID: "unknown"}}, t0.Add(3*time.Second))
	s := a.hist.Snapshot()
	if s.Count != 2 || s.Sum != 6*time.Second {
		t.Errorf("count %d sum %s, want 2 and 6s", s.Count, s.Sum)
	}
	if len(a.sent) != 0 {
		t.Errorf("%d still timed", len(a.sent))
	}
}

// BenchmarkAckTimes is what timing adds per transaction to the uplink: one
// publish and one ack of a batch of 100.
func BenchmarkAckTimes(b *testing.B) {
	var a ackTimes
	txs := make([]protocol.Transaction, 100)
	acks := make([]protocol.Ack, len(txs))
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		for j := range txs {
			txs[j].ID = strconv.Itoa(i*len(txs) + j)
			acks[j].ID = txs[j].ID
		}
		a.published(txs, now)
		a.acked(acks, now.Add(time.Millisecond))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(txs)), "ns/tx")
}
