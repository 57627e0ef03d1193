package agent_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// offlinePolicy is the policy of these tests: 50 points a member, a store
// cap of 120 shared by two tills (60 for this one), balances good for an
// hour, an alert after two hours.
var offlinePolicy = agent.OfflinePolicy{MemberAllowance: 50, StoreCap: 120, StoreTills: 2, MaxBalanceAge: time.Hour, AlertAfter: 2 * time.Hour}

// hubBalances answers every transaction applied, with the member's balance
// from bal.
func hubBalances(bal map[string]int64) func(protocol.Transaction) (protocol.Ack, bool) {
	return func(tx protocol.Transaction) (protocol.Ack, bool) {
		a, _ := applied(tx)
		a.Balance = bal[tx.Member]
		return a, true
	}
}

func (p *till) burn(t *testing.T, member string, points int64) posapi.Result {
	t.Helper()
	var res posapi.Result
	if st, raw, code := p.post(t, "/v1/burn", "", posapi.BurnRequest{Member: member, Points: points}, &res); st != http.StatusOK {
		t.Fatalf("burn %d for %s: HTTP %d %s %s", points, member, st, code, raw)
	}
	return res
}

// TestOfflineBurnLimits: while the hub is unreachable a burn is approved
// only within the member's last known balance less this till's offline
// burns for them, the member's allowance, the till's share of the store cap
// and the age of the balance; each decline names its limit and writes
// nothing. The exposure survives a restart, raises an alert when it waits
// too long, and goes when the hub has the burns.
func TestOfflineBurnLimits(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.setAnswer(hubBalances(map[string]int64{"m1": 100, "m2": 30, "m4": 100}))
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	set := func(o *agent.Options) { o.Offline, o.Clock = offlinePolicy, clk }
	p := startTill(t, dir, b.URL, set)
	for _, m := range []string{"m1", "m2", "m4"} {
		p.earn(t, posapi.EarnRequest{Member: m, Amount: 100, Currency: "EUR"})
	}
	p.waitDrained(t) // the acks left the members' balances at the till

	b.Close()
	testkit.WaitFor(t, waitLong, "the till to see the hub gone", func() bool { return !p.health(t).HubConnected })
	clk.Advance(10 * time.Minute)
	type step struct {
		member   string
		points   int64
		code     protocol.Code // "" approved
		estimate int64         // the balance the answer gives; -1 none
	}
	run := func(steps []step) {
		t.Helper()
		for i, s := range steps {
			before := len(p.queued(t))
			r := p.burn(t, s.member, s.points)
			switch {
			case s.code == "" && (r.Status != "approved" || !r.Offline || r.TxID == "" || r.Code != ""):
				t.Fatalf("step %d: burn %d for %s: %+v, want approved offline", i, s.points, s.member, r)
			case s.code != "" && (r.Status != "declined" || r.Code != s.code || r.TxID != "" || r.Offline):
				t.Fatalf("step %d: burn %d for %s: %+v, want declined %s with no tx id", i, s.points, s.member, r, s.code)
			case s.estimate < 0 && r.Balance != nil, s.estimate >= 0 && (r.Balance == nil || *r.Balance != s.estimate):
				t.Fatalf("step %d: burn %d for %s: balance %v, want %d", i, s.points, s.member, r.Balance, s.estimate)
			}
			want := before
			if s.code == "" {
				want++
			}
			if got := len(p.queued(t)); got != want {
				t.Fatalf("step %d: outbox holds %d, want %d (a decline writes nothing)", i, got, want)
			}
		}
	}
	run([]step{
		{"m3", 10, protocol.CodeOfflineNoBalance, -1},
		{"m2", 31, protocol.CodeOfflineBalance, 30},
		{"m1", 51, protocol.CodeOfflineMemberLimit, 100},
		{"m1", 30, "", 70},
		{"m1", 21, protocol.CodeOfflineMemberLimit, 70},
		{"m1", 20, "", 50},
		{"m1", 51, protocol.CodeOfflineBalance, 50}, // the balance limit comes first
		{"m2", 11, protocol.CodeOfflineStoreCap, 30},
		{"m2", 10, "", 20},
		{"m2", 1, protocol.CodeOfflineStoreCap, 20},
	})
	h := p.health(t)
	if e := h.Offline; !e.Enabled || e.Points != 60 || e.Cap != 60 || e.Burns != 3 || e.Alert != "" || e.Oldest.IsZero() {
		t.Fatalf("health offline exposure: %+v, want 60 of 60 in 3 burns, no alert", e)
	}

	// An hour later the balances are too old; two hours later the queued
	// burns raise an alert.
	clk.Advance(time.Hour)
	run([]step{{"m4", 1, protocol.CodeOfflineStaleBalance, 100}})
	if a := p.health(t).Offline.Alert; a != "" {
		t.Fatalf("alert with offline burns queued for 1h: %q", a)
	}
	clk.Advance(time.Hour + time.Minute)
	if a := p.health(t).Offline.Alert; a == "" {
		t.Fatal("no alert with offline burns queued for 2h01m")
	}

	// A restart, still offline, remembers the exposure.
	p.stop(t)
	p = startTill(t, dir, b.URL, set)
	if e := p.health(t).Offline; e.Points != 60 || e.Burns != 3 || e.Alert == "" {
		t.Fatalf("exposure after a restart: %+v, want 60 in 3 burns, alert still on", e)
	}
	clk.Set(clk.Now().Add(-2*time.Hour - time.Minute)) // balances fresh again: the cap still binds
	run([]step{{"m4", 1, protocol.CodeOfflineStoreCap, 100}})

	// The hub comes back: the burns go as one-step offline burns, and once
	// acked they are no longer exposure.
	b = testkit.StartBrokerAt(t, b.Addr)
	hub = startHub(t, b.URL)
	p.waitDrainedAdvancing(t, clk)
	var burns []protocol.Transaction
	for _, tx := range hub.received() {
		if tx.Kind == protocol.KindBurn {
			burns = append(burns, tx)
		}
		if tx.Kind == protocol.KindHold || tx.Kind == protocol.KindVoid {
			t.Errorf("the hub got a %s from offline burns: %+v", tx.Kind, tx)
		}
	}
	if len(burns) != 3 || !burns[0].Offline || burns[0].Points != 30 || burns[1].Points != 20 || burns[2].Member != "m2" || burns[2].Points != 10 {
		t.Fatalf("the hub got %+v; want the three offline burns, in order", burns)
	}
	if e := p.health(t).Offline; e.Points != 0 || e.Burns != 0 || e.Alert != "" {
		t.Fatalf("exposure after the hub acked: %+v, want none", e)
	}
}

