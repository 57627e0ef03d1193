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

// line is a settlement line without the partner's name repeated in tests.
func line(partner, restates string, issued, redeemed, expired, issuedValue, redeemedValue int64) ledger.SettlementLine {
	return ledger.SettlementLine{Partner: partner, Restates: restates, Issued: issued, Redeemed: redeemed, Expired: expired,
		IssuedValue: issuedValue, RedeemedValue: redeemedValue, Net: issuedValue - redeemedValue}
}

func fmtLines(lines []ledger.SettlementLine) string {
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "\n      %+v", l)
	}
	return sb.String()
}

// checkSettlement fails the test unless Settlement(from, to) has the lines
// and total given and says closed.
func checkSettlement(t *testing.T, s ledger.Store, from, to ledger.Day, closed bool, total ledger.SettlementLine, lines ...ledger.SettlementLine) ledger.Settlement {
	t.Helper()
	rep, err := s.Settlement(from, to)
	if err != nil {
		t.Fatalf("Settlement(%s, %s): %v", from, to, err)
	}
	total.Partner = "TOTAL"
	c, _ := s.Coalition()
	if rep.From != from || rep.To != to || rep.Currency != c.Currency || rep.PointValue != c.PointValue || rep.Closed != closed {
		t.Errorf("Settlement(%s, %s) header = from %s to %s %s %s closed %v", from, to, rep.From, rep.To, rep.Currency, rep.PointValue, rep.Closed)
	}
	if !slices.Equal(rep.Lines, lines) || rep.Total != total {
		t.Errorf("Settlement(%s, %s):\n got  %s\n      total %+v\n want %s\n      total %+v", from, to, fmtLines(rep.Lines), rep.Total, fmtLines(lines), total)
	}
	return rep
}

// testSettlement: per partner issued (earns less their reversals) and
// redeemed (burns and captures less reversals and voids), valued at the
// point value, net, total; by accounting day.
func testSettlement(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t1", "p2")
	Register(t, s, a, b)
	d := ledger.DayOf(T0)
	expect(t, s, T0, a, txs(a.Earn("e1", "m1", 100), a.Earn("e2", "m1", 50), a.Earn("e3", "m2", 7)),
		applied("e1", "m1", 100, 100), applied("e2", "m1", 50, 150), applied("e3", "m2", 7, 7))
	expect(t, s, T0, b, txs(b.Burn("b1", "m1", 30), b.Hold("h1", "m1", 40), b.Capture("c1", "m1", 25, "h1"), b.Burn("b2", "m2", 7)),
		applied("b1", "m1", 30, 120), applied("h1", "m1", 40, 80), applied("c1", "m1", 25, 95), applied("b2", "m2", 7, 0))
	expect(t, s, T0, a, txs(a.Reverse("r1", "m1", 20, "e2")), applied("r1", "m1", 20, 75))
	expect(t, s, T0, b, txs(b.Reverse("r2", "m1", 10, "b1"), b.Void("v2", "m2", "b2"), b.Reverse("r3", "m1", 5, "h1")),
		applied("r2", "m1", 10, 85), applied("v2", "m2", 7, 7), applied("r3", "m1", 5, 90))
	// p1 issued 100 + 50 + 7 − 20 = 137; p2 redeemed 30 + 25 + 7 − 10 − 7 − 5 = 40.
	checkSettlement(t, s, d, d+1, false, line("", "", 137, 40, 0, 137, 40),
		line("p1", "", 137, 0, 0, 137, 0), line("p2", "", 0, 40, 0, 0, 40))
	checkSettlement(t, s, d-30, d+30, false, line("", "", 137, 40, 0, 137, 40),
		line("p1", "", 137, 0, 0, 137, 0), line("p2", "", 0, 40, 0, 0, 40))
	checkSettlement(t, s, d+1, d+2, false, line("", "", 0, 0, 0, 0, 0),
		line("p1", "", 0, 0, 0, 0, 0), line("p2", "", 0, 0, 0, 0, 0))
	_, err := s.Settlement(d, d)
	wantCode(t, "Settlement of an empty range", err, protocol.CodeInvalidTime)
	checkInvariants(t, s, map[string]int64{"m1": 90, "m2": 7})
}

