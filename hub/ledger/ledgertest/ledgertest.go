// Package ledgertest is the conformance suite every ledger.Store must pass:
// the bbolt store today, PostgreSQL later. It pins down the ledger's rules —
// what is applied, what is rejected with which code, what a duplicate
// answers, what a void does before and after its burn — so that every
// implementation gives the same answer to the same transactions.
//
// A store's test calls Run with a function that opens a fresh, empty store.
package ledgertest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// Run runs the suite. open must return a fresh, empty store on every call
// and close it when t ends (t.Cleanup).
//
// Every test gets the store with TestCoalition set, registers the stores it
// uses (Register), and must leave it passing Verify.
func Run(t *testing.T, open func(t *testing.T) ledger.Store) {
	open = withCoalition(open)
	t.Run("Rules", func(t *testing.T) { testRules(t, open) })
	t.Run("BalanceKnown", func(t *testing.T) { testBalanceKnown(t, open) })
	t.Run("AckShape", func(t *testing.T) { testAckShape(t, open) })
	t.Run("Entries", func(t *testing.T) { testEntries(t, open) })
	t.Run("Statement", func(t *testing.T) { testStatement(t, open) })
	t.Run("Terminals", func(t *testing.T) { testTerminals(t, open) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, open) })
	t.Run("RandomWorkload", func(t *testing.T) { testRandomWorkload(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("HeldUnknownStore", func(t *testing.T) { testHeldUnknownStore(t, open) })
	t.Run("HeldNoRules", func(t *testing.T) { testHeldNoRules(t, open) })
	t.Run("HeldEarnReturned", func(t *testing.T) { testHeldEarnReturned(t, open) })
	t.Run("PartnerMismatch", func(t *testing.T) { testPartnerMismatch(t, open) })
	t.Run("Pricing", func(t *testing.T) { testPricing(t, open) })
	t.Run("Campaigns", func(t *testing.T) { testCampaigns(t, open) })
	t.Run("Seed", func(t *testing.T) { testSeed(t, open) })
	t.Run("Holds", func(t *testing.T) { testHolds(t, open) })
	t.Run("HoldLapse", func(t *testing.T) { testHoldLapse(t, open) })
	t.Run("ConcurrentHolds", func(t *testing.T) { testConcurrentHolds(t, open) })
	t.Run("ProportionalReturns", func(t *testing.T) { testProportionalReturns(t, open) })
	t.Run("ReturnWaitsForSale", func(t *testing.T) { testReturnWaitsForSale(t, open) })
	t.Run("Enrollment", func(t *testing.T) { testEnrollment(t, open) })
	t.Run("APITokens", func(t *testing.T) { testAPITokens(t, open) })
	t.Run("SeqReused", func(t *testing.T) { testSeqReused(t, open) })
	t.Run("ReturnPaidWithPoints", func(t *testing.T) { testReturnPaidWithPoints(t, open) })
	t.Run("ReturnAfterSpend", func(t *testing.T) { testReturnAfterSpend(t, open) })
	t.Run("OfflineOverdraft", func(t *testing.T) { testOfflineOverdraft(t, open) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, open) })
	t.Run("Settlement", func(t *testing.T) { testSettlement(t, open) })
	t.Run("SettlementValues", func(t *testing.T) { testSettlementValues(t, open) })
	t.Run("ClosePeriod", func(t *testing.T) { testClosePeriod(t, open) })
	t.Run("ClosedPeriodStays", func(t *testing.T) { testClosedPeriodStays(t, open) })
	t.Run("ExpiryManyLots", func(t *testing.T) { testExpiryManyLots(t, open) })
	t.Run("Chain", func(t *testing.T) { testChain(t, open) })
	t.Run("HubClockBefore2000", func(t *testing.T) { testHubClockBefore2000(t, open) })
	t.Run("TokenSightings", func(t *testing.T) { testTokenSightings(t, open) })
}

// T0 is the hub clock the suite starts from.
var T0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// Till builds valid transactions and batches for one terminal, numbering
// them as a real till would. Exported so store-specific tests can reuse it.
type Till struct {
	Store, Terminal, Partner string
	Seq                      uint64
	// Backlog and OldestUnsynced are copied into every batch.
	Backlog        int64
	OldestUnsynced time.Time
}

// NewTill returns a till with no transactions yet.
func NewTill(store, terminal, partner string) *Till {
	return &Till{Store: store, Terminal: terminal, Partner: partner}
}

// Tx returns the till's next transaction.
func (tl *Till) Tx(kind protocol.Kind, id, member string, points int64, original string) protocol.Transaction {
	tl.Seq++
	tx := protocol.Transaction{
		ID: id, Store: tl.Store, Terminal: tl.Terminal, Partner: tl.Partner, Member: member,
		Kind: kind, Points: points, Original: original, Seq: tl.Seq,
		CreatedAt: T0.Add(-time.Hour + time.Duration(tl.Seq)*time.Second),
	}
	if kind == protocol.KindEarn {
		tx.Amount, tx.Currency = 100*points+1, "EUR"
	}
	return tx
}

// Earn returns an earn of points for member.
func (tl *Till) Earn(id, member string, points int64) protocol.Transaction {
	return tl.Tx(protocol.KindEarn, id, member, points, "")
}

// Burn returns a burn of points for member.
func (tl *Till) Burn(id, member string, points int64) protocol.Transaction {
	return tl.Tx(protocol.KindBurn, id, member, points, "")
}

// Reverse returns a reverse of points of original for member.
func (tl *Till) Reverse(id, member string, points int64, original string) protocol.Transaction {
	return tl.Tx(protocol.KindReverse, id, member, points, original)
}

// Void returns a void of the burn original for member.
func (tl *Till) Void(id, member, original string) protocol.Transaction {
	return tl.Tx(protocol.KindVoid, id, member, 0, original)
}

// Batch wraps txs (which must be this till's) in a validated batch.
func (tl *Till) Batch(t testing.TB, txs ...protocol.Transaction) *protocol.Batch {
	t.Helper()
	b := &protocol.Batch{
		Version: protocol.Version, Store: tl.Store, Terminal: tl.Terminal,
		Backlog: tl.Backlog, OldestUnsynced: tl.OldestUnsynced, SentAt: T0, Txs: txs,
	}
	if err := b.Validate(); err != nil {
		t.Fatalf("test built an invalid batch: %v", err)
	}
	return b
}

// Apply applies batches at now and fails the test on error or a malformed answer.
func Apply(t testing.TB, s ledger.Store, now time.Time, batches ...*protocol.Batch) [][]protocol.Ack {
	t.Helper()
	acks, err := s.Apply(batches, now)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(acks) != len(batches) {
		t.Fatalf("Apply: %d ack lists for %d batches", len(acks), len(batches))
	}
	for i, b := range batches {
		if len(acks[i]) != len(b.Txs) {
			t.Fatalf("Apply: batch %d: %d acks for %d transactions", i, len(acks[i]), len(b.Txs))
		}
	}
	return acks
}

// applied is the ack of a transaction applied now that booked points and
// left the member with balance available points.
func applied(id, member string, points, balance int64) protocol.Ack {
	return protocol.Ack{ID: id, Status: protocol.StatusApplied, Member: member, Balance: balance, Points: points}
}

func rejected(id, member string, code protocol.Code, balance int64) protocol.Ack {
	return protocol.Ack{ID: id, Status: protocol.StatusRejected, Code: code, Member: member, Balance: balance}
}

func dupOf(a protocol.Ack) protocol.Ack {
	return protocol.Ack{ID: a.ID, Status: protocol.StatusDuplicate, OriginalStatus: a.Status, Code: a.Code, Member: a.Member, Balance: a.Balance, Points: a.Points}
}

// call is one Apply: its batches and the acks it must return.
type call struct {
	batches []*protocol.Batch
	want    [][]protocol.Ack
}

func one(b *protocol.Batch, want ...protocol.Ack) call {
	return call{batches: []*protocol.Batch{b}, want: [][]protocol.Ack{want}}
}

// checkInvariants checks Verify and the member balances against want.
func checkInvariants(t *testing.T, s ledger.Store, want map[string]int64) {
	t.Helper()
	got, err := s.MemberBalances()
	if err != nil {
		t.Fatalf("MemberBalances: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("MemberBalances = %v, want %v", got, want)
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Errorf("Verify: %+v", rep)
	}
}

func testRules(t *testing.T, open func(t *testing.T) ledger.Store) {
	const m1, m2 = "m1", "m2"
	cases := []struct {
		name string
		// calls builds the Applies; a and b are tills of different stores
		// and partners, a2 is a second terminal of a's store.
		calls   func(t *testing.T, a, a2, b *Till) []call
		members map[string]int64
	}{
		{
			name: "earn creates the member; zero points still apply",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					one(a.Batch(t, a.Earn("e2", m1, 0), a.Earn("e3", m2, 0)), applied("e2", m1, 0, 100), applied("e3", m2, 0, 0)),
				}
			},
			members: map[string]int64{m1: 100, m2: 0},
		},
		{
			name: "burn within the balance",
			calls: func(t *testing.T, a, _, b *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Burn("b1", m1, 30)), applied("e1", m1, 100, 100), applied("b1", m1, 30, 70)),
					one(b.Batch(t, b.Burn("b2", m1, 70)), applied("b2", m1, 70, 0)),
				}
			},
			members: map[string]int64{m1: 0},
		},
		{
			name: "burn over the balance is rejected insufficient_points with the balance",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 50), a.Burn("b1", m1, 51)),
						applied("e1", m1, 50, 50), rejected("b1", m1, protocol.CodeInsufficientPoints, 50)),
				}
			},
			members: map[string]int64{m1: 50},
		},
		{
			name: "burn for an unknown member is rejected and creates nobody",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Burn("b1", "ghost", 1)), rejected("b1", "ghost", protocol.CodeUnknownMember, 0)),
				}
			},
			members: map[string]int64{},
		},
		{
			name: "duplicate within one batch repeats the first answer",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				e1 := a.Earn("e1", m1, 100)
				b1 := a.Burn("b1", m1, 500)
				return []call{
					one(a.Batch(t, e1, a.Earn("e2", m1, 5), e1, b1, a.Earn("e3", m1, 1000), b1),
						applied("e1", m1, 100, 100), applied("e2", m1, 5, 105), dupOf(applied("e1", m1, 100, 100)),
						rejected("b1", m1, protocol.CodeInsufficientPoints, 105), applied("e3", m1, 1000, 1105),
						dupOf(rejected("b1", m1, protocol.CodeInsufficientPoints, 105))),
				}
			},
			members: map[string]int64{m1: 1105},
		},
		{
			name: "duplicate across batches of one Apply",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				e1 := a.Earn("e1", m1, 100)
				return []call{{
					batches: []*protocol.Batch{a.Batch(t, e1), a.Batch(t, e1)},
					want:    [][]protocol.Ack{{applied("e1", m1, 100, 100)}, {dupOf(applied("e1", m1, 100, 100))}},
				}}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "duplicate across Applies repeats the first answer, rejections too",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				e1 := a.Earn("e1", m1, 100)
				b1 := a.Burn("b1", m1, 10)
				b2 := a.Burn("b2", m1, 1000)
				return []call{
					one(a.Batch(t, b1), rejected("b1", m1, protocol.CodeUnknownMember, 0)),
					one(a.Batch(t, e1, b2), applied("e1", m1, 100, 100), rejected("b2", m1, protocol.CodeInsufficientPoints, 100)),
					one(a.Batch(t, a.Earn("e2", m1, 5000)), applied("e2", m1, 5000, 5100)),
					// Now b1 and b2 could both apply; a retry still gets the first answer.
					one(a.Batch(t, b1, b2, e1),
						dupOf(rejected("b1", m1, protocol.CodeUnknownMember, 0)),
						dupOf(rejected("b2", m1, protocol.CodeInsufficientPoints, 100)),
						dupOf(applied("e1", m1, 100, 100))),
				}
			},
			members: map[string]int64{m1: 5100},
		},
		{
			name: "reverse of an earn takes points back",
			calls: func(t *testing.T, a, a2, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					one(a2.Batch(t, a2.Reverse("r1", m1, 40, "e1")), applied("r1", m1, 40, 60)),
				}
			},
			members: map[string]int64{m1: 60},
		},
		{
			name: "reverse of a spent earn may go negative; burns then fail",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Burn("b1", m1, 80), a.Reverse("r1", m1, 100, "e1"), a.Burn("b2", m1, 1)),
						applied("e1", m1, 100, 100), applied("b1", m1, 80, 20), applied("r1", m1, 100, -80),
						rejected("b2", m1, protocol.CodeInsufficientPoints, -80)),
				}
			},
			members: map[string]int64{m1: -80},
		},
		{
			name: "reverse of a burn gives points back",
			calls: func(t *testing.T, a, a2, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Burn("b1", m1, 30)), applied("e1", m1, 100, 100), applied("b1", m1, 30, 70)),
					one(a2.Batch(t, a2.Reverse("r1", m1, 30, "b1")), applied("r1", m1, 30, 100)),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "a return at another partner is original_mismatch",
			calls: func(t *testing.T, a, _, b *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					one(b.Batch(t, b.Reverse("r1", m1, 40, "e1")), rejected("r1", m1, protocol.CodeOriginalMismatch, 100)),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "a store posting as another partner is partner_mismatch",
			calls: func(t *testing.T, a, a2, _ *Till) []call {
				a2.Partner = "p2" // same store s1, which trades as p1
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					one(a2.Batch(t, a2.Earn("e2", m1, 1000000), a2.Burn("b2", m1, 10)),
						rejected("e2", m1, protocol.CodePartnerMismatch, 100), rejected("b2", m1, protocol.CodePartnerMismatch, 100)),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "an id already used by another terminal is store_mismatch, and tells nothing",
			calls: func(t *testing.T, a, _, b *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					one(b.Batch(t, b.Earn("e1", m2, 5)), protocol.Ack{ID: "e1", Status: protocol.StatusRejected, Code: protocol.CodeStoreMismatch}),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "partial reverses up to the original, then over_reversed",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Earn("e2", m1, 10), a.Reverse("r0", m1, 101, "e1")),
						applied("e1", m1, 100, 100), applied("e2", m1, 10, 110), rejected("r0", m1, protocol.CodeOverReversed, 110)),
					one(a.Batch(t, a.Reverse("r1", m1, 60, "e1"), a.Reverse("r2", m1, 41, "e1"), a.Reverse("r3", m1, 40, "e1")),
						applied("r1", m1, 60, 50), rejected("r2", m1, protocol.CodeOverReversed, 50), applied("r3", m1, 40, 10)),
					one(a.Batch(t, a.Reverse("r4", m1, 1, "e1")), rejected("r4", m1, protocol.CodeOverReversed, 10)),
				}
			},
			members: map[string]int64{m1: 10},
		},
		{
			name: "reverse of a rejected original is unknown_original; of an unseen one, held until the wait runs out",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 10), a.Reverse("r1", m1, 5, "never-sent"), a.Burn("b1", m1, 50), a.Reverse("r2", m1, 5, "b1"),
						Created(a.Reverse("r9", m1, 5, "never-sent"), T0.Add(-ledger.DefaultReturnWaitDays*24*time.Hour))),
						applied("e1", m1, 10, 10), held("r1", m1, protocol.CodeUnknownOriginal),
						rejected("b1", m1, protocol.CodeInsufficientPoints, 10), rejected("r2", m1, protocol.CodeUnknownOriginal, 10),
						rejected("r9", m1, protocol.CodeUnknownOriginal, 10)),
					// A held reverse was recorded nowhere: sent again, it is held again.
					one(a.Batch(t, a.Reverse("r1", m1, 5, "never-sent")), held("r1", m1, protocol.CodeUnknownOriginal)),
					// A rejected reverse counts for nothing: the original is still whole.
					one(a.Batch(t, a.Reverse("r3", m1, 10, "e1")), applied("r3", m1, 10, 0)),
				}
			},
			members: map[string]int64{m1: 0},
		},
		{
			name: "reverse naming another member's transaction, a reverse or a void is original_mismatch",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Earn("e2", m2, 10), a.Reverse("r1", m2, 5, "e1")),
						applied("e1", m1, 100, 100), applied("e2", m2, 10, 10), rejected("r1", m2, protocol.CodeOriginalMismatch, 10)),
					one(a.Batch(t, a.Reverse("r2", m1, 10, "e1"), a.Reverse("r3", m1, 5, "r2")),
						applied("r2", m1, 10, 90), rejected("r3", m1, protocol.CodeOriginalMismatch, 90)),
					one(a.Batch(t, a.Burn("b1", m1, 20), a.Void("v1", m1, "b1"), a.Reverse("r4", m1, 5, "v1")),
						applied("b1", m1, 20, 70), applied("v1", m1, 20, 90), rejected("r4", m1, protocol.CodeOriginalMismatch, 90)),
				}
			},
			members: map[string]int64{m1: 90, m2: 10},
		},
		{
			name: "void before its burn bars the burn (later Apply)",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				b1 := a.Burn("b1", m1, 30)
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Void("v1", m1, "b1")), applied("e1", m1, 100, 100), applied("v1", m1, 0, 100)),
					one(a.Batch(t, b1), rejected("b1", m1, protocol.CodeVoided, 100)),
					one(a.Batch(t, b1), dupOf(rejected("b1", m1, protocol.CodeVoided, 100))),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "void before its burn bars the burn (same batch, unknown member)",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				b1 := a.Burn("b1", m1, 30)
				return []call{
					one(a.Batch(t, a.Void("v1", m1, "b1"), b1), applied("v1", m1, 0, 0), rejected("b1", m1, protocol.CodeVoided, 0)),
				}
			},
			members: map[string]int64{},
		},
		{
			name: "void from another terminal or member neither bars nor undoes the burn",
			calls: func(t *testing.T, a, a2, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100)), applied("e1", m1, 100, 100)),
					{
						batches: []*protocol.Batch{a2.Batch(t, a2.Void("v1", m1, "b1")), a.Batch(t, a.Void("v2", m2, "b1"), a.Burn("b1", m1, 30))},
						want:    [][]protocol.Ack{{applied("v1", m1, 0, 100)}, {applied("v2", m2, 0, 0), applied("b1", m1, 30, 70)}},
					},
					{
						batches: []*protocol.Batch{a2.Batch(t, a2.Void("v3", m1, "b1")), a.Batch(t, a.Void("v4", m2, "b1"))},
						want: [][]protocol.Ack{
							{rejected("v3", m1, protocol.CodeOriginalMismatch, 70)},
							{rejected("v4", m2, protocol.CodeOriginalMismatch, 0)},
						},
					},
				}
			},
			members: map[string]int64{m1: 70},
		},
		{
			name: "void after an applied burn restores what was not yet reversed",
			calls: func(t *testing.T, a, a2, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Burn("b1", m1, 30), a.Burn("b2", m1, 50)),
						applied("e1", m1, 100, 100), applied("b1", m1, 30, 70), applied("b2", m1, 50, 20)),
					one(a2.Batch(t, a2.Reverse("r1", m1, 10, "b2")), applied("r1", m1, 10, 30)),
					one(a.Batch(t, a.Void("v1", m1, "b1"), a.Void("v2", m1, "b2")), applied("v1", m1, 30, 60), applied("v2", m1, 40, 100)),
					// Fully reversed now: a reverse is over, a second void changes nothing.
					one(a.Batch(t, a.Reverse("r2", m1, 1, "b1"), a.Void("v3", m1, "b1")),
						rejected("r2", m1, protocol.CodeOverReversed, 100), applied("v3", m1, 0, 100)),
				}
			},
			members: map[string]int64{m1: 100},
		},
		{
			name: "void after a rejected burn applies and changes nothing",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 10), a.Burn("b1", m1, 30)), applied("e1", m1, 10, 10), rejected("b1", m1, protocol.CodeInsufficientPoints, 10)),
					one(a.Batch(t, a.Void("v1", m1, "b1")), applied("v1", m1, 0, 10)),
				}
			},
			members: map[string]int64{m1: 10},
		},
		{
			name: "void is deduplicated by its own id",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				v1 := a.Void("v1", m1, "b1")
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Burn("b1", m1, 40), v1), applied("e1", m1, 100, 100), applied("b1", m1, 40, 60), applied("v1", m1, 40, 100)),
					one(a.Batch(t, a.Burn("b2", m1, 100), v1), applied("b2", m1, 100, 0), dupOf(applied("v1", m1, 40, 100))),
				}
			},
			members: map[string]int64{m1: 0},
		},
		{
			name: "void of an earn or a reverse is original_mismatch",
			calls: func(t *testing.T, a, _, _ *Till) []call {
				return []call{
					one(a.Batch(t, a.Earn("e1", m1, 100), a.Void("v1", m1, "e1"), a.Reverse("r1", m1, 1, "e1"), a.Void("v2", m1, "r1")),
						applied("e1", m1, 100, 100), rejected("v1", m1, protocol.CodeOriginalMismatch, 100),
						applied("r1", m1, 1, 99), rejected("v2", m1, protocol.CodeOriginalMismatch, 99)),
				}
			},
			members: map[string]int64{m1: 99},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			a, a2, b := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1"), NewTill("s2", "t1", "p2")
			Register(t, s, a, b)
			now := T0
			for i, cl := range c.calls(t, a, a2, b) {
				now = now.Add(time.Minute)
				got := Apply(t, s, now, cl.batches...)
				for j := range cl.want {
					if !slices.Equal(got[j], cl.want[j]) {
						t.Fatalf("Apply %d, batch %d:\n got  %s\n want %s", i, j, fmtAcks(got[j]), fmtAcks(cl.want[j]))
					}
				}
			}
			checkInvariants(t, s, c.members)
		})
	}
}

