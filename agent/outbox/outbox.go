// Package outbox is the till's durable record: the queue of transactions the
// POS was told are accepted and the hub has not yet acknowledged, and the
// small amount of state that must survive with it (the terminal's sequence
// counter, idempotency answers, burns awaiting the hub's verdict, what each
// local transaction was, and the last balances the hub reported).
//
// It is the only agent package that imports bbolt. Every method that changes
// anything is one bbolt transaction, so it commits (two fdatasyncs) before it
// returns: when Append returns nil the transaction is on disk, and it stays
// in the queue until Acked is called with the hub's ack for its id. A broker
// PUBACK never removes anything.
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
	bucketMeta     = []byte("meta")     // "seq" -> last assigned terminal sequence number
	bucketIdem     = []byte("idem")     // Idempotency-Key -> IdemRecord JSON
	bucketPending  = []byte("pending")  // burn id -> Idempotency-Key ("" when none): burns awaiting a verdict
	bucketLocal    = []byte("local")    // tx id -> Local JSON: what this till did, for reverses
	bucketBalances = []byte("balances") // member -> Balance JSON, as last reported by the hub
	keySeq         = []byte("seq")
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
}

// Outbox is the durable queue. Its methods are safe for concurrent use.
type Outbox struct {
	db  *bolt.DB
	log *slog.Logger

	mu    sync.Mutex
	count int64 // entries in the queue; kept in step with each commit
}

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
	o := &Outbox{db: db, log: opts.Logger}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketQueue, bucketIDs, bucketMeta, bucketIdem, bucketPending, bucketLocal, bucketBalances} {
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

// Close closes the file. Everything committed stays committed.
func (o *Outbox) Close() error {
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
	err := o.db.Update(func(btx *bolt.Tx) error {
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
			if err := addReversed(btx, tx.Original, tx.Member, tx.Points); err != nil {
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
	loc, err := json.Marshal(Local{Kind: tx.Kind, Member: tx.Member, Points: tx.Points})
	if err != nil {
		return err
	}
	return btx.Bucket(bucketLocal).Put([]byte(tx.ID), loc)
}

// addReversed records points more reversed against a local original. An
// original this till does not know (a return at another till) is left to the
// hub to judge. A reverse naming another member's original is refused here:
// the hub would reject it, and counting it would leave the original's points
// used up for the member's own return.
func addReversed(btx *bolt.Tx, original, member string, points int64) error {
	lb := btx.Bucket(bucketLocal)
	v := lb.Get([]byte(original))
	if v == nil {
		return nil
	}
	var l Local
	if err := json.Unmarshal(v, &l); err != nil {
		return fmt.Errorf("local record %s: %w", original, err)
	}
	if l.Kind != protocol.KindEarn && l.Kind != protocol.KindBurn {
		return protocol.Errorf(protocol.CodeOriginalMismatch, "original", "%s is a %s; only earns and burns can be reversed", original, l.Kind)
	}
	if l.Member != member {
		return protocol.Errorf(protocol.CodeOriginalMismatch, "original", "%s belongs to another member", original)
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

// DecideBurn records the verdict the POS is given for a pending burn: the
// idempotency record (if any) gets its final response, and the burn stops
// being pending. A declined burn (approved false) is marked as having nothing
// left to reverse, and void, when given, is appended so the hub undoes the
// burn should it have applied it. One commit. Deciding a burn that is no
// longer pending does nothing and returns false.
func (o *Outbox) DecideBurn(burnID string, response []byte, approved bool, void *protocol.Transaction) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	decided := false
	err := o.db.Update(func(btx *bolt.Tx) error {
		pb := btx.Bucket(bucketPending)
		key := pb.Get([]byte(burnID))
		if key == nil {
			return nil
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
		if void != nil {
			if err := appendTx(btx, void); err != nil {
				return err
			}
		}
		decided = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("outbox: decide burn %s: %w", burnID, err)
	}
	if decided && void != nil {
		o.count++
	}
	return decided, nil
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
func (o *Outbox) Local(id string) (Local, bool, error) {
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
// above after, oldest first.
func (o *Outbox) Pending(after uint64, limit int) ([]protocol.Transaction, error) {
	var out []protocol.Transaction
	if after == math.MaxUint64 { // after+1 would wrap to 0 and return the whole queue
		return nil, nil
	}
	err := o.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
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

// PendingPoints sums the points of queued earns and burns for member,
// looking at no more than scanLimit entries. A burn whose void is queued too
// (declined at the till) is not counted: it will have no effect.
func (o *Outbox) PendingPoints(member string, scanLimit int) (earned, burned int64, err error) {
	needle := []byte(`"member":` + quote(member))
	burns := map[string]int64{}
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
			switch t.Kind {
			case protocol.KindEarn:
				earned += t.Points
			case protocol.KindBurn:
				burns[t.ID] = t.Points
			case protocol.KindVoid:
				burns[t.Original] = 0
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: pending points: %w", err)
	}
	for _, p := range burns {
		burned += p
	}
	return earned, burned, nil
}

// Acked deletes the acknowledged transactions from the queue and records the
// balances the acks report, in one commit. It returns the acks whose
// transaction was still queued; acks for ids no longer queued (a duplicate
// ack) are skipped.
func (o *Outbox) Acked(acks []protocol.Ack, at time.Time) ([]protocol.Ack, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var done []protocol.Ack
	err := o.db.Update(func(btx *bolt.Tx) error {
		ids, q, bal := btx.Bucket(bucketIDs), btx.Bucket(bucketQueue), btx.Bucket(bucketBalances)
		for _, a := range acks {
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
			if a.Member != "" && protocol.ValidID(a.Member) {
				enc, err := json.Marshal(Balance{Points: a.Balance, AsOf: at})
				if err != nil {
					return err
				}
				if err := bal.Put([]byte(a.Member), enc); err != nil {
					return err
				}
			}
			done = append(done, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: acked: %w", err)
	}
	o.count -= int64(len(done))
	return done, nil
}

// Queued reports whether transaction id is in the queue, not yet acked.
func (o *Outbox) Queued(id string) (bool, error) {
	found := false
	err := o.db.View(func(btx *bolt.Tx) error {
		found = btx.Bucket(bucketIDs).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("outbox: queued %s: %w", id, err)
	}
	return found, nil
}

// CachedBalance returns the member's balance as the hub last reported it.
func (o *Outbox) CachedBalance(member string) (Balance, bool, error) {
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

// Stats returns the number of queued transactions and the creation time of
// the oldest (zero when the queue is empty).
func (o *Outbox) Stats() (count int64, oldest time.Time, err error) {
	o.mu.Lock()
	count = o.count
	o.mu.Unlock()
	err = o.db.View(func(btx *bolt.Tx) error {
		_, v := btx.Bucket(bucketQueue).Cursor().First()
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

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
