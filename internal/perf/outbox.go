package perf

import (
	"sort"
	"sync"
	"time"

	"github.com/tillsync/tillsync/agent/uplink"
	"github.com/tillsync/tillsync/protocol"
)

// Outbox is a simulated till's outbox in memory (uplink.Outbox): the
// transactions queued in Seq order until the hub's ack. It records when
// each was queued, so that an ack gives the till's round trip, and counts
// what the hub answered.
type Outbox struct {
	mu    sync.Mutex
	q     []queued // by Seq; q[head:] may hold answered entries (gone)
	head  int
	base  int            // absolute position of q[0]
	pos   map[string]int // id → absolute position, for the unanswered
	n     int            // unanswered
	seq   uint64
	onAck func(a protocol.Ack, queuedAt time.Time)
	// counts of the hub's answers
	applied, duplicates, rejected, held int64
}

type queued struct {
	tx   protocol.Transaction
	at   time.Time
	gone bool
}

var _ uplink.Outbox = (*Outbox)(nil)

// NewOutbox returns an empty outbox; onAck (may be nil) is called, under
// the outbox's lock, for each answer that removes a transaction, with the
// time the transaction was queued.
func NewOutbox(onAck func(a protocol.Ack, queuedAt time.Time)) *Outbox {
	return &Outbox{pos: map[string]int{}, onAck: onAck}
}

// Add queues txs as the agent does after its commit: each gets the next
// Seq; at is when the till accepted them.
func (o *Outbox) Add(at time.Time, txs ...protocol.Transaction) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range txs {
		o.seq++
		t.Seq = o.seq
		o.pos[t.ID] = o.base + len(o.q)
		o.q = append(o.q, queued{tx: t, at: at})
		o.n++
	}
}

// Len is how many transactions wait for the hub's answer.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Answers returns how many transactions the hub answered applied,
// duplicate, rejected, and how many held acks arrived.
func (o *Outbox) Answers() (applied, duplicates, rejected, held int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.applied, o.duplicates, o.rejected, o.held
}

// Pending implements uplink.Outbox.
func (o *Outbox) Pending(after uint64, limit int) ([]protocol.Transaction, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	live := o.q[o.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].tx.Seq > after })
	var out []protocol.Transaction
	for ; i < len(live) && len(out) < limit; i++ {
		if !live[i].gone {
			out = append(out, live[i].tx)
		}
	}
	return out, nil
}

// Acked implements uplink.Outbox.
func (o *Outbox) Acked(acks []protocol.Ack, _ time.Time) (done, held []protocol.Ack, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, a := range acks {
		p, ok := o.pos[a.ID]
		if !ok {
			continue // answered already: a duplicate ack
		}
		if a.Status == protocol.StatusHeld {
			o.held++
			held = append(held, a)
			continue
		}
		switch a.Status {
		case protocol.StatusApplied:
			o.applied++
		case protocol.StatusDuplicate:
			o.duplicates++
		default:
			o.rejected++
		}
		e := &o.q[p-o.base]
		e.gone = true
		delete(o.pos, a.ID)
		o.n--
		if o.onAck != nil {
			o.onAck(a, e.at)
		}
		done = append(done, a)
	}
	for o.head < len(o.q) && o.q[o.head].gone {
		o.q[o.head] = queued{}
		o.head++
	}
	if o.head > 1024 && o.head > len(o.q)/2 {
		o.base += o.head
		o.q = append(o.q[:0:0], o.q[o.head:]...)
		o.head = 0
	}
	return done, held, nil
}

// Stats implements uplink.Outbox.
func (o *Outbox) Stats() (int64, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == 0 {
		return 0, time.Time{}, nil
	}
	return int64(o.n), o.q[o.head].tx.CreatedAt, nil
}

// WaitingOn implements uplink.Outbox: the simulated tills send earns only,
// which wait on nothing.
func (o *Outbox) WaitingOn(*protocol.Transaction) (string, error) { return "", nil }

// Queued implements uplink.Outbox.
func (o *Outbox) Queued(id string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.pos[id]
	return ok, nil
}
