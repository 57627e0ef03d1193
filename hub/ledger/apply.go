package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	a.auth = &s.auth
	defer a.end()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := a.begin(tx, s.reg.Load(), now); err != nil {
			return err
		}
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
	acctExpired                  // partner/{id}/expired
)

// account names an account without building its string; it is a map key.
type account struct {
	kind acctKind
	id   string
}

func (a account) appendName(b []byte) []byte {
	if a.kind == acctMember {
		b = append(b, memberPrefix...)
		return append(b, a.id...)
	}
	b = append(b, partnerPrefix...)
	b = append(b, a.id...)
	switch a.kind {
	case acctIssued:
		return append(b, "/issued"...)
	case acctRedeemed:
		return append(b, "/redeemed"...)
	default:
		return append(b, "/expired"...)
	}
}

// balSlot caches one account's balance during an Apply; dirty ones are
// written once at the end, however many postings they took (a partner's
// account is posted by nearly every transaction of a batch).
type balSlot struct {
	name   string
	member string // the member of a member's account ("" for a partner's): its balance is in bucketMembers
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

// settleKey is one line of the settlement aggregate.
type settleKey struct {
	day      Day
	partner  string
	restates string
}

// applier carries the state of one write transaction. It lives in the
// BoltStore and is reused (under BoltStore.mu) so that the hot path
// allocates little: its maps, slices and arena keep their capacity across
// commits.
type applier struct {
	log *slog.Logger
	now time.Time
	reg *registry

	balances, txs, journal, members, voids, terminals, meta *bolt.Bucket
	lotTimes, holds, flags, memberPartners, settle, seqs    *bolt.Bucket
	// Lookups go through one cursor per bucket: Cursor.Seek reuses its
	// stack, where Bucket.Get builds a new cursor (and allocates) every time.
	balCur, memCur, txCur, voidCur, holdCur, seqCur *bolt.Cursor

	// auth gives each batch's terminal its enrollment generation (gen),
	// which scopes its sequence numbers.
	auth *authCache
	gen  uint64
	// newSeqs are the sequence keys recorded in this Apply → their ids.
	newSeqs map[string]string
	// skey is scratch for sequence keys.
	skey []byte

	balIdx map[account]int
	bals   []balSlot
	recIdx map[string]int
	recs   []recSlot
	terms  map[string]*Terminal
	// held caches each member's active held points, once loaded.
	held map[string]int64
	agg  map[settleKey]*[3]int64

	// head is the hash of the last journal entry; headDirty once it moved.
	head      [sha256.Size]byte
	headDirty bool

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
	a.held = make(map[string]int64)
	a.agg = make(map[settleKey]*[3]int64)
	a.newSeqs = make(map[string]string)
}

func (a *applier) begin(tx *bolt.Tx, reg *registry, now time.Time) error {
	a.now, a.reg = now.UTC(), reg
	a.balances = tx.Bucket(bucketBalances)
	a.txs = tx.Bucket(bucketTxs)
	a.journal = tx.Bucket(bucketJournal)
	// The journal only grows at its end (keys are sequence numbers): fill
	// its pages before they split. bbolt's default splits every page half
	// full, for inserts in the middle the journal never has, and so wrote
	// and kept twice the journal pages (TestJournalPagesFull).
	a.journal.FillPercent = 1
	a.members = tx.Bucket(bucketMembers)
	a.voids = tx.Bucket(bucketVoids)
	a.terminals = tx.Bucket(bucketTerminals)
	a.meta = tx.Bucket(bucketMeta)
	a.lotTimes = tx.Bucket(bucketLotTimes)
	a.holds = tx.Bucket(bucketHolds)
	a.flags = tx.Bucket(bucketFlags)
	a.memberPartners = tx.Bucket(bucketMemberPartners)
	a.settle = tx.Bucket(bucketSettle)
	a.seqs = tx.Bucket(bucketTerminalSeqs)
	a.balCur, a.memCur, a.txCur = a.balances.Cursor(), a.members.Cursor(), a.txs.Cursor()
	a.voidCur, a.holdCur, a.seqCur = a.voids.Cursor(), a.holds.Cursor(), a.seqs.Cursor()
	// bbolt may have run a previous function that failed; start clean.
	a.reset()
	a.head = [sha256.Size]byte{}
	if v := a.meta.Get(chainKey); v != nil {
		if len(v) != sha256.Size {
			return fmt.Errorf("chain head is %d bytes, want %d", len(v), sha256.Size)
		}
		copy(a.head[:], v)
	}
	return nil
}

// end drops everything that refers to the transaction or the caller's batches.
func (a *applier) end() {
	a.balances, a.txs, a.journal, a.members, a.voids, a.terminals, a.meta = nil, nil, nil, nil, nil, nil, nil
	a.lotTimes, a.holds, a.flags, a.memberPartners, a.settle, a.seqs = nil, nil, nil, nil, nil, nil
	a.balCur, a.memCur, a.txCur, a.voidCur, a.holdCur, a.seqCur = nil, nil, nil, nil, nil, nil
	a.reg, a.auth = nil, nil
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
	clear(a.held)
	clear(a.agg)
	clear(a.newSeqs)
	a.headDirty = false
	a.entry = Entry{}
	a.posts = [2]Posting{}
}

func (a *applier) applyBatch(b *protocol.Batch, acks []protocol.Ack) error {
	var applied, held int64
	var maxSeq uint64
	a.gen = 0
	if a.auth != nil {
		a.gen = a.auth.get(b.Store, b.Terminal).Generation
	}
	for i := range b.Txs {
		t := &b.Txs[i]
		ack, err := a.applyTx(t)
		if err != nil {
			return fmt.Errorf("tx %s: %w", t.ID, err)
		}
		acks[i] = ack
		switch ack.Status {
		case protocol.StatusApplied:
			applied++
		case protocol.StatusHeld:
			held++
		}
		maxSeq = max(maxSeq, t.Seq)
	}
	return a.noteTerminal(b, applied, held, maxSeq)
}

// applyTx answers one transaction: a duplicate, a first answer that is
// recorded (with its effect, if applied) in this commit, or held.
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
		if r.differs(t) {
			a.log.Warn("transaction id reused with different content; answered as a duplicate of the first",
				"tx", t.ID, "store", t.Store, "terminal", t.Terminal)
		}
		return protocol.Ack{ID: t.ID, Status: protocol.StatusDuplicate, OriginalStatus: r.Status, Code: r.Code, Member: r.Member, Balance: r.Balance, Points: r.ackPoints()}, nil
	}

	st, registered := a.reg.stores[t.Store]
	if !registered {
		// Not an answer: nothing is recorded, and the till keeps the
		// transaction until the operator registers the store.
		return protocol.Ack{ID: t.ID, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: t.Member}, nil
	}
	rec := TxRecord{
		ID: t.ID, Kind: t.Kind, Member: t.Member, Points: t.Points, Amount: t.Amount, Offline: t.Offline,
		Store: t.Store, Terminal: t.Terminal, Partner: t.Partner, Original: t.Original, TerminalSeq: t.Seq,
	}
	if t.Kind == protocol.KindEarn {
		rec.Quoted = t.Points
	}
	first := a.seqOwner(t)
	replay := first != "" && first != t.ID
	switch {
	case replay:
		// Not this id's number: a transaction sent again under a new id.
		// Its own answer is recorded like any other, so a retry is a
		// duplicate; the number stays with the first id.
		a.log.Warn("terminal sequence number already used by another transaction; refused as a replay",
			"tx", t.ID, "store", t.Store, "terminal", t.Terminal, "seq", t.Seq, "first_tx", first)
		err = a.refuse(&rec, protocol.CodeSeqReused)
	case st.Partner != t.Partner:
		err = a.refuse(&rec, protocol.CodePartnerMismatch)
	case t.Kind == protocol.KindEarn:
		err = a.earn(t, &rec)
	case t.Kind == protocol.KindBurn:
		err = a.burn(t, &rec)
	case t.Kind == protocol.KindHold:
		err = a.hold(t, &rec)
	case t.Kind == protocol.KindCapture:
		err = a.capture(t, &rec)
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
	if rec.Status == protocol.StatusHeld {
		return protocol.Ack{ID: t.ID, Status: protocol.StatusHeld, Code: rec.Code, Member: t.Member}, nil
	}
	a.recIdx[t.ID] = len(a.recs)
	a.recs = append(a.recs, recSlot{rec: rec, dirty: true})
	if !replay {
		a.newSeqs[string(a.seqKey(t))] = t.ID
	}
	return protocol.Ack{ID: t.ID, Status: rec.Status, Code: rec.Code, Member: rec.Member, Balance: rec.Balance, Points: rec.ackPoints()}, nil
}

