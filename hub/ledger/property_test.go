package ledger_test

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// propChecks is how many random histories TestLedgerProperties tries
// unless -rapid.checks says otherwise: about 12 s with -race. For a deeper
// run: go test ./hub/ledger -run TestLedgerProperties -rapid.checks=2000 -rapid.steps=60
// (a few minutes).
const propChecks = 60

// TestLedgerProperties runs random histories against one bbolt store —
// earns with random amounts and lines at three partners, online and offline
// burns, holds, captures, voids (also ahead of their originals), partial
// returns by amount and by points, retries, hold lapses, month-by-month
// expiry runs and settlement periods closed along the way, alone or several
// in one Apply — and after every step compares the store with a model of
// the ledger's rules (every ack, every record, every member's balance,
// holds, lots and flag) and checks the invariants: Verify passes; every
// entry balances and all accounts sum to zero; lots add up to max(balance,
// 0); settlement agrees with the journal and with the records; closed
// periods report what they closed with and late entries restate them;
// nobody is below zero but through an offline burn, a capture after its
// hold lapsed or a return of spent (or held) points.
func TestLedgerProperties(t *testing.T) {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if !explicit {
		if f := flag.Lookup("rapid.checks"); f != nil {
			old := f.Value.String()
			f.Value.Set(fmt.Sprint(propChecks))
			defer f.Value.Set(old)
		}
	}
	seen := map[string]int{}
	histories := func() {
		rapid.Check(t, func(rt *rapid.T) {
			s, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
			if err != nil {
				rt.Fatalf("OpenBolt: %v", err)
			}
			rt.Cleanup(func() { s.Close() })
			h := newHistory(rt, s)
			h.seen = seen
			rt.Repeat(map[string]func(*rapid.T){
				"": h.check,
				// Sending is what most steps do.
				"one":    func(rt *rapid.T) { h.send(rt, 1) },
				"one'":   func(rt *rapid.T) { h.send(rt, 1) },
				"group":  func(rt *rapid.T) { h.send(rt, rapid.IntRange(2, 8).Draw(rt, "txs")) },
				"group'": func(rt *rapid.T) { h.send(rt, rapid.IntRange(2, 8).Draw(rt, "txs")) },
				"retry":  h.retry,
				"lapse":  h.lapse,
				"month":  h.month,
				"close":  h.close,
			})
		})
	}
	// The histories must reach what they claim to: every outcome below at
	// least once in a default-sized run. The histories are random, and a
	// rare outcome (a return of points already spent needs an earn, a burn
	// of it and the earn's return, in that order) is now and then missed by
	// a whole run; such a run tries as many histories again, twice at most,
	// before it says so.
	required := []string{
		"earn applied", "burn applied", "burn rejected insufficient_points", "burn rejected unknown_member", "burn rejected voided",
		"offline burn applied", "hold applied", "hold rejected insufficient_points", "hold rejected voided",
		"capture applied", "capture after lapse applied", "capture rejected exceeds_hold", "capture rejected hold_settled",
		"capture rejected original_mismatch", "void applied", "void rejected hold_settled", "void rejected original_mismatch",
		"return applied", "return rejected over_reversed", "reverse applied", "reverse rejected over_reversed",
		"reverse rejected original_mismatch", "reverse rejected unknown_original", "duplicate", "expired", "swept",
		"flag overdraft", "flag return_after_spend", "lot refilled", "closed", "restated",
	}
	missing := func() []string {
		var out []string
		for _, k := range required {
			if seen[k] == 0 {
				out = append(out, k)
			}
		}
		return out
	}
	defaultSized := func() bool {
		f := flag.Lookup("rapid.checks")
		return f != nil && f.Value.String() == fmt.Sprint(propChecks)
	}
	histories()
	for round := 2; round <= 3 && !t.Failed() && defaultSized() && len(missing()) > 0; round++ {
		t.Logf("round %d: %d more histories, none having reached %q", round, propChecks, missing())
		histories()
	}
	if t.Failed() {
		return
	}
	var outcomes []string
	for k, n := range seen {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(outcomes)
	t.Logf("outcomes: %s", strings.Join(outcomes, ", "))
	if !defaultSized() {
		return
	}
	for _, k := range missing() {
		t.Errorf("no history reached %q", k)
	}
}

// The coalition of the histories.
var (
	propStart    = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	propPartners = []string{"p0", "p1", "p2"}
	propMembers  = []string{"m0", "m1", "m2", "m3", "m4"}
)

func propCoalition() ledger.Coalition {
	return ledger.Coalition{Name: "Props", Currency: "EUR", PointValue: "0.01", ExpiryMonths: 2, HoldMinutes: 15}
}

// propRules are the partners' rules: different rates and roundings, line
// multipliers, a campaign, a cross-brand bonus, and a second version of
// p1's rules taking effect during the history.
func propRules() []protocol.RuleSet {
	return []protocol.RuleSet{
		{Partner: "p0", EffectiveFrom: propStart.AddDate(-1, 0, 0), Currency: "EUR", Points: 1, Per: 100},
		{Partner: "p1", EffectiveFrom: propStart.AddDate(-1, 0, 0), Currency: "EUR", Points: 3, Per: 200, Rounding: protocol.RoundNearest,
			Categories: map[string]protocol.Multiplier{"food": "2", "tobacco": "0"}, SKUs: map[string]protocol.Multiplier{"sku-1": "1.5"}},
		{Partner: "p2", EffectiveFrom: propStart.AddDate(-1, 0, 0), Currency: "EUR", Points: 1, Per: 100, Rounding: protocol.RoundUp, NewPartnerBonus: 10,
			Campaigns: []protocol.Campaign{{ID: "spring", From: propStart, To: propStart.AddDate(0, 2, 0), Multiplier: "2", Bonus: 3, MinAmount: 2000}}},
		{Partner: "p1", EffectiveFrom: propStart.AddDate(0, 1, 10), Currency: "EUR", Points: 1, Per: 100, Rounding: protocol.RoundDown,
			Categories: map[string]protocol.Multiplier{"food": "0.5"}},
	}
}

// propTill is one terminal of the history.
type propTill struct {
	store, terminal, partner string
	seq                      uint64
}

// history is one random history: the store under test, the model of what
// it must say, and what was sent so far (to pick originals from).
type history struct {
	s     *ledger.BoltStore
	c     ledger.Coalition
	now   time.Time
	tills []*propTill
	m     *model
	n     int // ids issued

	sent      []protocol.Transaction // every transaction sent, in order
	originals []protocol.Transaction // earns, burns, holds, captures
	redeems   []protocol.Transaction // burns and holds
	holds     []protocol.Transaction
	voidedIDs []protocol.Transaction // voids sent ahead of their (future) original

	seen map[string]int // outcomes reached, for the coverage check

	periods []ledger.Period // closed so far
}

func newHistory(rt *rapid.T, s *ledger.BoltStore) *history {
	h := &history{s: s, c: propCoalition(), now: propStart}
	admin := propStart.Add(-time.Hour)
	if err := s.SetCoalition(h.c); err != nil {
		rt.Fatalf("SetCoalition: %v", err)
	}
	rules := map[string][]protocol.RuleSet{}
	for i, p := range propPartners {
		if err := s.PutPartner(ledger.Partner{ID: p}, admin); err != nil {
			rt.Fatalf("PutPartner: %v", err)
		}
		store := fmt.Sprintf("s%d", i)
		if err := s.PutStore(ledger.StoreInfo{ID: store, Partner: p}, admin); err != nil {
			rt.Fatalf("PutStore: %v", err)
		}
		for _, term := range []string{"t0", "t1"} {
			h.tills = append(h.tills, &propTill{store: store, terminal: term, partner: p})
		}
	}
	for _, rs := range propRules() {
		v, err := s.AddRules(rs, admin)
		if err != nil {
			rt.Fatalf("AddRules %+v: %v", rs, err)
		}
		rules[v.Partner] = append(rules[v.Partner], v)
	}
	h.m = newModel(h.c, rules)
	return h
}

func (h *history) id(prefix string) string {
	h.n++
	return fmt.Sprintf("%s%03d", prefix, h.n)
}

// tx starts a transaction of till tl.
func (h *history) tx(tl *propTill, kind protocol.Kind, id, member string) protocol.Transaction {
	tl.seq++
	return protocol.Transaction{ID: id, Store: tl.store, Terminal: tl.terminal, Partner: tl.partner, Member: member,
		Kind: kind, Seq: tl.seq, CreatedAt: h.now}
}

func (h *history) tillOf(tx protocol.Transaction) *propTill {
	for _, tl := range h.tills {
		if tl.store == tx.Store && tl.terminal == tx.Terminal {
			return tl
		}
	}
	panic("no till " + tx.Store + "/" + tx.Terminal)
}

func withEUR(tx protocol.Transaction, amount int64) protocol.Transaction {
	tx.Amount = amount
	if amount != 0 {
		tx.Currency = "EUR"
	}
	return tx
}

// draw makes one random transaction.
func (h *history) draw(rt *rapid.T) protocol.Transaction {
	tl := rapid.SampledFrom(h.tills).Draw(rt, "till")
	mem := rapid.SampledFrom(propMembers).Draw(rt, "member")
	// pick picks from list, mostly among the transactions the ledger applied.
	pick := func(list []protocol.Transaction, what string) (protocol.Transaction, bool) {
		if len(list) == 0 {
			return protocol.Transaction{}, false
		}
		ok := slices.DeleteFunc(slices.Clone(list), func(tx protocol.Transaction) bool {
			r := h.m.recs[tx.ID]
			return r == nil || r.status != protocol.StatusApplied || r.kind != tx.Kind
		})
		if len(ok) > 0 && rapid.IntRange(0, 4).Draw(rt, "any") > 0 {
			list = ok
		}
		return rapid.SampledFrom(list).Draw(rt, what), true
	}
	// Mostly the original's own till and member; sometimes not.
	own := func(o protocol.Transaction) (*propTill, string) {
		tl, mem := h.tillOf(o), o.Member
		if rapid.IntRange(0, 9).Draw(rt, "stranger") == 0 {
			tl = rapid.SampledFrom(h.tills).Draw(rt, "other till")
		}
		if rapid.IntRange(0, 9).Draw(rt, "other member") == 0 {
			mem = rapid.SampledFrom(propMembers).Draw(rt, "other member id")
		}
		return tl, mem
	}
	// A return is made at a store of the sale's partner.
	partnerTill := func(o protocol.Transaction) *propTill {
		if rapid.IntRange(0, 9).Draw(rt, "other partner") == 0 {
			return rapid.SampledFrom(h.tills).Draw(rt, "return till")
		}
		tl := h.tillOf(o)
		return h.tills[(slices.Index(h.tills, tl)/2)*2+rapid.IntRange(0, 1).Draw(rt, "return terminal")]
	}

	switch kind := rapid.SampledFrom([]string{"earn", "earn", "earn", "burn", "offline", "hold", "hold", "capture", "capture", "void", "voidAhead", "return", "reverse"}).Draw(rt, "kind"); kind {
	case "earn":
		tx := withEUR(h.tx(tl, protocol.KindEarn, h.id("e"), mem), rapid.Int64Range(1, 30000).Draw(rt, "amount"))
		tx.Points = rapid.Int64Range(0, 500).Draw(rt, "quote")
		if n := rapid.IntRange(0, 3).Draw(rt, "lines"); n > 0 {
			left := tx.Amount
			for i := range n {
				amt := left
				if i < n-1 {
					amt = rapid.Int64Range(0, left).Draw(rt, "line amount")
				}
				left -= amt
				tx.Lines = append(tx.Lines, protocol.Line{
					Category: rapid.SampledFrom([]string{"", "food", "tobacco"}).Draw(rt, "category"),
					SKU:      rapid.SampledFrom([]string{"", "", "sku-1"}).Draw(rt, "sku"),
					Amount:   amt,
				})
			}
		}
		switch rapid.IntRange(0, 9).Draw(rt, "created") {
		case 0, 1: // synced late
			tx.CreatedAt = h.now.Add(-time.Duration(rapid.Int64Range(1, 70*24*3600).Draw(rt, "late s")) * time.Second)
		case 2: // the till's clock is ahead
			tx.CreatedAt = h.now.Add(time.Duration(rapid.Int64Range(1, 3600).Draw(rt, "ahead s")) * time.Second)
		default:
			tx.CreatedAt = h.now.Add(-time.Duration(rapid.Int64Range(0, 3600).Draw(rt, "ago s")) * time.Second)
		}
		return tx
	case "burn", "offline", "hold":
		k := protocol.KindBurn
		if kind == "hold" {
			k = protocol.KindHold
		}
		id := h.id("b")
		if v, ok := pick(h.voidedIDs, "voided id"); ok && rapid.Bool().Draw(rt, "use voided id") {
			// The original a void went ahead of (or another till's
			// transaction with that id).
			id, tl, mem = v.Original, h.tillOf(v), v.Member
			if rapid.IntRange(0, 4).Draw(rt, "unbarred") == 0 {
				mem = rapid.SampledFrom(propMembers).Draw(rt, "unbarred member")
			}
		}
		tx := withEUR(h.tx(tl, k, id, mem), rapid.SampledFrom([]int64{0, 0, 500, 1999, 7000}).Draw(rt, "value"))
		tx.Points = rapid.Int64Range(1, 150).Draw(rt, "points")
		tx.Offline = kind == "offline"
		return tx
	case "capture":
		list := h.holds
		if held := slices.DeleteFunc(slices.Clone(list), func(tx protocol.Transaction) bool {
			r := h.m.recs[tx.ID]
			return r == nil || r.holdState != ledger.HoldHeld || !r.holdExpires.After(h.now)
		}); len(held) > 0 && rapid.Bool().Draw(rt, "held") {
			list = held // mostly holds still reserving points
		}
		o, ok := pick(list, "hold")
		if !ok {
			break
		}
		tl, mem := own(o)
		tx := withEUR(h.tx(tl, protocol.KindCapture, h.id("c"), mem), rapid.SampledFrom([]int64{0, 0, 1000}).Draw(rt, "value"))
		tx.Original = o.ID
		tx.Points = rapid.Int64Range(1, o.Points+5).Draw(rt, "points")
		return tx
	case "void":
		o, ok := pick(h.redeems, "burn or hold")
		if !ok {
			break
		}
		tl, mem := own(o)
		tx := h.tx(tl, protocol.KindVoid, h.id("v"), mem)
		tx.Original = o.ID
		return tx
	case "voidAhead":
		tx := h.tx(tl, protocol.KindVoid, h.id("v"), mem)
		tx.Original = h.id("b")
		return tx
	case "return", "reverse":
		o, ok := pick(h.originals, "original")
		if !ok {
			break
		}
		rtl := partnerTill(o)
		_, mem := own(o)
		tx := h.tx(rtl, protocol.KindReverse, h.id("r"), mem)
		tx.Original = o.ID
		if kind == "return" {
			tx = withEUR(tx, rapid.Int64Range(1, max(o.Amount, 100)).Draw(rt, "returned"))
			tx.Points = rapid.Int64Range(0, 50).Draw(rt, "quote")
		} else {
			tx.Points = rapid.Int64Range(1, max(o.Points, 1)+10).Draw(rt, "points")
		}
		return tx
	}
	// Nothing to name yet: an earn.
	return withEUR(h.tx(tl, protocol.KindEarn, h.id("e"), mem), rapid.Int64Range(1, 30000).Draw(rt, "amount"))
}

// send draws n transactions and applies them in one Apply, one batch per till.
func (h *history) send(rt *rapid.T, n int) {
	h.now = h.now.Add(time.Duration(rapid.IntRange(1, 60).Draw(rt, "tick s")) * time.Second)
	var txs []protocol.Transaction
	for range n {
		tx := h.draw(rt)
		txs = append(txs, tx)
		h.note(tx)
	}
	h.apply(rt, txs)
}

// note remembers a sent transaction for later picks.
func (h *history) note(tx protocol.Transaction) {
	h.sent = append(h.sent, tx)
	switch tx.Kind {
	case protocol.KindEarn, protocol.KindCapture:
		h.originals = append(h.originals, tx)
	case protocol.KindBurn:
		h.originals = append(h.originals, tx)
		h.redeems = append(h.redeems, tx)
	case protocol.KindHold:
		h.originals = append(h.originals, tx)
		h.redeems = append(h.redeems, tx)
		h.holds = append(h.holds, tx)
	case protocol.KindVoid:
		if tx.Original[0] == 'b' && !slices.ContainsFunc(h.sent[:len(h.sent)-1], func(o protocol.Transaction) bool { return o.ID == tx.Original }) {
			h.voidedIDs = append(h.voidedIDs, tx)
		}
	}
}

// retry sends some earlier transactions again, each from its own till.
func (h *history) retry(rt *rapid.T) {
	if len(h.sent) == 0 {
		rt.Skip("nothing sent yet")
	}
	h.now = h.now.Add(time.Second)
	var txs []protocol.Transaction
	for range rapid.IntRange(1, 3).Draw(rt, "retries") {
		txs = append(txs, rapid.SampledFrom(h.sent).Draw(rt, "retry"))
	}
	h.apply(rt, txs)
}

// apply sends txs in one Apply (one batch per till, in order of first
// appearance) and compares every ack with the model's.
func (h *history) apply(rt *rapid.T, txs []protocol.Transaction) {
	var batches []*protocol.Batch
	for _, tx := range txs {
		i := slices.IndexFunc(batches, func(b *protocol.Batch) bool { return b.Store == tx.Store && b.Terminal == tx.Terminal })
		if i < 0 {
			batches = append(batches, &protocol.Batch{Version: protocol.Version, Store: tx.Store, Terminal: tx.Terminal, SentAt: h.now})
			i = len(batches) - 1
		}
		batches[i].Txs = append(batches[i].Txs, tx)
	}
	for _, b := range batches {
		if err := b.Validate(); err != nil {
			rt.Fatalf("the history built an invalid batch: %v", err)
		}
	}
	acks, err := h.s.Apply(batches, h.now)
	if err != nil {
		rt.Fatalf("Apply: %v", err)
	}
	h.m.now = h.now
	for i, b := range batches {
		for j := range b.Txs {
			tx := &b.Txs[j]
			want := h.m.apply(tx)
			if got := acks[i][j]; got != want {
				rt.Fatalf("at %s, %s:\n got  %+v\n want %+v", h.now.Format(time.RFC3339), fmtTx(tx), got, want)
			}
			h.outcome(tx, want)
			if want.Status == protocol.StatusApplied && (tx.Kind == protocol.KindHold || (tx.Kind == protocol.KindBurn && !tx.Offline)) && want.Balance < 0 {
				rt.Fatalf("an online %s left %s with %d available", tx.Kind, tx.Member, want.Balance)
			}
		}
	}
}

// outcome counts what a transaction came to.
func (h *history) outcome(tx *protocol.Transaction, ack protocol.Ack) {
	h.seen["lot refilled"] += h.m.refilled
	h.m.refilled = 0
	for _, mm := range h.m.members {
		if mm.flag != nil {
			h.seen["flag "+mm.flag.Reason]++
		}
	}
	kind := string(tx.Kind)
	switch {
	case ack.Status == protocol.StatusDuplicate:
		h.seen["duplicate"]++
		return
	case tx.Kind == protocol.KindBurn && tx.Offline:
		kind = "offline burn"
	case tx.Kind == protocol.KindReverse && tx.Amount > 0:
		kind = "return"
	case tx.Kind == protocol.KindCapture && ack.Status == protocol.StatusApplied && h.m.recs[tx.Original].capturedLapsed:
		kind = "capture after lapse"
	}
	k := kind + " " + string(ack.Status)
	if ack.Code != "" {
		k += " " + string(ack.Code)
	}
	h.seen[k]++
}

func fmtTx(tx *protocol.Transaction) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s/%s as %s for %s: %d points", tx.Kind, tx.ID, tx.Store, tx.Terminal, tx.Partner, tx.Member, tx.Points)
	if tx.Amount != 0 {
		fmt.Fprintf(&sb, ", amount %d", tx.Amount)
	}
	if len(tx.Lines) > 0 {
		fmt.Fprintf(&sb, ", lines %+v", tx.Lines)
	}
	if tx.Original != "" {
		fmt.Fprintf(&sb, ", original %s", tx.Original)
	}
	if tx.Offline {
		sb.WriteString(", offline")
	}
	fmt.Fprintf(&sb, ", created %s", tx.CreatedAt.Format(time.RFC3339))
	return sb.String()
}

