package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// Apply applies the batches in one bbolt transaction (one durable commit)
// and returns one Ack per transaction. See Store.Apply.
func (s *BoltStore) Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error) {
	n := 0
	for _, b := range batches {
		n += len(b.Txs)
	}
	// One allocation for every ack of the call.
	flat := make([]protocol.Ack, n)
	out := make([][]protocol.Ack, len(batches))
	if len(batches) == 0 {
		return out, nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a := &s.ap
	defer a.end()
	err := s.db.Update(func(tx *bolt.Tx) error {
		a.begin(tx, now)
		off := 0
		for i, b := range batches {
			out[i] = flat[off : off+len(b.Txs) : off+len(b.Txs)]
			off += len(b.Txs)
			if err := a.applyBatch(b, out[i]); err != nil {
				return err
			}
		}
		return a.flush()
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: apply: %w", err)
	}
	return out, nil
}

// acctKind is the kind of a ledger account.
type acctKind uint8

const (
	acctMember   acctKind = iota // member/{id}
	acctIssued                   // partner/{id}/issued
	acctRedeemed                 // partner/{id}/redeemed
)

// account names an account without building its string; it is a map key.
type account struct {
	kind acctKind
	id   string
}

func (a account) appendName(b []byte) []byte {
	switch a.kind {
	case acctMember:
		b = append(b, memberPrefix...)
		return append(b, a.id...)
	case acctIssued:
		b = append(b, partnerPrefix...)
		b = append(b, a.id...)
		return append(b, "/issued"...)
	default:
		b = append(b, partnerPrefix...)
		b = append(b, a.id...)
		return append(b, "/redeemed"...)
	}
}

// balSlot caches one account's balance during an Apply; dirty ones are
// written once at the end, however many postings they took (a partner's
// account is posted by nearly every transaction of a batch).
type balSlot struct {
	name   string
	v      int64
	exists bool // stored before, or posted during this Apply
	dirty  bool
}

// recSlot caches one TxRecord during an Apply: loaded originals and the new
// answers. Dirty ones are written at the end; an original reversed twice in
// one Apply is written once.
type recSlot struct {
	rec   TxRecord
	dirty bool
}

// applier carries the state of one Apply. It lives in the BoltStore and is
// reused (under BoltStore.mu) so that the hot path allocates little: its
// maps, slices and arena keep their capacity across commits.
type applier struct {
	log *slog.Logger
	now time.Time

	balances, txs, journal, index, voids, terminals, partners *bolt.Bucket
	// Lookups go through one cursor per bucket: Cursor.Seek reuses its
	// stack, where Bucket.Get builds a new cursor (and allocates) every time.
	balCur, txCur, voidCur *bolt.Cursor

	balIdx map[account]int
	bals   []balSlot
	recIdx map[string]int
	recs   []recSlot
	terms  map[string]*Terminal

	// key is scratch for lookup keys: bbolt copies Put keys and keeps no Get keys.
	key []byte
	// arena holds Put values, which bbolt references until commit.
	arena arena
	entry Entry
	posts [2]Posting
}

// empty is the value of index keys; bbolt never writes into it.
var empty = []byte{}

func (a *applier) init(log *slog.Logger) {
	a.log = log
	a.balIdx = make(map[account]int)
	a.recIdx = make(map[string]int)
	a.terms = make(map[string]*Terminal)
}

func (a *applier) begin(tx *bolt.Tx, now time.Time) {
	a.now = now
	a.balances = tx.Bucket(bucketBalances)
	a.txs = tx.Bucket(bucketTxs)
	a.journal = tx.Bucket(bucketJournal)
	a.index = tx.Bucket(bucketMemberIndex)
	a.voids = tx.Bucket(bucketVoids)
	a.terminals = tx.Bucket(bucketTerminals)
	a.partners = tx.Bucket(bucketStorePartners)
	a.balCur, a.txCur, a.voidCur = a.balances.Cursor(), a.txs.Cursor(), a.voids.Cursor()
	// bbolt may have run a previous function that failed; start clean.
	a.reset()
}

// end drops everything that refers to the transaction or the caller's batches.
func (a *applier) end() {
	a.balances, a.txs, a.journal, a.index, a.voids, a.terminals, a.partners = nil, nil, nil, nil, nil, nil, nil
	a.balCur, a.txCur, a.voidCur = nil, nil, nil
	a.reset()
	a.arena.reset()
}

func (a *applier) reset() {
	clear(a.balIdx)
	clear(a.bals)
	a.bals = a.bals[:0]
	clear(a.recIdx)
	clear(a.recs)
	a.recs = a.recs[:0]
	clear(a.terms)
	a.entry = Entry{}
	a.posts = [2]Posting{}
}

func (a *applier) applyBatch(b *protocol.Batch, acks []protocol.Ack) error {
	var applied int64
	var maxSeq uint64
	for i := range b.Txs {
		t := &b.Txs[i]
		ack, err := a.applyTx(t)
		if err != nil {
			return fmt.Errorf("tx %s: %w", t.ID, err)
		}
		acks[i] = ack
		if ack.Status == protocol.StatusApplied {
			applied++
		}
		maxSeq = max(maxSeq, t.Seq)
	}
	return a.noteTerminal(b, applied, maxSeq)
}

// applyTx answers one transaction: a duplicate, or a first answer that is
// recorded (with its effect, if applied) in this commit.
func (a *applier) applyTx(t *protocol.Transaction) (protocol.Ack, error) {
	i, found, err := a.record(t.ID)
	if err != nil {
		return protocol.Ack{}, err
	}
	if found {
		r := &a.recs[i].rec
		if r.Store != t.Store || r.Terminal != t.Terminal {
			// No store speaks for another: the first answer belongs to the
			// terminal that sent the id first, and is not repeated to anyone else.
			a.log.Warn("transaction id already used by another terminal; refused",
				"tx", t.ID, "store", t.Store, "terminal", t.Terminal, "first_store", r.Store, "first_terminal", r.Terminal)
			return protocol.Ack{ID: t.ID, Status: protocol.StatusRejected, Code: protocol.CodeStoreMismatch}, nil
		}
		if r.Kind != t.Kind || r.Member != t.Member || r.Original != t.Original || (t.Kind != protocol.KindVoid && r.Points != t.Points) {
			a.log.Warn("transaction id reused with different content; answered as a duplicate of the first",
				"tx", t.ID, "store", t.Store, "terminal", t.Terminal, "first_store", r.Store, "first_terminal", r.Terminal)
		}
		return protocol.Ack{ID: t.ID, Status: protocol.StatusDuplicate, OriginalStatus: r.Status, Code: r.Code, Member: r.Member, Balance: r.Balance}, nil
	}

	rec := TxRecord{
		ID: t.ID, Kind: t.Kind, Member: t.Member, Points: t.Points,
		Store: t.Store, Terminal: t.Terminal, Partner: t.Partner, Original: t.Original,
	}
	pinned, err := a.partnerOf(t)
	if err != nil {
		return protocol.Ack{}, err
	}
	switch {
	case !pinned:
		var bal int64
		if bal, _, err = a.memberBalance(t.Member); err == nil {
			err = reject(&rec, protocol.CodePartnerMismatch, bal)
		}
	case t.Kind == protocol.KindEarn:
		err = a.earn(t, &rec)
	case t.Kind == protocol.KindBurn:
		err = a.burn(t, &rec)
	case t.Kind == protocol.KindReverse:
		err = a.reverse(t, &rec)
	case t.Kind == protocol.KindVoid:
		err = a.void(t, &rec)
	default:
		// Validated batches never get here; refuse rather than guess.
		err = fmt.Errorf("unknown kind %q", t.Kind)
	}
	if err != nil {
		return protocol.Ack{}, err
	}
	a.recIdx[t.ID] = len(a.recs)
	a.recs = append(a.recs, recSlot{rec: rec, dirty: true})
	return protocol.Ack{ID: t.ID, Status: rec.Status, Code: rec.Code, Member: rec.Member, Balance: rec.Balance}, nil
}

// partnerOf reports whether t's partner is the one its store trades as. A
// store's first transaction pins its partner; from then on a transaction
// naming another partner is refused, so no store can post to another
// brand's accounts.
func (a *applier) partnerOf(t *protocol.Transaction) (bool, error) {
	if p := a.partners.Get([]byte(t.Store)); p != nil {
		return string(p) == t.Partner, nil
	}
	if err := a.partners.Put([]byte(t.Store), []byte(t.Partner)); err != nil {
		return false, fmt.Errorf("pin partner of %s: %w", t.Store, err)
	}
	return true, nil
}

// earn always applies; a member's first earn creates them.
func (a *applier) earn(t *protocol.Transaction, rec *TxRecord) error {
	return a.move(t, rec, t.Partner, t.Points, account{acctIssued, t.Partner})
}

func (a *applier) burn(t *protocol.Transaction, rec *TxRecord) error {
	barred, err := a.takePendingVoid(t)
	if err != nil {
		return err
	}
	bal, known, err := a.memberBalance(t.Member)
	if err != nil {
		return err
	}
	switch {
	case barred:
		return reject(rec, protocol.CodeVoided, bal)
	case !known:
		return reject(rec, protocol.CodeUnknownMember, 0)
	case bal < t.Points:
		return reject(rec, protocol.CodeInsufficientPoints, bal)
	}
	return a.move(t, rec, t.Partner, -t.Points, account{acctRedeemed, t.Partner})
}

func (a *applier) reverse(t *protocol.Transaction, rec *TxRecord) error {
	bal, _, err := a.memberBalance(t.Member)
	if err != nil {
		return err
	}
	oi, found, err := a.record(t.Original)
	if err != nil {
		return err
	}
	if !found || a.recs[oi].rec.Status != protocol.StatusApplied {
		return reject(rec, protocol.CodeUnknownOriginal, bal)
	}
	o := a.recs[oi].rec
	// A return is made with the brand that made the sale: cross-partner
	// returns need a coalition policy (the ledger issue), not a default.
	if o.Member != t.Member || o.Partner != t.Partner || (o.Kind != protocol.KindEarn && o.Kind != protocol.KindBurn) {
		return reject(rec, protocol.CodeOriginalMismatch, bal)
	}
	if t.Points > o.Points-o.Reversed {
		return reject(rec, protocol.CodeOverReversed, bal)
	}
	// Undo against the original's partner, whichever store the return is made at.
	if o.Kind == protocol.KindEarn {
		err = a.move(t, rec, o.Partner, -t.Points, account{acctIssued, o.Partner})
	} else {
		err = a.move(t, rec, o.Partner, t.Points, account{acctRedeemed, o.Partner})
	}
	if err != nil {
		return err
	}
	a.recs[oi].rec.Reversed += t.Points
	a.recs[oi].dirty = true
	return nil
}

func (a *applier) void(t *protocol.Transaction, rec *TxRecord) error {
	bal, _, err := a.memberBalance(t.Member)
	if err != nil {
		return err
	}
	oi, found, err := a.record(t.Original)
	if err != nil {
		return err
	}
	if !found {
		// The burn has not arrived (or never will): remember the void so the
		// burn is refused when it comes. The first void for it is kept.
		a.key = pendingVoidKey(a.key[:0], t.Original, t.Store, t.Terminal, t.Member)
		if get(a.voidCur, a.key) == nil {
			v := a.arena.commit(append(a.arena.tail(), t.ID...))
			if err := a.voids.Put(a.key, v); err != nil {
				return fmt.Errorf("record pending void: %w", err)
			}
		}
		rec.Status, rec.Balance = protocol.StatusApplied, bal
		return nil
	}
	o := a.recs[oi].rec
	// A void speaks only for its own terminal's burn of the same member.
	if o.Kind != protocol.KindBurn || o.Member != t.Member || o.Store != t.Store || o.Terminal != t.Terminal {
		return reject(rec, protocol.CodeOriginalMismatch, bal)
	}
	if o.Status != protocol.StatusApplied {
		rec.Status, rec.Balance = protocol.StatusApplied, bal
		return nil
	}
	rest := o.Points - o.Reversed
	rec.Points, rec.Partner = rest, o.Partner
	if rest > 0 {
		if err := a.move(t, rec, o.Partner, rest, account{acctRedeemed, o.Partner}); err != nil {
			return err
		}
	} else {
		rec.Status, rec.Balance = protocol.StatusApplied, bal
	}
	a.recs[oi].rec.Reversed = o.Points
	a.recs[oi].dirty = true
	return nil
}

func reject(rec *TxRecord, code protocol.Code, balance int64) error {
	rec.Status, rec.Code, rec.Balance = protocol.StatusRejected, code, balance
	return nil
}

// move posts delta to the member and −delta to other, journals the entry
// (Partner: partner) and marks rec applied with the member's new balance.
func (a *applier) move(t *protocol.Transaction, rec *TxRecord, partner string, delta int64, other account) error {
	mi, err := a.slot(account{acctMember, t.Member})
	if err != nil {
		return err
	}
	pi, err := a.slot(other)
	if err != nil {
		return err
	}
	m, p := &a.bals[mi], &a.bals[pi]
	m.v += delta
	p.v -= delta
	m.exists, m.dirty = true, true
	p.exists, p.dirty = true, true

	seq, err := a.journal.NextSequence()
	if err != nil {
		return fmt.Errorf("journal sequence: %w", err)
	}
	a.posts[0] = Posting{Account: m.name, Delta: delta}
	a.posts[1] = Posting{Account: p.name, Delta: -delta}
	e := &a.entry
	*e = Entry{
		Seq: seq, TxID: t.ID, Kind: string(t.Kind), Member: t.Member, Partner: partner,
		Store: t.Store, Terminal: t.Terminal, Original: t.Original, Points: delta,
		Postings: a.posts[:], At: a.now, CreatedAt: t.CreatedAt,
	}
	v := a.arena.commit(appendEntry(a.arena.tail(), e))
	a.key = seqKey(a.key[:0], seq)
	if err := a.journal.Put(a.key, v); err != nil {
		return fmt.Errorf("journal entry %d: %w", seq, err)
	}
	a.key = memberIndexKey(a.key[:0], t.Member, seq)
	if err := a.index.Put(a.key, empty); err != nil {
		return fmt.Errorf("member index %d: %w", seq, err)
	}
	rec.Status, rec.Balance, rec.JournalSeq = protocol.StatusApplied, m.v, seq
	return nil
}

// record finds the TxRecord of id, in this Apply or on disk, and returns its
// index in a.recs.
func (a *applier) record(id string) (int, bool, error) {
	if i, ok := a.recIdx[id]; ok {
		return i, true, nil
	}
	a.key = append(a.key[:0], id...)
	v := get(a.txCur, a.key)
	if v == nil {
		return 0, false, nil
	}
	var r TxRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return 0, false, fmt.Errorf("record %s: %w", id, err)
	}
	i := len(a.recs)
	a.recs = append(a.recs, recSlot{rec: r})
	a.recIdx[id] = i
	return i, true, nil
}

// slot finds an account's balance, in this Apply or on disk, and returns its index in a.bals.
func (a *applier) slot(acct account) (int, error) {
	if i, ok := a.balIdx[acct]; ok {
		return i, nil
	}
	a.key = acct.appendName(a.key[:0])
	s := balSlot{name: string(a.key)}
	if v := get(a.balCur, a.key); v != nil {
		var ok bool
		if s.v, ok = decodeBalance(v); !ok {
			return 0, fmt.Errorf("corrupt balance of %s (%d bytes)", s.name, len(v))
		}
		s.exists = true
	}
	i := len(a.bals)
	a.bals = append(a.bals, s)
	a.balIdx[acct] = i
	return i, nil
}

func (a *applier) memberBalance(member string) (int64, bool, error) {
	i, err := a.slot(account{acctMember, member})
	if err != nil {
		return 0, false, err
	}
	return a.bals[i].v, a.bals[i].exists, nil
}

// takePendingVoid reports whether a void from the burn's own terminal and
// member arrived before it, and forgets that void: the burn's id is answered
// from now on, so the void can never matter again.
func (a *applier) takePendingVoid(t *protocol.Transaction) (bool, error) {
	a.key = pendingVoidKey(a.key[:0], t.ID, t.Store, t.Terminal, t.Member)
	if get(a.voidCur, a.key) == nil {
		return false, nil
	}
	if err := a.voids.Delete(a.key); err != nil {
		return false, fmt.Errorf("pending void: %w", err)
	}
	return true, nil
}

func (a *applier) noteTerminal(b *protocol.Batch, applied int64, maxSeq uint64) error {
	key := b.Store + "/" + b.Terminal
	t, ok := a.terms[key]
	if !ok {
		t = &Terminal{Store: b.Store, Terminal: b.Terminal}
		if v := a.terminals.Get([]byte(key)); v != nil {
			if err := json.Unmarshal(v, t); err != nil {
				return fmt.Errorf("terminal %s: %w", key, err)
			}
		}
		a.terms[key] = t
	}
	t.LastSeen = a.now
	t.Backlog = b.Backlog
	t.OldestUnsynced = b.OldestUnsynced
	t.LastSeq = max(t.LastSeq, maxSeq)
	t.Applied += applied
	return nil
}

// flush writes what the Apply cached: new and changed records, posted
// balances, and terminal info.
func (a *applier) flush() error {
	for i := range a.recs {
		s := &a.recs[i]
		if !s.dirty {
			continue
		}
		v := a.arena.commit(appendTxRecord(a.arena.tail(), &s.rec))
		a.key = append(a.key[:0], s.rec.ID...)
		if err := a.txs.Put(a.key, v); err != nil {
			return fmt.Errorf("record %s: %w", s.rec.ID, err)
		}
	}
	for i := range a.bals {
		s := &a.bals[i]
		if !s.dirty {
			continue
		}
		v := a.arena.commit(appendBalance(a.arena.tail(), s.v))
		a.key = append(a.key[:0], s.name...)
		if err := a.balances.Put(a.key, v); err != nil {
			return fmt.Errorf("balance %s: %w", s.name, err)
		}
	}
	for key, t := range a.terms {
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("terminal %s: %w", key, err)
		}
		if err := a.terminals.Put([]byte(key), v); err != nil {
			return fmt.Errorf("terminal %s: %w", key, err)
		}
	}
	return nil
}

// get is Bucket.Get through a reusable cursor. Seek starts from the root
// every time, so puts and deletes since the last call do not matter.
func get(c *bolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// pendingVoidKey is burn id/store/terminal/member: a void bars only its own
// terminal's burn of its own member, and a stray void from elsewhere cannot
// shadow the real one.
func pendingVoidKey(b []byte, burnID, store, terminal, member string) []byte {
	b = append(b, burnID...)
	b = append(b, '/')
	b = append(b, store...)
	b = append(b, '/')
	b = append(b, terminal...)
	b = append(b, '/')
	return append(b, member...)
}

// memberIndexKey is member, 0x00, 8-byte seq: ids never contain 0x00, so one
// member's keys are contiguous and in journal order.
func memberIndexKey(b []byte, member string, seq uint64) []byte {
	b = append(b, member...)
	b = append(b, 0)
	return seqKey(b, seq)
}