// testSettlementValues: values at a fractional point value, rounded half
// away from zero on each line's points (not per transaction, and the total
// adds up the lines), by the day the till created each transaction.
func testSettlementValues(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	SetCoalition(t, s, func(c *ledger.Coalition) { c.PointValue = "0.005" }) // half a cent
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t1", "p2")
	Register(t, s, a, b)
	d := ledger.DayOf(T0)
	yesterday := T0.Add(-24 * time.Hour)
	expect(t, s, T0, a, txs(Created(a.Earn("e1", "m1", 130), yesterday), Created(a.Earn("e2", "m1", 1), yesterday)),
		applied("e1", "m1", 130, 130), applied("e2", "m1", 1, 131))
	expect(t, s, T0, b, txs(Created(b.Earn("e3", "m2", 1), yesterday)), applied("e3", "m2", 1, 1))
	// Yesterday: p1 131 points = 65.5 cents → 66 (not 65 + 1 rounded per
	// earn); p2 1 point = 0.5 → 1; the total adds the lines: 67.
	checkSettlement(t, s, d-1, d, false, line("", "", 132, 0, 0, 67, 0),
		line("p1", "", 131, 0, 0, 66, 0), line("p2", "", 1, 0, 0, 1, 0))
	// Today: p1 takes 21 back (−10.5 → −11), p2 redeems 21 (10.5 → 11).
	expect(t, s, T0, a, txs(a.Reverse("r1", "m1", 21, "e1")), applied("r1", "m1", 21, 110))
	expect(t, s, T0, b, txs(b.Burn("b1", "m1", 21)), applied("b1", "m1", 21, 89))
	checkSettlement(t, s, d, d+1, false, line("", "", -21, 21, 0, -11, 11),
		line("p1", "", -21, 0, 0, -11, 0), line("p2", "", 0, 21, 0, 0, 11))
	// Both days: p1 110 → 55; p2 issued 1 → 1, redeemed 21 → 11.
	checkSettlement(t, s, d-1, d+1, false, line("", "", 111, 21, 0, 56, 11),
		line("p1", "", 110, 0, 0, 55, 0), line("p2", "", 1, 21, 0, 1, 11))
	// A transaction created in the future (a till's clock ahead) settles on
	// the day the hub booked it.
	expect(t, s, T0, a, txs(Created(a.Earn("e4", "m1", 2), T0.Add(48*time.Hour))), applied("e4", "m1", 2, 91))
	checkSettlement(t, s, d, d+1, false, line("", "", -19, 21, 0, -10, 11),
		line("p1", "", -19, 0, 0, -10, 0), line("p2", "", 0, 21, 0, 0, 11))
	checkInvariants(t, s, map[string]int64{"m1": 91, "m2": 1})
}

