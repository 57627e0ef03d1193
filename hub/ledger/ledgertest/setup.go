package ledgertest

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// The coalition the suite trades in.
//
// Every suite test opens a store with TestCoalition set and registers the
// stores it uses (Register): each with its till's partner, earning TestRules
// — 1 point per EUR 1.00 rounded down, so that Till.Earn's amount of
// 100×points+1 cents is priced at exactly the points the till quotes.

// TestCoalition returns the suite's coalition: EUR at 0.01 a point, no
// expiry, the default hold time.
func TestCoalition() ledger.Coalition {
	return ledger.Coalition{Name: "Suite", Currency: "EUR", PointValue: "0.01"}
}

// RulesFrom is when TestRules take effect: well before any transaction of
// the suite (a transaction created before a partner's first version is
// priced with it anyway).
var RulesFrom = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// AdminAt is the hub clock of the suite's registrations: before T0 and
// before every Till's transaction.
var AdminAt = T0.Add(-2 * time.Hour)

// TestRules returns the suite's earn rules for partner: 1 point per 100
// minor units, rounded down.
func TestRules(partner string) protocol.RuleSet {
	return protocol.RuleSet{Partner: partner, EffectiveFrom: RulesFrom, Currency: "EUR", Points: 1, Per: 100, Rounding: protocol.RoundDown}
}

// Register registers each till's store with the till's partner in s,
// creating the partner with TestRules when it is new. It sets TestCoalition
// first when s has no coalition yet. A store already registered with the
// same partner is left alone; one registered with another partner fails
// the test.
func Register(t testing.TB, s ledger.Store, tills ...*Till) {
	t.Helper()
	RegisterRules(t, s, TestRules, tills...)
}

// RegisterRules is Register with the rules a new partner gets from rules
// (nil: none, so that its earns are held invalid_rules).
func RegisterRules(t testing.TB, s ledger.Store, rules func(partner string) protocol.RuleSet, tills ...*Till) {
	t.Helper()
	c, err := s.Coalition()
	if err != nil {
		t.Fatalf("Coalition: %v", err)
	}
	if c.Currency == "" {
		if err := s.SetCoalition(TestCoalition()); err != nil {
			t.Fatalf("SetCoalition: %v", err)
		}
	}
	for _, tl := range tills {
		AddPartner(t, s, tl.Partner, rules)
		stores, err := s.Stores()
		if err != nil {
			t.Fatalf("Stores: %v", err)
		}
		registered := false
		for _, st := range stores {
			if st.ID == tl.Store {
				if st.Partner != tl.Partner {
					t.Fatalf("Register: store %s trades as %s, the till says %s", st.ID, st.Partner, tl.Partner)
				}
				registered = true
			}
		}
		if !registered {
			if err := s.PutStore(ledger.StoreInfo{ID: tl.Store, Partner: tl.Partner, Name: "Store " + tl.Store}, AdminAt); err != nil {
				t.Fatalf("PutStore %s: %v", tl.Store, err)
			}
		}
	}
}

// AddPartner creates partner in s unless it exists, with the rules from
// rules (when not nil) if it has none yet.
func AddPartner(t testing.TB, s ledger.Store, partner string, rules func(partner string) protocol.RuleSet) {
	t.Helper()
	partners, err := s.Partners()
	if err != nil {
		t.Fatalf("Partners: %v", err)
	}
	exists := false
	for _, p := range partners {
		exists = exists || p.ID == partner
	}
	if !exists {
		if err := s.PutPartner(ledger.Partner{ID: partner, Name: "Partner " + partner}, AdminAt); err != nil {
			t.Fatalf("PutPartner %s: %v", partner, err)
		}
	}
	if rules == nil {
		return
	}
	versions, err := s.Rules(partner)
	if err != nil {
		t.Fatalf("Rules %s: %v", partner, err)
	}
	if len(versions) == 0 {
		if _, err := s.AddRules(rules(partner), AdminAt); err != nil {
			t.Fatalf("AddRules %s: %v", partner, err)
		}
	}
}

// SetCoalition changes s's coalition settings from TestCoalition by fn.
func SetCoalition(t testing.TB, s ledger.Store, fn func(c *ledger.Coalition)) {
	t.Helper()
	c := TestCoalition()
	fn(&c)
	if err := s.SetCoalition(c); err != nil {
		t.Fatalf("SetCoalition(%+v): %v", c, err)
	}
}

// EarnAmount returns an earn of a purchase of amount cents, quoting what
// TestRules give for it.
func (tl *Till) EarnAmount(id, member string, amount int64) protocol.Transaction {
	tx := tl.Tx(protocol.KindEarn, id, member, amount/100, "")
	tx.Amount = amount
	return tx
}

// OfflineBurn returns a burn the till approved offline.
func (tl *Till) OfflineBurn(id, member string, points int64) protocol.Transaction {
	tx := tl.Burn(id, member, points)
	tx.Offline = true
	return tx
}

// Hold returns a hold of points for member.
func (tl *Till) Hold(id, member string, points int64) protocol.Transaction {
	return tl.Tx(protocol.KindHold, id, member, points, "")
}

// Capture returns a capture of points of the hold.
func (tl *Till) Capture(id, member string, points int64, hold string) protocol.Transaction {
	return tl.Tx(protocol.KindCapture, id, member, points, hold)
}

// Return returns a reverse of original for the returned amount (cents),
// with no points: the hub prices it in proportion.
func (tl *Till) Return(id, member string, amount int64, original string) protocol.Transaction {
	return WithAmount(tl.Tx(protocol.KindReverse, id, member, 0, original), amount)
}

// WithAmount sets tx's amount in EUR cents (the value of goods, for a burn,
// hold or capture; the returned amount for a reverse).
func WithAmount(tx protocol.Transaction, amount int64) protocol.Transaction {
	tx.Amount, tx.Currency = amount, "EUR"
	return tx
}

// Created sets tx's creation time.
func Created(tx protocol.Transaction, at time.Time) protocol.Transaction {
	tx.CreatedAt = at
	return tx
}

// withCoalition wraps a store opener: the store comes with TestCoalition
// set, and must pass Verify when the test ends.
func withCoalition(open func(t *testing.T) ledger.Store) func(t *testing.T) ledger.Store {
	return func(t *testing.T) ledger.Store {
		t.Helper()
		s := open(t)
		if err := s.SetCoalition(TestCoalition()); err != nil {
			t.Fatalf("SetCoalition: %v", err)
		}
		// Cleanups run last first: this one before open's Close.
		t.Cleanup(func() { CheckVerify(t, s) })
		return s
	}
}

// CheckVerify fails the test unless s passes Verify.
func CheckVerify(t testing.TB, s ledger.Store) ledger.VerifyReport {
	t.Helper()
	rep, err := s.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Errorf("Verify: %+v", rep)
	}
	return rep
}
