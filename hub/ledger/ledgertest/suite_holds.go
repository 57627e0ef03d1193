package ledgertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testHolds: a hold reserves points without an entry; a capture redeems at
// most the hold and releases it; a void releases it; a settled hold can be
// neither captured nor voided; a reverse naming a hold reverses its capture;
// a void ahead of its hold bars it.
func testHolds(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, a2 := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1")
	Register(t, s, a)
	now := T0
	expect(t, s, now, a, txs(a.Earn("e1", "m1", 100)), applied("e1", "m1", 100, 100))
	expect(t, s, now, a, txs(a.Hold("h1", "m1", 60), a.Burn("b1", "m1", 50), a.Hold("h2", "m1", 50), a.Hold("h3", "ghost", 1)),
		applied("h1", "m1", 60, 40), rejected("b1", "m1", protocol.CodeInsufficientPoints, 40),
		rejected("h2", "m1", protocol.CodeInsufficientPoints, 40), rejected("h3", "ghost", protocol.CodeUnknownMember, 0))
	v := checkMember(t, s, "m1", now, 100, 60, "e1:100/100")
	want := ledger.Hold{ID: "h1", Store: "s1", Terminal: "t1", Points: 60, ExpiresAt: now.Add(ledger.DefaultHoldMinutes * time.Minute)}
	if len(v.Holds) != 1 || v.Holds[0].ID != want.ID || v.Holds[0].Store != want.Store || v.Holds[0].Terminal != want.Terminal ||
		v.Holds[0].Points != want.Points || !v.Holds[0].ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("Holds = %+v, want [%+v]", v.Holds, want)
	}
	if r := record(t, s, "h1"); r.HoldState != ledger.HoldHeld || !r.HoldExpires.Equal(want.ExpiresAt) || r.JournalSeq != 0 {
		t.Errorf("record of h1 = %+v", r)
	}
	if st, err := s.Statement("m1", 10); err != nil || len(st) != 1 {
		t.Errorf("Statement after a hold: %+v, %v; want the earn only", st, err)
	}

	now = now.Add(time.Minute)
	expect(t, s, now, a2, txs(a2.Capture("c0", "m1", 10, "h1")), rejected("c0", "m1", protocol.CodeOriginalMismatch, 40))
	expect(t, s, now, a, txs(
		a.Capture("c1", "m1", 61, "h1"),
		a.Capture("c2", "m2", 10, "h1"),
		a.Capture("c3", "m1", 10, "e1"),
		a.Capture("c4", "m1", 10, "nope"),
		a.Capture("c5", "m1", 50, "h1"),
		a.Capture("c6", "m1", 10, "h1"),
		a.Void("v1", "m1", "h1"),
	),
		rejected("c1", "m1", protocol.CodeExceedsHold, 40),
		rejected("c2", "m2", protocol.CodeOriginalMismatch, 0),
		rejected("c3", "m1", protocol.CodeOriginalMismatch, 40),
		rejected("c4", "m1", protocol.CodeUnknownOriginal, 40),
		applied("c5", "m1", 50, 50),
		rejected("c6", "m1", protocol.CodeHoldSettled, 50),
		rejected("v1", "m1", protocol.CodeHoldSettled, 50))
	checkMember(t, s, "m1", now, 50, 0, "e1:50/100")
	if r := record(t, s, "h1"); r.HoldState != ledger.HoldCaptured || r.Capture != "c5" {
		t.Errorf("record of h1 = %+v, want captured by c5", r)
	}
	if r := record(t, s, "c5"); r.Points != 50 || r.Partner != "p1" || r.JournalSeq == 0 || len(r.Lots) != 1 || r.Lots[0].Lot != "e1" || r.Lots[0].Points != 50 {
		t.Errorf("record of c5 = %+v", r)
	}
	st, err := s.Statement("m1", 1)
	if err != nil || len(st) != 1 || st[0].TxID != "c5" || st[0].Kind != "capture" || st[0].Points != -50 || st[0].Original != "h1" ||
		st[0].Postings[0] != (ledger.Posting{Account: "member/m1", Delta: -50}) || st[0].Postings[1] != (ledger.Posting{Account: "partner/p1/redeemed", Delta: 50}) {
		t.Errorf("Statement after the capture: %+v, %v", st, err)
	}

	// A reverse naming the hold reverses its capture.
	expect(t, s, now, a2, txs(a2.Reverse("r1", "m1", 20, "h1")), applied("r1", "m1", 20, 70))
	if r := record(t, s, "c5"); r.Reversed != 20 {
		t.Errorf("record of c5 after a reverse naming h1: %+v", r)
	}
	expect(t, s, now, a, txs(a.Reverse("r2", "m1", 31, "c5")), rejected("r2", "m1", protocol.CodeOverReversed, 70))

	// Void of a held hold.
	expect(t, s, now, a, txs(a.Hold("h4", "m1", 30)), applied("h4", "m1", 30, 40))
	expect(t, s, now, a2, txs(a2.Void("v2", "m1", "h4")), rejected("v2", "m1", protocol.CodeOriginalMismatch, 40))
	expect(t, s, now, a, txs(a.Void("v3", "m1", "h4"), a.Capture("c7", "m1", 30, "h4"), a.Void("v4", "m1", "h4"), a.Reverse("r3", "m1", 5, "h4")),
		applied("v3", "m1", 0, 70), rejected("c7", "m1", protocol.CodeHoldSettled, 70),
		applied("v4", "m1", 0, 70), rejected("r3", "m1", protocol.CodeUnknownOriginal, 70))
	if r := record(t, s, "h4"); r.HoldState != ledger.HoldVoided {
		t.Errorf("record of h4 = %+v, want voided", r)
	}

	// A void ahead of its hold bars it.
	expect(t, s, now, a, txs(a.Void("v5", "m1", "h5")), applied("v5", "m1", 0, 70))
	expect(t, s, now, a, txs(a.Hold("h5", "m1", 10)), rejected("h5", "m1", protocol.CodeVoided, 70))
	expect(t, s, now, a, txs(a.Capture("c8", "m1", 10, "h5")), rejected("c8", "m1", protocol.CodeUnknownOriginal, 70))
	checkMember(t, s, "m1", now, 70, 0, "e1:70/100")
	checkInvariants(t, s, map[string]int64{"m1": 70})
}

