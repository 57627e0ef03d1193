package alerts_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/internal/clock"
)

// fakeSource serves facts a test sets.
type fakeSource struct {
	mu sync.Mutex
	f  alerts.Facts
}

func (s *fakeSource) Facts() (alerts.Facts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f, nil
}

func (s *fakeSource) set(stores ...alerts.StoreFacts) {
	s.mu.Lock()
	s.f = alerts.Facts{Stores: stores}
	s.mu.Unlock()
}

func ptr[T any](v T) *T { return &v }

type recorder struct {
	mu sync.Mutex
	ns []alerts.Notice
}

func (r *recorder) notify(n alerts.Notice) {
	r.mu.Lock()
	r.ns = append(r.ns, n)
	r.mu.Unlock()
}

func (r *recorder) take() []alerts.Notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.ns
	r.ns = nil
	return ns
}

func mustParse(t *testing.T, s string) *alerts.Config {
	t.Helper()
	c, err := alerts.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// 2026-11-23 is a Monday.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestStoreOfflineFiresAfterForAndResolves(t *testing.T) {
	cfg := mustParse(t, `hub: h1
rules:
  - name: offline
    condition: store_offline
    threshold: 5m
    for: 2m
    recover_for: 1m
    severity: critical
    stores: {partner: p1}
`)
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	step := func(d time.Duration) []alerts.Notice {
		t.Helper()
		clk.Advance(d)
		if err := e.Evaluate(); err != nil {
			t.Fatal(err)
		}
		return rec.take()
	}
	lastSeen := t0
	offline := func() {
		src.set(
			alerts.StoreFacts{Store: "s1", Partner: "p1", Terminals: []alerts.TerminalFacts{
				{Terminal: "t1", Online: ptr(false), LastSeen: lastSeen},
				{Terminal: "t2", Online: ptr(false), LastSeen: lastSeen.Add(-time.Hour)},
			}},
			// Another partner's store, offline too: not this rule's.
			alerts.StoreFacts{Store: "s2", Partner: "p2", Terminals: []alerts.TerminalFacts{{Terminal: "t1", Online: ptr(false), LastSeen: t0.Add(-time.Hour)}}},
		)
	}
	online := func() {
		src.set(alerts.StoreFacts{Store: "s1", Partner: "p1", Terminals: []alerts.TerminalFacts{
			{Terminal: "t1", Online: ptr(true), LastSeen: clk.Now()},
			{Terminal: "t2", Online: ptr(false), LastSeen: lastSeen.Add(-time.Hour)},
		}})
	}
	offline()
	if ns := step(0); len(ns) != 0 {
		t.Fatalf("notices at once: %+v", ns)
	}
	// Offline 5m: not yet over the threshold; from 5m+: the condition holds.
	if ns := step(5*time.Minute + time.Second); len(ns) != 0 {
		t.Fatalf("notices when the condition starts to hold: %+v", ns)
	}
	held := clk.Now()
	if ns := step(2*time.Minute - 2*time.Second); len(ns) != 0 {
		t.Fatalf("fired before its for-duration: %+v", ns)
	}
	if len(e.Firing()) != 0 {
		t.Fatal("shown firing before its for-duration")
	}
	ns := step(2 * time.Second)
	if len(ns) != 1 {
		t.Fatalf("after the for-duration: %+v", ns)
	}
	n := ns[0]
	if n.State != alerts.Firing || n.Alert != "offline" || n.Store != "s1" || n.Partner != "p1" || n.Hub != "h1" || n.Severity != alerts.Critical ||
		n.Unit != "seconds" || n.Threshold != 300 || n.Value < 7*60 || !n.Since.Equal(held) || !n.At.Equal(clk.Now()) || n.ID == "" || n.Summary == "" {
		t.Errorf("firing notice %+v", n)
	}
	if ns := step(time.Minute); len(ns) != 0 {
		t.Fatalf("a second notice while still firing: %+v", ns)
	}
	if f := e.Firing(); len(f) != 1 || f[0].Store != "s1" || f[0].Alert != "offline" {
		t.Fatalf("firing %+v", f)
	}
	// Back for less than recover_for, then gone again: no notice (no flapping).
	online()
	if ns := step(30 * time.Second); len(ns) != 0 {
		t.Fatalf("resolved before recover_for: %+v", ns)
	}
	offline()
	if ns := step(10 * time.Second); len(ns) != 0 {
		t.Fatalf("a flap sent %+v", ns)
	}
	online()
	lastSeen = clk.Now()
	if ns := step(10 * time.Second); len(ns) != 0 {
		t.Fatalf("resolved at once: %+v", ns)
	}
	if ns := step(59 * time.Second); len(ns) != 0 {
		t.Fatalf("resolved before recover_for: %+v", ns)
	}
	ns = step(time.Second)
	if len(ns) != 1 || ns[0].State != alerts.Resolved || ns[0].ID != n.ID || ns[0].Store != "s1" || !ns[0].Since.Equal(held) {
		t.Fatalf("recovery %+v (firing id %s)", ns, n.ID)
	}
	if ns := step(time.Minute); len(ns) != 0 || len(e.Firing()) != 0 {
		t.Fatalf("after recovery: %+v, firing %+v", ns, e.Firing())
	}
}