// seqKey builds t's key in bucketTerminalSeqs (in a.skey), under the
// enrollment generation of the batch being applied.
func (a *applier) seqKey(t *protocol.Transaction) []byte {
	a.skey = terminalSeqKey(a.skey[:0], t.Store, t.Terminal, a.gen, t.Seq)
	return a.skey
}

// terminalSeqKey is "store/terminal", 0x00, 8-byte generation, 8-byte seq.
func terminalSeqKey(b []byte, store, terminal string, gen, seq uint64) []byte {
	b = append(b, store...)
	b = append(b, '/')
	b = append(b, terminal...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, gen)
	return binary.BigEndian.AppendUint64(b, seq)
}

// seqOwner returns the id recorded with t's terminal sequence number, in
// this Apply or before; "" when the number is new.
func (a *applier) seqOwner(t *protocol.Transaction) string {
	k := a.seqKey(t)
	if id, ok := a.newSeqs[string(k)]; ok {
		return id
	}
	if v := get(a.seqCur, k); v != nil {
		return string(v)
	}
	return ""
}

// differs reports whether t, a retry of the transaction r records, says
// something else than the first one did.
func (r *TxRecord) differs(t *protocol.Transaction) bool {
	if r.Kind != t.Kind || r.Member != t.Member || r.Original != t.Original || r.Offline != t.Offline {
		return true
	}
	switch t.Kind {
	case protocol.KindEarn:
		return r.Quoted != t.Points || r.Amount != t.Amount
	case protocol.KindBurn, protocol.KindHold:
		return r.Points != t.Points || r.Amount != t.Amount
	case protocol.KindReverse:
		return r.Amount != t.Amount
	}
	return false
}

