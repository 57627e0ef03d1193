package ingest

// What the hub's dashboard shows of the ingest beside its counters: the
// transactions it rejected and the messages it refused lately, with their
// reasons; how long the acks took; and how far behind each terminal's last
// batch was. All of it is in memory, bounded, and gone at a restart: the
// ledger keeps what is lasting (every answer, forever), this only says
// what happened in the last minutes.

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// MaxRejections is how many recent rejections and refusals Rejections keeps.
const MaxRejections = 256

// maxLags bounds the terminals whose sync lag is kept: far more than a
// coalition has tills, so that a flood of made-up terminal names (possible
// where anonymous tills may connect) costs bounded memory.
const maxLags = 50_000

// Rejection is a transaction the hub rejected (answered rejected, with its
// code) or a message it refused before the ledger (no answer: malformed, on
// the wrong topic, naming another terminal).
type Rejection struct {
	// At is when the hub answered or refused.
	At time.Time `json:"at"`
	// Store and Terminal name the sender as the topic does; empty when the
	// topic itself was refused.
	Store    string `json:"store,omitempty"`
	Terminal string `json:"terminal,omitempty"`
	// Tx is the rejected transaction's id; empty for a refused message.
	Tx string `json:"tx,omitempty"`
	// Kind is the rejected transaction's kind, when known.
	Kind protocol.Kind `json:"kind,omitempty"`
	// Code is the rejection's stable code; empty for a refused message.
	Code protocol.Code `json:"code,omitempty"`
	// Refused is set for a message refused before the ledger.
	Refused bool `json:"refused,omitempty"`
	// Reason says, for a refused message, what was wrong with it, and why
	// (the decoder's or checker's error).
	Reason string `json:"reason,omitempty"`
}

// LatencyBounds are the upper bounds of AckLatency's buckets.
var LatencyBounds = [...]time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// AckLatency is how long batches waited from their arrival at the hub to
// the publication of their acks (validation, the queue, the ledger commit
// and its fsync), counted since the ingest started.
type AckLatency struct {
	// Count is the number of acked batches, Sum their total wait.
	Count int64
	Sum   time.Duration
	// Buckets[i] counts the batches that waited at most LatencyBounds[i]
	// (and more than the bound before it); the last one those that waited
	// longer than every bound.
	Buckets [len(LatencyBounds) + 1]int64
}

// Sub returns what a counted since b, an earlier reading of the same ingest.
func (a AckLatency) Sub(b AckLatency) AckLatency {
	d := AckLatency{Count: a.Count - b.Count, Sum: a.Sum - b.Sum}
	for i := range a.Buckets {
		d.Buckets[i] = a.Buckets[i] - b.Buckets[i]
	}
	return d
}

// Mean is the average wait; 0 when nothing was counted.
func (a AckLatency) Mean() time.Duration {
	if a.Count <= 0 {
		return 0
	}
	return a.Sum / time.Duration(a.Count)
}