// testHoldLapse: a hold lapses at its expiry (Coalition.HoldMinutes); its
// points are free again; a capture after the lapse is still booked, even
// when it overdraws the member (flagged); ExpireHolds sweeps lapsed holds.
func testHoldLapse(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	SetCoalition(t, s, func(c *ledger.Coalition) { c.HoldMinutes = 10 })
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	expect(t, s, T0, a, txs(a.Earn("e1", "m1", 100), a.Earn("e2", "m2", 50), a.Hold("h1", "m1", 80)),
		applied("e1", "m1", 100, 100), applied("e2", "m2", 50, 50), applied("h1", "m1", 80, 20))
	if r := record(t, s, "h1"); !r.HoldExpires.Equal(T0.Add(10 * time.Minute)) {
		t.Errorf("hold expires %v, want %v", r.HoldExpires, T0.Add(10*time.Minute))
	}
	checkMember(t, s, "m1", T0.Add(9*time.Minute), 100, 80, "e1:100/100")
	checkMember(t, s, "m1", T0.Add(10*time.Minute), 100, 0, "e1:100/100")

	expect(t, s, T0.Add(9*time.Minute), a, txs(a.Burn("b0", "m1", 21)), rejected("b0", "m1", protocol.CodeInsufficientPoints, 20))
	// At its expiry the hold has lapsed: all 100 can go.
	expect(t, s, T0.Add(10*time.Minute), a, txs(a.Burn("b1", "m1", 100)), applied("b1", "m1", 100, 0))
	if r := record(t, s, "h1"); r.HoldState != ledger.HoldLapsed {
		t.Errorf("record of h1 = %+v, want lapsed", r)
	}
	// The till sold on the hold: the capture is booked, and the member owes.
	expect(t, s, T0.Add(11*time.Minute), a, txs(a.Capture("c1", "m1", 80, "h1"), a.Capture("c2", "m1", 1, "h1")),
		applied("c1", "m1", 80, -80), rejected("c2", "m1", protocol.CodeHoldSettled, -80))
	checkFlag(t, s, "m1", ledger.FlagOverdraft, "c1", -80)
	checkMember(t, s, "m1", T0.Add(11*time.Minute), -80, 0, "")

	// ExpireHolds sweeps holds nobody touched since they lapsed.
	expect(t, s, T0.Add(11*time.Minute), a, txs(a.Hold("h2", "m2", 20), a.Hold("h3", "m2", 30)),
		applied("h2", "m2", 20, 30), applied("h3", "m2", 30, 0))
	if n, err := s.ExpireHolds(T0.Add(20 * time.Minute)); err != nil || n != 0 {
		t.Errorf("ExpireHolds before the holds lapse = %d, %v; want 0", n, err)
	}
	if n, err := s.ExpireHolds(T0.Add(21 * time.Minute)); err != nil || n != 2 {
		t.Errorf("ExpireHolds = %d, %v; want 2", n, err)
	}
	if n, err := s.ExpireHolds(T0.Add(22 * time.Minute)); err != nil || n != 0 {
		t.Errorf("ExpireHolds again = %d, %v; want 0", n, err)
	}
	for _, id := range []string{"h2", "h3"} {
		if r := record(t, s, id); r.HoldState != ledger.HoldLapsed {
			t.Errorf("record of %s = %+v, want lapsed", id, r)
		}
	}
	checkMember(t, s, "m2", T0.Add(22*time.Minute), 50, 0, "e2:50/50")
	// Voiding a lapsed hold is harmless; the till has cancelled it, so it
	// cannot be captured any more.
	expect(t, s, T0.Add(23*time.Minute), a, txs(a.Void("v2", "m2", "h2"), a.Capture("c3", "m2", 20, "h2")),
		applied("v2", "m2", 0, 50), rejected("c3", "m2", protocol.CodeHoldSettled, 50))
	checkInvariants(t, s, map[string]int64{"m1": -80, "m2": 50})
}

