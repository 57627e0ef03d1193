// Package outbox is the till's durable record: the queue of transactions the
// POS was told are accepted and the hub has not yet acknowledged, and the
// small amount of state that must survive with it (the terminal's sequence
// counter, idempotency answers, burns awaiting the hub's verdict, what each
// local transaction was, the last balances the hub reported, the latest
// earn rules config the hub pushed, so that a till restarted offline still
// prices earns as the hub will, and the member tokens this till accepted,
// so that a replay is refused across a restart).
//
// It is the only agent package that imports bbolt. Every method that changes
// anything the POS was told is one bbolt transaction, so it commits (two
// fdatasyncs) before it returns: when Append returns nil the transaction is
// on disk, and it stays in the queue until Acked is called with the hub's
// answer for its id. A broker PUBACK never removes anything, and neither
// does a "held" ack: the hub recorded nothing, so the transaction is sent
// again later. The hub's answers are written with the next commit rather
// than in commits of their own (acks.go): a till's confirm does not wait
// for its acks.
package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tillsync/tillsync/protocol"
	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"
)

var (
	bucketQueue    = []byte("queue")    // seq (8 bytes, big-endian) -> protocol.Transaction JSON
	bucketIDs      = []byte("ids")      // tx id -> seq, for deleting on ack
	bucketMeta     = []byte("meta")     // "seq" -> last assigned terminal sequence number; "config" -> protocol.Config JSON; "config_verified" -> present when its signature was verified
	bucketIdem     = []byte("idem")     // Idempotency-Key -> IdemRecord JSON
	bucketPending  = []byte("pending")  // burn id -> Idempotency-Key ("" when none): burns awaiting a verdict
	bucketLocal    = []byte("local")    // tx id -> Local JSON: what this till did, for reverses
	bucketBalances = []byte("balances") // member -> Balance JSON, as last reported by the hub
	bucketTokens   = []byte("tokens")   // member token nonce -> 8-byte unix ns until which it is kept
	keySeq         = []byte("seq")
	keyConfig      = []byte("config")
	keyConfigOK    = []byte("config_verified")
	keySession     = []byte("session") // last connection session number handed out (NextSession)
)

// ErrLocked is returned by Open when another process holds the outbox file.
var ErrLocked = errors.New("outbox file is in use by another process (is another tillsync-agent running with the same data dir?)")

// ErrIdemExists is returned (wrapped in *IdemExistsError) by Append when the
// idempotency key already has a record.
var ErrIdemExists = errors.New("idempotency key already used")

// IdemExistsError carries the stored record of a repeated idempotency key.
type IdemExistsError struct{ Record IdemRecord }

func (e *IdemExistsError) Error() string { return ErrIdemExists.Error() }
func (e *IdemExistsError) Unwrap() error { return ErrIdemExists }

// IdemRecord is the first answer to a request carrying an Idempotency-Key.
type IdemRecord struct {
	// Hash identifies the request body, so a key reused for another request is caught.
	Hash string `json:"hash"`
	// TxID is the transaction the request created.
	TxID string `json:"tx_id"`
	// Pending is true while a burn awaits the hub; Response is then empty.
	Pending bool `json:"pending,omitempty"`
	// Response is the answer given, as the agent encoded it.
	Response json.RawMessage `json:"response,omitempty"`
}

// Local is what the till remembers of a transaction it created.
type Local struct {
	Kind     protocol.Kind `json:"kind"`
	Member   string        `json:"member"`
	Points   int64         `json:"points"`
	Reversed int64         `json:"reversed,omitempty"`
	// Amount is the sale's (or the goods') amount, minor units; Returned is
	// how much of it returns by amount have taken back.
	Amount   int64 `json:"amount,omitempty"`
	Returned int64 `json:"returned,omitempty"`
	// Capture is, for an approved hold, the id of the capture completing it.
	Capture string `json:"capture,omitempty"`
}

// Balance is a member's balance as last reported by the hub.
type Balance struct {
	Points int64     `json:"points"`
	AsOf   time.Time `json:"as_of"`
}

