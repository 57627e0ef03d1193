package agent

import (
	"fmt"
	"time"
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