func fmtAcks(acks []protocol.Ack) string {
	var sb strings.Builder
	for i, a := range acks {
		if i > 0 {
			sb.WriteString("\n      ")
		}
		fmt.Fprintf(&sb, "%+v", a)
	}
	return sb.String()
}

func testBalanceKnown(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	Apply(t, s, T0, a.Batch(t, a.Earn("e1", "m1", 0), a.Earn("e2", "m2", 7), a.Burn("b1", "m3", 1)))
	for _, c := range []struct {
		member string
		points int64
		known  bool
	}{{"m1", 0, true}, {"m2", 7, true}, {"m3", 0, false}, {"never", 0, false}} {
		p, known, err := s.Balance(c.member)
		if err != nil {
			t.Fatalf("Balance(%s): %v", c.member, err)
		}
		if p != c.points || known != c.known {
			t.Errorf("Balance(%s) = %d, %v; want %d, %v", c.member, p, known, c.points, c.known)
		}
	}
	acks, err := s.Apply(nil, T0)
	if err != nil || len(acks) != 0 {
		t.Errorf("Apply(nil) = %v, %v; want no acks, no error", acks, err)
	}
}

// testAckShape: one ack per transaction, in order, ids matching, across many batches.
func testAckShape(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	var batches []*protocol.Batch
	for i := range 5 {
		tl := NewTill("s"+fmt.Sprint(i), "t1", "p1")
		Register(t, s, tl)
		var txs []protocol.Transaction
		for j := range 20 + i {
			txs = append(txs, tl.Earn(fmt.Sprintf("s%d-%d", i, j), fmt.Sprintf("m%d", j%7), int64(j)))
		}
		batches = append(batches, tl.Batch(t, txs...))
	}
	acks := Apply(t, s, T0, batches...)
	for i, b := range batches {
		for j, tx := range b.Txs {
			if a := acks[i][j]; a.ID != tx.ID || a.Status != protocol.StatusApplied || a.Member != tx.Member {
				t.Fatalf("batch %d ack %d = %+v for tx %s of %s", i, j, a, tx.ID, tx.Member)
			}
		}
	}
}