// ackPoints is what an ack reports as booked.
func (r *TxRecord) ackPoints() int64 {
	if r.Status != protocol.StatusApplied {
		return 0
	}
	return r.Points
}

// available is the member's balance less active holds.
func (a *applier) available(member string) (bal, avail int64, known bool, err error) {
	bal, known, err = a.memberBalance(member)
	if err != nil {
		return 0, 0, false, err
	}
	held, err := a.heldOf(member)
	return bal, bal - held, known, err
}

// refuse marks rec rejected with code and the member's available points.
func (a *applier) refuse(rec *TxRecord, code protocol.Code) error {
	_, avail, _, err := a.available(rec.Member)
	rec.Status, rec.Code, rec.Balance = protocol.StatusRejected, code, avail
	return err
}

// done marks rec applied with the member's available points.
func (a *applier) done(rec *TxRecord) error {
	_, avail, _, err := a.available(rec.Member)
	rec.Status, rec.Balance = protocol.StatusApplied, avail
	return err
}

// earn prices the purchase with the partner's rules in force when the till
// accepted it, and credits the member with a new lot.
func (a *applier) earn(t *protocol.Transaction, rec *TxRecord) error {
	versions := a.reg.rules[t.Partner]
	if len(versions) == 0 {
		// Pricing without rules would be a guess; keep the earn waiting at
		// the till until the operator gives the partner its rules.
		rec.Status, rec.Code = protocol.StatusHeld, protocol.CodeInvalidRules
		return nil
	}
	seen, newTo := a.partnerHistory(t.Member, t.Partner)
	q, err := protocol.SelectRules(versions, t.CreatedAt).Price(t, newTo)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return a.refuse(rec, pe.Code)
		}
		return err
	}
	rec.Points, rec.Quoted, rec.RulesVersion = q.Points, t.Points, q.RulesVersion
	if q.Points != t.Points {
		a.log.Debug("hub price differs from the till's quote", "tx", t.ID, "store", t.Store, "quoted", t.Points, "booked", q.Points, "rules_version", q.RulesVersion, "till_rules_version", t.RulesVersion)
	}
	if !seen { // one write per member and partner, not per earn
		if err := a.markPartner(t.Member, t.Partner); err != nil {
			return err
		}
	}
	if q.Points == 0 {
		if _, err := a.slot(account{acctMember, t.Member}); err != nil {
			return err
		}
		a.touchMember(t.Member)
		return a.done(rec)
	}
	bal, _, err := a.memberBalance(t.Member)
	if err != nil {
		return err
	}
	lotAt := minTime(t.CreatedAt, a.now)
	rec.LotAt = lotAt
	if _, err := a.post(t, rec, t.Partner, q.Points, account{acctIssued, t.Partner}, ""); err != nil {
		return err
	}
	if rest := q.Points - min(q.Points, max(0, -bal)); rest > 0 {
		if err := a.putLot(t.Member, lotAt, t.ID, t.Partner, rest, q.Points); err != nil {
			return err
		}
	}
	return a.done(rec)
}