// testClosePeriod: closing a period freezes its report; late transactions
// created in it are booked as restatements in the open period; periods
// close in order, without gaps, and not before they are over.
func testClosePeriod(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a, b := NewTill("s1", "t1", "p1"), NewTill("s2", "t1", "p2")
	Register(t, s, a, b)
	nov1, d := day(t, "2026-11-01"), ledger.DayOf(T0) // 2026-11-23
	expect(t, s, T0, a, txs(Created(a.Earn("e1", "m1", 100), time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))), applied("e1", "m1", 100, 100))
	expect(t, s, T0, b, txs(Created(b.Earn("e2", "m2", 40), time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)), b.Burn("b1", "m1", 30)),
		applied("e2", "m2", 40, 40), applied("b1", "m1", 30, 70))

	_, err := s.ClosePeriod(nov1, d+1, T0)
	wantCode(t, "closing a period that is not over", err, protocol.CodeInvalidTime)
	_, err = s.ClosePeriod(d, d, T0)
	wantCode(t, "closing an empty period", err, protocol.CodeInvalidTime)

	// Days outside 2000..2099 are not days the ledger can record.
	_, err = s.ClosePeriod(day(t, "2000-01-01")-1, d, T0)
	wantCode(t, "closing a period from 1999", err, protocol.CodeInvalidTime)
	_, err = s.ClosePeriod(0, 1, T0)
	wantCode(t, "closing a period of 1970", err, protocol.CodeInvalidTime)
	if ps, err := s.Periods(); err != nil || len(ps) != 0 {
		t.Errorf("Periods after refused closes = %+v, %v", ps, err)
	}

	// [11-01, 11-23) is over at T0 (11-23 10:00); b1 (created today) is not in it.
	head := CheckVerify(t, s).ChainHead
	p1, err := s.ClosePeriod(nov1, d, T0)
	if err != nil {
		t.Fatalf("ClosePeriod: %v", err)
	}
	id1 := ledger.PeriodID(nov1, d)
	if id1 != "2026-11-01..2026-11-23" {
		t.Errorf("PeriodID = %q", id1)
	}
	wantLines := []ledger.SettlementLine{line("p1", "", 100, 0, 0, 100, 0), line("p2", "", 40, 0, 0, 40, 0)}
	if p1.From != nov1 || p1.To != d || !p1.ClosedAt.Equal(T0) || p1.JournalSeq != 3 || p1.ChainHash != head || !slices.Equal(p1.Lines, wantLines) {
		t.Errorf("ClosePeriod = %+v; want lines %s, journal seq 3, chain hash %s", p1, fmtLines(wantLines), head)
	}
	if ps, err := s.Periods(); err != nil || len(ps) != 1 || ps[0].From != nov1 || ps[0].To != d {
		t.Errorf("Periods = %+v, %v", ps, err)
	}
	_, err = s.ClosePeriod(d+1, d+2, T0.Add(72*time.Hour))
	wantCode(t, "closing with a gap after the last period", err, protocol.CodePeriodClosed)
	_, err = s.ClosePeriod(nov1+5, d+1, T0.Add(72*time.Hour))
	wantCode(t, "closing a period overlapping the last", err, protocol.CodePeriodClosed)

	// Late arrivals created in the closed period, booked the next day.
	now := T0.Add(24 * time.Hour)
	expect(t, s, now, a, txs(Created(a.Earn("e3", "m1", 70), time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)), a.Earn("e4", "m1", 5)),
		applied("e3", "m1", 70, 140), applied("e4", "m1", 5, 145))
	expect(t, s, now, b, txs(Created(b.OfflineBurn("b2", "m2", 15), time.Date(2026, 11, 12, 12, 0, 0, 0, time.UTC))),
		applied("b2", "m2", 15, 25))
	st, err := s.Statement("m1", 2)
	if err != nil || len(st) != 2 || st[1].TxID != "e3" || st[1].Day != d+1 || st[1].Restates != id1 || st[0].TxID != "e4" || st[0].Day != d || st[0].Restates != "" {
		t.Errorf("Statement: %+v, %v; want e3 on %s restating %s, e4 on %s", st, err, d+1, id1, d)
	}
	// The closed period's report has not changed.
	checkSettlement(t, s, nov1, d, true, line("", "", 140, 0, 0, 140, 0), wantLines...)
	// The open period shows the late ones as restatements of the closed one.
	restated := []ledger.SettlementLine{
		line("p1", "", 5, 0, 0, 5, 0), line("p1", id1, 70, 0, 0, 70, 0),
		line("p2", "", 0, 30, 0, 0, 30), line("p2", id1, 0, 15, 0, 0, 15),
	}
	checkSettlement(t, s, d, d+2, false, line("", "", 75, 45, 0, 75, 45), restated...)
	CheckVerify(t, s)

	// The next period closes with its restatement lines, and a later
	// arrival in either closed period is restated in the open one.
	p2, err := s.ClosePeriod(d, d+2, now.Add(24*time.Hour))
	if err != nil {
		t.Fatalf("ClosePeriod of the next period: %v", err)
	}
	if !slices.Equal(p2.Lines, restated) {
		t.Errorf("second period's lines: %s\nwant %s", fmtLines(p2.Lines), fmtLines(restated))
	}
	id2 := ledger.PeriodID(d, d+2)
	later := now.Add(48 * time.Hour) // d+3
	expect(t, s, later, a, txs(Created(a.Earn("e5", "m1", 1), time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)), Created(a.Earn("e6", "m1", 2), now)),
		applied("e5", "m1", 1, 146), applied("e6", "m1", 2, 148))
	checkSettlement(t, s, nov1, d, true, line("", "", 140, 0, 0, 140, 0), wantLines...)
	checkSettlement(t, s, d, d+2, true, line("", "", 75, 45, 0, 75, 45), restated...)
	checkSettlement(t, s, d+2, d+4, false, line("", "", 3, 0, 0, 3, 0),
		line("p1", "", 0, 0, 0, 0, 0), line("p1", id1, 1, 0, 0, 1, 0), line("p1", id2, 2, 0, 0, 2, 0), line("p2", "", 0, 0, 0, 0, 0))
	if ps, err := s.Periods(); err != nil || len(ps) != 2 || ps[1].JournalSeq != 6 {
		t.Errorf("Periods = %+v, %v", ps, err)
	}
	checkInvariants(t, s, map[string]int64{"m1": 148, "m2": 25})
}

