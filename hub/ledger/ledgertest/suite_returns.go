package ledgertest

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testProportionalReturns: a return with an amount reverses points in
// proportion, rounded down on the running total, so a full return gives
// back exactly all; points-based reverses still work and mix with it.
func testProportionalReturns(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, a2 := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1")
	Register(t, s, a)
	expect(t, s, T0, a, txs(a.EarnAmount("e1", "m1", 10001)), applied("e1", "m1", 100, 100))
	expect(t, s, T0, a2, txs(
		a2.Return("r1", "m1", 3333, "e1"), // ⌊100×3333/10001⌋ = 33
		a2.Return("r2", "m1", 3334, "e1"), // ⌊100×6667/10001⌋ = 66: 33 more
		a2.Return("r3", "m1", 3334, "e1"), // all 10001: 100, 34 more
		a2.Return("r4", "m1", 1, "e1"),    // nothing left to return
	),
		applied("r1", "m1", 33, 67), applied("r2", "m1", 33, 34), applied("r3", "m1", 34, 0),
		rejected("r4", "m1", protocol.CodeOverReversed, 0))
	if r := record(t, s, "e1"); r.Reversed != 100 || r.Returned != 10001 {
		t.Errorf("record of e1 = %+v, want reversed 100, returned 10001", r)
	}
	if r := record(t, s, "r2"); r.Points != 33 || r.Amount != 3334 || r.Partner != "p1" || r.Original != "e1" {
		t.Errorf("record of r2 = %+v", r)
	}

	// Points-based and amount-based reverses of one sale.
	expect(t, s, T0, a, txs(
		a.EarnAmount("e2", "m1", 5000),
		a.Reverse("r5", "m1", 20, "e2"),   // by points
		a.Return("r6", "m1", 2500, "e2"),  // ⌊50×2500/5000⌋ − 20 = 5
		a.Return("r7", "m1", 2501, "e2"),  // more than is left to return
		a.Return("r8", "m1", 2500, "e2"),  // the rest: 50 − 25 = 25
		a.Reverse("r9", "m1", 1, "e2"),    // nothing left
		a.Return("r10", "m1", 1000, "e9"), // no such sale yet: held
	),
		applied("e2", "m1", 50, 50), applied("r5", "m1", 20, 30), applied("r6", "m1", 5, 25),
		rejected("r7", "m1", protocol.CodeOverReversed, 25), applied("r8", "m1", 25, 0),
		rejected("r9", "m1", protocol.CodeOverReversed, 0), held("r10", "m1", protocol.CodeUnknownOriginal))
	checkMember(t, s, "m1", T0, 0, 0, "")
	checkInvariants(t, s, map[string]int64{"m1": 0})
}

// testReturnPaidWithPoints: returning goods paid with points gives the
// points back into the lots they came from, with their old expiry.
func testReturnPaidWithPoints(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	SetCoalition(t, s, func(c *ledger.Coalition) { c.ExpiryMonths = 12 })
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	jan := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	mar := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
	expect(t, s, T0, a, txs(Created(a.Earn("e1", "m1", 100), jan), Created(a.Earn("e2", "m1", 100), mar)),
		applied("e1", "m1", 100, 100), applied("e2", "m1", 100, 200))
	expect(t, s, T0, a, txs(WithAmount(a.Burn("b1", "m1", 150), 3000)), applied("b1", "m1", 150, 50))
	checkMember(t, s, "m1", T0, 50, 0, "e2:50/100")
	if r := record(t, s, "b1"); len(r.Lots) != 2 || r.Lots[0] != (ledger.LotUse{Lot: "e1", At: jan, Points: 100}) || r.Lots[1] != (ledger.LotUse{Lot: "e2", At: mar, Points: 50}) {
		t.Errorf("record of b1: lots %+v, want e1 100 then e2 50", r.Lots)
	}
	// A third of the goods: ⌊150×1000/3000⌋ = 50, back into e2 (taken last).
	expect(t, s, T0, a, txs(a.Return("r1", "m1", 1000, "b1")), applied("r1", "m1", 50, 100))
	checkMember(t, s, "m1", T0, 100, 0, "e2:100/100")
	// The rest: 100 more, back into e1.
	expect(t, s, T0, a, txs(a.Return("r2", "m1", 2000, "b1"), a.Return("r3", "m1", 1, "b1")),
		applied("r2", "m1", 100, 200), rejected("r3", "m1", protocol.CodeOverReversed, 200))
	v := checkMember(t, s, "m1", T0, 200, 0, "e1:100/100 e2:100/100")
	wantExpiry := []time.Time{time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)}
	for i, l := range v.Lots {
		if i < len(wantExpiry) && (!l.ExpiresAt.Equal(wantExpiry[i]) || l.Partner != "p1") {
			t.Errorf("lot %s expires %v (partner %s), want %v (p1)", l.ID, l.ExpiresAt, l.Partner, wantExpiry[i])
		}
	}
	if r := record(t, s, "b1"); len(r.Lots) != 0 || r.Reversed != 150 || r.Returned != 3000 {
		t.Errorf("record of b1 after full return: %+v", r)
	}

	// A two-phase redemption: the capture keeps the hold's amount, and a
	// return naming the hold reverses the capture in proportion.
	expect(t, s, T0, a, txs(WithAmount(a.Hold("h1", "m1", 80), 1600), a.Capture("c1", "m1", 80, "h1")),
		applied("h1", "m1", 80, 120), applied("c1", "m1", 80, 120))
	checkMember(t, s, "m1", T0, 120, 0, "e1:20/100 e2:100/100")
	expect(t, s, T0, a, txs(a.Return("r4", "m1", 800, "h1")), applied("r4", "m1", 40, 160))
	checkMember(t, s, "m1", T0, 160, 0, "e1:60/100 e2:100/100")
	if r := record(t, s, "c1"); r.Amount != 1600 || r.Returned != 800 || r.Reversed != 40 {
		t.Errorf("record of c1 = %+v", r)
	}
	checkInvariants(t, s, map[string]int64{"m1": 160})
}