// testConcurrentHolds: twenty tills at once hold (then burn) a member's
// whole balance: exactly one gets it.
func testConcurrentHolds(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	const n = 20
	tills := make([]*Till, n)
	for i := range tills {
		tills[i] = NewTill("s1", fmt.Sprintf("t%02d", i), "p1")
	}
	Register(t, s, tills[0])
	expect(t, s, T0, tills[0], txs(tills[0].Earn("e1", "m1", 100), tills[0].Earn("e2", "m2", 100)),
		applied("e1", "m1", 100, 100), applied("e2", "m2", 100, 100))

	race := func(kind protocol.Kind, mem string) (won protocol.Ack, lost int) {
		t.Helper()
		batches := make([]*protocol.Batch, n)
		for i, tl := range tills {
			batches[i] = tl.Batch(t, tl.Tx(kind, fmt.Sprintf("%s-%02d", kind, i), mem, 100, ""))
		}
		acks := make([]protocol.Ack, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range batches {
			wg.Go(func() {
				<-start
				got, err := s.Apply(batches[i:i+1], T0.Add(time.Minute))
				if err == nil && (len(got) != 1 || len(got[0]) != 1) {
					err = fmt.Errorf("acks %+v for one transaction", got)
				}
				if err != nil {
					errs[i] = err
					return
				}
				acks[i] = got[0][0]
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, a := range acks {
			switch {
			case errs[i] != nil:
				t.Fatalf("Apply %d: %v", i, errs[i])
			case a.Status == protocol.StatusApplied:
				winners++
				won = a
			case a == rejected(a.ID, mem, protocol.CodeInsufficientPoints, 0):
				lost++
			default:
				t.Errorf("%s %d: %+v", kind, i, a)
			}
		}
		if winners != 1 || lost != n-1 {
			t.Errorf("%d %ss applied and %d rejected insufficient_points; want 1 and %d", winners, kind, lost, n-1)
		}
		return won, lost
	}

	won, _ := race(protocol.KindHold, "m1")
	if won != applied(won.ID, "m1", 100, 0) {
		t.Errorf("the hold that won: %+v", won)
	}
	v := checkMember(t, s, "m1", T0.Add(time.Minute), 100, 100, "e1:100/100")
	if len(v.Holds) != 1 || v.Holds[0].ID != won.ID {
		t.Errorf("Holds = %+v, want only %s", v.Holds, won.ID)
	}
	won, _ = race(protocol.KindBurn, "m2")
	if won != applied(won.ID, "m2", 100, 0) {
		t.Errorf("the burn that won: %+v", won)
	}
	checkMember(t, s, "m2", T0.Add(time.Minute), 0, 0, "")
	checkInvariants(t, s, map[string]int64{"m1": 100, "m2": 0})
}
