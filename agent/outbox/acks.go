package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tillsync/tillsync/protocol"
	bolt "go.etcd.io/bbolt"
)

// Answered transactions leave the queue in the next commit, not in one of
// their own.
//
// A till online gets the hub's ack a few milliseconds after each sale. Were
// every ack deleted in a commit of its own, with its two fdatasyncs, the
// POS request arriving during that commit would wait for it (bbolt has one
// writer): the till's confirm would pay for its acks. So Acked only takes
// the answers in memory, and the deletion — with the booked points and the
// balance the ack brings — is written at the start of the next commit the
// till makes anyway (a POS request's), or on its own once AckDelay has
// passed without one, or at Close.
//
// Nothing can be lost by the wait: until it is written, an answered
// transaction is still in the file, and after a crash it is sent again and
// the hub answers it as a duplicate with its first answer. In between, what
// the outbox reports is what it will be once written: Pending, Queued,
// WaitingOn and Stats leave answered transactions out, and the reads of
// what an ack changes (Local, CachedBalance, PendingPoints, OfflineBurns)
// write the waiting answers first. Nothing is read from two places.

// DefaultAckDelay is how long answers wait for a commit to go with by
// default (Options.AckDelay).
const DefaultAckDelay = 200 * time.Millisecond

// maxWaitingAcks is how many answers may wait before they are written at
// once: a backlog's acks arrive by the thousand.
const maxWaitingAcks = 4096

// waitingAck is an answer Acked took and has not written yet.
type waitingAck struct {
	ack protocol.Ack
	at  time.Time
	seq uint64
}

// Acked takes the hub's answers. It returns the acks whose transaction was
// still queued: done, the answers that remove one, and held, the "held"
// acks, which remove nothing (the hub recorded nothing; the transaction is
// sent again later) and record no balance. Acks for ids no longer queued (a
// duplicate ack) are skipped. The answers in done are written — each
// deleted from the queue, with the balance it reports and the points it
// booked — in the next commit (see above), and from now on the queue's
// reads leave them out. An error from writing earlier answers on their own
// is returned here, once; those answers stay waiting and are tried again.
func (o *Outbox) Acked(acks []protocol.Ack, at time.Time) (done, held []protocol.Ack, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, nil, fmt.Errorf("outbox: acked: %w", errClosed)
	}
	if err := o.ackErr; err != nil {
		o.ackErr = nil
		return nil, nil, fmt.Errorf("outbox: acked: writing earlier answers: %w", err)
	}
	before := len(o.waiting)
	err = o.db.View(func(btx *bolt.Tx) error {
		ids := btx.Bucket(bucketIDs)
		for _, a := range acks {
			if _, ok := o.answered[a.ID]; ok {
				continue
			}
			key := ids.Get([]byte(a.ID))
			if len(key) != 8 {
				continue
			}
			if a.Status == protocol.StatusHeld {
				held = append(held, a)
				continue
			}
			seq := binary.BigEndian.Uint64(key)
			o.waiting = append(o.waiting, waitingAck{ack: a, at: at, seq: seq})
			o.answered[a.ID] = struct{}{}
			o.answeredSeqs[seq] = struct{}{}
			done = append(done, a)
		}
		return nil
	})
	if err != nil {
		o.forget(before)
		return nil, nil, fmt.Errorf("outbox: acked: %w", err)
	}
	o.count -= int64(len(done))
	if len(done) == 0 {
		return done, held, nil
	}
	if o.ackDelay < 0 || len(o.waiting) >= maxWaitingAcks {
		if err := o.writeWaitingLocked(); err != nil {
			// Not taken, then: the caller sees the error and the hub
			// answers these again when they are sent again.
			o.count += int64(len(done))
			o.forget(before)
			return nil, nil, fmt.Errorf("outbox: acked: %w", err)
		}
		return done, held, nil
	}
	if o.timer == nil {
		o.timer = time.AfterFunc(o.ackDelay, o.writeWaiting)
	}
	return done, held, nil
}