// testEntries checks what the journal records for each kind, and against which accounts.
func testEntries(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t9", "p1")
	Register(t, s, a, b)
	e1, b1 := a.Earn("e1", "m1", 100), a.Burn("b1", "m1", 30)
	r1 := b.Reverse("r1", "m1", 40, "e1") // at another store of the same partner
	r2 := b.Reverse("r2", "m1", 5, "b1")
	v1 := a.Void("v1", "m1", "b1")
	now := T0.Add(5 * time.Second)
	Apply(t, s, now, a.Batch(t, e1, b1), b.Batch(t, r1, r2))
	later := now.Add(time.Minute)
	Apply(t, s, later, a.Batch(t, v1))

	got, err := s.Statement("m1", 100)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		tx       protocol.Transaction
		partner  string
		points   int64
		postings []ledger.Posting
		at       time.Time
	}
	wants := []want{
		{v1, "p1", 25, []ledger.Posting{{Account: "member/m1", Delta: 25}, {Account: "partner/p1/redeemed", Delta: -25}}, later},
		{r2, "p1", 5, []ledger.Posting{{Account: "member/m1", Delta: 5}, {Account: "partner/p1/redeemed", Delta: -5}}, now},
		{r1, "p1", -40, []ledger.Posting{{Account: "member/m1", Delta: -40}, {Account: "partner/p1/issued", Delta: 40}}, now},
		{b1, "p1", -30, []ledger.Posting{{Account: "member/m1", Delta: -30}, {Account: "partner/p1/redeemed", Delta: 30}}, now},
		{e1, "p1", 100, []ledger.Posting{{Account: "member/m1", Delta: 100}, {Account: "partner/p1/issued", Delta: -100}}, now},
	}
	if len(got) != len(wants) {
		t.Fatalf("Statement: %d entries, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		e := got[i]
		if e.TxID != w.tx.ID || e.Kind != string(w.tx.Kind) || e.Member != "m1" || e.Partner != w.partner ||
			e.Store != w.tx.Store || e.Terminal != w.tx.Terminal || e.Original != w.tx.Original || e.Points != w.points ||
			!slices.Equal(e.Postings, w.postings) || !e.At.Equal(w.at) || !e.CreatedAt.Equal(w.tx.CreatedAt) {
			t.Errorf("entry %d = %+v\nwant tx %s partner %s points %d postings %v at %v created %v",
				i, e, w.tx.ID, w.partner, w.points, w.postings, w.at, w.tx.CreatedAt)
		}
		if i > 0 && e.Seq >= got[i-1].Seq {
			t.Errorf("entry %d seq %d not below entry %d seq %d", i, e.Seq, i-1, got[i-1].Seq)
		}
	}
	checkInvariants(t, s, map[string]int64{"m1": 60})
}

