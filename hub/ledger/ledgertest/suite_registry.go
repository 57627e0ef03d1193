package ledgertest

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testHeldUnknownStore: a store the coalition has not registered gets its
// transactions held, with nothing recorded; once registered, the resent
// transactions apply, each exactly once.
func testHeldUnknownStore(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	e1, b1 := a.Earn("e1", "m1", 100), a.Burn("b1", "m1", 30)
	for i := range 2 {
		expect(t, s, T0.Add(time.Duration(i)*time.Minute), a, txs(e1, b1),
			held("e1", "m1", protocol.CodeUnknownStore), held("b1", "m1", protocol.CodeUnknownStore))
	}
	noRecord(t, s, "e1", "b1")
	if _, known, err := s.Balance("m1"); err != nil || known {
		t.Errorf("Balance of a member only held so far: known %v, %v", known, err)
	}
	if st, err := s.Statement("m1", 10); err != nil || len(st) != 0 {
		t.Errorf("Statement after held transactions: %+v, %v", st, err)
	}
	terms, err := s.Terminals()
	if err != nil || len(terms) != 1 || terms[0].HeldBack != 2 || terms[0].Applied != 0 || terms[0].LastSeq != 2 {
		t.Errorf("Terminals after held transactions: %+v, %v", terms, err)
	}

	Register(t, s, a)
	now := T0.Add(5 * time.Minute)
	expect(t, s, now, a, txs(e1, b1), applied("e1", "m1", 100, 100), applied("b1", "m1", 30, 70))
	expect(t, s, now.Add(time.Minute), a, txs(e1, b1),
		dupOf(applied("e1", "m1", 100, 100)), dupOf(applied("b1", "m1", 30, 70)))
	recs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "b1" || recs[1].ID != "e1" {
		t.Errorf("Transactions = %+v, want one record each of b1 and e1", recs)
	}
	terms, err = s.Terminals()
	if err != nil || len(terms) != 1 || terms[0].HeldBack != 0 || terms[0].Applied != 2 {
		t.Errorf("Terminals after registration: %+v, %v", terms, err)
	}
	checkInvariants(t, s, map[string]int64{"m1": 70})
}

// testHeldNoRules: an earn of a partner without rules is held
// invalid_rules (a burn is not: it needs no pricing) and applies once the
// partner has rules.
func testHeldNoRules(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, c := NewTill("s1", "t1", "p1"), NewTill("s3", "t1", "p3")
	Register(t, s, a)
	RegisterRules(t, s, nil, c)
	expect(t, s, T0, a, txs(a.Earn("e0", "m1", 50)), applied("e0", "m1", 50, 50))
	e1 := c.Earn("e1", "m1", 100)
	expect(t, s, T0, c, txs(e1, c.Burn("b1", "m1", 20)),
		held("e1", "m1", protocol.CodeInvalidRules), applied("b1", "m1", 20, 30))
	noRecord(t, s, "e1")
	if _, err := s.AddRules(TestRules("p3"), T0); err != nil {
		t.Fatalf("AddRules: %v", err)
	}
	expect(t, s, T0.Add(time.Minute), c, txs(e1), applied("e1", "m1", 100, 130))
	if r := record(t, s, "e1"); r.RulesVersion != 1 || r.Partner != "p3" {
		t.Errorf("record of e1 = %+v", r)
	}
	checkInvariants(t, s, map[string]int64{"m1": 130})
}

// testHeldEarnReturned: the return of an earn that is held waiting for
// rules must not be lost: once the earn applies, so does its return.
func testHeldEarnReturned(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	c := NewTill("s3", "t1", "p3")
	RegisterRules(t, s, nil, c)
	e1, r1 := c.EarnAmount("e1", "m1", 10000), c.Return("r1", "m1", 10000, "e1")
	acks := send(t, s, T0, c, e1, r1)
	if acks[0] != held("e1", "m1", protocol.CodeInvalidRules) {
		t.Errorf("earn without rules: %+v", acks[0])
	}
	if _, err := s.AddRules(TestRules("p3"), T0); err != nil {
		t.Fatal(err)
	}
	// The till resends what the hub has not answered, or everything.
	send(t, s, T0.Add(time.Minute), c, e1, r1)
	if bal, _, err := s.Balance("m1"); err != nil || bal != 0 {
		t.Errorf("after the earn and its return both arrived: balance %d, %v; want 0 (the return of a held earn was %+v)", bal, err, acks[1])
	}
}