// burn redeems in one step. Online it must be covered by the available
// points; approved offline, it is booked whatever it leaves.
func (a *applier) burn(t *protocol.Transaction, rec *TxRecord) error {
	barred, err := a.takePendingVoid(t)
	if err != nil {
		return err
	}
	_, avail, known, err := a.available(t.Member)
	if err != nil {
		return err
	}
	switch {
	case barred:
		return a.refuse(rec, protocol.CodeVoided)
	case t.Offline:
	case !known:
		return a.refuse(rec, protocol.CodeUnknownMember)
	case avail < t.Points:
		return a.refuse(rec, protocol.CodeInsufficientPoints)
	}
	if err := a.redeem(t, rec, t.Partner, t.Points, FlagOverdraft); err != nil {
		return err
	}
	if t.Offline && rec.Balance < 0 {
		a.log.Warn("offline burn overdrew the member; booked and flagged", "tx", t.ID, "member", t.Member, "store", t.Store, "balance", rec.Balance)
	}
	return nil
}

// redeem takes points from the member (oldest lots first) for partner.
func (a *applier) redeem(t *protocol.Transaction, rec *TxRecord, partner string, points int64, reason string) error {
	if _, err := a.post(t, rec, partner, -points, account{acctRedeemed, partner}, reason); err != nil {
		return err
	}
	uses, err := a.takeLots(t.Member, points, nil)
	if err != nil {
		return err
	}
	rec.Lots, rec.Points = uses, points
	return a.done(rec)
}

// hold reserves points; nothing is posted until the capture.
func (a *applier) hold(t *protocol.Transaction, rec *TxRecord) error {
	barred, err := a.takePendingVoid(t)
	if err != nil {
		return err
	}
	_, avail, known, err := a.available(t.Member)
	if err != nil {
		return err
	}
	switch {
	case barred:
		return a.refuse(rec, protocol.CodeVoided)
	case !known:
		return a.refuse(rec, protocol.CodeUnknownMember)
	case avail < t.Points:
		return a.refuse(rec, protocol.CodeInsufficientPoints)
	}
	rec.HoldState, rec.HoldExpires = HoldHeld, a.now.Add(a.reg.coalition.HoldTTL())
	if err := a.putHold(t.Member, t.ID, rec.HoldExpires, t.Points); err != nil {
		return err
	}
	return a.done(rec)
}