// Options tunes Open.
type Options struct {
	// Timeout bounds the wait for the file lock; default 1s.
	Timeout time.Duration
	// Logger receives WARN lines for recoverable oddities; default discards.
	Logger *slog.Logger
	// AckDelay is how long the hub's answers may wait in memory for the
	// next commit to be written with before they are written on their own
	// (acks.go). Zero means DefaultAckDelay; negative writes each Acked
	// call at once.
	AckDelay time.Duration
}

// Outbox is the durable queue. Its methods are safe for concurrent use.
type Outbox struct {
	db  *bolt.DB
	log *slog.Logger

	// mu is held (write) by every commit and by Acked, and (read) by the
	// reads that leave waiting answers out, so they see the file and the
	// waiting answers of one moment.
	mu     sync.RWMutex
	count  int64 // entries in the queue, answered ones waiting to be written left out
	closed bool

	// The hub's answers taken and not yet written (acks.go).
	ackDelay     time.Duration
	waiting      []waitingAck
	answered     map[string]struct{} // the ids of the waiting answers, for Queued and WaitingOn
	answeredSeqs map[uint64]struct{} // their queue seqs, for the queue's readers
	timer        *time.Timer         // writes the waiting answers after ackDelay
	ackErr       error               // writing them on their own failed; Acked reports it
}

// errClosed is returned by calls after Close.
var errClosed = errors.New("outbox is closed")

// Open opens (creating if needed) the outbox file at path.
func Open(path string, opts Options) (*Outbox, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterr.ErrTimeout) {
		return nil, fmt.Errorf("outbox: open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if opts.AckDelay == 0 {
		opts.AckDelay = DefaultAckDelay
	}
	o := &Outbox{db: db, log: opts.Logger, ackDelay: opts.AckDelay, answered: map[string]struct{}{}, answeredSeqs: map[uint64]struct{}{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketQueue, bucketIDs, bucketMeta, bucketIdem, bucketPending, bucketLocal, bucketBalances, bucketTokens} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		o.count = int64(tx.Bucket(bucketQueue).Stats().KeyN)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	return o, nil
}

// Close writes the answers still waiting and closes the file. Everything
// committed stays committed; answers that cannot be written are sent again
// and answered again after the next Open.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	if len(o.waiting) > 0 {
		if err := o.writeWaitingLocked(); err != nil {
			o.log.Warn("outbox: writing the hub's answers at close; they will be asked for again", "answers", len(o.waiting), "err", err)
		}
	}
	o.closed = true
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	return nil
}

// Path is the file's path.
func (o *Outbox) Path() string { return o.db.Path() }

// Append commits tx to the queue, assigning its terminal sequence number
// (tx.Seq is set on success). In the same commit it
//   - stores idem under its key, unless the key already exists: then nothing
//     is written and the error is an *IdemExistsError with the stored record;
//   - remembers the transaction locally (kind, member, points);
//   - for a reverse of a local transaction, adds to the original's reversed
//     points, refusing with protocol code over_reversed past the original;
//   - for a burn with pendingBurn set, marks it as awaiting the hub's verdict.
//
// tx must be valid apart from Seq; Append validates it again after assigning Seq.
func (o *Outbox) Append(tx *protocol.Transaction, idemKey string, idem *IdemRecord, pendingBurn bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.update(func(btx *bolt.Tx) error {
		if idemKey != "" {
			ib := btx.Bucket(bucketIdem)
			if v := ib.Get([]byte(idemKey)); v != nil {
				var rec IdemRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("idempotency record %q: %w", idemKey, err)
				}
				return &IdemExistsError{Record: rec}
			}
			enc, err := json.Marshal(idem)
			if err != nil {
				return err
			}
			if err := ib.Put([]byte(idemKey), enc); err != nil {
				return err
			}
		}
		if tx.Kind == protocol.KindReverse {
			if err := addReversed(btx, tx); err != nil {
				return err
			}
		}
		if err := appendTx(btx, tx); err != nil {
			return err
		}
		if pendingBurn {
			if err := btx.Bucket(bucketPending).Put([]byte(tx.ID), []byte(idemKey)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) || errors.Is(err, ErrIdemExists) {
			return err
		}
		return fmt.Errorf("outbox: append %s: %w", tx.ID, err)
	}
	o.count++
	return nil
}

// appendTx assigns the next sequence number and writes tx to the queue, the
// id index and the local record. Runs inside an update.
func appendTx(btx *bolt.Tx, tx *protocol.Transaction) error {
	meta := btx.Bucket(bucketMeta)
	var seq uint64 = 1
	if v := meta.Get(keySeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v) + 1
	}
	tx.Seq = seq
	if err := tx.Validate(); err != nil {
		return err
	}
	key := seqKey(seq)
	if err := meta.Put(keySeq, key); err != nil {
		return err
	}
	ids := btx.Bucket(bucketIDs)
	if ids.Get([]byte(tx.ID)) != nil {
		return fmt.Errorf("transaction id %s already queued", tx.ID)
	}
	enc, err := json.Marshal(tx)
	if err != nil {
		return err
	}
	if err := btx.Bucket(bucketQueue).Put(key, enc); err != nil {
		return err
	}
	if err := ids.Put([]byte(tx.ID), key); err != nil {
		return err
	}
	loc, err := json.Marshal(Local{Kind: tx.Kind, Member: tx.Member, Points: tx.Points, Amount: tx.Amount})
	if err != nil {
		return err
	}
	return btx.Bucket(bucketLocal).Put([]byte(tx.ID), loc)
}