func TestStoreOfflineUnknownOrNeverIsNotOffline(t *testing.T) {
	cfg := mustParse(t, "rules:\n  - name: off\n    condition: store_offline\n    threshold: 0s\n")
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	src.set(
		alerts.StoreFacts{Store: "unknown", Terminals: []alerts.TerminalFacts{{Terminal: "t1", LastSeen: t0.Add(-time.Hour)}}},
		alerts.StoreFacts{Store: "never", Terminals: []alerts.TerminalFacts{{Terminal: "t1", Online: ptr(false)}}},
		alerts.StoreFacts{Store: "empty"},
	)
	clk.Advance(time.Hour)
	e.Evaluate()
	if ns := rec.take(); len(ns) != 0 {
		t.Fatalf("notices %+v", ns)
	}
}

func TestStoreOfflineOpeningHours(t *testing.T) {
	// Berlin is UTC+1 in November: open 08:00-18:00 local, 07:00-17:00 UTC.
	cfg := mustParse(t, `opening_hours:
  - stores: all
    timezone: Europe/Berlin
    days: {mon-fri: "08:00-18:00"}
rules:
  - name: off
    condition: store_offline
    threshold: 10m
    for: 0s
`)
	clk := clock.NewFake(time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)) // 07:00 in Berlin
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	// Offline since the evening before.
	src.set(alerts.StoreFacts{Store: "s1", Terminals: []alerts.TerminalFacts{{Terminal: "t1", Online: ptr(false), LastSeen: time.Date(2026, 11, 22, 17, 0, 0, 0, time.UTC)}}})
	for _, tc := range []struct {
		at   time.Time
		fire bool
	}{
		{time.Date(2026, 11, 23, 6, 30, 0, 0, time.UTC), false}, // 07:30 Berlin: closed, although 09:00 UTC-style hours would be open
		{time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC), false},  // opens: offline 0 of its opening hours
		{time.Date(2026, 11, 23, 7, 10, 0, 0, time.UTC), false}, // 10m: not over
		{time.Date(2026, 11, 23, 7, 10, 1, 0, time.UTC), true},
	} {
		clk.Set(tc.at)
		e.Evaluate()
		ns := rec.take()
		if got := len(ns) == 1 && ns[0].State == alerts.Firing; got != tc.fire || len(ns) > 1 {
			t.Fatalf("at %v: notices %+v, want firing %v", tc.at, ns, tc.fire)
		}
	}
	// Closing time: the condition no longer holds and the alert resolves.
	clk.Set(time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC))
	e.Evaluate()
	if ns := rec.take(); len(ns) != 1 || ns[0].State != alerts.Resolved {
		t.Fatalf("at closing: %+v", ns)
	}
}

