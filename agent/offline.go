package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/protocol"
)

// OfflinePolicy bounds the burns a till approves while the hub is
// unreachable, the way card terminals bound store-and-forward. The zero
// policy approves none: every offline burn is declined "offline".
type OfflinePolicy struct {
	// MemberAllowance is the most points one member may burn offline at this
	// till until the hub has them; 0 turns offline burns off.
	MemberAllowance int64 `yaml:"member_allowance" json:"member_allowance"`
	// StoreCap is the store's total offline exposure in points, shared
	// evenly among its StoreTills tills (the tills cannot see each other
	// while offline): this till approves at most StoreCap/StoreTills points
	// of offline burns not yet synced.
	StoreCap int64 `yaml:"store_cap" json:"store_cap"`
	// StoreTills is how many tills share StoreCap; 0 means 1.
	StoreTills int64 `yaml:"store_tills" json:"store_tills"`
	// MaxBalanceAge is how old the member's last balance from the hub may be
	// for an offline burn; 0 means DefaultMaxBalanceAge.
	MaxBalanceAge time.Duration `yaml:"max_balance_age" json:"max_balance_age"`
	// AlertAfter raises an alert in health when a queued offline burn is
	// older than this; 0 means DefaultOfflineAlertAfter.
	AlertAfter time.Duration `yaml:"alert_after" json:"alert_after"`
}

// Defaults for OfflinePolicy fields left zero.
const (
	DefaultMaxBalanceAge     = 24 * time.Hour
	DefaultOfflineAlertAfter = 4 * time.Hour
)

// Enabled reports whether p approves any offline burn.
func (p OfflinePolicy) Enabled() bool { return p.MemberAllowance > 0 && p.StoreCap > 0 }

// Validate checks p; the error names the field.
func (p OfflinePolicy) Validate() error {
	switch {
	case p.MemberAllowance < 0:
		return fmt.Errorf("offline member_allowance %d: must not be negative", p.MemberAllowance)
	case p.StoreCap < 0:
		return fmt.Errorf("offline store_cap %d: must not be negative", p.StoreCap)
	case p.StoreTills < 0 || p.StoreTills > 1000:
		return fmt.Errorf("offline store_tills %d: want 1 to 1000 (0 means 1)", p.StoreTills)
	case p.MaxBalanceAge < 0:
		return fmt.Errorf("offline max_balance_age %s: must not be negative", p.MaxBalanceAge)
	case p.AlertAfter < 0:
		return fmt.Errorf("offline alert_after %s: must not be negative", p.AlertAfter)
	case p.MemberAllowance > 0 && p.StoreCap == 0:
		return fmt.Errorf("offline member_allowance %d with store_cap 0: set a store cap too, or member_allowance 0 to turn offline burns off", p.MemberAllowance)
	}
	return nil
}

// TillCap is this till's share of the store cap.
func (p OfflinePolicy) TillCap() int64 {
	return p.StoreCap / max(1, p.StoreTills)
}

func (p OfflinePolicy) withDefaults() OfflinePolicy {
	if p.MaxBalanceAge == 0 {
		p.MaxBalanceAge = DefaultMaxBalanceAge
	}
	if p.AlertAfter == 0 {
		p.AlertAfter = DefaultOfflineAlertAfter
	}
	if p.StoreTills == 0 {
		p.StoreTills = 1
	}
	return p
}

// offlineBook keeps the offline burns queued in the outbox in memory: loaded
// at start, added to on approval, removed from on the hub's ack. mu is held
// across the check and the commit of an offline burn, so two concurrent
// burns cannot both fit under a limit that only one fits under.
type offlineBook struct {
	mu      sync.Mutex
	burns   map[string]offlineBurn
	alerted bool // the alert has been logged and not cleared since
}

type offlineBurn struct {
	member string
	points int64
	at     time.Time
}

func (b *offlineBook) load(txs []protocol.Transaction) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.burns = make(map[string]offlineBurn, len(txs))
	for _, t := range txs {
		b.burns[t.ID] = offlineBurn{member: t.Member, points: t.Points, at: t.CreatedAt}
	}
}

// totals gives the points queued offline for member and for the till; mu must be held.
func (b *offlineBook) totals(member string) (forMember, total int64) {
	for _, o := range b.burns {
		total += o.points
		if o.member == member {
			forMember += o.points
		}
	}
	return forMember, total
}

func (b *offlineBook) remove(id string) {
	b.mu.Lock()
	delete(b.burns, id)
	b.mu.Unlock()
}

// exposure reports the book against p at now.
func (b *offlineBook) exposure(p OfflinePolicy, now time.Time) posapi.OfflineExposure {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := posapi.OfflineExposure{Enabled: p.Enabled(), Cap: p.TillCap(), Burns: len(b.burns)}
	for _, o := range b.burns {
		e.Points += o.points
		if e.Oldest.IsZero() || o.at.Before(e.Oldest) {
			e.Oldest = o.at
		}
	}
	if !e.Oldest.IsZero() {
		e.OldestSeconds = max(0, now.Sub(e.Oldest).Seconds())
		if now.Sub(e.Oldest) > p.AlertAfter {
			e.Alert = fmt.Sprintf("an offline burn has waited %s for the hub (alert after %s); check the store's connection", now.Sub(e.Oldest).Round(time.Minute), p.AlertAfter)
		}
	}
	return e
}

// checkOffline decides an offline burn of points for member against the
// policy, the member's last balance from the hub (found, c) and the book;
// mu must be held. It returns the code of the limit hit ("" to approve) and
// the member's estimated balance (known reports whether there is one).
func (p OfflinePolicy) check(b *offlineBook, member string, points int64, c outbox.Balance, found bool, now time.Time) (code protocol.Code, estimate int64, known bool) {
	forMember, total := b.totals(member)
	if found {
		estimate, known = c.Points-forMember, true
	}
	switch {
	case !p.Enabled():
		return protocol.CodeOffline, estimate, known
	case !found:
		return protocol.CodeOfflineNoBalance, 0, false
	case now.Sub(c.AsOf) > p.MaxBalanceAge:
		return protocol.CodeOfflineStaleBalance, estimate, known
	case estimate < points:
		return protocol.CodeOfflineBalance, estimate, known
	case forMember+points > p.MemberAllowance:
		return protocol.CodeOfflineMemberLimit, estimate, known
	case total+points > p.TillCap():
		return protocol.CodeOfflineStoreCap, estimate, known
	}
	return "", estimate, known
}

// offlineWatchEvery is how often the agent looks for offline burns queued
// past the policy's alert_after.
const offlineWatchEvery = 30 * time.Second

// watchOffline logs at WARN when an offline burn has waited for the hub
// longer than the policy allows, and at INFO when that clears; health shows
// the alert meanwhile.
func (a *Agent) watchOffline(ctx context.Context) {
	t := time.NewTicker(offlineWatchEvery)
	defer t.Stop()
	for {
		e := a.off.exposure(a.o.Offline, a.clk.Now())
		a.off.mu.Lock()
		was := a.off.alerted
		a.off.alerted = e.Alert != ""
		a.off.mu.Unlock()
		switch {
		case e.Alert != "" && !was:
			a.log.Warn("offline burns are waiting too long for the hub", "alert", e.Alert, "burns", e.Burns, "points", e.Points)
		case e.Alert == "" && was:
			a.log.Info("offline burns alert cleared", "burns", e.Burns)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