// addReversed records reverse tx against its local original. An original
// this till does not know (a return at another till) is left to the hub to
// judge. A reverse naming another member's original is refused here: the
// hub would reject it, and counting it would leave the original's points
// used up for the member's own return. A return by amount of an original
// with an amount must carry the points the hub will book for it
// (ReturnPoints gives them).
func addReversed(btx *bolt.Tx, tx *protocol.Transaction) error {
	original, member, points := tx.Original, tx.Member, tx.Points
	lb := btx.Bucket(bucketLocal)
	v := lb.Get([]byte(original))
	if v == nil {
		return nil
	}
	var l Local
	if err := json.Unmarshal(v, &l); err != nil {
		return fmt.Errorf("local record %s: %w", original, err)
	}
	// A hold stands for the burn the POS asked for (the POS knows only the
	// hold's id); the hub resolves it to its capture.
	if l.Kind != protocol.KindEarn && l.Kind != protocol.KindBurn && l.Kind != protocol.KindHold {
		return protocol.Errorf(protocol.CodeOriginalMismatch, "original", "%s is a %s; only earns and burns can be reversed", original, l.Kind)
	}
	if l.Member != member {
		return protocol.Errorf(protocol.CodeOriginalMismatch, "original", "%s belongs to another member", original)
	}
	if tx.Amount > 0 && l.Amount > 0 {
		want, err := l.ReturnPoints(tx.Amount)
		if err != nil {
			return err
		}
		if points != want {
			return fmt.Errorf("return of %d of %s carries %d points; its share is %d", tx.Amount, original, points, want)
		}
		l.Returned += tx.Amount
	}
	if l.Reversed+points > l.Points {
		return protocol.Errorf(protocol.CodeOverReversed, "points", "%d more would exceed the %d points of %s (%d already reversed)", points, l.Points, original, l.Reversed)
	}
	l.Reversed += points
	enc, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return lb.Put([]byte(original), enc)
}

// ReturnPoints is what a return of amount more of l takes back, as the hub
// books it: its share of l's points on the running total of what has been
// returned, less the points already reversed (by points or by amount).
func (l Local) ReturnPoints(amount int64) (int64, error) {
	if l.Amount <= 0 {
		return 0, protocol.Errorf(protocol.CodeInvalidAmount, "amount", "the original has no amount to return a share of; give points")
	}
	if amount > l.Amount-l.Returned {
		return 0, protocol.Errorf(protocol.CodeOverReversed, "amount", "%d more would exceed the %d of the original (%d already returned)", amount, l.Amount, l.Returned)
	}
	return max(0, protocol.ReturnedPoints(l.Points, l.Amount, l.Returned+amount)-l.Reversed), nil
}

// closeLocal marks a local transaction as fully reversed: a declined burn
// took nothing, so there is nothing to give back.
func closeLocal(btx *bolt.Tx, id string) error {
	lb := btx.Bucket(bucketLocal)
	v := lb.Get([]byte(id))
	if v == nil {
		return nil
	}
	var l Local
	if err := json.Unmarshal(v, &l); err != nil {
		return fmt.Errorf("local record %s: %w", id, err)
	}
	l.Reversed = l.Points
	enc, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return lb.Put([]byte(id), enc)
}