// lapse moves time past the hold time, and sometimes sweeps the lapsed holds.
func (h *history) lapse(rt *rapid.T) {
	h.now = h.now.Add(time.Duration(h.c.HoldMinutes)*time.Minute + time.Duration(rapid.IntRange(0, 120).Draw(rt, "extra s"))*time.Second)
	h.m.now = h.now
	if rapid.Bool().Draw(rt, "sweep") {
		n, err := h.s.ExpireHolds(h.now)
		if err != nil {
			rt.Fatalf("ExpireHolds: %v", err)
		}
		h.seen["swept"] += n
		if want := h.m.expireHolds(); n != want {
			rt.Fatalf("ExpireHolds(%s) = %d, want %d", h.now.Format(time.RFC3339), n, want)
		}
	}
}

// month moves time a month on and runs the expiry (sometimes twice).
func (h *history) month(rt *rapid.T) {
	h.now = h.now.AddDate(0, 1, 0)
	h.m.now = h.now
	for i := range 1 + rapid.IntRange(0, 1).Draw(rt, "twice") {
		rep, err := h.s.Expire(h.now)
		if err != nil {
			rt.Fatalf("Expire: %v", err)
		}
		want := ledger.ExpiryReport{AsOf: h.now}
		if i == 0 {
			want = h.m.expire()
			h.seen["expired"] += int(want.Points)
		}
		if rep.Lots != want.Lots || rep.Members != want.Members || rep.Points != want.Points || !rep.AsOf.Equal(h.now) {
			rt.Fatalf("Expire(%s) run %d = %+v, want %+v", h.now.Format(time.RFC3339), i+1, rep, want)
		}
	}
}

