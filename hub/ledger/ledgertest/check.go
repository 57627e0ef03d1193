package ledgertest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// held is the ack of a transaction the hub held back for code.
func held(id, member string, code protocol.Code) protocol.Ack {
	return protocol.Ack{ID: id, Status: protocol.StatusHeld, Code: code, Member: member}
}

// send applies one batch of tl's txs at now and returns its acks.
func send(t *testing.T, s ledger.Store, now time.Time, tl *Till, txs ...protocol.Transaction) []protocol.Ack {
	t.Helper()
	return Apply(t, s, now, tl.Batch(t, txs...))[0]
}

// expect sends one batch of tl's txs at now and fails the test unless the
// acks are want.
func expect(t *testing.T, s ledger.Store, now time.Time, tl *Till, txs []protocol.Transaction, want ...protocol.Ack) {
	t.Helper()
	got := send(t, s, now, tl, txs...)
	if !slices.Equal(got, want) {
		t.Fatalf("acks:\n got  %s\n want %s", fmtAcks(got), fmtAcks(want))
	}
}

// txs is a shorter []protocol.Transaction{…}.
func txs(tx ...protocol.Transaction) []protocol.Transaction { return tx }

// member returns s's view of a member as of now.
func member(t *testing.T, s ledger.Store, id string, now time.Time) ledger.MemberView {
	t.Helper()
	v, err := s.Member(id, now)
	if err != nil {
		t.Fatalf("Member(%s): %v", id, err)
	}
	return v
}

// lots formats a member's lots as "id:remaining/points" in order.
func lots(v ledger.MemberView) string {
	var parts []string
	for _, l := range v.Lots {
		parts = append(parts, fmt.Sprintf("%s:%d/%d", l.ID, l.Remaining, l.Points))
	}
	return strings.Join(parts, " ")
}

// checkMember fails the test unless the member's balance, held points and
// lots are as given (lots as formatted by lots), and Available agrees.
func checkMember(t *testing.T, s ledger.Store, id string, now time.Time, balance, heldPoints int64, wantLots string) ledger.MemberView {
	t.Helper()
	v := member(t, s, id, now)
	if v.Balance != balance || v.Held != heldPoints || v.Available != balance-heldPoints || lots(v) != wantLots {
		t.Errorf("Member(%s) = balance %d held %d available %d lots [%s]; want balance %d held %d available %d lots [%s]",
			id, v.Balance, v.Held, v.Available, lots(v), balance, heldPoints, balance-heldPoints, wantLots)
	}
	return v
}

// record returns the TxRecord of id; it fails the test when there is none.
func record(t *testing.T, s ledger.Store, id string) ledger.TxRecord {
	t.Helper()
	recs, err := s.Transactions()
	if err != nil {
		t.Fatalf("Transactions: %v", err)
	}
	for _, r := range recs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no record of %s", id)
	return ledger.TxRecord{}
}

// noRecord fails the test if s has a record of any of ids.
func noRecord(t *testing.T, s ledger.Store, ids ...string) {
	t.Helper()
	recs, err := s.Transactions()
	if err != nil {
		t.Fatalf("Transactions: %v", err)
	}
	for _, r := range recs {
		if slices.Contains(ids, r.ID) {
			t.Errorf("record %+v exists; want none", r)
		}
	}
}

// flagOf returns the member's flag from Flags (nil when not flagged) and
// checks that MemberView says the same.
func flagOf(t *testing.T, s ledger.Store, id string) *ledger.Flag {
	t.Helper()
	flags, err := s.Flags()
	if err != nil {
		t.Fatalf("Flags: %v", err)
	}
	var f *ledger.Flag
	for i := range flags {
		if flags[i].Member == id {
			f = &flags[i]
		}
	}
	v := member(t, s, id, T0)
	switch {
	case (f == nil) != (v.Flag == nil):
		t.Errorf("Flags says %+v for %s, MemberView.Flag %+v", f, id, v.Flag)
	case f != nil && (*f != *v.Flag):
		t.Errorf("Flags says %+v for %s, MemberView.Flag %+v", *f, id, *v.Flag)
	}
	return f
}

// checkFlag fails the test unless the member is flagged for reason by
// txID with the balance (or, with reason "", not flagged).
func checkFlag(t *testing.T, s ledger.Store, id, reason, txID string, balance int64) {
	t.Helper()
	f := flagOf(t, s, id)
	switch {
	case reason == "" && f != nil:
		t.Errorf("member %s flagged %+v; want no flag", id, *f)
	case reason == "":
	case f == nil:
		t.Errorf("member %s not flagged; want %s by %s at %d", id, reason, txID, balance)
	case f.Reason != reason || f.TxID != txID || f.Balance != balance:
		t.Errorf("member %s flagged %+v; want %s by %s at %d", id, *f, reason, txID, balance)
	}
}

// day returns the Day of a YYYY-MM-DD string.
func day(t testing.TB, s string) ledger.Day {
	t.Helper()
	d, err := ledger.ParseDay(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// code fails the test unless err carries code.
func wantCode(t testing.TB, what string, err error, code protocol.Code) {
	t.Helper()
	if got := protocol.CodeOf(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %s", what, err, got, code)
	}
}