// testReturnAfterSpend: earn, spend, return the goods: the return takes the
// points back anyway; the member owes them (flagged return_after_spend),
// can redeem nothing, and a later earn pays the debt first.
func testReturnAfterSpend(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	expect(t, s, T0, a, txs(a.EarnAmount("e1", "m1", 10001), a.Burn("b1", "m1", 100), a.Return("r1", "m1", 10001, "e1")),
		applied("e1", "m1", 100, 100), applied("b1", "m1", 100, 0), applied("r1", "m1", 100, -100))
	checkFlag(t, s, "m1", ledger.FlagReturnAfterSpend, "r1", -100)
	checkMember(t, s, "m1", T0, -100, 0, "")
	expect(t, s, T0, a, txs(a.Burn("b2", "m1", 1), a.Hold("h2", "m1", 1)),
		rejected("b2", "m1", protocol.CodeInsufficientPoints, -100), rejected("h2", "m1", protocol.CodeInsufficientPoints, -100))
	st, err := s.Statement("m1", 1)
	if err != nil || len(st) != 1 || st[0].TxID != "r1" || st[0].Points != -100 ||
		st[0].Postings[1] != (ledger.Posting{Account: "partner/p1/issued", Delta: 100}) {
		t.Errorf("Statement: %+v, %v", st, err)
	}

	// Paying back part of the debt keeps the flag (and who caused it).
	expect(t, s, T0, a, txs(a.Earn("e2", "m1", 60)), applied("e2", "m1", 60, -40))
	checkFlag(t, s, "m1", ledger.FlagReturnAfterSpend, "r1", -40)
	checkMember(t, s, "m1", T0, -40, 0, "")
	// The next earn pays the rest; what is left is a lot of its own.
	expect(t, s, T0, a, txs(a.Earn("e3", "m1", 150)), applied("e3", "m1", 150, 110))
	checkFlag(t, s, "m1", "", "", 0)
	checkMember(t, s, "m1", T0, 110, 0, "e3:110/150")
	if flags, err := s.Flags(); err != nil || len(flags) != 0 {
		t.Errorf("Flags = %+v, %v; want none", flags, err)
	}

	// A partial spend: the return takes back what is left and the member owes the rest.
	expect(t, s, T0, a, txs(a.Earn("e4", "m2", 100), a.Burn("b4", "m2", 60), a.Reverse("r4", "m2", 100, "e4")),
		applied("e4", "m2", 100, 100), applied("b4", "m2", 60, 40), applied("r4", "m2", 100, -60))
	checkFlag(t, s, "m2", ledger.FlagReturnAfterSpend, "r4", -60)

	// Points reserved by a hold are as good as spent: the return takes them
	// back all the same, and the hold's capture leaves the member owing.
	expect(t, s, T0, a, txs(a.Earn("e5", "m3", 100), a.Hold("h5", "m3", 80), a.Reverse("r5", "m3", 100, "e5"), a.Capture("c5", "m3", 80, "h5")),
		applied("e5", "m3", 100, 100), applied("h5", "m3", 80, 20), applied("r5", "m3", 100, -80), applied("c5", "m3", 80, -80))
	if f := flagOf(t, s, "m3"); f == nil || f.Balance != -80 {
		t.Errorf("flag of m3 = %+v, want one at -80", f)
	}
	checkInvariants(t, s, map[string]int64{"m1": 110, "m2": -60, "m3": -80})
}