// capture completes a hold of the same till and member.
func (a *applier) capture(t *protocol.Transaction, rec *TxRecord) error {
	// Lapse the member's due holds first: that may load records, and no
	// pointer into a.recs may be held across a load.
	if _, err := a.heldOf(t.Member); err != nil {
		return err
	}
	oi, found, err := a.record(t.Original)
	if err != nil {
		return err
	}
	if !found {
		return a.refuse(rec, protocol.CodeUnknownOriginal)
	}
	o := &a.recs[oi].rec
	if o.Kind != protocol.KindHold || o.Member != t.Member || o.Store != t.Store || o.Terminal != t.Terminal {
		return a.refuse(rec, protocol.CodeOriginalMismatch)
	}
	switch {
	case o.Status != protocol.StatusApplied:
		return a.refuse(rec, protocol.CodeUnknownOriginal)
	case o.HoldState == HoldCaptured || o.HoldState == HoldVoided:
		return a.refuse(rec, protocol.CodeHoldSettled)
	case t.Points > o.Points:
		return a.refuse(rec, protocol.CodeExceedsHold)
	}
	if o.HoldState == HoldHeld {
		if err := a.dropHold(t.Member, o.ID, o.Points); err != nil {
			return err
		}
	} else {
		// The till approved the sale on the hold and the goods are gone:
		// book it, even if the points have been spent since.
		a.log.Warn("capture after its hold lapsed; booked", "tx", t.ID, "hold", o.ID, "member", t.Member, "store", t.Store)
	}
	o.HoldState, o.Capture = HoldCaptured, t.ID
	a.recs[oi].dirty = true
	partner := o.Partner
	if rec.Amount == 0 {
		rec.Amount = o.Amount
	}
	rec.Partner = partner
	return a.redeem(t, rec, partner, t.Points, FlagOverdraft)
}

func (a *applier) reverse(t *protocol.Transaction, rec *TxRecord) error {
	if _, err := a.heldOf(t.Member); err != nil { // see capture
		return err
	}
	oi, found, err := a.record(t.Original)
	if err != nil {
		return err
	}
	// unseen: the hub has no record of the original at all, which may be
	// still to come; a hold never captured is seen, and final.
	unseen := !found
	if found && a.recs[oi].rec.Kind == protocol.KindHold {
		// The POS knows a two-phase burn by its hold's id; the points moved
		// with the capture.
		if c := a.recs[oi].rec.Capture; c != "" {
			oi, found, err = a.record(c)
			if err != nil {
				return err
			}
		} else {
			found = false
		}
	}
	if unseen && len(a.reg.rules[t.Partner]) == 0 {
		// The original may be an earn held for want of rules: refusing the
		// return would be final while the earn is still to come. Hold it too.
		rec.Status, rec.Code = protocol.StatusHeld, protocol.CodeInvalidRules
		return nil
	}
	if unseen && a.now.Sub(t.CreatedAt) < a.reg.coalition.ReturnWait() {
		// A return at one till of a sale made at another that has not
		// synced yet: refusing would lose a return the POS was told is
		// booked. Answer held (nothing recorded); the till sends it again
		// until the sale arrives or the wait runs out.
		rec.Status, rec.Code = protocol.StatusHeld, protocol.CodeUnknownOriginal
		return nil
	}
	if !found || a.recs[oi].rec.Status != protocol.StatusApplied {
		return a.refuse(rec, protocol.CodeUnknownOriginal)
	}
	o := &a.recs[oi].rec
	// A return is made with the brand that made the sale: cross-partner
	// returns would move one brand's liability onto another.
	if o.Member != t.Member || o.Partner != t.Partner || (o.Kind != protocol.KindEarn && o.Kind != protocol.KindBurn && o.Kind != protocol.KindCapture) {
		return a.refuse(rec, protocol.CodeOriginalMismatch)
	}
	var points int64
	if t.Amount > 0 && o.Amount > 0 {
		// In proportion to the amount returned, rounded down on the running
		// total: returning everything gives back exactly the original's
		// points, and the parts never add up to more.
		if t.Amount > o.Amount-o.Returned {
			return a.refuse(rec, protocol.CodeOverReversed)
		}
		returned := o.Returned + t.Amount
		points = max(0, protocol.ReturnedPoints(o.Points, o.Amount, returned)-o.Reversed)
		o.Returned = returned
	} else {
		if t.Points > o.Points-o.Reversed {
			return a.refuse(rec, protocol.CodeOverReversed)
		}
		points = t.Points
	}
	a.recs[oi].dirty = true
	o.Reversed += points
	rec.Points, rec.Partner = points, o.Partner
	if points == 0 {
		return a.done(rec)
	}
	if o.Kind == protocol.KindEarn {
		// Take the points back, from the sale's own lot first. If the
		// member has spent them, the member owes them: flagged, never free.
		if _, err := a.post(t, rec, o.Partner, -points, account{acctIssued, o.Partner}, FlagReturnAfterSpend); err != nil {
			return err
		}
		own := &LotUse{Lot: o.ID, At: o.LotAt}
		if _, err := a.takeLots(t.Member, points, own); err != nil {
			return err
		}
		if err := a.done(rec); err != nil {
			return err
		}
		if rec.Balance < 0 {
			a.log.Warn("return took back points the member had spent; member flagged", "tx", t.ID, "member", t.Member, "original", o.ID, "balance", rec.Balance)
		}
		return nil
	}
	if err := a.giveBack(t, rec, o, points); err != nil {
		return err
	}
	return a.done(rec)
}