// testPartnerMismatch: a store speaks only as the partner it is registered
// with, for every kind; the rejection is final. A store with transactions
// cannot move to another partner; one without can.
func testPartnerMismatch(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t1", "p2")
	Register(t, s, a, b)
	expect(t, s, T0, a, txs(a.Earn("e1", "m1", 100), a.Hold("h1", "m1", 10)),
		applied("e1", "m1", 100, 100), applied("h1", "m1", 10, 90))
	x := NewTill("s1", "t1", "p2") // store s1 claiming to be p2
	x.Seq = a.Seq
	e2 := x.Earn("e2", "m1", 1000)
	expect(t, s, T0, x, txs(e2, x.Burn("b2", "m1", 5), x.Hold("h2", "m1", 5), x.Capture("c2", "m1", 5, "h1"),
		x.Reverse("r2", "m1", 5, "e1"), x.Void("v2", "m1", "h1")),
		rejected("e2", "m1", protocol.CodePartnerMismatch, 90), rejected("b2", "m1", protocol.CodePartnerMismatch, 90),
		rejected("h2", "m1", protocol.CodePartnerMismatch, 90), rejected("c2", "m1", protocol.CodePartnerMismatch, 90),
		rejected("r2", "m1", protocol.CodePartnerMismatch, 90), rejected("v2", "m1", protocol.CodePartnerMismatch, 90))
	expect(t, s, T0, x, txs(e2), dupOf(rejected("e2", "m1", protocol.CodePartnerMismatch, 90)))
	if r := record(t, s, "h1"); r.HoldState != ledger.HoldHeld {
		t.Errorf("hold after a mismatched capture and void: %+v", r)
	}

	err := s.PutStore(ledger.StoreInfo{ID: "s1", Partner: "p2"}, T0)
	wantCode(t, "moving a store with transactions", err, protocol.CodeConflict)
	if err := s.PutStore(ledger.StoreInfo{ID: "s9", Partner: "p1"}, T0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStore(ledger.StoreInfo{ID: "s9", Partner: "p2"}, T0); err != nil {
		t.Errorf("moving a store without transactions: %v", err)
	}
	err = s.PutStore(ledger.StoreInfo{ID: "s8", Partner: "nobody"}, T0)
	wantCode(t, "a store of an unknown partner", err, protocol.CodeUnknownPartner)
	stores, err := s.Stores()
	if err != nil || len(stores) != 3 || stores[0].Partner != "p1" || stores[2].ID != "s9" || stores[2].Partner != "p2" {
		t.Errorf("Stores = %+v, %v", stores, err)
	}
	checkInvariants(t, s, map[string]int64{"m1": 100})
}

// testPricing: the hub prices an earn with the rules in force when the till
// created it, whenever it arrives, whatever the till quoted.
func testPricing(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	v2, err := s.AddRules(protocol.RuleSet{Partner: "p1", EffectiveFrom: T0.Add(time.Hour), Currency: "EUR", Points: 2, Per: 100}, T0)
	if err != nil {
		t.Fatalf("AddRules: %v", err)
	}
	if v2.Version != 2 || v2.Rounding != protocol.RoundDown || !v2.EffectiveFrom.Equal(T0.Add(time.Hour)) {
		t.Errorf("AddRules = %+v", v2)
	}
	_, err = s.AddRules(protocol.RuleSet{Partner: "p1", EffectiveFrom: T0.Add(-time.Hour), Currency: "EUR", Points: 5, Per: 100}, T0)
	wantCode(t, "rules taking effect in the past", err, protocol.CodeInvalidRules)
	_, err = s.AddRules(protocol.RuleSet{Partner: "p1", EffectiveFrom: T0.Add(30 * time.Minute), Currency: "EUR", Points: 5, Per: 100}, T0)
	wantCode(t, "rules taking effect before the last version", err, protocol.CodeInvalidRules)
	_, err = s.AddRules(protocol.RuleSet{Partner: "p1", Currency: "USD", Points: 5, Per: 100}, T0)
	wantCode(t, "rules in another currency", err, protocol.CodeCurrencyMismatch)
	if rules, err := s.Rules("p1"); err != nil || len(rules) != 2 || rules[0].Version != 1 || rules[1].Version != 2 {
		t.Errorf("Rules = %+v, %v", rules, err)
	}

	early := Created(a.EarnAmount("e1", "m1", 10001), T0.Add(30*time.Minute))
	early.Points = 999_999 // a till cannot mint points by quoting high
	at := Created(a.EarnAmount("e2", "m1", 10001), T0.Add(time.Hour))
	late := Created(a.EarnAmount("e3", "m1", 10001), T0.Add(90*time.Minute))
	// All arrive after version 2 took effect.
	expect(t, s, T0.Add(2*time.Hour), a, txs(early, at, late),
		applied("e1", "m1", 100, 100), applied("e2", "m1", 200, 300), applied("e3", "m1", 200, 500))
	for _, w := range []struct {
		id                      string
		points, quoted, version int64
	}{{"e1", 100, 999_999, 1}, {"e2", 200, 100, 2}, {"e3", 200, 100, 2}} {
		r := record(t, s, w.id)
		if r.Points != w.points || r.Quoted != w.quoted || r.RulesVersion != w.version || r.Amount != 10001 {
			t.Errorf("record of %s = points %d quoted %d version %d amount %d; want %d, %d, %d, 10001",
				w.id, r.Points, r.Quoted, r.RulesVersion, r.Amount, w.points, w.quoted, w.version)
		}
	}
	// An earn in another currency than the rules' is refused.
	usd := a.EarnAmount("e4", "m1", 500)
	usd.Currency = "USD"
	expect(t, s, T0.Add(2*time.Hour), a, txs(usd), rejected("e4", "m1", protocol.CodeCurrencyMismatch, 500))
	checkInvariants(t, s, map[string]int64{"m1": 500})
}

// testCampaigns: category and SKU multipliers, a campaign's multiplier,
// bonus, window and minimum amount, and the cross-brand bonus on a
// member's first earn at a partner after earning at another.
func testCampaigns(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t1", "p2")
	RegisterRules(t, s, func(p string) protocol.RuleSet {
		rs := TestRules(p)
		switch p {
		case "p1":
			rs.Categories = map[string]protocol.Multiplier{"tobacco": "0", "food": "2"}
			rs.SKUs = map[string]protocol.Multiplier{"sku-x": "3"}
			rs.Campaigns = []protocol.Campaign{{ID: "double", From: T0.Add(-2 * time.Hour), To: T0.Add(2 * time.Hour), Multiplier: "2", Bonus: 5, MinAmount: 5000}}
		case "p2":
			rs.NewPartnerBonus = 50
		}
		return rs
	}, a, b)

	lines := a.EarnAmount("e3", "m1", 10000)
	lines.Lines = []protocol.Line{{Category: "tobacco", Amount: 6000}, {Category: "food", Amount: 1000}, {SKU: "sku-x", Category: "tobacco", Amount: 3000}}
	after := Created(a.EarnAmount("e4", "m1", 10001), T0.Add(3*time.Hour))
	now := T0.Add(4 * time.Hour)
	expect(t, s, now, a, txs(
		a.EarnAmount("e1", "m1", 10001), // 100, doubled, +5 in the campaign
		a.EarnAmount("e2", "m1", 4000),  // under the campaign's minimum: 40
		lines,                           // 0 + 1000×2 + 3000×3 = 110, doubled, +5
		after,                           // after the campaign: 100
		a.EarnAmount("e9", "m3", 1000),  // m3's first earn anywhere: 10
	),
		applied("e1", "m1", 205, 205), applied("e2", "m1", 40, 245), applied("e3", "m1", 225, 470),
		applied("e4", "m1", 100, 570), applied("e9", "m3", 10, 10))
	expect(t, s, now, b, txs(
		b.EarnAmount("e5", "m1", 1000),  // m1 earned at p1 before: 10 + 50
		b.EarnAmount("e6", "m1", 1000),  // not the first at p2 any more: 10
		b.EarnAmount("e7", "m2", 1000),  // m2's first earn anywhere: no bonus
		b.EarnAmount("e10", "m3", 1000), // m3 earned at p1 before: 10 + 50
	),
		applied("e5", "m1", 60, 630), applied("e6", "m1", 10, 640), applied("e7", "m2", 10, 10), applied("e10", "m3", 60, 70))
	// m2 at p1 after p2: p1 has no cross-brand bonus; under the campaign minimum.
	expect(t, s, now, a, txs(a.EarnAmount("e8", "m2", 1000)), applied("e8", "m2", 10, 20))
	if r := record(t, s, "e5"); r.Quoted != 10 || r.Points != 60 {
		t.Errorf("record of e5 = %+v, want quoted 10 (the till cannot know the bonus), points 60", r)
	}
	checkInvariants(t, s, map[string]int64{"m1": 640, "m2": 20, "m3": 70})
}

// testSeed: a seed registers the coalition in one go; loading it again
// changes nothing; changed rules become a new version from then on.
func testSeed(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	rules := func(points int64) *protocol.RuleSet {
		return &protocol.RuleSet{Currency: "EUR", Points: points, Per: 100}
	}
	seed := func(p1Points int64) *ledger.Seed {
		return &ledger.Seed{
			Coalition: ledger.Coalition{Name: "Seeded", Currency: "EUR", PointValue: "0.01"},
			Partners: []ledger.SeedPartner{
				{ID: "p1", Name: "One", Rules: rules(p1Points), Stores: []ledger.SeedStore{{ID: "s1", Terminals: []string{"t1", "t2"}}}},
				{ID: "p2", Rules: rules(1), Stores: []ledger.SeedStore{{ID: "s2", Name: "Two", Terminals: []string{"t1"}}}},
			},
		}
	}
	rep, err := s.LoadSeed(seed(1), AdminAt)
	if err != nil || rep != (ledger.SeedReport{Partners: 2, Stores: 2, Terminals: 3, Rules: 2}) {
		t.Fatalf("LoadSeed = %+v, %v", rep, err)
	}
	if rep, err := s.LoadSeed(seed(1), T0); err != nil || rep != (ledger.SeedReport{}) {
		t.Errorf("LoadSeed again = %+v, %v; want no changes", rep, err)
	}
	terms, err := s.Terminals()
	if err != nil || len(terms) != 3 || !terms[0].Registered || terms[2].Store != "s2" {
		t.Errorf("Terminals = %+v, %v", terms, err)
	}
	if err := s.AddTerminal("s1", "t1", T0); err != nil {
		t.Errorf("AddTerminal of a registered terminal: %v", err)
	}
	wantCode(t, "AddTerminal of an unknown store", s.AddTerminal("s9", "t1", T0), protocol.CodeUnknownStore)

	a := NewTill("s1", "t1", "p1")
	expect(t, s, T0, a, txs(a.Earn("e1", "m1", 100)), applied("e1", "m1", 100, 100))
	// p1 doubles its rate from now on: a new version, not a rewrite.
	if rep, err := s.LoadSeed(seed(2), T0); err != nil || rep != (ledger.SeedReport{Rules: 1}) {
		t.Errorf("LoadSeed with new rules = %+v, %v", rep, err)
	}
	versions, err := s.Rules("p1")
	if err != nil || len(versions) != 2 || versions[1].Points != 2 || versions[1].EffectiveFrom.Before(T0) {
		t.Errorf("Rules(p1) = %+v, %v", versions, err)
	}
	// An earn created before the change keeps the old price.
	expect(t, s, T0.Add(time.Minute), a, txs(a.Earn("e2", "m1", 100), Created(a.Earn("e3", "m1", 100), T0.Add(time.Second))),
		applied("e2", "m1", 100, 200), applied("e3", "m1", 200, 400))
	checkInvariants(t, s, map[string]int64{"m1": 400})
}
