package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// Verify replays the whole journal in one read transaction and checks
// everything derived from it:
//
//   - the hash chain: each entry's hash covers its content and the hash
//     before it, so a changed, inserted or removed entry breaks it; the first
//     break is reported with the entry's seq;
//   - every entry balances, and the replayed balances equal the stored ones;
//   - each member's statement index names exactly the member's entries;
//   - each member's lots add up to the member's balance (or zero while the
//     member owes points), and no lot is negative or over its size;
//   - every active hold belongs to a hold that is still held;
//   - the settlement totals equal the journal's postings by day and partner;
//   - every closed period still has its hash at its journal position and
//     still reports the lines it was closed with;
//   - the record of terminal sequence numbers (seq_reused) and the
//     transaction records agree: each number names a record of its
//     terminal with that number, and each record with a number (but a
//     replay's) is named by one.
func (s *BoltStore) Verify() (VerifyReport, error) {
	return s.VerifyContext(context.Background())
}

// VerifyContext is Verify, given up when ctx is done: the walks look at
// ctx every stopEvery keys, so a verification of a large ledger ends
// within milliseconds of its caller's stop, and with it the read
// transaction that bbolt's Close waits for. A stopped verification
// returns ctx's error (errors.Is context.Canceled or DeadlineExceeded) and
// no report.
func (s *BoltStore) VerifyContext(ctx context.Context) (VerifyReport, error) {
	if err := ctx.Err(); err != nil {
		return VerifyReport{}, fmt.Errorf("ledger: verify: %w", err)
	}
	var r VerifyReport
	st := &stopper{ctx: ctx}
	err := s.db.View(func(tx *bolt.Tx) error { return verify(tx, s.reg.Load(), &r, st) })
	if err != nil {
		return VerifyReport{}, fmt.Errorf("ledger: verify: %w", err)
	}
	return r, nil
}

// stopEvery is how many keys a verification walks between looks at its
// context: a look costs tens of nanoseconds, a key a microsecond or more.
const stopEvery = 4096

// stopper tells a walk when its context is done, looking every stopEvery
// calls.
type stopper struct {
	ctx context.Context
	n   int
}

// done returns ctx's error on every stopEvery-th call once ctx is done.
func (s *stopper) done() error {
	s.n++
	if s.n%stopEvery != 0 {
		return nil
	}
	return s.ctx.Err()
}