func testStatement(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	// Members whose ids are prefixes of each other must not see each other's entries.
	var txs []protocol.Transaction
	want := map[string][]string{}
	for i := range 30 {
		m := []string{"m", "m1", "m10", "m1-"}[i%4]
		id := fmt.Sprintf("e%02d", i)
		txs = append(txs, a.Earn(id, m, int64(i)+1)) // a zero-point earn makes no entry
		want[m] = append([]string{id}, want[m]...)   // newest first
	}
	Apply(t, s, T0, a.Batch(t, txs[:10]...))
	Apply(t, s, T0.Add(time.Second), a.Batch(t, txs[10:]...))
	for m, ids := range want {
		for _, limit := range []int{1, 3, len(ids), len(ids) + 5} {
			got, err := s.Statement(m, limit)
			if err != nil {
				t.Fatal(err)
			}
			n := min(limit, len(ids))
			var gotIDs []string
			for _, e := range got {
				gotIDs = append(gotIDs, e.TxID)
			}
			if !slices.Equal(gotIDs, ids[:n]) {
				t.Errorf("Statement(%q, %d) = %v, want %v", m, limit, gotIDs, ids[:n])
			}
		}
	}
	for _, c := range []struct {
		member string
		limit  int
	}{{"m1", 0}, {"m1", -1}, {"nobody", 10}, {"m2", 10}} {
		got, err := s.Statement(c.member, c.limit)
		if err != nil || len(got) != 0 {
			t.Errorf("Statement(%q, %d) = %v, %v; want nothing", c.member, c.limit, got, err)
		}
	}
}

