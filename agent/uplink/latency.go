package uplink

import (
	"time"

	"github.com/tillsync/tillsync/internal/latency"
	"github.com/tillsync/tillsync/protocol"
)

// ackTimes measures how long the hub took to ack each transaction: from
// the first time this uplink published it (a re-send after AckTimeout or a
// reconnect counts from the first) to the ack that removed it from the
// outbox. Only the uplink goroutine touches sent; the histogram is read by
// the agent's metrics at scrape time. It costs a map insert per
// transaction published and a delete per ack (BenchmarkAckTimes).
type ackTimes struct {
	sent map[string]time.Time
	hist latency.Histogram
}

// maxTimed bounds the transactions timed at once: the window and the
// urgent lane keep far fewer in flight, so the bound only matters if acks
// stop coming for transactions published long ago (they are then not
// timed, and nothing else changes).
const maxTimed = 1 << 14

func (a *ackTimes) published(txs []protocol.Transaction, at time.Time) {
	if a.sent == nil {
		a.sent = make(map[string]time.Time)
	}
	for i := range txs {
		if _, ok := a.sent[txs[i].ID]; !ok && len(a.sent) < maxTimed {
			a.sent[txs[i].ID] = at
		}
	}
}

func (a *ackTimes) acked(done []protocol.Ack, at time.Time) {
	for _, ack := range done {
		if t, ok := a.sent[ack.ID]; ok {
			a.hist.Observe(at.Sub(t))
			delete(a.sent, ack.ID)
		}
	}
}

// AckLatency returns the publish-to-ack latency of the transactions the
// hub acked since the uplink started.
func (u *Uplink) AckLatency() latency.Snapshot { return u.lat.hist.Snapshot() }