func verify(tx *bolt.Tx, reg *registry, r *VerifyReport, st *stopper) error {
	replayed := make(map[string]int64)
	entriesOf := make(map[string]indexSum) // each member's journal entries, for the statement index
	totals := make(map[settleKey]*[3]int64)
	anchors := make(map[uint64]string)
	for _, p := range reg.periods {
		anchors[p.JournalSeq] = ""
	}
	var prev [32]byte
	var want uint64 = 1
	var last uint64
	breakAt := func(format string, args ...any) {
		if r.ChainBreak == "" {
			r.ChainBreak = fmt.Sprintf(format, args...)
		}
	}
	err := tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
		if err := st.done(); err != nil {
			return err
		}
		r.Entries++
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			breakAt("entry at key %x is not a journal entry (%v): it was overwritten", k, err)
			return nil
		}
		if len(k) != 8 || binary.BigEndian.Uint64(k) != e.Seq {
			breakAt("entry %d is stored under key %x: it was moved", e.Seq, k)
		}
		if e.Seq != want {
			if e.Seq > want {
				breakAt("entries %d to %d are missing: the journal jumps from %d to %d", want, e.Seq-1, want-1, e.Seq)
			} else {
				breakAt("entry %d appears after entry %d: the journal was reordered", e.Seq, want-1)
			}
		}
		want, last = e.Seq+1, e.Seq
		stored := e.Hash
		e.Hash = ""
		sum := chainHash(prev, appendEntry(nil, &e))
		if got := hex.EncodeToString(sum[:]); got != stored {
			what := "tx " + e.TxID
			if e.TxID == "" {
				what = e.Kind + " of lot " + e.Lot
			}
			breakAt("entry %d (%s, member %s): its hash does not match its contents and the entry before it (stored %.16s, computed %.16s): it was changed after it was written", e.Seq, what, e.Member, stored, got)
		}
		// Go on from the stored hash, so a single changed entry is reported
		// once and the entries after it still check.
		if b, err := hex.DecodeString(stored); err == nil && len(b) == len(prev) {
			copy(prev[:], b)
		} else {
			prev = sum
		}
		if _, ok := anchors[e.Seq]; ok {
			anchors[e.Seq] = stored
		}
		if e.Member != "" {
			entriesOf[e.Member] = entriesOf[e.Member].add(e.Seq)
		}
		var sumDelta int64
		for _, p := range e.Postings {
			sumDelta += p.Delta
			replayed[p.Account] += p.Delta
			partner, kind, ok := partnerAccount(p.Account)
			if !ok {
				continue
			}
			key := settleKey{day: e.Day, partner: partner, restates: e.Restates}
			t := totals[key]
			if t == nil {
				t = new([3]int64)
				totals[key] = t
			}
			switch kind {
			case "issued":
				t[0] -= p.Delta
			case "redeemed":
				t[1] += p.Delta
			case "expired":
				t[2] += p.Delta
			}
		}
		if sumDelta != 0 {
			r.Unbalanced = append(r.Unbalanced, e.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if last > 0 {
		r.ChainHead = hex.EncodeToString(prev[:])
	}
	head := tx.Bucket(bucketMeta).Get(chainKey)
	if last > 0 && !bytes.Equal(head, prev[:]) {
		breakAt("the recorded chain head %.16s is not the last entry's hash %.16s: entries were removed from the end", hex.EncodeToString(head), r.ChainHead)
	}
	if seq := tx.Bucket(bucketJournal).Sequence(); seq != last {
		breakAt("the journal has numbered %d entries but its last is %d: entries were removed from the end", seq, last)
	}

	// Balances: the members' accounts, then the partners' (account name order).
	seen := make(map[string]bool, len(replayed))
	members := make(map[string]int64)
	lotSums := make(map[string]int64)
	indexed := make(map[string]indexSum)
	checkBalance := func(acct string, v []byte) {
		seen[acct] = true
		want, hasReplayed := replayed[acct]
		stored, ok := decodeBalance(v)
		switch {
		case !ok:
			r.Mismatches = append(r.Mismatches, fmt.Sprintf("%s: stored value is %d bytes, want 8; replayed %d", acct, len(v), want))
		case (!hasReplayed && stored != 0) || stored != want:
			r.Mismatches = append(r.Mismatches, mismatchLine(acct, stored, true, want, hasReplayed))
		}
		if m, ok := strings.CutPrefix(acct, memberPrefix); ok {
			members[m] = stored
		}
	}
	// Each member's balance, lots and statement index (members.go).
	err = tx.Bucket(bucketMembers).ForEach(func(k, v []byte) error {
		if err := st.done(); err != nil {
			return err
		}
		mb, kind, rest, ok := splitMemberKey(k)
		if !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("member data key %x: corrupt", k))
			return nil
		}
		m := string(mb)
		switch kind {
		case kindBalance:
			checkBalance(MemberAccount(m), v)
		case kindLot:
			rem, pts, _, ok := decodeLotValue(v)
			if !ok {
				r.Problems = append(r.Problems, fmt.Sprintf("lot %x: corrupt", k))
				return nil
			}
			_, id, _ := parseLotKey(k, len(mb))
			if rem < 0 || rem > pts {
				r.Problems = append(r.Problems, fmt.Sprintf("lot %s of member %s: %d points left of %d", id, m, rem, pts))
			}
			lotSums[m] += rem
		case kindEntry:
			seq := entrySeq(rest)
			if seq == 0 || seq > last {
				r.Problems = append(r.Problems, fmt.Sprintf("member %s: the statement index names journal entry %d, which the journal does not have", m, seq))
				return nil
			}
			indexed[m] = indexed[m].add(seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketBalances).ForEach(func(k, v []byte) error {
		if !bytes.HasPrefix(k, []byte(partnerPrefix)) {
			// A member's balance is in bucketMembers; one here is read by nothing.
			r.Problems = append(r.Problems, fmt.Sprintf("balances: key %q is not a partner's account", k))
			return nil
		}
		checkBalance(string(k), v)
		return nil
	})
	if err != nil {
		return err
	}
	var missing []string
	for acct := range replayed {
		if !seen[acct] {
			missing = append(missing, acct)
		}
	}
	slices.Sort(missing)
	for _, acct := range missing {
		r.Mismatches = append(r.Mismatches, mismatchLine(acct, 0, false, replayed[acct], true))
	}
	r.Accounts = len(seen) + len(missing)

	// Statement indexes: one key for each of the member's entries.
	for _, m := range sortedKeys(entriesOf, indexed) {
		switch j, ix := entriesOf[m], indexed[m]; {
		case j.n != ix.n:
			r.Problems = append(r.Problems, fmt.Sprintf("member %s: the journal has %d entries of the member, its statement index %d", m, j.n, ix.n))
		case j.sum != ix.sum:
			r.Problems = append(r.Problems, fmt.Sprintf("member %s: the statement index names %d entries, but not the journal's %d entries of the member", m, ix.n, j.n))
		}
	}

	// Lots.
	for _, m := range sortedKeys(members, lotSums) {
		if want := max(members[m], 0); lotSums[m] != want {
			r.Problems = append(r.Problems, fmt.Sprintf("member %s: lots hold %d points, the balance is %d", m, lotSums[m], members[m]))
		}
	}

	// Holds.
	txs := tx.Bucket(bucketTxs)
	err = tx.Bucket(bucketHolds).ForEach(func(k, v []byte) error {
		if err := st.done(); err != nil {
			return err
		}
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(v) != 16 {
			r.Problems = append(r.Problems, fmt.Sprintf("hold %x: corrupt", k))
			return nil
		}
		id := k[i+1:]
		var rec TxRecord
		if data := txs.Get(id); data == nil || json.Unmarshal(data, &rec) != nil || rec.HoldState != HoldHeld || rec.Points != int64(binary.BigEndian.Uint64(v[8:])) {
			r.Problems = append(r.Problems, fmt.Sprintf("hold %s of member %s: active, but its record says %q", id, k[:i], rec.HoldState))
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Settlement totals.
	stored := make(map[settleKey][3]int64)
	err = tx.Bucket(bucketSettle).ForEach(func(k, v []byte) error {
		key, ok := parseSettleKey(k)
		if !ok || len(v) != 24 {
			r.Problems = append(r.Problems, fmt.Sprintf("settlement totals %x: corrupt", k))
			return nil
		}
		stored[key] = [3]int64{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), int64(binary.BigEndian.Uint64(v[16:]))}
		return nil
	})
	if err != nil {
		return err
	}
	var keys []settleKey
	for k := range stored {
		keys = append(keys, k)
	}
	for k := range totals {
		if _, ok := stored[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b settleKey) int {
		if a.day != b.day {
			return int(a.day - b.day)
		}
		return strings.Compare(a.partner+"\x00"+a.restates, b.partner+"\x00"+b.restates)
	})
	for _, k := range keys {
		var j [3]int64
		if t := totals[k]; t != nil {
			j = *t
		}
		if s := stored[k]; s != j {
			what := k.partner
			if k.restates != "" {
				what += " (restating " + k.restates + ")"
			}
			r.Problems = append(r.Problems, fmt.Sprintf("settlement totals of %s on %s: stored issued/redeemed/expired %d/%d/%d, the journal gives %d/%d/%d", what, k.day, s[0], s[1], s[2], j[0], j[1], j[2]))
		}
	}

	if err := verifySeqs(tx, r, st); err != nil {
		return err
	}

	// Closed periods.
	for _, p := range reg.periods {
		id := PeriodID(p.From, p.To)
		if p.JournalSeq > 0 && anchors[p.JournalSeq] != p.ChainHash {
			r.Problems = append(r.Problems, fmt.Sprintf("closed period %s: journal entry %d's hash is %.16s, it was %.16s at the close", id, p.JournalSeq, anchors[p.JournalSeq], p.ChainHash))
		}
		rep, err := settlement(tx, reg, p.From, p.To)
		if err != nil {
			return err
		}
		if got, was := nonZero(rep.Lines), nonZero(p.Lines); !slices.Equal(got, was) {
			r.Problems = append(r.Problems, fmt.Sprintf("closed period %s: its report changed since the close: now %+v, then %+v", id, got, was))
		}
	}
	return nil
}

// verifySeqs checks bucketTerminalSeqs against the transaction records.
func verifySeqs(tx *bolt.Tx, r *VerifyReport, st *stopper) error {
	seqs := tx.Bucket(bucketTerminalSeqs)
	if seqs == nil {
		return nil // no such bucket (every file of this schema has it): nothing to check
	}
	type numbered struct {
		terminal string // "store/terminal"
		seq      uint64
	}
	named := make(map[string]numbered)
	txs := tx.Bucket(bucketTxs)
	err := seqs.ForEach(func(k, v []byte) error {
		if err := st.done(); err != nil {
			return err
		}
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+17 {
			r.Problems = append(r.Problems, fmt.Sprintf("terminal sequence number %x: corrupt", k))
			return nil
		}
		n := numbered{terminal: string(k[:i]), seq: binary.BigEndian.Uint64(k[i+9:])}
		id := string(v)
		if prev, ok := named[id]; ok {
			r.Problems = append(r.Problems, fmt.Sprintf("transaction %s holds two sequence numbers of %s: %d and %d", id, n.terminal, prev.seq, n.seq))
		}
		named[id] = n
		var rec TxRecord
		switch data := txs.Get(v); {
		case data == nil:
			r.Problems = append(r.Problems, fmt.Sprintf("sequence number %d of %s names transaction %s, which has no record", n.seq, n.terminal, id))
		case json.Unmarshal(data, &rec) != nil:
			r.Problems = append(r.Problems, fmt.Sprintf("transaction record %s: corrupt", id))
		case rec.Store+"/"+rec.Terminal != n.terminal || rec.TerminalSeq != n.seq:
			r.Problems = append(r.Problems, fmt.Sprintf("sequence number %d of %s names transaction %s, whose record says %d of %s/%s", n.seq, n.terminal, id, rec.TerminalSeq, rec.Store, rec.Terminal))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return txs.ForEach(func(k, v []byte) error {
		if err := st.done(); err != nil {
			return err
		}
		var rec TxRecord
		if json.Unmarshal(v, &rec) != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("transaction record %s: corrupt", k))
			return nil
		}
		if rec.TerminalSeq == 0 || rec.Code == protocol.CodeSeqReused {
			return nil
		}
		if _, ok := named[rec.ID]; !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("transaction %s came with sequence number %d of %s/%s, which does not name it", rec.ID, rec.TerminalSeq, rec.Store, rec.Terminal))
		}
		return nil
	})
}

// partnerAccount splits partner/{p}/{kind}.
func partnerAccount(acct string) (partner, kind string, ok bool) {
	rest, ok := strings.CutPrefix(acct, partnerPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

func nonZero(lines []SettlementLine) []SettlementLine {
	var out []SettlementLine
	for _, l := range lines {
		if l.Issued != 0 || l.Redeemed != 0 || l.Expired != 0 {
			out = append(out, l)
		}
	}
	return out
}

// sortedKeys returns the keys of a and b, each once, in order.
func sortedKeys[A, B any](a map[string]A, b map[string]B) []string {
	out := make([]string, 0, len(a)+len(b))
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// indexSum stands for a set of journal sequence numbers in constant space:
// how many, and the sum of each one mixed (splitmix64's finaliser), so that
// two sets of the same size differ in their sums unless they are equal (or,
// by a chance of about one in 2^64, collide).
type indexSum struct {
	n   int
	sum uint64
}

func (s indexSum) add(seq uint64) indexSum {
	z := seq + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return indexSum{s.n + 1, s.sum + (z ^ (z >> 31))}
}