// DecideBurn records the verdict the POS is given for a pending burn or hold:
// the idempotency record (if any) gets its final response, and the burn stops
// being pending. next, when given, is the follow-up the verdict calls for,
// appended in the same commit:
//   - approved: the capture completing a hold (Kind capture, Original
//     burnID); it is remembered as the hold's Local.Capture. An approved
//     one-step burn has none.
//   - declined: a void (Original burnID), so the hub undoes the burn or
//     releases the hold should it have applied it. A declined burn is marked
//     as having nothing left to reverse.
//
// One commit: after a crash the verdict and its follow-up are both on disk
// or neither is. Deciding a burn that is no longer pending does nothing and
// returns false.
func (o *Outbox) DecideBurn(burnID string, response []byte, approved bool, next *protocol.Transaction) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	decided := false
	err := o.update(func(btx *bolt.Tx) error {
		pb := btx.Bucket(bucketPending)
		key := pb.Get([]byte(burnID))
		if key == nil {
			return nil
		}
		if next != nil {
			want := protocol.KindVoid
			if approved {
				want = protocol.KindCapture
			}
			if next.Kind != want || next.Original != burnID {
				return fmt.Errorf("the follow-up must be a %s of it, not a %s of %q", want, next.Kind, next.Original)
			}
		}
		idemKey := string(key)
		if err := pb.Delete([]byte(burnID)); err != nil {
			return err
		}
		if idemKey != "" {
			ib := btx.Bucket(bucketIdem)
			var rec IdemRecord
			if v := ib.Get([]byte(idemKey)); v != nil {
				if err := json.Unmarshal(v, &rec); err != nil {
					return err
				}
			}
			rec.Pending = false
			rec.TxID = burnID
			rec.Response = response
			enc, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := ib.Put([]byte(idemKey), enc); err != nil {
				return err
			}
		}
		if !approved {
			if err := closeLocal(btx, burnID); err != nil {
				return err
			}
		}
		if next != nil {
			if err := appendTx(btx, next); err != nil {
				return err
			}
			if next.Kind == protocol.KindCapture {
				if err := linkCapture(btx, burnID, next.ID); err != nil {
					return err
				}
			}
		}
		decided = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("outbox: decide burn %s: %w", burnID, err)
	}
	if decided && next != nil {
		o.count++
	}
	return decided, nil
}

// linkCapture remembers on a hold's local record the capture completing it,
// so that a reverse naming the hold waits for the capture (WaitingOn).
func linkCapture(btx *bolt.Tx, holdID, captureID string) error {
	lb := btx.Bucket(bucketLocal)
	v := lb.Get([]byte(holdID))
	if v == nil {
		return nil
	}
	var l Local
	if err := json.Unmarshal(v, &l); err != nil {
		return fmt.Errorf("local record %s: %w", holdID, err)
	}
	l.Capture = captureID
	enc, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return lb.Put([]byte(holdID), enc)
}

// PendingBurns lists the burns awaiting a verdict: after a restart, these are
// burns whose POS request never got an answer.
func (o *Outbox) PendingBurns() ([]string, error) {
	var ids []string
	err := o.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: pending burns: %w", err)
	}
	return ids, nil
}

// Idem returns the record stored under an idempotency key.
func (o *Outbox) Idem(key string) (IdemRecord, bool, error) {
	var rec IdemRecord
	found := false
	err := o.db.View(func(btx *bolt.Tx) error {
		v := btx.Bucket(bucketIdem).Get([]byte(key))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return IdemRecord{}, false, fmt.Errorf("outbox: idempotency key: %w", err)
	}
	return rec, found, nil
}

// Local returns what this till recorded of transaction id.
// An answer that changes it (the points the hub booked) is written first.
func (o *Outbox) Local(id string) (Local, bool, error) {
	if err := o.flushAcks(); err != nil {
		return Local{}, false, fmt.Errorf("outbox: local %s: %w", id, err)
	}
	var l Local
	found := false
	err := o.db.View(func(btx *bolt.Tx) error {
		v := btx.Bucket(bucketLocal).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &l)
	})
	if err != nil {
		return Local{}, false, fmt.Errorf("outbox: local %s: %w", id, err)
	}
	return l, found, nil
}

