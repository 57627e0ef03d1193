package ledger_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// tamperedLedger writes workload's ledger (journal: 1 e1 +100 m1, 2 b1 −30
// m1, 3 e2 +5 m2), closes it, lets fn edit the file with raw bbolt and
// returns the reopened store.
func tamperedLedger(t *testing.T, fn func(tx *bolt.Tx) error) *ledger.BoltStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	if rep := ledgertest.CheckVerify(t, s); rep.Entries != 3 {
		t.Fatalf("workload made %d entries, want 3", rep.Entries)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, path, fn)
	return openBolt(t, path)
}

// TestBoltVerifyChangedEntry: an entry whose points were rewritten —
// balanced, with the balances left alone — breaks the chain at that entry,
// and the replay disagrees with the stored balances and settlement totals.
func TestBoltVerifyChangedEntry(t *testing.T) {
	s := tamperedLedger(t, func(tx *bolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		key := binary.BigEndian.AppendUint64(nil, 2)
		var e ledger.Entry
		if err := json.Unmarshal(j.Get(key), &e); err != nil {
			return err
		}
		if e.TxID != "b1" || e.Points != -30 {
			t.Fatalf("entry 2 = %+v, want b1's", e)
		}
		// The member redeemed 40, not 30: still balanced, hash kept.
		e.Points, e.Postings[0].Delta, e.Postings[1].Delta = -40, -40, 40
		v, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		return j.Put(key, v)
	})
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("Verify passed a changed journal entry")
	}
	if !strings.HasPrefix(rep.ChainBreak, "entry 2 (tx b1, member m1): its hash does not match") {
		t.Errorf("ChainBreak = %q, want it to name entry 2", rep.ChainBreak)
	}
	if len(rep.Unbalanced) != 0 || rep.Entries != 3 {
		t.Errorf("Unbalanced = %v, Entries = %d; want none, 3", rep.Unbalanced, rep.Entries)
	}
	wantMismatches := []string{"member/m1: stored 70, replayed 60", "partner/p1/redeemed: stored 30, replayed 40"}
	if !slices.Equal(rep.Mismatches, wantMismatches) {
		t.Errorf("Mismatches = %q, want %q", rep.Mismatches, wantMismatches)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "settlement totals of p1") {
		t.Errorf("Problems = %q, want the settlement totals of p1", rep.Problems)
	}
}

// TestBoltVerifyChangedEntryOnly: a change that leaves the balances
// consistent (an entry's store rewritten) is caught by the chain alone.
func TestBoltVerifyChangedEntryOnly(t *testing.T) {
	s := tamperedLedger(t, func(tx *bolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		key := binary.BigEndian.AppendUint64(nil, 1)
		var e ledger.Entry
		if err := json.Unmarshal(j.Get(key), &e); err != nil {
			return err
		}
		e.Store = "s9"
		v, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		return j.Put(key, v)
	})
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.ChainBreak, "entry 1 (tx e1, member m1): ") || len(rep.Mismatches) != 0 || len(rep.Problems) != 0 || rep.OK() {
		t.Errorf("Verify = %+v; want only a chain break at entry 1", rep)
	}
}

// TestBoltVerifyRemovedLastEntry: deleting the last entry is caught by the
// recorded chain head, and — when the tamperer fixes the head too — by the
// journal's sequence.
func TestBoltVerifyRemovedLastEntry(t *testing.T) {
	var secondHash string
	deleteLast := func(fixHead bool) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			j := tx.Bucket([]byte("journal"))
			var e ledger.Entry
			if err := json.Unmarshal(j.Get(binary.BigEndian.AppendUint64(nil, 2)), &e); err != nil {
				return err
			}
			secondHash = e.Hash
			if err := j.Delete(binary.BigEndian.AppendUint64(nil, 3)); err != nil {
				return err
			}
			if !fixHead {
				return nil
			}
			head, err := hex.DecodeString(e.Hash)
			if err != nil {
				return err
			}
			return tx.Bucket([]byte("meta")).Put([]byte("chain_head"), head)
		}
	}
	for _, fixHead := range []bool{false, true} {
		s := tamperedLedger(t, deleteLast(fixHead))
		rep, err := s.Verify()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(rep.ChainBreak, "entries were removed from the end") {
			t.Errorf("fixed head %v: ChainBreak = %q, want entries removed from the end", fixHead, rep.ChainBreak)
		}
		if fixHead && !strings.Contains(rep.ChainBreak, "numbered 3 entries but its last is 2") {
			t.Errorf("fixed head: ChainBreak = %q, want the sequence to give it away", rep.ChainBreak)
		}
		if rep.ChainHead != secondHash || rep.Entries != 2 {
			t.Errorf("fixed head %v: ChainHead %s, Entries %d; want entry 2's hash %s, 2", fixHead, rep.ChainHead, rep.Entries, secondHash)
		}
		want := []string{"member/m2: stored 5, replayed (none)", "partner/p1/issued: stored -105, replayed -100"}
		if !slices.Equal(rep.Mismatches, want) {
			t.Errorf("fixed head %v: Mismatches = %q, want %q", fixHead, rep.Mismatches, want)
		}
		s.Close()
	}
}