// giveBack returns points of a burn or capture o to the member: paying any
// debt first, then into the lots they came from.
func (a *applier) giveBack(t *protocol.Transaction, rec, o *TxRecord, points int64) error {
	bal, _, err := a.memberBalance(t.Member)
	if err != nil {
		return err
	}
	if _, err := a.post(t, rec, o.Partner, points, account{acctRedeemed, o.Partner}, ""); err != nil {
		return err
	}
	rest := points - min(points, max(0, -bal))
	return a.restoreLots(t.Member, o, rest, t.ID)
}

func (a *applier) void(t *protocol.Transaction, rec *TxRecord) error {
	if _, err := a.heldOf(t.Member); err != nil { // see capture
		return err
	}
	oi, found, err := a.record(t.Original)
	if err != nil {
		return err
	}
	if !found {
		// The burn or hold has not arrived (or never will): remember the
		// void so it is refused when it comes. The first void for it is kept.
		a.key = pendingVoidKey(a.key[:0], t.Original, t.Store, t.Terminal, t.Member)
		if get(a.voidCur, a.key) == nil {
			v := a.arena.commit(append(a.arena.tail(), t.ID...))
			if err := a.voids.Put(a.key, v); err != nil {
				return fmt.Errorf("record pending void: %w", err)
			}
		}
		return a.done(rec)
	}
	o := &a.recs[oi].rec
	// A void speaks only for its own terminal's burn or hold of the same member.
	if (o.Kind != protocol.KindBurn && o.Kind != protocol.KindHold) || o.Member != t.Member || o.Store != t.Store || o.Terminal != t.Terminal {
		return a.refuse(rec, protocol.CodeOriginalMismatch)
	}
	rec.Points, rec.Partner = 0, o.Partner
	if o.Status != protocol.StatusApplied {
		return a.done(rec)
	}
	if o.Kind == protocol.KindHold {
		switch o.HoldState {
		case HoldCaptured:
			return a.refuse(rec, protocol.CodeHoldSettled)
		case HoldHeld:
			if err := a.dropHold(t.Member, o.ID, o.Points); err != nil {
				return err
			}
			o.HoldState = HoldVoided
			a.recs[oi].dirty = true
		case HoldLapsed:
			// Nothing to release, but the till declined the sale: no
			// capture may follow.
			o.HoldState = HoldVoided
			a.recs[oi].dirty = true
		}
		return a.done(rec)
	}
	rest := o.Points - o.Reversed
	o.Reversed = o.Points
	a.recs[oi].dirty = true
	if rest > 0 {
		rec.Points = rest
		if err := a.giveBack(t, rec, o, rest); err != nil {
			return err
		}
	}
	return a.done(rec)
}

// post journals one entry of t moving delta to the member and −delta to
// other, keeps the flag of a member it takes below zero (for reason), and
// returns the member's new balance.
func (a *applier) post(t *protocol.Transaction, rec *TxRecord, partner string, delta int64, other account, reason string) (int64, error) {
	bal, err := a.postEntry(entryHead{
		txID: t.ID, kind: string(t.Kind), member: t.Member, partner: partner,
		store: t.Store, terminal: t.Terminal, original: t.Original, createdAt: t.CreatedAt,
	}, delta, other, reason)
	rec.JournalSeq = a.entry.Seq
	return bal, err
}

// entryHead is what an entry says besides its postings.
type entryHead struct {
	txID, kind, member, partner, store, terminal, original, lot string
	createdAt                                                   time.Time
}

