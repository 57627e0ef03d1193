package ledgertest

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// withSeq returns tx renumbered: the same terminal sequence number as another.
func withSeq(tx protocol.Transaction, seq uint64) protocol.Transaction {
	tx.Seq = seq
	return tx
}

// testSeqReused: a new transaction id under a terminal sequence number the
// ledger has seen with another id is rejected seq_reused and changes
// nothing — whether the number came in an earlier commit, earlier in the
// same group commit, or earlier in the same batch — while the same id
// again is a duplicate; the rejection is final (a duplicate of it stays
// rejected); another terminal's numbers are its own; enrolling the
// terminal again starts its numbers afresh.
func testSeqReused(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, a2 := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1")
	Register(t, s, a, a2)

	e1 := a.Earn("e1", "m1", 100) // seq 1
	first := applied("e1", "m1", 100, 100)
	expect(t, s, T0, a, txs(e1), first)
	// A captured transaction sent again under a new id: refused, and the
	// member's balance (reported in the ack) stays what it was.
	replay := withSeq(a.Earn("r1", "m1", 100), e1.Seq)
	refused := rejected("r1", "m1", protocol.CodeSeqReused, 100)
	expect(t, s, T0, a, txs(replay), refused)
	expect(t, s, T0, a, txs(replay, e1), dupOf(refused), dupOf(first))
	// A burn replayed under a new id takes nothing either.
	b1 := a.Burn("b1", "m1", 30)
	expect(t, s, T0, a, txs(b1), applied("b1", "m1", 30, 70))
	expect(t, s, T0, a, txs(withSeq(a.Burn("r2", "m1", 30), b1.Seq)), rejected("r2", "m1", protocol.CodeSeqReused, 70))

	// Within one batch, and within one group commit: the first to come
	// keeps the number.
	e2 := a.Earn("e2", "m2", 10)
	expect(t, s, T0, a, txs(e2, withSeq(a.Earn("r3", "m2", 10), e2.Seq)),
		applied("e2", "m2", 10, 10), rejected("r3", "m2", protocol.CodeSeqReused, 10))
	e3 := a.Earn("e3", "m2", 5)
	acks := Apply(t, s, T0, a.Batch(t, e3), a.Batch(t, withSeq(a.Earn("r4", "m2", 7), e3.Seq)))
	if want := applied("e3", "m2", 5, 15); acks[0][0] != want {
		t.Fatalf("group commit, first batch: %s, want %s", fmtAcks(acks[0]), fmtAcks([]protocol.Ack{want}))
	}
	if want := rejected("r4", "m2", protocol.CodeSeqReused, 15); acks[1][0] != want {
		t.Fatalf("group commit, second batch: %s, want %s", fmtAcks(acks[1]), fmtAcks([]protocol.Ack{want}))
	}

	// Another terminal counts for itself.
	expect(t, s, T0, a2, txs(withSeq(a2.Earn("x1", "m1", 1), e1.Seq)), applied("x1", "m1", 1, 71))
	checkInvariants(t, s, map[string]int64{"m1": 71, "m2": 15})
	recs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == "r1" && (r.Status != protocol.StatusRejected || r.Code != protocol.CodeSeqReused || r.TerminalSeq != e1.Seq) {
			t.Errorf("record of the replay: %+v", r)
		}
		if r.ID == "e1" && r.TerminalSeq != e1.Seq {
			t.Errorf("record of e1: %+v", r)
		}
	}

	// Enrolled (again): a new till may count from 1.
	if err := s.AddTerminal("s1", "t1", T0); err != nil {
		t.Fatal(err)
	}
	tok, err := s.IssueEnrollmentToken("s1", "t1", 0, T0)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if _, err := s.Enroll(tok.ID, tok.Secret, pub, T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	fresh := NewTill("s1", "t1", "p1")
	n1 := fresh.Earn("n1", "m1", 4) // seq 1 again
	expect(t, s, T0, fresh, txs(n1), applied("n1", "m1", 4, 75))
	expect(t, s, T0, fresh, txs(withSeq(fresh.Earn("r5", "m1", 4), n1.Seq)), rejected("r5", "m1", protocol.CodeSeqReused, 75))
	// Ids stay unique forever: the old till's e1 is still a duplicate.
	expect(t, s, T0, fresh, txs(e1), dupOf(first))
	checkInvariants(t, s, map[string]int64{"m1": 75, "m2": 15})
}
