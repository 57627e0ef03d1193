package alerts

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tillsync/tillsync/internal/clock"
)

// Source gives the evaluator the hub's current facts about its stores.
// The hub builds them from the ledger, the broker's client list and the
// ingest; the tills' retained status can add what only they know (their
// offline exposure) without the rules changing.
type Source interface {
	Facts() (Facts, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func() (Facts, error)

// Facts implements Source.
func (f SourceFunc) Facts() (Facts, error) { return f() }

// Facts are what the hub knows about its stores now.
type Facts struct {
	Stores []StoreFacts
}

// StoreFacts are what the hub knows about one store.
type StoreFacts struct {
	Store string
	// Partner is the brand the store trades as; empty when not registered.
	Partner   string
	Terminals []TerminalFacts
	// Applied and Rejected count the store's transactions the hub applied
	// and rejected. They only have to grow while the hub runs (a drop is
	// taken as a restart of the counting): rejection_rate uses their
	// increase over its window.
	Applied, Rejected int64
}

// TerminalFacts are what the hub knows about one terminal.
type TerminalFacts struct {
	Terminal string
	// Online says whether the terminal is connected now; nil when the hub
	// cannot tell (an external broker and no status from the till).
	Online *bool
	// LastSeen is the last time the hub heard from the terminal; zero if
	// it never did.
	LastSeen time.Time
	// OldestUnsynced is the creation time of the oldest transaction the
	// till had not synced, as of its last batch; zero for none.
	OldestUnsynced time.Time
	// Exposure is the till's offline exposure; nil when unknown.
	Exposure *Exposure
}

// Exposure is what a till approved offline and has not synced, and its cap.
type Exposure struct {
	Points, Cap int64
}

// The states of an alert in a notice.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Notice is what a webhook receives when an alert fires or resolves.
type Notice struct {
	// ID names the alert's episode: the same in its firing and its
	// resolved notice, and in every retry of either.
	ID string `json:"id"`
	// Hub names the hub that sent it.
	Hub string `json:"hub"`
	// Alert is the rule's name.
	Alert     string    `json:"alert"`
	Condition Condition `json:"condition"`
	Store     string    `json:"store"`
	Partner   string    `json:"partner,omitempty"`
	Severity  Severity  `json:"severity"`
	// State is firing or resolved.
	State string `json:"state"`
	// Value is the condition's value at the transition, Threshold the
	// rule's, both in Unit: seconds (store_offline, oldest_unsynced) or
	// ratio (rejection_rate, offline_exposure).
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"`
	// Since is when the evaluator first saw the condition hold, for this
	// episode.
	Since time.Time `json:"since"`
	// At is the transition: when the alert fired, or resolved.
	At time.Time `json:"at"`
	// Summary says it in a line, for people.
	Summary string `json:"summary"`
}

// Alert is an alert firing now, as the dashboard shows it.
type Alert struct {
	Alert     string    `json:"alert"`
	Condition Condition `json:"condition"`
	Store     string    `json:"store"`
	Partner   string    `json:"partner,omitempty"`
	Severity  Severity  `json:"severity"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Unit      string    `json:"unit"`
	Since     time.Time `json:"since"`
	FiredAt   time.Time `json:"fired_at"`
	Summary   string    `json:"summary"`
}

// Options configures an Evaluator. Source is required.
type Options struct {
	Config *Config
	Source Source
	// Notify is handed every notice; it must not block (Sender.Send).
	Notify func(Notice)
	Logger *slog.Logger
	Clock  clock.Clock
}

// Evaluator checks the rules against the Source every Config.Every.
type Evaluator struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	tracks  map[key]*track
	history map[string][]counts // store → counter samples, oldest first
}

type key struct {
	rule  int
	store string
}

// track is one rule's state for one store, from when its condition first
// holds until the alert resolved (or the condition went away before it
// fired).
type track struct {
	since      time.Time // the condition first held
	firing     bool
	firedAt    time.Time
	clearSince time.Time // while firing: the condition has been false since
	value      float64
	partner    string
}

type counts struct {
	at                time.Time
	applied, rejected int64
}

// New returns an evaluator.
func New(o Options) *Evaluator {
	if o.Source == nil {
		panic("alerts: no source")
	}
	cfg := Config{}
	if o.Config != nil {
		cfg = *o.Config // the caller's stays as it was
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	o.Config = &cfg
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = func(Notice) {}
	}
	o.Clock = clock.Or(o.Clock)
	return &Evaluator{o: o, log: o.Logger, tracks: map[key]*track{}, history: map[string][]counts{}}
}

// Run evaluates the rules at once and every Config.Every until ctx is done.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.o.Config.Every)
	defer t.Stop()
	for {
		if err := e.Evaluate(); err != nil {
			e.log.Warn("alert rules not evaluated", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate checks every rule against the Source's facts at the clock's
// now, and sends the notices of the alerts that fired or resolved.
func (e *Evaluator) Evaluate() error {
	facts, err := e.o.Source.Facts()
	if err != nil {
		return fmt.Errorf("alerts: facts: %w", err)
	}
	now := e.o.Clock.Now()
	var out []Notice
	e.mu.Lock()
	e.record(facts, now)
	seen := map[key]bool{}
	for i, r := range e.o.Config.Rules {
		for _, s := range facts.Stores {
			if !r.Stores.Match(s.Store, s.Partner) {
				continue
			}
			k := key{i, s.Store}
			seen[k] = true
			v, ok := e.value(r, s, now)
			if n, sent := e.step(k, r, s.Partner, ok, v, now); sent {
				out = append(out, n)
			}
		}
	}
	// A store gone from the facts (or from the rule) holds no condition.
	for k, t := range e.tracks {
		if !seen[k] {
			if n, sent := e.step(k, e.o.Config.Rules[k.rule], t.partner, false, 0, now); sent {
				out = append(out, n)
			}
		}
	}
	e.mu.Unlock()
	for _, n := range out {
		lvl := slog.LevelInfo
		if n.State == Firing && n.Severity != Info {
			lvl = slog.LevelWarn
		}
		e.log.Log(context.Background(), lvl, "alert "+n.State, "alert", n.Alert, "store", n.Store, "severity", n.Severity, "value", n.Value, "threshold", n.Threshold, "unit", n.Unit)
		e.o.Notify(n)
	}
	return nil
}

// step moves one alert's state on: holds says whether its condition holds
// now, with value v. It returns the notice to send, if any.
func (e *Evaluator) step(k key, r Rule, partner string, holds bool, v float64, now time.Time) (Notice, bool) {
	t := e.tracks[k]
	if holds {
		if t == nil {
			t = &track{since: now}
			e.tracks[k] = t
		}
		t.value, t.partner, t.clearSince = v, partner, time.Time{}
		if !t.firing && now.Sub(t.since) >= r.For {
			t.firing, t.firedAt = true, now
			return e.notice(k, r, t, Firing, now), true
		}
		return Notice{}, false
	}
	if t == nil {
		return Notice{}, false
	}
	if !t.firing {
		delete(e.tracks, k)
		return Notice{}, false
	}
	t.value = v
	if t.clearSince.IsZero() {
		t.clearSince = now
	}
	if now.Sub(t.clearSince) >= r.RecoverFor {
		delete(e.tracks, k)
		return e.notice(k, r, t, Resolved, now), true
	}
	return Notice{}, false
}

func (e *Evaluator) notice(k key, r Rule, t *track, state string, now time.Time) Notice {
	n := Notice{
		ID:  fmt.Sprintf("%s/%s/%d", r.Name, k.store, t.since.UnixMilli()),
		Hub: e.o.Config.Hub, Alert: r.Name, Condition: r.Condition, Store: k.store, Partner: t.partner,
		Severity: r.Severity, State: state, Value: t.value, Threshold: r.Threshold, Unit: unit(r.Condition),
		Since: t.since.UTC(), At: now.UTC(),
	}
	n.Summary = summary(r, k.store, state, t.value)
	return n
}

func unit(c Condition) string {
	if c == StoreOffline || c == OldestUnsynced {
		return "seconds"
	}
	return "ratio"
}

func summary(r Rule, store, state string, v float64) string {
	var what string
	switch r.Condition {
	case StoreOffline:
		what = fmt.Sprintf("store %s offline for %s during opening hours (threshold %s)", store, secs(v), r.ThresholdDur)
	case OldestUnsynced:
		what = fmt.Sprintf("store %s has a transaction unsynced for %s (threshold %s)", store, secs(v), r.ThresholdDur)
	case RejectionRate:
		what = fmt.Sprintf("store %s: %.1f%% of transactions rejected over %s (threshold %.1f%%)", store, v*100, r.Window, r.Threshold*100)
	case OfflineExposure:
		what = fmt.Sprintf("store %s: offline exposure at %.0f%% of its cap (threshold %.0f%%)", store, v*100, r.Threshold*100)
	}
	if state == Resolved {
		return "resolved: " + r.Name + ": " + what
	}
	return r.Name + ": " + what
}

func secs(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(time.Second).String()
}

// value computes the rule's condition for a store: its value, and whether
// it holds.
func (e *Evaluator) value(r Rule, s StoreFacts, now time.Time) (float64, bool) {
	switch r.Condition {
	case StoreOffline:
		if len(s.Terminals) == 0 {
			return 0, false
		}
		var last time.Time
		for _, t := range s.Terminals {
			if t.Online == nil || *t.Online {
				return 0, false // online, or the hub cannot tell
			}
			if t.LastSeen.After(last) {
				last = t.LastSeen
			}
		}
		if last.IsZero() {
			return 0, false // never connected: not gone offline
		}
		open, isOpen := HoursFor(e.o.Config.Hours, s.Store, s.Partner).OpenSince(now)
		if !isOpen {
			return 0, false
		}
		d := now.Sub(maxTime(last, open)).Seconds()
		return d, d > r.Threshold
	case OldestUnsynced:
		var oldest time.Time
		for _, t := range s.Terminals {
			if !t.OldestUnsynced.IsZero() && (oldest.IsZero() || t.OldestUnsynced.Before(oldest)) {
				oldest = t.OldestUnsynced
			}
		}
		if oldest.IsZero() {
			return 0, false
		}
		d := now.Sub(oldest).Seconds()
		return d, d > r.Threshold
	case RejectionRate:
		h := e.history[s.Store]
		if len(h) == 0 {
			return 0, false
		}
		cur := h[len(h)-1]
		base := h[0]
		from := now.Add(-r.Window)
		for _, c := range h {
			if c.at.After(from) {
				break
			}
			base = c
		}
		rej := cur.rejected - base.rejected
		answered := cur.applied - base.applied + rej
		if answered < r.MinCount || answered <= 0 {
			return 0, false
		}
		v := float64(rej) / float64(answered)
		return v, v > r.Threshold
	case OfflineExposure:
		var points, cap int64
		for _, t := range s.Terminals {
			if t.Exposure != nil && t.Exposure.Cap > 0 {
				points += t.Exposure.Points
				cap += t.Exposure.Cap
			}
		}
		if cap == 0 {
			return 0, false
		}
		v := float64(points) / float64(cap)
		return v, v > r.Threshold
	}
	return 0, false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// record keeps the stores' counters over the longest rejection_rate window.
func (e *Evaluator) record(f Facts, now time.Time) {
	var window time.Duration
	for _, r := range e.o.Config.Rules {
		if r.Condition == RejectionRate {
			window = max(window, r.Window)
		}
	}
	if window == 0 {
		return
	}
	live := map[string]bool{}
	for _, s := range f.Stores {
		live[s.Store] = true
		h := e.history[s.Store]
		c := counts{at: now, applied: s.Applied, rejected: s.Rejected}
		if n := len(h); n > 0 && (c.applied < h[n-1].applied || c.rejected < h[n-1].rejected) {
			h = h[:0] // the counting restarted
		}
		h = append(h, c)
		// Keep one sample at or before the window's start as its base.
		from := now.Add(-window)
		i := 0
		for i+1 < len(h) && !h[i+1].at.After(from) {
			i++
		}
		e.history[s.Store] = slices.Clip(h[i:])
	}
	for s := range e.history {
		if !live[s] {
			delete(e.history, s)
		}
	}
}

// Firing returns the alerts firing now, the most severe and oldest first.
func (e *Evaluator) Firing() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Alert{}
	for k, t := range e.tracks {
		if !t.firing {
			continue
		}
		r := e.o.Config.Rules[k.rule]
		out = append(out, Alert{
			Alert: r.Name, Condition: r.Condition, Store: k.store, Partner: t.partner, Severity: r.Severity,
			Value: t.value, Threshold: r.Threshold, Unit: unit(r.Condition), Since: t.since.UTC(), FiredAt: t.firedAt.UTC(),
			Summary: summary(r, k.store, Firing, t.value),
		})
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(rank(b.Severity)-rank(a.Severity), a.FiredAt.Compare(b.FiredAt), strings.Compare(a.Alert, b.Alert), strings.Compare(a.Store, b.Store))
	})
	return out
}

func rank(s Severity) int {
	switch s {
	case Critical:
		return 2
	case Warning:
		return 1
	}
	return 0
}