func TestOldestUnsyncedRejectionRateExposure(t *testing.T) {
	cfg := mustParse(t, `rules:
  - name: stuck
    condition: oldest_unsynced
    threshold: 30m
  - name: rejects
    condition: rejection_rate
    threshold: 10%
    window: 10m
    min_count: 10
  - name: exposure
    condition: offline_exposure
    threshold: 100%
`)
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	facts := func(applied, rejected, exposure int64, oldest time.Time) {
		src.set(alerts.StoreFacts{Store: "s1", Applied: applied, Rejected: rejected, Terminals: []alerts.TerminalFacts{
			{Terminal: "t1", Online: ptr(true), OldestUnsynced: oldest, Exposure: &alerts.Exposure{Points: exposure, Cap: 500}},
			{Terminal: "t2", Online: ptr(true), Exposure: &alerts.Exposure{Points: 100, Cap: 500}},
		}})
	}
	fired := func() map[string]string {
		e.Evaluate()
		m := map[string]string{}
		for _, n := range rec.take() {
			m[n.Alert] = n.State
		}
		return m
	}
	facts(1000, 50, 100, t0.Add(-29*time.Minute))
	if m := fired(); len(m) != 0 {
		t.Fatalf("at start: %v", m)
	}
	// Over 5 minutes: 20 applied, 5 rejected (20%); oldest 31 minutes; exposure 1100/1000.
	clk.Advance(2 * time.Minute)
	facts(1020, 55, 1000, t0.Add(-29*time.Minute))
	m := fired()
	if m["stuck"] != alerts.Firing || m["rejects"] != alerts.Firing || m["exposure"] != alerts.Firing || len(m) != 3 {
		t.Fatalf("fired %v", m)
	}
	// Ten quiet minutes later the window holds no rejection; synced; exposure down.
	clk.Advance(11 * time.Minute)
	facts(1100, 55, 0, time.Time{})
	m = fired()
	if m["stuck"] != alerts.Resolved || m["rejects"] != alerts.Resolved || m["exposure"] != alerts.Resolved || len(m) != 3 {
		t.Fatalf("resolved %v", m)
	}
	// Few transactions: 1 of 2 rejected is under min_count.
	clk.Advance(time.Minute)
	facts(1101, 56, 0, time.Time{})
	if m := fired(); len(m) != 0 {
		t.Fatalf("under min_count: %v", m)
	}
}

func TestStoreGoneResolves(t *testing.T) {
	cfg := mustParse(t, "rules:\n  - name: stuck\n    condition: oldest_unsynced\n    threshold: 1m\n")
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	src.set(alerts.StoreFacts{Store: "s1", Terminals: []alerts.TerminalFacts{{Terminal: "t1", OldestUnsynced: t0.Add(-time.Hour)}}})
	e.Evaluate()
	if ns := rec.take(); len(ns) != 1 {
		t.Fatalf("%+v", ns)
	}
	src.set()
	e.Evaluate()
	if ns := rec.take(); len(ns) != 1 || ns[0].State != alerts.Resolved {
		t.Fatalf("%+v", ns)
	}
}

func TestSummary(t *testing.T) {
	cfg := mustParse(t, "rules:\n  - name: stuck\n    condition: oldest_unsynced\n    threshold: 30m\n")
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	rec := &recorder{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: rec.notify, Clock: clk})
	src.set(alerts.StoreFacts{Store: "s1", Terminals: []alerts.TerminalFacts{{Terminal: "t1", OldestUnsynced: t0.Add(-90*time.Minute - 1500*time.Millisecond)}}})
	e.Evaluate()
	ns := rec.take()
	if want := "stuck: store s1 has a transaction unsynced for 1h30m2s (threshold 30m0s)"; len(ns) != 1 || ns[0].Summary != want {
		t.Fatalf("notices %+v, want summary %q", ns, want)
	}
}
