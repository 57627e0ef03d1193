package ledgertest

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testChain: every journal entry moves the chain head to its own hash;
// what makes no entry (a rejection, a hold, a zero-point earn, a duplicate)
// leaves it alone.
func testChain(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	rep := CheckVerify(t, s)
	if rep.ChainHead != "" || rep.Entries != 0 {
		t.Fatalf("Verify of an empty ledger = %+v", rep)
	}
	seen := map[string]bool{}
	entries := 0
	step := func(what string, tx protocol.Transaction, member string, moves bool) {
		t.Helper()
		before := CheckVerify(t, s).ChainHead
		send(t, s, T0, a, tx)
		rep := CheckVerify(t, s)
		if !moves {
			if rep.ChainHead != before || rep.Entries != entries {
				t.Errorf("%s moved the chain head (%d entries)", what, rep.Entries)
			}
			return
		}
		entries++
		st, err := s.Statement(member, 1)
		if err != nil || len(st) != 1 {
			t.Fatalf("Statement: %+v, %v", st, err)
		}
		if b, err := hex.DecodeString(rep.ChainHead); err != nil || len(b) != 32 {
			t.Errorf("ChainHead %q is not a hex SHA-256", rep.ChainHead)
		}
		if rep.ChainHead == before || seen[rep.ChainHead] || rep.ChainHead != st[0].Hash || rep.Entries != entries || st[0].Seq != uint64(entries) {
			t.Errorf("after %s: head %s (before %s), last entry %d %s, %d entries (want %d)", what, rep.ChainHead, before, st[0].Seq, st[0].Hash, rep.Entries, entries)
		}
		seen[rep.ChainHead] = true
	}
	e1 := a.Earn("e1", "m1", 100)
	step("an earn", e1, "m1", true)
	step("another earn", a.Earn("e2", "m1", 100), "m1", true)
	step("an earn for another member", a.Earn("e3", "m2", 5), "m2", true)
	step("a burn", a.Burn("b1", "m1", 30), "m1", true)
	step("a rejected burn", a.Burn("b2", "m1", 3000), "m1", false)
	step("a duplicate", e1, "m1", false)
	step("a zero-point earn", a.Earn("e4", "m1", 0), "m1", false)
	step("a hold", a.Hold("h1", "m1", 10), "m1", false)
	step("a capture", a.Capture("c1", "m1", 10, "h1"), "m1", true)
	step("a reverse", a.Reverse("r1", "m1", 10, "e1"), "m1", true)
	step("a void", a.Void("v1", "m1", "b1"), "m1", true)

	SetCoalition(t, s, func(c *ledger.Coalition) { c.ExpiryMonths = 1 })
	before := CheckVerify(t, s).ChainHead
	if rep, err := s.Expire(T0.AddDate(0, 3, 0)); err != nil || rep.Lots != 3 {
		t.Fatalf("Expire = %+v, %v", rep, err)
	}
	rep = CheckVerify(t, s)
	st, err := s.Statement("m2", 1)
	if err != nil || len(st) != 1 || st[0].Kind != "expire" || rep.ChainHead == before || rep.ChainHead != st[0].Hash || rep.Entries != entries+3 {
		t.Errorf("after Expire: head %s (before %s), last m2 entry %+v, %d entries", rep.ChainHead, before, st, rep.Entries)
	}
}

// testHubClockBefore2000: a hub whose clock has not been set yet (a board
// without a real-time clock says 1970 until NTP answers) either refuses to
// apply, or books entries that stay readable and verifiable.
func testHubClockBefore2000(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	early := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	acks, err := s.Apply([]*protocol.Batch{a.Batch(t, a.Earn("e1", "m1", 100))}, early)
	if err != nil {
		if _, known, err := s.Balance("m1"); err != nil || known {
			t.Errorf("Apply refused a hub clock of 1970, but the earn left a trace: known %v, %v", known, err)
		}
		return
	}
	if acks[0][0].Status != protocol.StatusApplied {
		t.Fatalf("ack %+v", acks[0][0])
	}
	if st, err := s.Statement("m1", 5); err != nil || len(st) != 1 {
		t.Errorf("Statement of an entry booked while the hub clock said 1970: %+v, %v", st, err)
	}
	CheckVerify(t, s)
}
