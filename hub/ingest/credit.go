package ingest

import (
	"math"
	"sync"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// Flow control. The backlog queue holds QueueSize batches; tills back from
// an outage would each fill their own window into it, and a thousand
// windows of ten batches overflow 8,192: what overflows is dropped, waits
// out its till's re-send timer behind a queue that is still full, and
// comes back with the rest of that till's window as duplicates. So each
// ack batch grants its till a window (protocol.AckBatch.Window): a share
// of the queue among the tills sending a backlog — from their first
// backlog batch to the batch that says nothing is queued behind it — in
// transactions at the size their batches have had. A till of
// an older version ignores the grant and keeps its own window, as before.
//
// Measured with tillsync-sim bench (docs/performance.md, scenario 3): a
// drain of a million transactions from 1,000 tills dropped 11,308 to
// 14,346 batches without grants; with grants that shared the queue alone,
// still 1,479 to 5,539, because 8,192 batches are some 40 s of commits and
// a till re-sends after 10 s without an answer; with the room capped at
// creditDelay of commits, none.

const (
	// creditShare is the part of the backlog queue the grants share out:
	// the rest absorbs tills not counted yet (their first window, before
	// any grant reached them).
	creditShare = 0.75
	// creditDelay is how long, at most, the batches the grants allow should
	// wait in the queue, at the pace the hub has been committing. A till
	// re-sends what the hub has not answered 10 s (its AckTimeout) after
	// its oldest batch left, so a queue deeper than that in time is a queue
	// of re-sends to come; the queue's size alone (8,192 batches, some 40 s
	// of commits at 20,000 transactions a second) does not bound it.
	creditDelay = 3 * time.Second
	// creditForget is how long a till with nothing in the queues still
	// counts after its last backlog batch arrived, when no batch said its
	// backlog ended (it went away, or waits for acks lost on the way).
	creditForget = time.Minute
)

// credit computes the grants. A till counts from the moment a backlog
// batch of its arrives (queued or dropped), not when it is committed, and
// its grant grows from one batch by one batch a second from then
// (creditRamp), as a TCP sender's window starts small: tills of a region
// reconnect over seconds (their TLS handshakes take turns), and a till
// already granted a large share while few were counted would keep that
// many batches in the queue until its acks came back, tens of seconds
// later with the queue full.
type credit struct {
	mu      sync.Mutex
	queue   int                   // the backlog queue's size, in batches
	tills   map[string]*creditTil // by ack topic
	pruned  time.Time
	perTx   float64 // transactions a backlog batch carries, on average
	batches int64   // backlog batches seen, for the average
	// The hub's pace: transactions committed over the time its commits
	// took, both decayed as each commit adds to them (0: none measured).
	paceTxs, paceSecs float64
}

// creditTil is one till sending a backlog. It counts from its first
// backlog batch's arrival until its backlog has ended (a batch said nothing
// is queued behind it) and none of its batches is left in the queues: a
// till that has sent all it has still holds its share of the queue until
// the hub has committed it.
type creditTil struct {
	first, last time.Time // its backlog batches' arrivals: the first since it counts, the last
	queued      int       // its batches in the queues
	ended       bool      // its last batch had nothing queued behind it
}

// creditRamp is how fast a till's grant may grow from its first backlog
// batch: a batch more each creditRamp.
const creditRamp = time.Second

func newCredit(queue int) *credit {
	return &credit{queue: queue, tills: make(map[string]*creditTil), perTx: 1}
}

// arrived records a batch from the till answered on ackTopic, going into
// a queue: one with a backlog behind it (backlog), or with nothing queued
// behind it. size is its transactions when it is a batch of the backlog
// queue, for the average, else 0. A batch that finds the queue full
// leaves again at once (left).
func (c *credit) arrived(ackTopic string, size int, backlog bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tills[ackTopic]
	if t == nil {
		if !backlog {
			return // a live till: not counted
		}
		t = &creditTil{first: now}
		c.tills[ackTopic] = t
	}
	t.ended = !backlog
	t.queued++
	if !backlog {
		return
	}
	t.last = now
	if size <= 0 {
		return
	}
	// A running mean over the first batches, then an exponential one that
	// follows a fleet's batch size as it changes.
	c.batches++
	w := max(1/float64(c.batches), 1.0/256)
	c.perTx += w * (float64(size) - c.perTx)
}

// left records that a batch of the till answered on ackTopic left the
// queues: taken by the commit loop, or dropped at a full queue.
func (c *credit) left(ackTopic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tills[ackTopic]
	if t == nil {
		return
	}
	// Never below 0: a batch queued before its till was counted leaves
	// without having been added.
	t.queued = max(0, t.queued-1)
	if t.queued == 0 && t.ended {
		delete(c.tills, ackTopic)
	}
}

// committed records a commit of txs transactions that took took, for the
// hub's pace: what it commits in a second of committing, whatever the
// tills send (an idle hub's pace is not how little it is sent).
func (c *credit) committed(txs int, took time.Duration) {
	if took <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paceTxs = 0.95*c.paceTxs + float64(txs)
	c.paceSecs = 0.95*c.paceSecs + took.Seconds()
}

// grant returns the window to grant the till answered on ackTopic now:
// its share of the queue (of three quarters of it, or of creditDelay of
// commits at the hub's pace if that is less), no more than its ramp
// allows, at least one batch.
func (c *credit) grant(ackTopic string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.pruned) >= time.Second {
		for k, t := range c.tills {
			if t.queued <= 0 && now.Sub(t.last) > creditForget {
				delete(c.tills, k)
			}
		}
		c.pruned = now
	}
	room := creditShare * float64(c.queue) // batches
	if c.paceSecs > 0 {
		room = min(room, c.paceTxs/c.paceSecs*creditDelay.Seconds()/c.perTx)
	}
	batches := max(1, int(room)/max(1, len(c.tills)))
	if t := c.tills[ackTopic]; t != nil {
		batches = min(batches, 1+int(now.Sub(t.first)/creditRamp))
	}
	// Rounded up: the till fills what it is granted, so its batches are no
	// larger than the grant allows, and a grant rounded down would pull the
	// average, and every grant after it, down with each batch.
	return min(protocol.MaxWindow, max(1, int(math.Ceil(float64(batches)*c.perTx))))
}