func testTerminals(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	// Store "s1-x" sorts after "s1" by store, though "s1-x/" < "s1/" bytewise.
	a, a2, x, b := NewTill("s1", "t1", "p1"), NewTill("s1", "t2", "p1"), NewTill("s1-x", "t1", "p1"), NewTill("s2", "t1", "p2")
	Register(t, s, a, x, b)
	oldest := T0.Add(-2 * time.Hour)
	a.Backlog, a.OldestUnsynced = 7, oldest
	e1 := a.Earn("e1", "m1", 10)
	t1 := T0.Add(time.Minute)
	Apply(t, s, t1,
		a.Batch(t, e1, a.Burn("b1", "m1", 100), a.Earn("e2", "m1", 1)),
		b.Batch(t, b.Earn("e3", "m2", 1)),
		x.Batch(t, x.Earn("e4", "m3", 1)))
	a.Backlog, a.OldestUnsynced = 0, time.Time{}
	t2 := T0.Add(2 * time.Minute)
	// A resend of an old transaction (low seq) must not lower last_seq.
	Apply(t, s, t2, a.Batch(t, e1), a2.Batch(t, a2.Earn("e5", "m1", 1)))

	got, err := s.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Terminal{
		{Store: "s1", Terminal: "t1", LastSeen: t2, Backlog: 0, LastSeq: 3, Applied: 2},
		{Store: "s1", Terminal: "t2", LastSeen: t2, Backlog: 0, LastSeq: 1, Applied: 1},
		{Store: "s1-x", Terminal: "t1", LastSeen: t1, Backlog: 0, LastSeq: 1, Applied: 1},
		{Store: "s2", Terminal: "t1", LastSeen: t1, Backlog: 0, LastSeq: 1, Applied: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Terminals = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Store != w.Store || g.Terminal != w.Terminal || !g.LastSeen.Equal(w.LastSeen) || g.Backlog != w.Backlog ||
			!g.OldestUnsynced.IsZero() || g.LastSeq != w.LastSeq || g.Applied != w.Applied {
			t.Errorf("Terminals[%d] = %+v, want %+v", i, g, w)
		}
	}

	// Backlog and oldest_unsynced are as of the latest batch.
	b.Backlog, b.OldestUnsynced = 42, oldest
	Apply(t, s, T0.Add(3*time.Minute), b.Batch(t, b.Earn("e6", "m2", 1)))
	got, err = s.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	if g := got[3]; g.Backlog != 42 || !g.OldestUnsynced.Equal(oldest) || g.LastSeq != 2 || g.Applied != 2 {
		t.Errorf("after a backlogged batch: %+v", g)
	}
}

func testTransactions(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	e1 := a.Earn("e1", "m1", 100)
	Apply(t, s, T0, a.Batch(t, e1, a.Burn("b1", "m1", 30), a.Burn("b2", "m1", 300), e1, a.Reverse("r1", "m1", 10, "b1"), a.Void("v1", "m1", "b9")))
	got, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		id       string
		status   protocol.Status
		code     protocol.Code
		kind     protocol.Kind
		points   int64
		reversed int64
		journal  bool
		balance  int64
	}
	want := []rec{
		{"b1", protocol.StatusApplied, "", protocol.KindBurn, 30, 10, true, 70},
		{"b2", protocol.StatusRejected, protocol.CodeInsufficientPoints, protocol.KindBurn, 300, 0, false, 70},
		{"e1", protocol.StatusApplied, "", protocol.KindEarn, 100, 0, true, 100},
		{"r1", protocol.StatusApplied, "", protocol.KindReverse, 10, 0, true, 80},
		{"v1", protocol.StatusApplied, "", protocol.KindVoid, 0, 0, false, 80},
	}
	if len(got) != len(want) {
		t.Fatalf("Transactions = %+v, want %d records", got, len(want))
	}
	seqs := map[uint64]bool{}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Status != w.status || g.Code != w.code || g.Kind != w.kind || g.Member != "m1" ||
			g.Points != w.points || g.Reversed != w.reversed || (g.JournalSeq != 0) != w.journal || g.Balance != w.balance ||
			g.Store != "s1" || g.Terminal != "t1" {
			t.Errorf("Transactions[%d] = %+v, want %+v", i, g, w)
		}
		if g.JournalSeq != 0 {
			if seqs[g.JournalSeq] {
				t.Errorf("journal seq %d used twice", g.JournalSeq)
			}
			seqs[g.JournalSeq] = true
		}
	}
}