// Pending returns up to limit queued transactions with a sequence number
// above after, oldest first, leaving out those answered (Acked).
func (o *Outbox) Pending(after uint64, limit int) ([]protocol.Transaction, error) {
	var out []protocol.Transaction
	if after == math.MaxUint64 { // after+1 would wrap to 0 and return the whole queue
		return nil, nil
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	err := o.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if o.isAnswered(k) {
				continue
			}
			var t protocol.Transaction
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: pending: %w", err)
	}
	return out, nil
}

// PendingPoints sums the points of queued earns and redemptions for member,
// looking at no more than scanLimit entries. Each redemption counts once,
// whatever its phases: a burn or hold counts its points, a queued capture
// counts its points in place of its queued hold's, a capture whose hold the
// hub has acked counts nothing (the hub's available balance already leaves
// the held points out), and a burn or hold whose void is queued (declined at
// the till) counts nothing: it will have no effect.
func (o *Outbox) PendingPoints(member string, scanLimit int) (earned, burned int64, err error) {
	needle := []byte(`"member":` + quote(member))
	type redemption struct {
		points                   int64
		queued, captured, voided bool
	}
	if err := o.flushAcks(); err != nil {
		return 0, 0, fmt.Errorf("outbox: pending points: %w", err)
	}
	reds := map[string]*redemption{} // by burn or hold id
	red := func(id string) *redemption {
		r := reds[id]
		if r == nil {
			r = &redemption{}
			reds[id] = r
		}
		return r
	}
	err = o.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(bucketQueue).Cursor()
		n := 0
		for k, v := c.First(); k != nil && n < scanLimit; k, v = c.Next() {
			n++
			if !bytes.Contains(v, needle) {
				continue
			}
			var t protocol.Transaction
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.Member != member {
				continue
			}
			switch t.Kind {
			case protocol.KindEarn:
				earned += t.Points
			case protocol.KindBurn, protocol.KindHold:
				r := red(t.ID)
				r.queued = true
				if !r.captured {
					r.points = t.Points
				}
			case protocol.KindCapture:
				r := red(t.Original)
				r.points, r.captured = t.Points, true
			case protocol.KindVoid:
				red(t.Original).voided = true
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: pending points: %w", err)
	}
	// A capture whose hold the hub has acked is not counted: the hub's
	// available balance already leaves out the held points.
	for _, r := range reds {
		if r.queued && !r.voided {
			burned += r.points
		}
	}
	return earned, burned, nil
}

// OfflineBurns returns the queued burns the till approved offline (the hub
// has not acked them), oldest first.
func (o *Outbox) OfflineBurns() ([]protocol.Transaction, error) {
	if err := o.flushAcks(); err != nil {
		return nil, fmt.Errorf("outbox: offline burns: %w", err)
	}
	var out []protocol.Transaction
	needle := []byte(`"offline":true`)
	err := o.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(bucketQueue).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !bytes.Contains(v, needle) {
				continue
			}
			var t protocol.Transaction
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.Offline && t.Kind == protocol.KindBurn {
				out = append(out, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: offline burns: %w", err)
	}
	return out, nil
}

// bookedPoints keeps a local earn's points as the hub booked them, when its
// ack says otherwise (the hub adds the cross-brand bonus, which a till cannot
// know of): the till then reverses and returns against what was booked.
func bookedPoints(btx *bolt.Tx, a protocol.Ack) error {
	if a.Final() != protocol.StatusApplied {
		return nil
	}
	lb := btx.Bucket(bucketLocal)
	v := lb.Get([]byte(a.ID))
	if v == nil {
		return nil
	}
	var l Local
	if err := json.Unmarshal(v, &l); err != nil {
		return fmt.Errorf("local record %s: %w", a.ID, err)
	}
	// Points 0 may be a version 1 hub, which does not report them.
	if l.Kind != protocol.KindEarn || a.Points == 0 || l.Points == a.Points || a.Points < l.Reversed {
		return nil
	}
	l.Points = a.Points
	enc, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return lb.Put([]byte(a.ID), enc)
}

// Queued reports whether transaction id is in the queue, not yet acked.
func (o *Outbox) Queued(id string) (bool, error) {
	found := false
	o.mu.RLock()
	defer o.mu.RUnlock()
	if _, ok := o.answered[id]; ok {
		return false, nil
	}
	err := o.db.View(func(btx *bolt.Tx) error {
		found = btx.Bucket(bucketIDs).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("outbox: queued %s: %w", id, err)
	}
	return found, nil
}

// WaitingOn returns the id of a queued transaction that must reach the hub
// before t, or "" when none: t's original while it awaits the hub's ack, or,
// when t names an approved hold, the capture completing that hold (a reverse
// of a two-phase burn must not overtake its capture). The capture itself
// waits only for its hold.
func (o *Outbox) WaitingOn(t *protocol.Transaction) (string, error) {
	if t.Original == "" {
		return "", nil
	}
	var id string
	o.mu.RLock()
	defer o.mu.RUnlock()
	queued := func(ids *bolt.Bucket, id string) bool {
		_, answered := o.answered[id]
		return !answered && ids.Get([]byte(id)) != nil
	}
	err := o.db.View(func(btx *bolt.Tx) error {
		ids := btx.Bucket(bucketIDs)
		if queued(ids, t.Original) {
			id = t.Original
			return nil
		}
		v := btx.Bucket(bucketLocal).Get([]byte(t.Original))
		if v == nil {
			return nil
		}
		var l Local
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("local record %s: %w", t.Original, err)
		}
		if l.Capture != "" && l.Capture != t.ID && queued(ids, l.Capture) {
			id = l.Capture
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("outbox: waiting on %s: %w", t.Original, err)
	}
	return id, nil
}

// SaveConfig stores cfg, the config the hub pushed for this till's store,
// unless the stored one (still valid) was published at the same time or
// later: only the newest (by PublishedAt) is kept. verified says that the
// agent checked cfg's signature with keys it trusts
// (protocol.VerifyConfig), and is kept with it, in the same commit: a
// verified config replaces an unverified one whatever their times (one
// kept before the till verified configs may claim any time). It reports
// whether cfg was stored. cfg must be valid (protocol.Config.Validate);
// an invalid one is refused with its protocol error and nothing is
// written.
func (o *Outbox) SaveConfig(cfg *protocol.Config, verified bool) (bool, error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	enc, err := protocol.Encode(cfg)
	if err != nil {
		return false, fmt.Errorf("outbox: save config: %w", err)
	}
	saved := false
	o.mu.Lock()
	defer o.mu.Unlock()
	err = o.update(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		if v := meta.Get(keyConfig); v != nil {
			// One that no longer decodes (Config would refuse it) is replaced.
			curOK := meta.Get(keyConfigOK) != nil
			if cur, err := protocol.DecodeConfig(v); err == nil && !cfg.PublishedAt.After(cur.PublishedAt) && (curOK || !verified) {
				return nil
			}
		}
		saved = true
		if err := meta.Put(keyConfig, enc); err != nil {
			return err
		}
		if verified {
			return meta.Put(keyConfigOK, []byte{1})
		}
		return meta.Delete(keyConfigOK)
	})
	if err != nil {
		return false, fmt.Errorf("outbox: save config: %w", err)
	}
	return saved, nil
}

// NextSession returns the next number of the till's connection session
// counter, committed before it returns: 1, 2, 3… never reused, across
// restarts too. The uplink takes one for every connection attempt and
// puts it in its status and its last will, so that the hub can tell a
// late will of an old connection from the status of a newer one.
func (o *Outbox) NextSession() (uint64, error) {
	var n uint64
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.update(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		n = 1
		if v := meta.Get(keySession); len(v) == 8 {
			n = binary.BigEndian.Uint64(v) + 1
		}
		return meta.Put(keySession, binary.BigEndian.AppendUint64(nil, n))
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: next session: %w", err)
	}
	return n, nil
}

// Config returns the config last stored by SaveConfig, or nil when there
// is none, and whether it was stored as verified.
func (o *Outbox) Config() (cfg *protocol.Config, verified bool, err error) {
	var raw []byte
	err = o.db.View(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		raw = bytes.Clone(meta.Get(keyConfig))
		verified = meta.Get(keyConfigOK) != nil
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("outbox: config: %w", err)
	}
	if raw == nil {
		return nil, false, nil
	}
	cfg, err = protocol.DecodeConfig(raw)
	if err != nil {
		return nil, false, fmt.Errorf("outbox: stored config: %w", err)
	}
	return cfg, verified, nil
}

// SaveBalance records the member's balance as the hub reported it at at
// (an answer to a balance query), unless a newer one is recorded.
func (o *Outbox) SaveBalance(member string, points int64, at time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.update(func(btx *bolt.Tx) error {
		bal := btx.Bucket(bucketBalances)
		if v := bal.Get([]byte(member)); v != nil {
			var cur Balance
			if err := json.Unmarshal(v, &cur); err == nil && cur.AsOf.After(at) {
				return nil
			}
		}
		enc, err := json.Marshal(Balance{Points: points, AsOf: at})
		if err != nil {
			return err
		}
		return bal.Put([]byte(member), enc)
	})
	if err != nil {
		return fmt.Errorf("outbox: save balance: %w", err)
	}
	return nil
}

// CachedBalance returns the member's balance as the hub last reported it
// (the answers waiting to be written are written first).
func (o *Outbox) CachedBalance(member string) (Balance, bool, error) {
	if err := o.flushAcks(); err != nil {
		return Balance{}, false, fmt.Errorf("outbox: cached balance: %w", err)
	}
	var b Balance
	found := false
	err := o.db.View(func(btx *bolt.Tx) error {
		v := btx.Bucket(bucketBalances).Get([]byte(member))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &b)
	})
	if err != nil {
		return Balance{}, false, fmt.Errorf("outbox: cached balance: %w", err)
	}
	return b, found, nil
}

// SeeToken records that this till accepted the member token with nonce,
// keeping the record until keepUntil, and reports whether it is the first
// time: false means the nonce is recorded already — a replay. In the same
// commit it forgets every nonce whose keepUntil is not after now, so the
// bucket holds only tokens that could still verify. keepUntil must be
// after the token stops verifying (its expiry plus the till's leeway),
// or a replay after the nonce is forgotten would pass.
func (o *Outbox) SeeToken(nonce string, keepUntil, now time.Time) (first bool, err error) {
	if !protocol.ValidID(nonce) {
		return false, protocol.Errorf(protocol.CodeInvalidID, "nonce", "must be a token nonce")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	err = o.update(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketTokens)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if b.Get([]byte(nonce)) != nil {
			return nil
		}
		first = true
		return b.Put([]byte(nonce), binary.BigEndian.AppendUint64(nil, uint64(keepUntil.UnixNano())))
	})
	if err != nil {
		return false, fmt.Errorf("outbox: see token %s: %w", nonce, err)
	}
	return first, nil
}

// Stats returns the number of queued transactions and the creation time of
// the oldest (zero when the queue is empty), answered ones left out.
func (o *Outbox) Stats() (count int64, oldest time.Time, err error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	count = o.count
	err = o.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(bucketQueue).Cursor()
		k, v := c.First()
		for k != nil && o.isAnswered(k) {
			k, v = c.Next()
		}
		if v == nil {
			return nil
		}
		var t struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		oldest = t.CreatedAt
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox: stats: %w", err)
	}
	return count, oldest, nil
}

// Check runs bbolt's consistency check over the whole file and returns the
// first problem found.
func (o *Outbox) Check() error {
	return o.db.View(func(btx *bolt.Tx) error {
		var first error
		for err := range btx.Check() { // drain: Check's goroutine sends every problem
			if first == nil {
				first = fmt.Errorf("outbox: check: %w", err)
			}
		}
		return first
	})
}

// CheckFile runs bbolt's consistency check over the outbox file at path,
// opened read-only (no agent may hold it), and returns how many
// transactions it holds queued. The crash loop (tillsync-sim crashloop)
// checks the file with it after every kill -9 of the agent.
func CheckFile(path string) (queued int, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolterr.ErrTimeout) {
		return 0, fmt.Errorf("outbox: check %s: %w", path, ErrLocked)
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: check %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(btx *bolt.Tx) error {
		var first error
		for err := range btx.Check() { // drain: Check's goroutine reads the tx until it is done
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("outbox: check %s: %w", path, first)
		}
		if b := btx.Bucket(bucketQueue); b != nil {
			queued = b.Stats().KeyN
		}
		return nil
	})
	return queued, err
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