// Quantile estimates the q-quantile (0 < q <= 1) of the waits by linear
// interpolation within its bucket; 0 when nothing was counted. Waits past
// the last bound are reported as that bound.
func (a AckLatency) Quantile(q float64) time.Duration {
	if a.Count <= 0 {
		return 0
	}
	rank := q * float64(a.Count)
	var seen float64
	for i, n := range a.Buckets {
		if n <= 0 {
			continue
		}
		if seen+float64(n) >= rank {
			if i == len(LatencyBounds) {
				return LatencyBounds[len(LatencyBounds)-1]
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			frac := (rank - seen) / float64(n)
			return lo + time.Duration(math.Round(frac*float64(LatencyBounds[i]-lo)))
		}
		seen += float64(n)
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// TerminalKey names a terminal.
type TerminalKey struct{ Store, Terminal string }

// Lag is how far behind a terminal's last batch was: how long the oldest
// transaction in it waited between the till accepting it (by the till's
// clock) and the hub's commit. A till that syncs as it sells lags by
// milliseconds; one catching up after an outage, by the outage.
type Lag struct {
	// Lag is the wait; never negative (a till's clock ahead of the hub's
	// counts as no wait).
	Lag time.Duration `json:"lag"`
	// At is when the hub committed the batch.
	At time.Time `json:"at"`
}

// recent is the dashboard's view of the ingest; its zero value is ready.
type recent struct {
	mu   sync.Mutex
	ring [MaxRejections]Rejection
	next int // where the next rejection goes
	full bool
	lags map[TerminalKey]Lag

	latCount, latSum atomic.Int64
	latBuckets       [len(LatencyBounds) + 1]atomic.Int64
}

// Rejections returns the recent rejections and refusals, newest first, at
// most MaxRejections.
func (in *Ingest) Rejections() []Rejection {
	r := &in.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = MaxRejections
	}
	out := make([]Rejection, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.next-i+MaxRejections)%MaxRejections])
	}
	return out
}

// AckLatency returns the ack latency counted since the ingest started.
func (in *Ingest) AckLatency() AckLatency {
	r := &in.recent
	a := AckLatency{Count: r.latCount.Load(), Sum: time.Duration(r.latSum.Load())}
	for i := range a.Buckets {
		a.Buckets[i] = r.latBuckets[i].Load()
	}
	return a
}

// SyncLags returns each terminal's lag as of its last batch with
// transactions since the ingest started.
func (in *Ingest) SyncLags() map[TerminalKey]Lag {
	r := &in.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[TerminalKey]Lag, len(r.lags))
	for k, v := range r.lags {
		out[k] = v
	}
	return out
}

func (r *recent) add(x Rejection) {
	r.mu.Lock()
	r.ring[r.next] = x
	r.next++
	if r.next == MaxRejections {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// refused records a message refused before the ledger.
func (r *recent) refused(now time.Time, what, topic string, err error) {
	x := Rejection{At: now, Refused: true, Reason: what}
	if err != nil {
		x.Reason += ": " + err.Error()
	}
	if s, t, _, perr := protocol.ParseTerminalTopic(topic); perr == nil {
		x.Store, x.Terminal = s, t
	}
	r.add(x)
}

// observe records what a batch's acks say, once they are published: the
// wait since the batch arrived, the terminal's lag and every rejection.
func (in *Ingest) observe(w *work, acks []protocol.Ack) {
	now := in.o.Clock.Now()
	r := &in.recent
	if !w.received.IsZero() {
		d := max(now.Sub(w.received), 0)
		r.latCount.Add(1)
		r.latSum.Add(int64(d))
		i := 0
		for i < len(LatencyBounds) && d > LatencyBounds[i] {
			i++
		}
		r.latBuckets[i].Add(1)
	}
	b := w.batch
	if b == nil {
		return
	}
	if len(b.Txs) > 0 {
		oldest := b.Txs[0].CreatedAt
		for _, tx := range b.Txs[1:] {
			if tx.CreatedAt.Before(oldest) {
				oldest = tx.CreatedAt
			}
		}
		k := TerminalKey{b.Store, b.Terminal}
		r.mu.Lock()
		if r.lags == nil {
			r.lags = make(map[TerminalKey]Lag)
		}
		if _, ok := r.lags[k]; ok || len(r.lags) < maxLags {
			r.lags[k] = Lag{Lag: max(now.Sub(oldest), 0), At: now}
		}
		r.mu.Unlock()
	}
	for _, a := range acks {
		if a.Status != protocol.StatusRejected {
			continue
		}
		x := Rejection{At: now, Store: b.Store, Terminal: b.Terminal, Tx: a.ID, Code: a.Code}
		for i := range b.Txs {
			if b.Txs[i].ID == a.ID {
				x.Kind = b.Txs[i].Kind
				break
			}
		}
		r.add(x)
	}
}