// close closes the settlement period from the last one's end (or a
// little before the history began) to today.
func (h *history) close(rt *rapid.T) {
	from := ledger.DayOf(propStart) - ledger.Day(rapid.IntRange(0, 40).Draw(rt, "first period from"))
	if n := len(h.periods); n > 0 {
		from = h.periods[n-1].To
	}
	to := ledger.DayOf(h.now) - ledger.Day(rapid.IntRange(0, 3).Draw(rt, "days before today"))
	if to <= from {
		rt.Skip("nothing to close")
	}
	p, err := h.s.ClosePeriod(from, to, h.now)
	if err != nil {
		rt.Fatalf("ClosePeriod(%s, %s): %v", from, to, err)
	}
	if p.JournalSeq != uint64(h.m.entries) {
		rt.Fatalf("ClosePeriod at entry %d, the model has made %d", p.JournalSeq, h.m.entries)
	}
	h.periods = append(h.periods, p)
	h.seen["closed"]++
}

// checkDay checks an entry's accounting day: the day it was created (never
// after it was booked), unless that day was in a period closed before the
// entry was booked: then the day it was booked (at the earliest the end of
// the last closed period), restating the period.
func (h *history) checkDay(rt *rapid.T, e ledger.Entry) {
	created := e.CreatedAt
	if created.After(e.At) {
		created = e.At
	}
	d := ledger.DayOf(created)
	var closed []ledger.Period
	for _, p := range h.periods {
		if p.JournalSeq < e.Seq {
			closed = append(closed, p)
		}
	}
	wantDay, wantRestates := d, ""
	if n := len(closed); n > 0 && d < closed[n-1].To {
		wantDay = max(ledger.DayOf(e.At), closed[n-1].To)
		wantRestates = ".." + closed[0].From.String()
		for _, p := range closed {
			if d >= p.From && d < p.To {
				wantRestates = ledger.PeriodID(p.From, p.To)
			}
		}
		h.seen["restated"]++
	}
	if e.Day != wantDay || e.Restates != wantRestates {
		rt.Fatalf("entry %d (%s %s, created %s, booked %s) is on %s restating %q; want %s restating %q",
			e.Seq, e.Kind, e.TxID, e.CreatedAt.Format(time.RFC3339), e.At.Format(time.RFC3339), e.Day, e.Restates, wantDay, wantRestates)
	}
}