// model is the ledger's rules written plainly, to check a store against.
type model struct {
	bal     map[string]int64
	known   map[string]bool
	recs    map[string]*modelRec
	pending map[string]bool // burn id|store|terminal|member of voids that arrived first
	entries int
	now     time.Time // the hub clock of the apply
}

type modelRec struct {
	ack                              protocol.Ack
	kind                             protocol.Kind
	member, store, terminal, partner string
	points, reversed                 int64
}

func newModel() *model {
	return &model{bal: map[string]int64{}, known: map[string]bool{}, recs: map[string]*modelRec{}, pending: map[string]bool{}}
}

func (m *model) apply(tx protocol.Transaction) protocol.Ack {
	if r, ok := m.recs[tx.ID]; ok {
		if r.store != tx.Store || r.terminal != tx.Terminal {
			return protocol.Ack{ID: tx.ID, Status: protocol.StatusRejected, Code: protocol.CodeStoreMismatch}
		}
		return dupOf(r.ack)
	}
	bal := m.bal[tx.Member]
	r := &modelRec{kind: tx.Kind, member: tx.Member, store: tx.Store, terminal: tx.Terminal, partner: tx.Partner, points: tx.Points}
	move := func(d int64) protocol.Ack {
		m.bal[tx.Member] += d
		m.known[tx.Member] = true
		if d != 0 {
			m.entries++ // a zero-point earn posts nothing
		}
		r.points = max(d, -d)
		return applied(tx.ID, tx.Member, r.points, m.bal[tx.Member])
	}
	switch tx.Kind {
	case protocol.KindEarn:
		// Till.Earn's amount is priced at exactly the quoted points.
		r.ack = move(tx.Points)
	case protocol.KindBurn:
		key := tx.ID + "|" + tx.Store + "|" + tx.Terminal + "|" + tx.Member
		switch {
		case m.pending[key]:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeVoided, bal)
		case !m.known[tx.Member]:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeUnknownMember, 0)
		case bal < tx.Points:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeInsufficientPoints, bal)
		default:
			r.ack = move(-tx.Points)
		}
	case protocol.KindReverse:
		o, ok := m.recs[tx.Original]
		switch {
		case !ok && m.now.Sub(tx.CreatedAt) < ledger.DefaultReturnWaitDays*24*time.Hour:
			// Its sale may be still to come: held, recorded nowhere.
			return held(tx.ID, tx.Member, protocol.CodeUnknownOriginal)
		case !ok || o.ack.Status != protocol.StatusApplied:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeUnknownOriginal, bal)
		case o.member != tx.Member || o.partner != tx.Partner || (o.kind != protocol.KindEarn && o.kind != protocol.KindBurn):
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeOriginalMismatch, bal)
		case o.reversed+tx.Points > o.points:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeOverReversed, bal)
		case o.kind == protocol.KindEarn:
			o.reversed += tx.Points
			r.ack = move(-tx.Points)
		default:
			o.reversed += tx.Points
			r.ack = move(tx.Points)
		}
	case protocol.KindVoid:
		o, ok := m.recs[tx.Original]
		switch {
		case !ok:
			m.pending[tx.Original+"|"+tx.Store+"|"+tx.Terminal+"|"+tx.Member] = true
			r.ack = applied(tx.ID, tx.Member, 0, bal)
		case o.kind != protocol.KindBurn || o.member != tx.Member || o.store != tx.Store || o.terminal != tx.Terminal:
			r.ack = rejected(tx.ID, tx.Member, protocol.CodeOriginalMismatch, bal)
		case o.ack.Status != protocol.StatusApplied:
			r.points = 0
			r.ack = applied(tx.ID, tx.Member, 0, bal)
		default:
			rest := o.points - o.reversed
			o.reversed = o.points
			r.points = rest
			if rest > 0 {
				r.ack = move(rest)
			} else {
				r.ack = applied(tx.ID, tx.Member, 0, bal)
			}
		}
	}
	m.recs[tx.ID] = r
	return r.ack
}