// TestBoltReadOnly: a read-only open works while no writer holds the file,
// alongside other readers; it verifies and reports but cannot write, and
// it waits for no writer.
func TestBoltReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	if _, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing file succeeded")
	}
	s := openBolt(t, path)
	workload(t, s)
	// A writer holds the file: a reader gives up.
	if ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, ledger.ErrLocked) {
		if err == nil {
			ro.Close()
		}
		t.Errorf("read-only open while a writer holds the file: %v, want ErrLocked", err)
	}
	want := ledgertest.CheckVerify(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	defer ro.Close()
	ro2, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	defer ro2.Close()
	rep, err := ro.Verify()
	if err != nil || !rep.OK() || rep.ChainHead != want.ChainHead || rep.Entries != want.Entries {
		t.Errorf("read-only Verify = %+v, %v; want %+v", rep, err, want)
	}
	if bals, err := ro2.MemberBalances(); err != nil || bals["m1"] != 70 || bals["m2"] != 5 {
		t.Errorf("read-only MemberBalances = %v, %v", bals, err)
	}
	d := ledger.DayOf(ledgertest.T0)
	if rep, err := ro.Settlement(d, d+1); err != nil || rep.Total.Issued != 105 || rep.Total.Redeemed != 30 {
		t.Errorf("read-only Settlement = %+v, %v", rep, err)
	}
	if stores, err := ro.Stores(); err != nil || len(stores) != 1 {
		t.Errorf("read-only Stores = %+v, %v", stores, err)
	}
	a := ledgertest.NewTill("s1", "t1", "p1")
	if _, err := ro.Apply(nil, ledgertest.T0); err != nil {
		t.Errorf("read-only Apply of nothing: %v", err)
	}
	if _, err := ro.Apply([]*protocol.Batch{a.Batch(t, a.Earn("e9", "m1", 1))}, ledgertest.T0); err == nil {
		t.Error("read-only Apply succeeded")
	}
	if err := ro.SetCoalition(ledgertest.TestCoalition()); err == nil {
		t.Error("read-only SetCoalition succeeded")
	}
	// A writer cannot open the file while readers hold it.
	if w, err := ledger.OpenBolt(path, ledger.BoltOptions{Timeout: 100 * time.Millisecond}); !errors.Is(err, ledger.ErrLocked) {
		if err == nil {
			w.Close()
		}
		t.Errorf("writer open while readers hold the file: %v, want ErrLocked", err)
	}
}

// TestBoltRefusedCloseKeepsFile: a ClosePeriod the ledger refuses leaves a
// file that opens again.
func TestBoltRefusedCloseKeepsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	if _, err := s.ClosePeriod(0, ledger.DayOf(ledgertest.T0), ledgertest.T0); err == nil {
		t.Error("ClosePeriod from 1970-01-01 succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path)
	if ps, err := s.Periods(); err != nil || len(ps) != 0 {
		t.Errorf("Periods after a refused close = %+v, %v", ps, err)
	}
	ledgertest.CheckVerify(t, s)
}

// TestBoltVerifyStatementIndex: a member's statement index that lost an
// entry, or names one the journal does not have, is reported by member; the
// journal and the balances still check.
func TestBoltVerifyStatementIndex(t *testing.T) {
	s := tamperedLedger(t, func(tx *bolt.Tx) error {
		b := tx.Bucket(ledger.MembersBucket)
		if b.Get(ledger.MemberIndexKey("m1", 2)) == nil {
			t.Fatal("m1's statement index has no entry 2 (b1)")
		}
		if err := b.Delete(ledger.MemberIndexKey("m1", 2)); err != nil {
			return err
		}
		return b.Put(ledger.MemberIndexKey("m2", 9), []byte{})
	})
	st, err := s.Statement("m1", 10)
	if err != nil || len(st) != 1 || st[0].TxID != "e1" {
		t.Errorf("m1's statement without entry 2: %+v, %v", st, err)
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"member m2: the statement index names journal entry 9, which the journal does not have",
		"member m1: the journal has 2 entries of the member, its statement index 1",
	}
	if !slices.Equal(rep.Problems, want) || rep.ChainBreak != "" || len(rep.Mismatches) != 0 {
		t.Errorf("Verify = problems %q, chain %q, mismatches %q; want problems %q alone", rep.Problems, rep.ChainBreak, rep.Mismatches, want)
	}
}

// TestBoltVerifyStatementIndexSwapped: two members' statement index keys
// swapped between them (each keeps its number of entries) are still
// reported, as is a member's balance left under its schema-2 key, which
// nothing reads.
func TestBoltVerifyStatementIndexSwapped(t *testing.T) {
	s := tamperedLedger(t, func(tx *bolt.Tx) error {
		b := tx.Bucket(ledger.MembersBucket)
		for _, k := range [][]byte{ledger.MemberIndexKey("m1", 2), ledger.MemberIndexKey("m2", 3)} {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{ledger.MemberIndexKey("m2", 2), ledger.MemberIndexKey("m1", 3)} {
			if err := b.Put(k, []byte{}); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("balances")).Put([]byte(ledger.MemberAccount("m1")), binary.BigEndian.AppendUint64(nil, 70))
	})
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`balances: key "member/m1" is not a partner's account`,
		"member m1: the statement index names 2 entries, but not the journal's 2 entries of the member",
		"member m2: the statement index names 1 entries, but not the journal's 1 entries of the member",
	}
	if !slices.Equal(rep.Problems, want) || rep.ChainBreak != "" || len(rep.Mismatches) != 0 {
		t.Errorf("Verify = problems %q, chain %q, mismatches %q; want problems %q alone", rep.Problems, rep.ChainBreak, rep.Mismatches, want)
	}
}