// TestOfflineBurnsConcurrent: twenty concurrent offline burns of 10 points
// against an allowance of 50: exactly five are approved.
func TestOfflineBurnsConcurrent(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.setAnswer(hubBalances(map[string]int64{"m1": 1000}))
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) {
		o.Offline = agent.OfflinePolicy{MemberAllowance: 50, StoreCap: 1000}
	})
	p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 100, Currency: "EUR"})
	p.waitDrained(t)
	b.Close()
	testkit.WaitFor(t, waitLong, "the till to see the hub gone", func() bool { return !p.health(t).HubConnected })

	var wg sync.WaitGroup
	results := make([]posapi.Result, 20)
	for i := range results {
		wg.Go(func() { results[i] = p.burn(t, "m1", 10) })
	}
	wg.Wait()
	approved := 0
	for _, r := range results {
		switch {
		case r.Status == "approved" && r.Offline:
			approved++
		case r.Status == "declined" && r.Code == protocol.CodeOfflineMemberLimit:
		default:
			t.Errorf("unexpected answer %+v", r)
		}
	}
	if approved != 5 || len(p.queued(t)) != 5 || p.health(t).Offline.Points != 50 {
		t.Fatalf("%d approved, %d queued, exposure %d; want 5, 5, 50", approved, len(p.queued(t)), p.health(t).Offline.Points)
	}
}

// TestBurnJumpsTheBacklog: a burn's hold goes to the hub at once, ahead of
// a backlog of earns queued while the store was offline, so the cashier
// does not wait for the backlog to drain; the backlog then drains whole.
func TestBurnJumpsTheBacklog(t *testing.T) {
	addr := testkit.FreePort(t)
	p := startTill(t, t.TempDir(), "tcp://"+addr, func(o *agent.Options) { o.Window, o.BatchMax = 10, 10 })
	const backlog = 1000
	for range backlog {
		p.earn(t, posapi.EarnRequest{Member: "m2", Amount: 100, Currency: "EUR"})
	}
	b := testkit.StartBrokerAt(t, addr)
	hub := startHub(t, b.URL)
	testkit.WaitFor(t, waitLong, "the hub connection", func() bool { return p.health(t).HubConnected })
	r := p.burn(t, "m1", 5)
	if r.Status != "approved" {
		t.Fatalf("burn with a backlog of %d: %+v, want approved", backlog, r)
	}
	p.waitDrained(t)
	got := hub.received()
	at := slices.IndexFunc(got, func(tx protocol.Transaction) bool { return tx.ID == r.TxID })
	if at < 0 || at >= backlog/2 {
		t.Fatalf("the hold reached the hub as transaction %d of %d; want it well ahead of the backlog", at, len(got))
	}
	if len(got) != backlog+2 { // the earns, the hold and its capture
		t.Fatalf("the hub received %d transactions, want %d", len(got), backlog+2)
	}
	t.Logf("the hold arrived as transaction %d of %d", at, len(got))
}
