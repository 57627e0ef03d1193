package ledgertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testExpiry: lots expire at the start of the month ExpiryMonths+1 after the
// month they were earned in; burns take the oldest lots first; an expiry
// run never expires points active holds reserve (the oldest serve holds
// first) and posts nothing when run again.
func testExpiry(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	utc := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	aug, sep, oct := utc(2026, 8, 15), utc(2026, 9, 20), utc(2026, 10, 5)
	expect(t, s, T0, a, txs(
		Created(a.Earn("e1", "m1", 100), aug), Created(a.Earn("e2", "m1", 100), sep), Created(a.Earn("e3", "m1", 100), oct),
		Created(a.Earn("f1", "m2", 100), aug), Created(a.Earn("f2", "m2", 100), sep), Created(a.Earn("f3", "m2", 100), oct),
	),
		applied("e1", "m1", 100, 100), applied("e2", "m1", 100, 200), applied("e3", "m1", 100, 300),
		applied("f1", "m2", 100, 100), applied("f2", "m2", 100, 200), applied("f3", "m2", 100, 300))
	// No expiry configured: nothing ever expires.
	if rep, err := s.Expire(T0.AddDate(5, 0, 0)); err != nil || rep.Points != 0 || rep.Lots != 0 {
		t.Errorf("Expire without expiry months = %+v, %v", rep, err)
	}

	SetCoalition(t, s, func(c *ledger.Coalition) { c.ExpiryMonths = 1 })
	v := checkMember(t, s, "m1", T0, 300, 0, "e1:100/100 e2:100/100 e3:100/100")
	for i, want := range []time.Time{time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} {
		if l := v.Lots[i]; !l.ExpiresAt.Equal(want) || !l.EarnedAt.Equal([]time.Time{aug, sep, oct}[i]) {
			t.Errorf("lot %s earned %v expires %v, want expiry %v", l.ID, l.EarnedAt, l.ExpiresAt, want)
		}
	}
	// Oldest first: m2's burn empties f1 and takes half of f2.
	expect(t, s, T0, a, txs(a.Burn("g1", "m2", 150), a.Hold("h1", "m1", 150)),
		applied("g1", "m2", 150, 150), applied("h1", "m1", 150, 150))
	checkMember(t, s, "m2", T0, 150, 0, "f2:50/100 f3:100/100")

	expire := func(asOf time.Time, lots, members int, points int64) {
		t.Helper()
		rep, err := s.Expire(asOf)
		if err != nil {
			t.Fatalf("Expire(%v): %v", asOf, err)
		}
		if rep.Lots != lots || rep.Members != members || rep.Points != points || !rep.AsOf.Equal(asOf) {
			t.Errorf("Expire(%v) = %+v; want %d lots of %d members, %d points", asOf, rep, lots, members, points)
		}
	}
	expire(time.Date(2026, 9, 30, 23, 59, 59, 0, time.UTC), 0, 0, 0) // e1 expires at 10-01 00:00
	// e1 and e2 are due, but the hold reserves 150 of them: e1 whole and 50
	// of e2. m2's f2 has 50 left; f1 is empty.
	expire(T0, 2, 2, 100)
	checkMember(t, s, "m1", T0, 250, 150, "e1:100/100 e2:50/100 e3:100/100")
	checkMember(t, s, "m2", T0, 100, 0, "f3:100/100")
	st, err := s.Statement("m1", 1)
	if err != nil || len(st) != 1 {
		t.Fatalf("Statement: %+v, %v", st, err)
	}
	e := st[0]
	if e.Kind != "expire" || e.TxID != "" || e.Lot != "e2" || e.Member != "m1" || e.Partner != "p1" || e.Points != -50 ||
		len(e.Postings) != 2 || e.Postings[0] != (ledger.Posting{Account: "member/m1", Delta: -50}) ||
		e.Postings[1] != (ledger.Posting{Account: "partner/p1/expired", Delta: 50}) ||
		!e.CreatedAt.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || e.Day != day(t, "2026-11-01") {
		t.Errorf("expiry entry = %+v", e)
	}
	expire(T0, 0, 0, 0) // again: nothing

	// Once the hold has lapsed, its reserve expires too.
	after := T0.Add(20 * time.Minute)
	expire(after, 2, 1, 150)
	checkMember(t, s, "m1", after, 100, 0, "e3:100/100")
	expire(after, 0, 0, 0)
	expire(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 2, 2, 200)
	checkInvariants(t, s, map[string]int64{"m1": 0, "m2": 0})

	rep, err := s.Settlement(day(t, "2026-08-01"), day(t, "2027-01-01"))
	if err != nil {
		t.Fatal(err)
	}
	if tot := rep.Total; tot.Issued != 600 || tot.Redeemed != 150 || tot.Expired != 450 {
		t.Errorf("Settlement total = %+v; want 600 issued, 150 redeemed, 450 expired", tot)
	}
}

// testExpiryManyLots: an expiry run over more lots than one commit takes
// expires each exactly once and spares what holds reserve.
func testExpiryManyLots(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	SetCoalition(t, s, func(c *ledger.Coalition) { c.ExpiryMonths = 1 })
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	const perMember, members = 1000, 3
	old := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]int64{}
	for m := range members {
		mem := fmt.Sprintf("m%d", m)
		for start := 0; start < perMember; start += protocol.MaxBatchTxs {
			var batch []protocol.Transaction
			for i := start; i < min(start+protocol.MaxBatchTxs, perMember); i++ {
				batch = append(batch, Created(a.Earn(fmt.Sprintf("%s-%04d", mem, i), mem, 2), old.Add(time.Duration(i)*time.Minute)))
			}
			send(t, s, T0, a, batch...)
		}
		want[mem] = 2 * perMember
	}
	// m1 holds 501 points: the oldest 251 lots serve it (the last in part).
	expect(t, s, T0, a, txs(a.Hold("h1", "m1", 501)), applied("h1", "m1", 501, 2*perMember-501))
	rep, err := s.Expire(T0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Points != members*2*perMember-501 || rep.Members != members || rep.Lots != members*perMember-250 {
		t.Errorf("Expire = %+v; want %d points of %d members from %d lots", rep, members*2*perMember-501, members, members*perMember-250)
	}
	if rep, err := s.Expire(T0); err != nil || rep.Points != 0 {
		t.Errorf("Expire again = %+v, %v", rep, err)
	}
	v := member(t, s, "m1", T0)
	if v.Balance != 501 || v.Held != 501 || v.Available != 0 {
		t.Errorf("Member(m1) = %+v", v)
	}
	if len(v.Lots) != 251 || v.Lots[250].Remaining != 1 || v.Lots[0].ID != "m1-0000" {
		t.Errorf("m1 keeps %d lots (last %+v); want the 251 oldest, the last with 1 point", len(v.Lots), v.Lots[len(v.Lots)-1])
	}
	want["m0"], want["m1"], want["m2"] = 0, 501, 0
	checkInvariants(t, s, want)
}