// testRandomWorkload sends a few thousand random transactions — every kind,
// duplicates, voids before their burns, transactions naming the wrong member
// or terminal — and checks every ack, the balances and Verify against the model.
func testRandomWorkload(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	rng := rand.New(rand.NewPCG(2026, 11))
	m := newModel()

	type tillState struct {
		*Till
		sent   []protocol.Transaction
		burns  []protocol.Transaction
		queued []protocol.Transaction // burns whose void was sent first
		n      int
	}
	var tills []*tillState
	for st := range 3 {
		for term := range 2 {
			tills = append(tills, &tillState{Till: NewTill(fmt.Sprintf("s%d", st), fmt.Sprintf("t%d", term), fmt.Sprintf("p%d", st))})
			Register(t, s, tills[len(tills)-1].Till)
		}
	}
	var originals []protocol.Transaction // earns and burns, any till
	member := func() string { return fmt.Sprintf("m%02d", rng.IntN(40)) }

	nextTx := func(ts *tillState) protocol.Transaction {
		ts.n++
		id := fmt.Sprintf("%s-%s-%05d", ts.Store, ts.Terminal, ts.n)
		p := rng.IntN(100)
		switch {
		case p < 38:
			tx := ts.Earn(id, member(), rng.Int64N(200))
			originals = append(originals, tx)
			return tx
		case p < 60:
			tx := ts.Burn(id, member(), 1+rng.Int64N(150))
			originals = append(originals, tx)
			ts.burns = append(ts.burns, tx)
			return tx
		case p < 70 && len(originals) > 0:
			o := originals[rng.IntN(len(originals))]
			mem, orig := o.Member, o.ID
			switch q := rng.IntN(20); {
			case q == 0:
				mem = member()
			case q == 1:
				orig = "ghost-" + id
			case q == 2:
				// Past the return wait: refused.
				return Created(ts.Reverse(id, mem, 1, "ghost-"+id), T0.Add(-ledger.DefaultReturnWaitDays*24*time.Hour))
			}
			return ts.Reverse(id, mem, 1+rng.Int64N(max(1, o.Points)), orig)
		case p < 78 && len(ts.burns) > 0:
			o := ts.burns[rng.IntN(len(ts.burns))]
			mem := o.Member
			if rng.IntN(10) == 0 {
				mem = member()
			}
			return ts.Void(id, mem, o.ID)
		case p < 80 && len(ts.sent) > 0:
			// A void from this till naming another till's burn.
			other := tills[rng.IntN(len(tills))]
			if len(other.burns) == 0 {
				return ts.Earn(id, member(), 1)
			}
			o := other.burns[rng.IntN(len(other.burns))]
			return ts.Void(id, o.Member, o.ID)
		case p < 85:
			// Void first; the burn follows in a later batch.
			ts.n++
			burn := ts.Burn(fmt.Sprintf("%s-%s-%05d", ts.Store, ts.Terminal, ts.n), member(), 1+rng.Int64N(50))
			ts.queued = append(ts.queued, burn)
			return ts.Void(id, burn.Member, burn.ID)
		case p < 90 && len(ts.queued) > 0:
			// The burn whose void went first; the new id goes unused.
			ts.n--
			burn := ts.queued[0]
			ts.queued = ts.queued[1:]
			originals = append(originals, burn)
			ts.burns = append(ts.burns, burn)
			return burn
		case len(ts.sent) > 0:
			// A retry of something this till sent; the new id goes unused.
			ts.n--
			return ts.sent[rng.IntN(len(ts.sent))]
		default:
			return ts.Earn(id, member(), rng.Int64N(200))
		}
	}

	now := T0
	total, applies := 0, 0
	for total < 4000 {
		now = now.Add(time.Duration(1+rng.IntN(1000)) * time.Millisecond)
		var batches []*protocol.Batch
		for range 1 + rng.IntN(4) {
			ts := tills[rng.IntN(len(tills))]
			var txs []protocol.Transaction
			for range 1 + rng.IntN(60) {
				tx := nextTx(ts)
				txs = append(txs, tx)
				ts.sent = append(ts.sent, tx)
			}
			batches = append(batches, ts.Batch(t, txs...))
			total += len(txs)
		}
		acks := Apply(t, s, now, batches...)
		applies++
		m.now = now
		for i, b := range batches {
			for j, tx := range b.Txs {
				want := m.apply(tx)
				if acks[i][j] != want {
					t.Fatalf("Apply %d, batch %d, tx %d (%+v):\n got  %+v\n want %+v", applies, i, j, tx, acks[i][j], want)
				}
			}
		}
	}

	wantBal := map[string]int64{}
	for mem := range m.known {
		wantBal[mem] = m.bal[mem]
	}
	checkInvariants(t, s, wantBal)
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != m.entries {
		t.Errorf("Verify replayed %d entries, the model made %d", rep.Entries, m.entries)
	}
	recs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(m.recs) {
		t.Errorf("Transactions: %d records, the model answered %d ids", len(recs), len(m.recs))
	}
	counts := map[protocol.Status]int{}
	for _, r := range recs {
		w, ok := m.recs[r.ID]
		switch {
		case !ok:
			t.Errorf("record %s was never sent", r.ID)
		case r.Status != w.ack.Status || r.Code != w.ack.Code || r.Balance != w.ack.Balance || r.Reversed != w.reversed:
			t.Errorf("record %+v, model %+v", r, *w)
		}
		counts[r.Status]++
	}
	// The workload must exercise what it claims to.
	codes := map[protocol.Code]bool{}
	for _, r := range m.recs {
		codes[r.ack.Code] = true
	}
	for _, c := range []protocol.Code{protocol.CodeInsufficientPoints, protocol.CodeUnknownOriginal, protocol.CodeOriginalMismatch, protocol.CodeOverReversed, protocol.CodeVoided} {
		if !codes[c] {
			t.Errorf("random workload produced no %s rejection", c)
		}
	}
	t.Logf("%d transactions in %d Applies: %d ids answered (%v), %d journal entries", total, applies, len(recs), counts, rep.Entries)
}