func (a *applier) postEntry(h entryHead, delta int64, other account, reason string) (int64, error) {
	mi, err := a.slot(account{acctMember, h.member})
	if err != nil {
		return 0, err
	}
	pi, err := a.slot(other)
	if err != nil {
		return 0, err
	}
	m, p := &a.bals[mi], &a.bals[pi]
	before := m.v
	m.v += delta
	p.v -= delta
	m.exists, m.dirty = true, true
	p.exists, p.dirty = true, true

	seq, err := a.journal.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("journal sequence: %w", err)
	}
	day, restates := a.day(h.createdAt)
	a.posts[0] = Posting{Account: m.name, Delta: delta}
	a.posts[1] = Posting{Account: p.name, Delta: -delta}
	e := &a.entry
	*e = Entry{
		Seq: seq, TxID: h.txID, Kind: h.kind, Member: h.member, Partner: h.partner,
		Store: h.store, Terminal: h.terminal, Original: h.original, Lot: h.lot, Points: delta,
		Postings: a.posts[:], At: a.now, CreatedAt: h.createdAt, Day: day, Restates: restates,
	}
	v := a.arena.commit(a.seal(a.arena.tail(), e))
	a.key = seqKey(a.key[:0], seq)
	if err := a.journal.Put(a.key, v); err != nil {
		return 0, fmt.Errorf("journal entry %d: %w", seq, err)
	}
	a.key = memberIndexKey(a.key[:0], h.member, seq)
	if err := a.members.Put(a.key, empty); err != nil {
		return 0, fmt.Errorf("member index %d: %w", seq, err)
	}
	a.addSettle(day, restates, other, -delta)
	if m.v < 0 || before < 0 {
		if err := a.flag(h.member, m.v, reason, h.txID); err != nil {
			return 0, err
		}
	}
	return m.v, nil
}

// seal appends e as JSON with its chain hash: SHA-256 of the previous
// entry's hash and e's JSON with an empty hash, and moves the chain head.
func (a *applier) seal(b []byte, e *Entry) []byte {
	e.Hash = ""
	start := len(b)
	b = appendEntry(b, e)
	sum := chainHash(a.head, b[start:])
	a.head, a.headDirty = sum, true
	// The body ends with `"hash":""}`: put the hash between the quotes.
	b = b[:len(b)-2]
	b = hex.AppendEncode(b, sum[:])
	e.Hash = string(b[len(b)-2*sha256.Size:])
	return append(b, '"', '}')
}

// chainHash is SHA-256(prev ‖ body).
func chainHash(prev [sha256.Size]byte, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(body)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// day returns the accounting day of an entry created at created: its own
// day (never after the hub's), unless that falls in a closed period — then
// the day it is booked, restating that period.
func (a *applier) day(created time.Time) (Day, string) {
	d := DayOf(minTime(created, a.now))
	if d >= a.reg.closedTo || len(a.reg.periods) == 0 {
		return d, ""
	}
	return max(DayOf(a.now), a.reg.closedTo), a.reg.periodOf(d)
}

// addSettle adds one posting to another account to the settlement totals.
func (a *applier) addSettle(day Day, restates string, other account, posted int64) {
	if other.kind == acctMember {
		return
	}
	k := settleKey{day: day, partner: other.id, restates: restates}
	v := a.agg[k]
	if v == nil {
		v = new([3]int64)
		a.agg[k] = v
	}
	switch other.kind {
	case acctIssued:
		v[0] -= posted
	case acctRedeemed:
		v[1] += posted
	case acctExpired:
		v[2] += posted
	}
}

// flag keeps a member's flag in step with a balance below zero.
func (a *applier) flag(member string, bal int64, reason, txID string) error {
	v := a.flags.Get([]byte(member))
	if bal >= 0 {
		if v != nil {
			a.log.Info("member no longer owes points; flag cleared", "member", member, "tx", txID)
			return a.flags.Delete([]byte(member))
		}
		return nil
	}
	f := Flag{Member: member, Reason: reason, TxID: txID, Since: a.now}
	if v != nil {
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("flag of %s: %w", member, err)
		}
	} else if f.Reason == "" {
		f.Reason = FlagOverdraft
	}
	f.Balance = bal
	data, err := json.Marshal(&f)
	if err != nil {
		return err
	}
	return a.flags.Put([]byte(member), data)
}

