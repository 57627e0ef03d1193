package protocol

import (
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Earn rules are part of the contract: the hub pushes them to every till
// (Config) and both sides price an earn with Price, so the points a till
// quotes offline are, to the point, what the hub books later.

// Rounding says how a fractional number of points becomes whole.
type Rounding string

// The rounding modes. Rounding happens once per transaction, after every
// multiplier, never per line.
const (
	// RoundDown drops the fraction: 1.99 points earn 1. The default.
	RoundDown Rounding = "down"
	// RoundNearest rounds half up: 1.5 points earn 2, 1.49 earn 1.
	RoundNearest Rounding = "nearest"
	// RoundUp: any fraction earns a whole point: 1.01 points earn 2.
	RoundUp Rounding = "up"
)

// Multiplier is a non-negative decimal with at most four places, written as
// a string ("2", "1.5", "0.25", "0"), so that no float ever prices points.
// Zero excludes (e.g. tobacco or prescriptions earn nothing).
type Multiplier string

// MaxMultiplier bounds every multiplier, so pricing stays within range.
const MaxMultiplier = 100

// Rule set limits.
const (
	// MaxRuleEntries bounds the category and SKU tables of one rule set.
	MaxRuleEntries = 1000
	// MaxCampaigns bounds the campaigns of one rule set.
	MaxCampaigns = 100
	// MaxRuleVersions bounds the versions one Config carries (and the
	// encoded Config must still fit MaxConfigBytes: see EncodeConfig).
	MaxRuleVersions = 50
	// MaxRatePoints bounds RuleSet.Points.
	MaxRatePoints = 1_000_000
)

// multiplierScale is the fixed-point scale of a Multiplier: four places.
const multiplierScale = 10_000

// Scaled returns m × 10,000 as an integer ("1.5" → 15000), or an error with
// CodeInvalidRules.
func (m Multiplier) Scaled() (int64, error) {
	v, err := parseDecimal(string(m), 4)
	if err != nil || v > MaxMultiplier*multiplierScale {
		return 0, Errorf(CodeInvalidRules, "multiplier", "%q must be a decimal from 0 to %d with at most 4 places", string(m), MaxMultiplier)
	}
	return v, nil
}

// RuleSet is one version of a partner's earn rules. Versions are never
// changed once recorded; a change is a new version, in force from its
// EffectiveFrom for transactions created from then on.
type RuleSet struct {
	// Partner is the brand the rules are for.
	Partner string `json:"partner"`
	// Version numbers the partner's rule sets 1, 2, 3…; the hub assigns it.
	Version int64 `json:"version"`
	// EffectiveFrom is the creation time from which the version prices
	// earns, until the next version's EffectiveFrom. The hub refuses a
	// version that would take effect in the past: a till may have quoted
	// with the old rules already.
	EffectiveFrom time.Time `json:"effective_from"`
	// Currency is the ISO 4217 currency of the rate; an earn in another
	// currency is refused.
	Currency string `json:"currency"`
	// Points earned per Per minor units: Points 1, Per 100 is one point per
	// 1.00 EUR.
	Points int64 `json:"points"`
	// Per is the amount, in minor units, that earns Points.
	Per int64 `json:"per"`
	// Rounding is down (the default), nearest or up.
	Rounding Rounding `json:"rounding,omitempty"`
	// Categories multiplies the points of the lines of a category.
	Categories map[string]Multiplier `json:"categories,omitempty"`
	// SKUs multiplies the points of the lines of a SKU; it wins over Categories.
	SKUs map[string]Multiplier `json:"skus,omitempty"`
	// Campaigns add multipliers or bonuses within a time window.
	Campaigns []Campaign `json:"campaigns,omitempty"`
	// NewPartnerBonus is the cross-brand bonus: fixed points on a member's
	// first earn at this partner when they have earned at another partner
	// before. Only the hub knows a member's history, so a till's quote
	// leaves it out and the hub adds it.
	NewPartnerBonus int64 `json:"new_partner_bonus,omitempty"`
}

// Campaign is a time-limited earn promotion.
type Campaign struct {
	// ID names the campaign.
	ID string `json:"id"`
	// Name is for people: receipts, statements, the dashboard.
	Name string `json:"name,omitempty"`
	// From and To bound the creation times the campaign applies to: [From, To).
	From time.Time `json:"from"`
	// To is the end of the window, exclusive.
	To time.Time `json:"to"`
	// Multiplier multiplies the transaction's points. Campaign multipliers
	// do not stack: the highest one in force applies.
	Multiplier Multiplier `json:"multiplier,omitempty"`
	// Bonus is fixed points added; the bonuses of all campaigns in force add up.
	Bonus int64 `json:"bonus,omitempty"`
	// MinAmount is the smallest purchase, in minor units, the campaign applies to.
	MinAmount int64 `json:"min_amount,omitempty"`
}

// Active reports whether the campaign applies to a purchase of amount created at t.
func (c *Campaign) Active(t time.Time, amount int64) bool {
	return !t.Before(c.From) && t.Before(c.To) && amount >= c.MinAmount
}

// Validate checks a rule set on its own and returns the first problem as an
// *Error with CodeInvalidRules (or an id code).
func (r *RuleSet) Validate() error {
	if err := checkID("partner", r.Partner); err != nil {
		return err
	}
	if r.Version < 0 {
		return Errorf(CodeInvalidRules, "version", "must not be negative")
	}
	if !validCurrency(r.Currency) {
		return Errorf(CodeInvalidCurrency, "currency", "must be an ISO 4217 code such as EUR")
	}
	if r.Points < 0 || r.Points > MaxRatePoints {
		return Errorf(CodeInvalidRules, "points", "must be 0 to %d", MaxRatePoints)
	}
	if r.Per < 1 || r.Per > MaxAmount {
		return Errorf(CodeInvalidRules, "per", "must be 1 to %d minor units", int64(MaxAmount))
	}
	switch r.Rounding {
	case "", RoundDown, RoundNearest, RoundUp:
	default:
		return Errorf(CodeInvalidRules, "rounding", "must be down, nearest or up")
	}
	for _, tb := range []struct {
		name  string
		table map[string]Multiplier
	}{{"categories", r.Categories}, {"skus", r.SKUs}} {
		name, table := tb.name, tb.table
		if len(table) > MaxRuleEntries {
			return Errorf(CodeInvalidRules, name, "%d entries, at most %d", len(table), MaxRuleEntries)
		}
		// Sorted, so that the first problem reported is always the same one.
		for _, k := range slices.Sorted(maps.Keys(table)) {
			m := table[k]
			if !ValidID(k) {
				return Errorf(CodeInvalidID, name, "%q must be 1-%d characters of A-Z a-z 0-9 . _ -", k, MaxIDLen)
			}
			if _, err := m.Scaled(); err != nil {
				return Errorf(CodeInvalidRules, name+"."+k, "%q must be a decimal from 0 to %d with at most 4 places", string(m), MaxMultiplier)
			}
		}
	}
	if len(r.Campaigns) > MaxCampaigns {
		return Errorf(CodeInvalidRules, "campaigns", "%d campaigns, at most %d", len(r.Campaigns), MaxCampaigns)
	}
	for i := range r.Campaigns {
		if err := r.Campaigns[i].validate("campaigns[" + itoa(i) + "]"); err != nil {
			return err
		}
	}
	if r.NewPartnerBonus < 0 || r.NewPartnerBonus > MaxPoints {
		return Errorf(CodeInvalidRules, "new_partner_bonus", "must be 0 to %d", MaxPoints)
	}
	return nil
}

func (c *Campaign) validate(f string) error {
	if err := checkID(f+".id", c.ID); err != nil {
		return err
	}
	if len(c.Name) > 200 || strings.ContainsFunc(c.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Errorf(CodeInvalidRules, f+".name", "must be at most 200 characters, without control characters")
	}
	if c.From.IsZero() || c.To.IsZero() || !c.From.Before(c.To) {
		return Errorf(CodeInvalidRules, f, "needs from before to")
	}
	if c.Multiplier == "" && c.Bonus == 0 {
		return Errorf(CodeInvalidRules, f, "needs a multiplier or a bonus")
	}
	if c.Multiplier != "" {
		// Below 1 it would never apply: the highest multiplier in force
		// wins, and without a campaign it is 1.
		if v, err := c.Multiplier.Scaled(); err != nil || v < multiplierScale {
			return Errorf(CodeInvalidRules, f+".multiplier", "%q must be a decimal from 1 to %d with at most 4 places", string(c.Multiplier), MaxMultiplier)
		}
	}
	if c.Bonus < 0 || c.Bonus > MaxPoints {
		return Errorf(CodeInvalidRules, f+".bonus", "must be 0 to %d", MaxPoints)
	}
	if c.MinAmount < 0 || c.MinAmount > MaxAmount {
		return Errorf(CodeInvalidRules, f+".min_amount", "must be 0 to %d minor units", int64(MaxAmount))
	}
	return nil
}

// SelectRules returns the version in force at t: the latest whose
// EffectiveFrom is not after t. A transaction created before the first
// version is priced with the first. rules must be ordered by Version; nil
// when there are none.
func SelectRules(rules []RuleSet, t time.Time) *RuleSet {
	if len(rules) == 0 {
		return nil
	}
	for i := len(rules) - 1; i > 0; i-- {
		if !rules[i].EffectiveFrom.After(t) {
			return &rules[i]
		}
	}
	return &rules[0]
}

// Quote is what an earn is worth under a rule set, and why.
type Quote struct {
	// Points is Base plus Bonus: what the earn books.
	Points int64 `json:"points"`
	// Base is the rate applied to the lines, with their multipliers and the
	// highest campaign multiplier, rounded once.
	Base int64 `json:"base"`
	// Bonus is the campaigns' fixed bonuses plus the cross-brand bonus.
	Bonus int64 `json:"bonus"`
	// RulesVersion is the version that priced the earn.
	RulesVersion int64 `json:"rules_version"`
	// Campaigns are the ids of the campaigns that applied.
	Campaigns []string `json:"campaigns,omitempty"`
	// NewPartnerBonus reports whether the cross-brand bonus was added.
	NewPartnerBonus bool `json:"new_partner_bonus,omitempty"`
}

// Price prices an earn: its amount (or its lines) at the rate, each line
// multiplied by its SKU's multiplier, else its category's, else 1; the whole
// by the highest campaign multiplier in force at t.CreatedAt; rounded once
// as the rule set says; plus the bonuses of the campaigns in force and, when
// newToPartner, the cross-brand bonus. It fails with CodeCurrencyMismatch
// for an amount in another currency and CodeInvalidPoints when the result
// exceeds MaxPoints. r must be valid (Validate).
func (r *RuleSet) Price(t *Transaction, newToPartner bool) (Quote, error) {
	q := Quote{RulesVersion: r.Version}
	if t.Currency != r.Currency {
		return q, Errorf(CodeCurrencyMismatch, "currency", "%s, the partner's rules are in %s", t.Currency, r.Currency)
	}
	// weighted is Σ amount × multiplier × 10⁴: at most MaxAmount × 100 × 10⁴
	// = 10¹⁸, which fits an int64 (the line amounts add up to the amount).
	var weighted int64
	if len(t.Lines) == 0 {
		weighted = t.Amount * multiplierScale
	} else {
		for _, l := range t.Lines {
			m, ok := r.SKUs[l.SKU]
			if !ok || l.SKU == "" {
				m, ok = r.Categories[l.Category]
				if !ok || l.Category == "" {
					m = "1"
				}
			}
			s, err := m.Scaled()
			if err != nil {
				return q, err
			}
			weighted += l.Amount * s
		}
	}
	campaign := int64(multiplierScale)
	for i := range r.Campaigns {
		c := &r.Campaigns[i]
		if !c.Active(t.CreatedAt, t.Amount) {
			continue
		}
		q.Campaigns = append(q.Campaigns, c.ID)
		if c.Multiplier != "" {
			s, err := c.Multiplier.Scaled()
			if err != nil {
				return q, err
			}
			campaign = max(campaign, s)
		}
		q.Bonus += c.Bonus
	}
	// base = weighted × campaign × Points / (Per × 10⁴ × 10⁴), rounded once.
	num := new(big.Int).Mul(big.NewInt(weighted), big.NewInt(campaign))
	num.Mul(num, big.NewInt(r.Points))
	den := new(big.Int).Mul(big.NewInt(r.Per), big.NewInt(multiplierScale*multiplierScale))
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if rem.Sign() != 0 {
		switch r.Rounding {
		case RoundUp:
			quo.Add(quo, big.NewInt(1))
		case RoundNearest:
			if rem.Lsh(rem, 1).Cmp(den) >= 0 {
				quo.Add(quo, big.NewInt(1))
			}
		}
	}
	if newToPartner && r.NewPartnerBonus > 0 {
		q.Bonus += r.NewPartnerBonus
		q.NewPartnerBonus = true
	}
	if !quo.IsInt64() || quo.Int64() > MaxPoints || quo.Int64()+q.Bonus > MaxPoints {
		return q, Errorf(CodeInvalidPoints, "points", "the earn would be worth more than %d points", MaxPoints)
	}
	q.Base = quo.Int64()
	q.Points = q.Base + q.Bonus
	return q, nil
}

// Validate checks a Config.
func (c *Config) Validate() error {
	if err := checkVersion(c.Version); err != nil {
		return err
	}
	if err := checkID("store", c.Store); err != nil {
		return err
	}
	if err := checkID("partner", c.Partner); err != nil {
		return err
	}
	if !validCurrency(c.Currency) {
		return Errorf(CodeInvalidCurrency, "currency", "must be an ISO 4217 code such as EUR")
	}
	if _, err := ParsePointValue(c.PointValue, c.Currency); err != nil {
		return err
	}
	if len(c.Rules) > MaxRuleVersions {
		return Errorf(CodeInvalidRules, "rules", "%d versions, at most %d", len(c.Rules), MaxRuleVersions)
	}
	for i := range c.Rules {
		f := "rules[" + itoa(i) + "]"
		if err := c.Rules[i].Validate(); err != nil {
			pe := err.(*Error)
			return &Error{Code: pe.Code, Field: f + "." + pe.Field, Msg: pe.Msg}
		}
		switch {
		case c.Rules[i].Partner != c.Partner:
			return Errorf(CodeInvalidRules, f+".partner", "rules of %s in the config of %s", c.Rules[i].Partner, c.Partner)
		case c.Rules[i].Currency != c.Currency:
			return Errorf(CodeInvalidRules, f+".currency", "rules in %s in a config in %s", c.Rules[i].Currency, c.Currency)
		case c.Rules[i].Version < 1:
			return Errorf(CodeInvalidRules, f+".version", "must be 1 or more")
		case i > 0 && (c.Rules[i].Version <= c.Rules[i-1].Version || c.Rules[i].EffectiveFrom.Before(c.Rules[i-1].EffectiveFrom)):
			return Errorf(CodeInvalidRules, "rules", "must be ordered by version and effective_from, without repeats")
		}
	}
	if _, err := c.TokenKeys(); err != nil {
		return err
	}
	return nil
}

// EncodeConfig encodes a Config for publishing, dropping its oldest rule
// versions (never the last) until it fits MaxConfigBytes, so that no till
// ever receives a config it must refuse. It fails with CodeTooLarge when
// even the newest version alone does not fit.
func EncodeConfig(c *Config) ([]byte, error) {
	cc := *c
	for {
		b, err := Encode(&cc)
		if err != nil {
			return nil, err
		}
		if len(b) <= MaxConfigBytes {
			return b, nil
		}
		if len(cc.Rules) <= 1 {
			return nil, Errorf(CodeTooLarge, "rules", "the config is %d bytes with one rule version, at most %d", len(b), MaxConfigBytes)
		}
		cc.Rules = cc.Rules[1:]
	}
}