// testClosedPeriodStays: a closed period's report does not change when the
// coalition changes afterwards — a new point value, a new partner — and a
// late arrival from before the first closed period is a restatement too.
func testClosedPeriodStays(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	nov1, d := day(t, "2026-11-01"), ledger.DayOf(T0)
	expect(t, s, T0, a, txs(Created(a.Earn("e1", "m1", 101), time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))), applied("e1", "m1", 101, 101))
	p, err := s.ClosePeriod(nov1, d, T0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.SettlementLine{line("p1", "", 101, 0, 0, 101, 0)}
	if !slices.Equal(p.Lines, want) {
		t.Fatalf("closed lines %s, want %s", fmtLines(p.Lines), fmtLines(want))
	}
	// From next period on a point is worth half a cent, and p2 joins.
	SetCoalition(t, s, func(c *ledger.Coalition) { c.PointValue = "0.005" })
	b := NewTill("s2", "t1", "p2")
	Register(t, s, b)
	rep, err := s.Settlement(nov1, d)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Closed || !slices.Equal(rep.Lines, p.Lines) || rep.Total.IssuedValue != 101 {
		t.Errorf("the closed period's report changed:\n got  %s\n      total %+v\n want %s", fmtLines(rep.Lines), rep.Total, fmtLines(p.Lines))
	}
	// Created before the first closed period, arriving now.
	now := T0.Add(24 * time.Hour)
	expect(t, s, now, a, txs(Created(a.Earn("e2", "m1", 10), time.Date(2026, 10, 20, 9, 0, 0, 0, time.UTC))), applied("e2", "m1", 10, 111))
	st, err := s.Statement("m1", 1)
	if err != nil || len(st) != 1 || st[0].Day != d+1 || st[0].Restates != "..2026-11-01" {
		t.Errorf("an arrival from before the first closed period: %+v, %v", st, err)
	}
	checkSettlement(t, s, d, d+2, false, line("", "", 10, 0, 0, 5, 0),
		line("p1", "", 0, 0, 0, 0, 0), line("p1", "..2026-11-01", 10, 0, 0, 5, 0), line("p2", "", 0, 0, 0, 0, 0))
	checkInvariants(t, s, map[string]int64{"m1": 111})
}