// forget drops the waiting answers from index from on: Acked could not take them.
func (o *Outbox) forget(from int) {
	for _, w := range o.waiting[from:] {
		delete(o.answered, w.ack.ID)
		delete(o.answeredSeqs, w.seq)
	}
	o.waiting = o.waiting[:from]
}

// writeWaiting writes the waiting answers on their own: AckDelay passed
// without another commit to take them.
func (o *Outbox) writeWaiting() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.timer = nil
	if o.closed || len(o.waiting) == 0 {
		return
	}
	if err := o.writeWaitingLocked(); err != nil {
		o.log.Warn("outbox: writing the hub's answers", "answers", len(o.waiting), "err", err)
		o.ackErr = err
		o.timer = time.AfterFunc(max(o.ackDelay, time.Second), o.writeWaiting)
	}
}

// writeWaitingLocked commits the waiting answers alone. o.mu must be held.
func (o *Outbox) writeWaitingLocked() error {
	return o.update(func(*bolt.Tx) error { return nil })
}

// flushAcks writes the waiting answers, if any, before a read of what they change.
func (o *Outbox) flushAcks() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.waiting) == 0 {
		return nil
	}
	if o.closed {
		return errClosed
	}
	return o.writeWaitingLocked()
}

// update runs fn in one bbolt commit, writing the waiting answers at its
// start. Every write of the outbox goes through it, with o.mu held. A
// commit that fails keeps the answers waiting; answers that cannot be
// written (a damaged local record) do not take fn down with them: fn is
// committed alone, and the error is kept for Acked to report.
func (o *Outbox) update(fn func(*bolt.Tx) error) error {
	n := len(o.waiting)
	if n == 0 {
		return o.db.Update(fn)
	}
	var ackErr error
	err := o.db.Update(func(btx *bolt.Tx) error {
		if err := writeAcks(btx, o.waiting[:n]); err != nil {
			ackErr = err
			return err
		}
		return fn(btx)
	})
	if ackErr != nil {
		o.ackErr = ackErr
		return o.db.Update(fn)
	}
	if err != nil {
		return err
	}
	for _, w := range o.waiting[:n] {
		delete(o.answered, w.ack.ID)
		delete(o.answeredSeqs, w.seq)
	}
	o.waiting = append(o.waiting[:0], o.waiting[n:]...)
	if len(o.waiting) == 0 && o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	return nil
}

// writeAcks deletes each answered transaction from the queue and records
// the balance its ack reports and the points it booked. Runs inside an update.
func writeAcks(btx *bolt.Tx, acks []waitingAck) error {
	ids, q, bal := btx.Bucket(bucketIDs), btx.Bucket(bucketQueue), btx.Bucket(bucketBalances)
	for _, w := range acks {
		a := w.ack
		key := ids.Get([]byte(a.ID))
		if key == nil {
			continue
		}
		key = bytes.Clone(key)
		if err := q.Delete(key); err != nil {
			return err
		}
		if err := ids.Delete([]byte(a.ID)); err != nil {
			return err
		}
		if err := bookedPoints(btx, a); err != nil {
			return err
		}
		if a.Member != "" && protocol.ValidID(a.Member) {
			enc, err := json.Marshal(Balance{Points: a.Balance, AsOf: w.at})
			if err != nil {
				return err
			}
			if err := bal.Put([]byte(a.Member), enc); err != nil {
				return err
			}
		}
	}
	return nil
}

// isAnswered reports whether the queue entry under key is an answer still
// waiting to be written. o.mu must be held (read or write).
func (o *Outbox) isAnswered(key []byte) bool {
	if len(o.answeredSeqs) == 0 || len(key) != 8 {
		return false
	}
	_, ok := o.answeredSeqs[binary.BigEndian.Uint64(key)]
	return ok
}