// check compares the store with the model and checks the invariants.
func (h *history) check(rt *rapid.T) {
	s, m := h.s, h.m
	rep, err := s.Verify()
	if err != nil {
		rt.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		rt.Fatalf("Verify: %+v", rep)
	}
	if rep.Entries != m.entries {
		rt.Fatalf("Verify replayed %d entries, the model made %d", rep.Entries, m.entries)
	}

	// The journal: every entry balances, all accounts sum to zero, and the
	// replay gives every member's balance.
	replayed := map[string]int64{}
	seqs := map[uint64]bool{}
	for _, mem := range propMembers {
		st, err := s.Statement(mem, 1<<30)
		if err != nil {
			rt.Fatalf("Statement: %v", err)
		}
		for _, e := range st {
			var sum int64
			for _, p := range e.Postings {
				sum += p.Delta
				replayed[p.Account] += p.Delta
			}
			if sum != 0 || len(e.Postings) != 2 || e.Member != mem || e.Postings[0].Account != ledger.MemberAccount(mem) || e.Postings[0].Delta != e.Points {
				rt.Fatalf("entry %+v does not balance or is not %s's", e, mem)
			}
			seqs[e.Seq] = true
			h.checkDay(rt, e)
		}
	}
	if len(seqs) != rep.Entries {
		rt.Fatalf("the members' statements hold %d entries, the journal %d", len(seqs), rep.Entries)
	}
	var total int64
	for _, v := range replayed {
		total += v
	}
	if total != 0 {
		rt.Fatalf("the accounts sum to %d: %v", total, replayed)
	}

	bals, err := s.MemberBalances()
	if err != nil {
		rt.Fatalf("MemberBalances: %v", err)
	}
	want := map[string]int64{}
	var sumBal int64
	for id, mm := range m.members {
		if mm.known {
			want[id] = mm.bal
			sumBal += mm.bal
		}
	}
	if !maps.Equal(bals, want) {
		rt.Fatalf("MemberBalances = %v, the model says %v", bals, want)
	}

	// Each member: balance, holds, lots, flag.
	var flagged []string
	for _, id := range propMembers {
		mm := m.member(id)
		if replayed[ledger.MemberAccount(id)] != mm.bal {
			rt.Fatalf("%s: the journal gives %d, the model %d", id, replayed[ledger.MemberAccount(id)], mm.bal)
		}
		v, err := s.Member(id, h.now)
		if err != nil {
			rt.Fatalf("Member: %v", err)
		}
		var heldPts int64
		var holdIDs []string
		for _, r := range mm.holdsHeld(h.now) {
			heldPts += r.points
			holdIDs = append(holdIDs, r.id)
		}
		var gotHolds []string
		for _, hd := range v.Holds {
			gotHolds = append(gotHolds, hd.ID)
		}
		slices.Sort(holdIDs)
		slices.Sort(gotHolds)
		if v.Known != mm.known || v.Balance != mm.bal || v.Held != heldPts || v.Available != v.Balance-v.Held || !slices.Equal(gotHolds, holdIDs) {
			rt.Fatalf("Member(%s) = known %v balance %d held %d available %d holds %v; the model: %v %d %d holds %v",
				id, v.Known, v.Balance, v.Held, v.Available, gotHolds, mm.known, mm.bal, heldPts, holdIDs)
		}
		var lotSum int64
		var wantLots []ledger.Lot
		for _, l := range mm.lots {
			if l.rem > 0 {
				wantLots = append(wantLots, ledger.Lot{ID: l.id, Partner: l.partner, EarnedAt: l.at, ExpiresAt: h.c.ExpiresAt(l.at), Points: l.pts, Remaining: l.rem})
			}
		}
		for _, l := range v.Lots {
			if l.Remaining <= 0 || l.Remaining > l.Points {
				rt.Fatalf("Member(%s): lot %+v", id, l)
			}
			lotSum += l.Remaining
		}
		if lotSum != max(v.Balance, 0) {
			rt.Fatalf("Member(%s): lots hold %d, the balance is %d", id, lotSum, v.Balance)
		}
		if !slices.EqualFunc(v.Lots, wantLots, func(a, b ledger.Lot) bool {
			return a.ID == b.ID && a.Partner == b.Partner && a.EarnedAt.Equal(b.EarnedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && a.Points == b.Points && a.Remaining == b.Remaining
		}) {
			rt.Fatalf("Member(%s) lots:\n got  %+v\n want %+v", id, v.Lots, wantLots)
		}
		switch f := mm.flag; {
		case f == nil && v.Flag != nil, f != nil && v.Flag == nil:
			rt.Fatalf("Member(%s).Flag = %+v, the model says %+v", id, v.Flag, f)
		case f != nil:
			if v.Flag.Reason != f.Reason || v.Flag.TxID != f.TxID || v.Flag.Balance != mm.bal || !v.Flag.Since.Equal(f.Since) || v.Flag.Member != id {
				rt.Fatalf("Member(%s).Flag = %+v, the model says %+v (balance %d)", id, *v.Flag, *f, mm.bal)
			}
			flagged = append(flagged, id)
		}
		if mm.bal < 0 && !mm.mayOwe {
			rt.Fatalf("%s owes %d with no offline burn, capture after a lapse or return after spending", id, -mm.bal)
		}
	}
	flags, err := s.Flags()
	if err != nil {
		rt.Fatalf("Flags: %v", err)
	}
	var gotFlagged []string
	for _, f := range flags {
		gotFlagged = append(gotFlagged, f.Member)
	}
	if !slices.Equal(gotFlagged, flagged) {
		rt.Fatalf("Flags = %v, want %v", gotFlagged, flagged)
	}

	// The records.
	recs, err := s.Transactions()
	if err != nil {
		rt.Fatalf("Transactions: %v", err)
	}
	if len(recs) != len(m.recs) {
		rt.Fatalf("Transactions: %d records, the model answered %d ids", len(recs), len(m.recs))
	}
	byID := map[string]*ledger.TxRecord{}
	issued, redeemed := map[string]int64{}, map[string]int64{}
	for i := range recs {
		r := &recs[i]
		byID[r.ID] = r
		w := m.recs[r.ID]
		if w == nil {
			rt.Fatalf("record %+v was never answered", *r)
		}
		if r.Status != w.status || r.Code != w.code || r.Kind != w.kind || r.Member != w.member || r.Points != w.points ||
			r.Reversed != w.reversed || r.Returned != w.returned || r.Amount != w.amount || r.Balance != w.balance || r.Partner != w.partner ||
			r.HoldState != w.holdState || r.Capture != w.capture || !r.HoldExpires.Equal(w.holdExpires) || !slices.EqualFunc(r.Lots, w.lots, sameUse) {
			rt.Fatalf("record %+v, the model's %+v", *r, *w)
		}
	}
	for _, r := range recs {
		if r.Status != protocol.StatusApplied {
			continue
		}
		switch r.Kind {
		case protocol.KindEarn:
			issued[r.Partner] += r.Points
		case protocol.KindBurn, protocol.KindCapture:
			redeemed[r.Partner] += r.Points
		case protocol.KindVoid:
			redeemed[r.Partner] -= r.Points
		case protocol.KindReverse:
			o := byID[r.Original]
			if o.Kind == protocol.KindHold {
				o = byID[o.Capture]
			}
			if o.Kind == protocol.KindEarn {
				issued[r.Partner] -= r.Points
			} else {
				redeemed[r.Partner] -= r.Points
			}
		}
	}

	// Settlement over all time agrees with the records, the journal and
	// the members' balances.
	all, err := s.Settlement(ledger.DayOf(propStart.AddDate(-2, 0, 0)), ledger.DayOf(propStart.AddDate(10, 0, 0)))
	if err != nil {
		rt.Fatalf("Settlement: %v", err)
	}
	// Per partner, its own line and its restatement lines together.
	sums := map[string]*ledger.SettlementLine{}
	for _, l := range all.Lines {
		if sums[l.Partner] == nil {
			sums[l.Partner] = &ledger.SettlementLine{Partner: l.Partner}
		}
		sums[l.Partner].Issued += l.Issued
		sums[l.Partner].Redeemed += l.Redeemed
		sums[l.Partner].Expired += l.Expired
	}
	for _, p := range propPartners {
		l := sums[p]
		if l == nil || l.Issued != issued[p] || l.Redeemed != redeemed[p] || l.Expired != m.expired[p] ||
			l.Issued != -replayed[ledger.IssuedAccount(p)] || l.Redeemed != replayed[ledger.RedeemedAccount(p)] || l.Expired != replayed[ledger.ExpiredAccount(p)] {
			rt.Fatalf("settlement of %s %+v; the records give issued %d redeemed %d, the model expired %d, the journal %d/%d/%d",
				p, l, issued[p], redeemed[p], m.expired[p], -replayed[ledger.IssuedAccount(p)], replayed[ledger.RedeemedAccount(p)], replayed[ledger.ExpiredAccount(p)])
		}
	}
	// A closed period's report never changes.
	for _, p := range h.periods {
		rep, err := s.Settlement(p.From, p.To)
		if err != nil {
			rt.Fatalf("Settlement: %v", err)
		}
		if !rep.Closed || !slices.Equal(rep.Lines, p.Lines) {
			rt.Fatalf("closed period %s reports %+v, it closed with %+v", ledger.PeriodID(p.From, p.To), rep.Lines, p.Lines)
		}
	}
	if tot := all.Total; tot.Issued-tot.Redeemed-tot.Expired != sumBal {
		rt.Fatalf("settlement total %+v, but the members hold %d", tot, sumBal)
	}
}

// model is the ledger's rules written plainly.
type model struct {
	now      time.Time
	c        ledger.Coalition
	rules    map[string][]protocol.RuleSet
	members  map[string]*modelMember
	recs     map[string]*modelRec
	pending  map[string]bool // original id|store|terminal|member of voids ahead of their original
	entries  int
	expired  map[string]int64 // by partner
	refilled int              // lots given points back by a return or void
}

type modelMember struct {
	known    bool
	bal      int64
	lots     []*modelLot // by earned-at, then id
	partners map[string]bool
	flag     *ledger.Flag
	// holds are the member's holds in state held, lapsed ones included
	// until something sweeps them (as the store does).
	holds []*modelRec
	// mayOwe is set once an offline burn, a capture after its hold lapsed
	// or a return of spent points happened: only those may leave a member
	// below zero.
	mayOwe bool
}

type modelLot struct {
	id, partner string
	at          time.Time
	rem, pts    int64
}

type modelRec struct {
	id, member, store, terminal, partner, original string
	kind                                           protocol.Kind
	status                                         protocol.Status
	code                                           protocol.Code
	points, reversed, amount, returned, balance    int64
	lots                                           []ledger.LotUse
	lotAt                                          time.Time
	holdState, capture                             string
	capturedLapsed                                 bool
	holdExpires                                    time.Time
}

func newModel(c ledger.Coalition, rules map[string][]protocol.RuleSet) *model {
	return &model{c: c, rules: rules, members: map[string]*modelMember{}, recs: map[string]*modelRec{}, pending: map[string]bool{}, expired: map[string]int64{}}
}

func (m *model) member(id string) *modelMember {
	mm := m.members[id]
	if mm == nil {
		mm = &modelMember{partners: map[string]bool{}}
		m.members[id] = mm
	}
	return mm
}

// holdsHeld are the member's holds still reserving points at now.
func (mm *modelMember) holdsHeld(now time.Time) []*modelRec {
	var out []*modelRec
	for _, r := range mm.holds {
		if r.holdExpires.After(now) {
			out = append(out, r)
		}
	}
	return out
}

// sweep lapses the member's holds that are due, as every transaction of
// the member does first.
func (m *model) sweep(mm *modelMember) {
	kept := mm.holds[:0]
	for _, r := range mm.holds {
		if r.holdExpires.After(m.now) {
			kept = append(kept, r)
		} else {
			r.holdState = ledger.HoldLapsed
		}
	}
	mm.holds = kept
}

func (mm *modelMember) held() int64 {
	var n int64
	for _, r := range mm.holds {
		n += r.points
	}
	return n
}

func (mm *modelMember) dropHold(r *modelRec) {
	mm.holds = slices.DeleteFunc(mm.holds, func(x *modelRec) bool { return x == r })
}

// post moves delta to the member, keeping the flag as the store does.
func (m *model) post(mm *modelMember, delta int64, reason, txID string) {
	before := mm.bal
	mm.bal += delta
	mm.known = true
	m.entries++
	if mm.bal >= 0 {
		if before < 0 {
			mm.flag = nil
		}
		return
	}
	if mm.flag == nil {
		if reason == "" {
			reason = ledger.FlagOverdraft
		}
		mm.flag = &ledger.Flag{Reason: reason, TxID: txID, Since: m.now}
	}
}

func (mm *modelMember) lot(id string, at time.Time) *modelLot {
	for _, l := range mm.lots {
		if l.id == id && l.at.Equal(at) {
			return l
		}
	}
	return nil
}

func (mm *modelMember) addLot(l *modelLot) {
	mm.lots = append(mm.lots, l)
	slices.SortStableFunc(mm.lots, func(a, b *modelLot) int {
		return cmp.Or(cmp.Compare(a.at.UnixNano(), b.at.UnixNano()), strings.Compare(a.id, b.id))
	})
}

// takeLots takes points from prefer first, then the oldest lots.
func (mm *modelMember) takeLots(points int64, prefer *ledger.LotUse) []ledger.LotUse {
	var uses []ledger.LotUse
	left := points
	var pl *modelLot
	if prefer != nil && !prefer.At.IsZero() {
		if pl = mm.lot(prefer.Lot, prefer.At); pl != nil {
			if n := min(pl.rem, left); n > 0 {
				left -= n
				pl.rem -= n
				uses = append(uses, ledger.LotUse{Lot: pl.id, At: pl.at, Points: n})
			}
		}
	}
	for _, l := range mm.lots {
		if left == 0 {
			break
		}
		if l == pl || l.rem == 0 {
			continue
		}
		n := min(l.rem, left)
		left -= n
		l.rem -= n
		uses = append(uses, ledger.LotUse{Lot: l.id, At: l.at, Points: n})
	}
	return uses
}

// restoreLots puts rest points of o back where o took them, the last first;
// what is beyond goes into a new lot id dated now.
func (m *model) restoreLots(mm *modelMember, o *modelRec, rest int64, id string) {
	for i := len(o.lots) - 1; i >= 0 && rest > 0; i-- {
		u := &o.lots[i]
		n := min(u.Points, rest)
		if n == 0 {
			continue
		}
		l := mm.lot(u.Lot, u.At)
		m.refilled++
		if l == nil {
			l = &modelLot{id: u.Lot, at: u.At, partner: o.partner, pts: n}
			mm.addLot(l)
		}
		l.rem += n
		u.Points -= n
		rest -= n
	}
	o.lots = slices.DeleteFunc(o.lots, func(u ledger.LotUse) bool { return u.Points == 0 })
	if len(o.lots) == 0 {
		o.lots = nil
	}
	if rest > 0 {
		mm.addLot(&modelLot{id: id, at: m.now, partner: o.partner, rem: rest, pts: rest})
	}
}

// apply answers one transaction as the ledger must.
func (m *model) apply(t *protocol.Transaction) protocol.Ack {
	if r, ok := m.recs[t.ID]; ok {
		if r.store != t.Store || r.terminal != t.Terminal {
			return protocol.Ack{ID: t.ID, Status: protocol.StatusRejected, Code: protocol.CodeStoreMismatch}
		}
		return protocol.Ack{ID: t.ID, Status: protocol.StatusDuplicate, OriginalStatus: r.status, Code: r.code, Member: r.member, Balance: r.balance, Points: r.ackPoints()}
	}
	mm := m.member(t.Member)
	m.sweep(mm)
	r := &modelRec{id: t.ID, kind: t.Kind, member: t.Member, store: t.Store, terminal: t.Terminal, partner: t.Partner, original: t.Original,
		points: t.Points, amount: t.Amount}
	m.recs[t.ID] = r
	refuse := func(code protocol.Code) {
		r.status, r.code, r.balance = protocol.StatusRejected, code, mm.bal-mm.held()
	}
	done := func() {
		r.status, r.balance = protocol.StatusApplied, mm.bal-mm.held()
	}
	barred := func() bool {
		key := t.ID + "|" + t.Store + "|" + t.Terminal + "|" + t.Member
		if m.pending[key] {
			delete(m.pending, key)
			return true
		}
		return false
	}
	redeem := func(partner string, points int64) {
		m.post(mm, -points, ledger.FlagOverdraft, t.ID)
		r.lots, r.points = mm.takeLots(points, nil), points
		done()
	}
	giveBack := func(o *modelRec, points int64) {
		bal := mm.bal
		m.post(mm, points, "", t.ID)
		m.restoreLots(mm, o, points-min(points, max(0, -bal)), t.ID)
	}

	switch t.Kind {
	case protocol.KindEarn:
		newTo := !mm.partners[t.Partner] && len(mm.partners) > 0
		q, err := protocol.SelectRules(m.rules[t.Partner], t.CreatedAt).Price(t, newTo)
		if err != nil {
			refuse(protocol.CodeOf(err))
			break
		}
		r.points = q.Points
		mm.partners[t.Partner] = true
		if q.Points == 0 {
			mm.known = true
			done()
			break
		}
		bal := mm.bal
		r.lotAt = t.CreatedAt
		if r.lotAt.After(m.now) {
			r.lotAt = m.now
		}
		m.post(mm, q.Points, "", t.ID)
		if rest := q.Points - min(q.Points, max(0, -bal)); rest > 0 {
			mm.addLot(&modelLot{id: t.ID, at: r.lotAt, partner: t.Partner, rem: rest, pts: q.Points})
		}
		done()
	case protocol.KindBurn:
		wasBarred := barred()
		switch avail := mm.bal - mm.held(); {
		case wasBarred:
			refuse(protocol.CodeVoided)
		case t.Offline:
			mm.mayOwe = true
			redeem(t.Partner, t.Points)
		case !mm.known:
			refuse(protocol.CodeUnknownMember)
		case avail < t.Points:
			refuse(protocol.CodeInsufficientPoints)
		default:
			redeem(t.Partner, t.Points)
		}
	case protocol.KindHold:
		wasBarred := barred()
		switch avail := mm.bal - mm.held(); {
		case wasBarred:
			refuse(protocol.CodeVoided)
		case !mm.known:
			refuse(protocol.CodeUnknownMember)
		case avail < t.Points:
			refuse(protocol.CodeInsufficientPoints)
		default:
			r.holdState, r.holdExpires = ledger.HoldHeld, m.now.Add(m.c.HoldTTL())
			mm.holds = append(mm.holds, r)
			done()
		}
	case protocol.KindCapture:
		o := m.recs[t.Original]
		switch {
		case o == nil:
			refuse(protocol.CodeUnknownOriginal)
		case o.kind != protocol.KindHold || o.member != t.Member || o.store != t.Store || o.terminal != t.Terminal:
			refuse(protocol.CodeOriginalMismatch)
		case o.status != protocol.StatusApplied:
			refuse(protocol.CodeUnknownOriginal)
		case o.holdState == ledger.HoldCaptured || o.holdState == ledger.HoldVoided:
			refuse(protocol.CodeHoldSettled)
		case t.Points > o.points:
			refuse(protocol.CodeExceedsHold)
		default:
			if o.holdState == ledger.HoldHeld {
				mm.dropHold(o)
			} else {
				mm.mayOwe = true // sold on a lapsed hold
				o.capturedLapsed = true
			}
			o.holdState, o.capture = ledger.HoldCaptured, t.ID
			if r.amount == 0 {
				r.amount = o.amount
			}
			r.partner = o.partner
			redeem(o.partner, t.Points)
		}
	case protocol.KindReverse:
		o := m.recs[t.Original]
		if o == nil && m.now.Sub(t.CreatedAt) < m.c.ReturnWait() {
			// The sale may be still to come: held, recorded nowhere.
			delete(m.recs, t.ID)
			return protocol.Ack{ID: t.ID, Status: protocol.StatusHeld, Code: protocol.CodeUnknownOriginal, Member: t.Member}
		}
		if o != nil && o.kind == protocol.KindHold {
			o = m.recs[o.capture] // nil unless captured
		}
		switch {
		case o == nil || o.status != protocol.StatusApplied:
			refuse(protocol.CodeUnknownOriginal)
			return r.ack()
		case o.member != t.Member || o.partner != t.Partner || (o.kind != protocol.KindEarn && o.kind != protocol.KindBurn && o.kind != protocol.KindCapture):
			refuse(protocol.CodeOriginalMismatch)
			return r.ack()
		}
		var points int64
		if t.Amount > 0 && o.amount > 0 {
			if t.Amount > o.amount-o.returned {
				refuse(protocol.CodeOverReversed)
				return r.ack()
			}
			returned := o.returned + t.Amount
			points = max(0, o.points*returned/o.amount-o.reversed) // small enough not to overflow
			o.returned = returned
		} else {
			if t.Points > o.points-o.reversed {
				refuse(protocol.CodeOverReversed)
				return r.ack()
			}
			points = t.Points
		}
		o.reversed += points
		r.points, r.partner = points, o.partner
		switch {
		case points == 0:
		case o.kind == protocol.KindEarn:
			m.post(mm, -points, ledger.FlagReturnAfterSpend, t.ID)
			mm.takeLots(points, &ledger.LotUse{Lot: o.id, At: o.lotAt})
			if mm.bal-mm.held() < 0 {
				// The return took back points spent or reserved by a hold:
				// the hold's capture may take the member below zero.
				mm.mayOwe = true
			}
		default:
			giveBack(o, points)
		}
		done()
	case protocol.KindVoid:
		o := m.recs[t.Original]
		if o == nil {
			m.pending[t.Original+"|"+t.Store+"|"+t.Terminal+"|"+t.Member] = true
			done()
			break
		}
		if (o.kind != protocol.KindBurn && o.kind != protocol.KindHold) || o.member != t.Member || o.store != t.Store || o.terminal != t.Terminal {
			refuse(protocol.CodeOriginalMismatch)
			break
		}
		r.points, r.partner = 0, o.partner
		switch {
		case o.status != protocol.StatusApplied:
		case o.kind == protocol.KindHold && o.holdState == ledger.HoldCaptured:
			refuse(protocol.CodeHoldSettled)
			return r.ack()
		case o.kind == protocol.KindHold && o.holdState == ledger.HoldHeld:
			mm.dropHold(o)
			o.holdState = ledger.HoldVoided
		case o.kind == protocol.KindHold:
			// Lapsed: nothing to release, but the till cancelled the sale,
			// so no capture may follow.
			o.holdState = ledger.HoldVoided
		default:
			rest := o.points - o.reversed
			o.reversed = o.points
			if rest > 0 {
				r.points = rest
				giveBack(o, rest)
			}
		}
		done()
	}
	return r.ack()
}

func (r *modelRec) ackPoints() int64 {
	if r.status != protocol.StatusApplied {
		return 0
	}
	return r.points
}

func (r *modelRec) ack() protocol.Ack {
	return protocol.Ack{ID: r.id, Status: r.status, Code: r.code, Member: r.member, Balance: r.balance, Points: r.ackPoints()}
}

// expireHolds sweeps every member's lapsed holds and counts them.
func (m *model) expireHolds() int {
	n := 0
	for _, mm := range m.members {
		before := len(mm.holds)
		m.sweep(mm)
		n += before - len(mm.holds)
	}
	return n
}

// expire posts the expiry of every lot due by now, sparing what active
// holds reserve (the oldest lots serve them first).
func (m *model) expire() ledger.ExpiryReport {
	rep := ledger.ExpiryReport{AsOf: m.now}
	cutoff := time.Date(m.now.Year(), m.now.Month()-time.Month(m.c.ExpiryMonths), 1, 0, 0, 0, 0, time.UTC)
	for _, mm := range m.members {
		var due []*modelLot
		for _, l := range mm.lots {
			if l.rem > 0 && l.at.Before(cutoff) {
				due = append(due, l)
			}
		}
		if len(due) == 0 {
			continue
		}
		m.sweep(mm)
		held := mm.held()
		expired := false
		for _, l := range due {
			var older int64
			for _, o := range mm.lots {
				if o == l {
					break
				}
				older += o.rem
			}
			x := l.rem - min(max(held-older, 0), l.rem)
			if x <= 0 {
				continue
			}
			l.rem -= x
			m.post(mm, -x, "", "")
			m.expired[l.partner] += x
			rep.Lots++
			rep.Points += x
			expired = true
		}
		if expired {
			rep.Members++
		}
	}
	return rep
}

func sameUse(a, b ledger.LotUse) bool {
	return a.Lot == b.Lot && a.At.Equal(b.At) && a.Points == b.Points
}