// testConcurrent: Apply from several goroutines while others read; every
// earn lands exactly once. Run it with -race.
func testConcurrent(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	const writers, applies, perBatch = 4, 15, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		tl := NewTill("s1", fmt.Sprintf("t%d", w), "p1")
		Register(t, s, tl)
		batches := make([]*protocol.Batch, applies)
		for i := range batches {
			txs := make([]protocol.Transaction, perBatch)
			for j := range txs {
				txs[j] = tl.Earn(fmt.Sprintf("w%d-%d-%d", w, i, j), fmt.Sprintf("m%d", j%5), 1)
			}
			batches[i] = tl.Batch(t, txs...)
		}
		wg.Go(func() {
			for i, b := range batches {
				acks, err := s.Apply([]*protocol.Batch{b}, T0.Add(time.Duration(i)*time.Second))
				if err != nil {
					errs <- err
					return
				}
				for _, a := range acks[0] {
					if a.Status != protocol.StatusApplied {
						errs <- fmt.Errorf("ack %+v", a)
						return
					}
				}
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, _, err := s.Balance("m1"); err != nil {
				errs <- err
				return
			}
			if _, err := s.Statement("m1", 5); err != nil {
				errs <- err
				return
			}
			if _, err := s.Terminals(); err != nil {
				errs <- err
				return
			}
		}
	})
	// The coalition's readers and upkeep run alongside: every snapshot
	// verifies.
	readers.Go(func() {
		d := ledger.DayOf(T0)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.Member("m2", T0); err != nil {
				errs <- err
				return
			}
			if _, err := s.Settlement(d-1, d+1); err != nil {
				errs <- err
				return
			}
			if _, err := s.Flags(); err != nil {
				errs <- err
				return
			}
			if rep, err := s.Verify(); err != nil || !rep.OK() {
				errs <- fmt.Errorf("Verify during Applies: %+v, %v", rep, err)
				return
			}
			if _, err := s.ExpireHolds(T0.Add(time.Duration(i) * time.Second)); err != nil {
				errs <- err
				return
			}
			if _, err := s.Expire(T0); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	each := int64(writers * applies * perBatch / 5)
	checkInvariants(t, s, map[string]int64{"m0": each, "m1": each, "m2": each, "m3": each, "m4": each})
	terms, err := s.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range terms {
		if tm.Applied != applies*perBatch || tm.LastSeq != applies*perBatch {
			t.Errorf("terminal %+v", tm)
		}
	}
}