// testOfflineOverdraft: an offline burn is booked whatever it leaves; a
// member below zero is flagged overdraft; a reverse of the burn pays the
// debt first, then refills the lots.
func testOfflineOverdraft(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	expect(t, s, T0, a, txs(a.Earn("e1", "m1", 50), a.OfflineBurn("ob1", "m1", 80), a.Burn("b1", "m1", 1)),
		applied("e1", "m1", 50, 50), applied("ob1", "m1", 80, -30), rejected("b1", "m1", protocol.CodeInsufficientPoints, -30))
	checkFlag(t, s, "m1", ledger.FlagOverdraft, "ob1", -30)
	checkMember(t, s, "m1", T0, -30, 0, "")
	if r := record(t, s, "ob1"); !r.Offline || len(r.Lots) != 1 || r.Lots[0].Lot != "e1" || r.Lots[0].Points != 50 {
		t.Errorf("record of ob1 = %+v", r)
	}
	// The goods are gone even for a member the hub never saw.
	expect(t, s, T0, a, txs(a.OfflineBurn("ob2", "m9", 10)), applied("ob2", "m9", 10, -10))
	checkFlag(t, s, "m9", ledger.FlagOverdraft, "ob2", -10)
	// A void ahead of it bars an offline burn too.
	expect(t, s, T0, a, txs(a.Void("v3", "m1", "ob3"), a.OfflineBurn("ob3", "m1", 5)),
		applied("v3", "m1", 0, -30), rejected("ob3", "m1", protocol.CodeVoided, -30))

	// Reversing the burn pays the 30 owed, and the 50 left go back into e1.
	expect(t, s, T0, a, txs(a.Reverse("r1", "m1", 80, "ob1")), applied("r1", "m1", 80, 50))
	checkFlag(t, s, "m1", "", "", 0)
	checkMember(t, s, "m1", T0, 50, 0, "e1:50/50")
	// A void of an offline burn gives back the rest like any void.
	expect(t, s, T0.Add(time.Minute), a, txs(a.OfflineBurn("ob4", "m1", 70), a.Void("v4", "m1", "ob4")),
		applied("ob4", "m1", 70, -20), applied("v4", "m1", 70, 50))
	checkMember(t, s, "m1", T0, 50, 0, "e1:50/50")
	checkInvariants(t, s, map[string]int64{"m1": 50, "m9": -10})
}

// testReturnWaitsForSale: a return at one till of a sale made at another
// that has not synced yet is held, not refused; sent again after the sale
// arrives, it is applied. Past the coalition's return wait it is refused.
func testReturnWaitsForSale(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	SetCoalition(t, s, func(c *ledger.Coalition) { c.ReturnWaitDays = 2 })
	a, a2 := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1")
	Register(t, s, a, a2)
	sale := a.EarnAmount("e1", "m1", 4000)
	ret := a2.Return("r1", "m1", 1000, "e1")
	expect(t, s, T0, a2, txs(ret), held("r1", "m1", protocol.CodeUnknownOriginal))
	checkMember(t, s, "m1", T0, 0, 0, "")
	expect(t, s, T0.Add(time.Hour), a, txs(sale), applied("e1", "m1", 40, 40))
	expect(t, s, T0.Add(2*time.Hour), a2, txs(ret), applied("r1", "m1", 10, 30))
	expect(t, s, T0.Add(3*time.Hour), a2, txs(ret), dupOf(applied("r1", "m1", 10, 30)))

	// The wait counts from the return's created_at, by the hub's clock.
	late := a2.Return("r2", "m1", 1000, "e2")
	expect(t, s, T0.Add(47*time.Hour), a2, txs(late), held("r2", "m1", protocol.CodeUnknownOriginal))
	expect(t, s, T0.Add(49*time.Hour), a2, txs(late), rejected("r2", "m1", protocol.CodeUnknownOriginal, 30))
	checkInvariants(t, s, map[string]int64{"m1": 30})
}