// partnerHistory reports whether the member has earned at partner before
// (seen) and, if not, whether at another one (newTo: the cross-brand bonus
// case).
func (a *applier) partnerHistory(member, partner string) (seen, newTo bool) {
	c := a.memberPartners.Cursor()
	prefix := append(append(a.key[:0], member...), 0)
	other := false
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if string(k[len(prefix):]) == partner {
			return true, false
		}
		other = true
	}
	return false, other
}

// markPartner records that member has earned at partner.
func (a *applier) markPartner(member, partner string) error {
	k := append(append(append(a.key[:0], member...), 0), partner...)
	return a.memberPartners.Put(k, empty)
}

// touchMember makes sure a member with no postings yet has a balance record.
func (a *applier) touchMember(member string) {
	i := a.balIdx[account{acctMember, member}]
	if !a.bals[i].exists {
		a.bals[i].exists, a.bals[i].dirty = true, true
	}
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
	s := balSlot{name: string(acct.appendName(a.key[:0]))}
	c := a.balCur
	if acct.kind == acctMember {
		s.member, c = acct.id, a.memCur
		a.key = balanceKey(a.key[:0], acct.id)
	} else {
		a.key = append(a.key[:0], s.name...)
	}
	if v := get(c, a.key); v != nil {
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

// takePendingVoid reports whether a void from the burn's (or hold's) own
// terminal and member arrived before it, and forgets that void: the id is
// answered from now on, so the void can never matter again.
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

func (a *applier) noteTerminal(b *protocol.Batch, applied, held int64, maxSeq uint64) error {
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
	t.HeldBack = held
	return nil
}

// flush writes what the write transaction cached: new and changed records,
// posted balances, settlement totals, terminal info and the chain head.
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
		b := a.balances
		if s.member != "" {
			a.key, b = balanceKey(a.key[:0], s.member), a.members
		} else {
			a.key = append(a.key[:0], s.name...)
		}
		if err := b.Put(a.key, v); err != nil {
			return fmt.Errorf("balance %s: %w", s.name, err)
		}
	}
	for k, d := range a.agg {
		a.key = settleKeyBytes(a.key[:0], k)
		var cur [3]int64
		if v := a.settle.Get(a.key); v != nil {
			if len(v) != 24 {
				return fmt.Errorf("settlement totals %q are %d bytes, want 24", a.key, len(v))
			}
			for i := range cur {
				cur[i] = int64(binary.BigEndian.Uint64(v[8*i:]))
			}
		}
		b := a.arena.tail()
		for i := range cur {
			b = binary.BigEndian.AppendUint64(b, uint64(cur[i]+d[i]))
		}
		if err := a.settle.Put(a.key, a.arena.commit(b)); err != nil {
			return fmt.Errorf("settlement totals: %w", err)
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
	if a.headDirty {
		if err := a.meta.Put(chainKey, a.arena.commit(append(a.arena.tail(), a.head[:]...))); err != nil {
			return fmt.Errorf("chain head: %w", err)
		}
	}
	for k, id := range a.newSeqs {
		if err := a.seqs.Put([]byte(k), a.arena.commit(append(a.arena.tail(), id...))); err != nil {
			return fmt.Errorf("terminal sequence number of %s: %w", id, err)
		}
	}
	return nil
}

// settleKeyBytes is 4-byte day, partner, 0x00, restated period.
func settleKeyBytes(b []byte, k settleKey) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(k.day))
	b = append(b, k.partner...)
	b = append(b, 0)
	return append(b, k.restates...)
}

func parseSettleKey(k []byte) (settleKey, bool) {
	if len(k) < 5 {
		return settleKey{}, false
	}
	rest := k[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return settleKey{}, false
	}
	return settleKey{day: Day(binary.BigEndian.Uint32(k)), partner: string(rest[:i]), restates: string(rest[i+1:])}, true
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

func minTime(a, b time.Time) time.Time {
	if a.After(b) {
		return b
	}
	return a
}
