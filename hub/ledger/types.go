package ledger

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// Coalition is the coalition's own settings.
type Coalition struct {
	// Name is for people: reports and the dashboard.
	Name string `json:"name"`
	// Currency is the ISO 4217 currency of every amount and of settlement.
	Currency string `json:"currency"`
	// PointValue is what one point is worth, a decimal in major units of
	// Currency ("0.01"): the rate at which partners settle.
	PointValue string `json:"point_value"`
	// ExpiryMonths is how long earned points live: a lot expires at the end
	// of the ExpiryMonths-th month after the month it was earned in (earned
	// any day of January 2026 with 12: expires 2027-02-01 00:00 UTC). 0: never.
	ExpiryMonths int `json:"expiry_months"`
	// HoldMinutes is how long a hold reserves points before it lapses. 0 means 15.
	HoldMinutes int `json:"hold_minutes"`
	// ReturnWaitDays is how long a return whose sale the hub has not seen
	// (a sale made at another till that is still offline) is answered
	// "held", counted from the return's created_at, before it is refused
	// unknown_original. 0 means 7.
	ReturnWaitDays int `json:"return_wait_days,omitempty"`
}

// DefaultHoldMinutes is the hold time when Coalition.HoldMinutes is 0.
const DefaultHoldMinutes = 15

// DefaultReturnWaitDays is the return wait when Coalition.ReturnWaitDays is 0.
const DefaultReturnWaitDays = 7

// MaxReturnWaitDays bounds Coalition.ReturnWaitDays.
const MaxReturnWaitDays = 90

// ReturnWait is how long a return waits for its sale to reach the hub.
func (c Coalition) ReturnWait() time.Duration {
	days := c.ReturnWaitDays
	if days <= 0 {
		days = DefaultReturnWaitDays
	}
	return time.Duration(days) * 24 * time.Hour
}

// MaxExpiryMonths bounds Coalition.ExpiryMonths.
const MaxExpiryMonths = 240

// HoldTTL is how long a hold lives.
func (c Coalition) HoldTTL() time.Duration {
	if c.HoldMinutes <= 0 {
		return DefaultHoldMinutes * time.Minute
	}
	return time.Duration(c.HoldMinutes) * time.Minute
}

// Validate checks the settings and returns a *protocol.Error.
func (c Coalition) Validate() error {
	if len(c.Name) > 200 || strings.ContainsFunc(c.Name, isControl) {
		return protocol.Errorf(protocol.CodeMalformed, "name", "must be at most 200 characters, without control characters")
	}
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency || strings.ContainsFunc(c.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return protocol.Errorf(protocol.CodeInvalidCurrency, "currency", "must be an ISO 4217 code such as EUR")
	}
	if _, err := protocol.ParsePointValue(c.PointValue, c.Currency); err != nil {
		return err
	}
	if c.ExpiryMonths < 0 || c.ExpiryMonths > MaxExpiryMonths {
		return protocol.Errorf(protocol.CodeMalformed, "expiry_months", "must be 0 (never) to %d", MaxExpiryMonths)
	}
	if c.HoldMinutes < 0 || c.HoldMinutes > 7*24*60 {
		return protocol.Errorf(protocol.CodeMalformed, "hold_minutes", "must be 0 (the default, %d) to %d", DefaultHoldMinutes, 7*24*60)
	}
	if c.ReturnWaitDays < 0 || c.ReturnWaitDays > MaxReturnWaitDays {
		return protocol.Errorf(protocol.CodeMalformed, "return_wait_days", "must be 0 (the default, %d) to %d", DefaultReturnWaitDays, MaxReturnWaitDays)
	}
	return nil
}

// ExpiresAt returns when a lot earned at t expires, or the zero time when
// points never expire: the first instant of the month ExpiryMonths+1 months
// after t's month, in UTC. Month-based, so that it never moves backwards
// for a later t (AddDate's month-end normalisation would).
func (c Coalition) ExpiresAt(t time.Time) time.Time {
	if c.ExpiryMonths <= 0 {
		return time.Time{}
	}
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+time.Month(c.ExpiryMonths)+1, 1, 0, 0, 0, 0, time.UTC)
}

// Partner is a brand of the coalition.
type Partner struct {
	// ID is the partner's id, as tills send it.
	ID string `json:"id"`
	// Name is for people.
	Name string `json:"name,omitempty"`
	// CreatedAt is when the partner was first recorded.
	CreatedAt time.Time `json:"created_at"`
}

// StoreInfo is a registered store.
type StoreInfo struct {
	// ID is the store's id, as tills send it.
	ID string `json:"id"`
	// Partner is the brand the store trades as.
	Partner string `json:"partner"`
	// Name is for people.
	Name string `json:"name,omitempty"`
	// CreatedAt is when the store was registered.
	CreatedAt time.Time `json:"created_at"`
}

// Seed is a whole coalition in one file, for a demo, a test or a first
// install. Its YAML form uses the same field names as the JSON API.
type Seed struct {
	// Coalition is the coalition's settings.
	Coalition Coalition `json:"coalition"`
	// Partners are the brands with their stores and rules.
	Partners []SeedPartner `json:"partners"`
}

// SeedPartner is one partner of a Seed.
type SeedPartner struct {
	// ID is the partner's id.
	ID string `json:"id"`
	// Name is for people.
	Name string `json:"name,omitempty"`
	// Rules are the partner's current earn rules (Partner and Version are
	// filled in). A new version is recorded only when they differ from the
	// version in force.
	Rules *protocol.RuleSet `json:"rules,omitempty"`
	// Stores are the partner's stores.
	Stores []SeedStore `json:"stores,omitempty"`
}

// SeedStore is one store of a SeedPartner.
type SeedStore struct {
	// ID is the store's id.
	ID string `json:"id"`
	// Name is for people.
	Name string `json:"name,omitempty"`
	// Terminals are the store's tills.
	Terminals []string `json:"terminals,omitempty"`
}

// SeedReport counts what LoadSeed changed.
type SeedReport struct {
	Partners  int `json:"partners"`
	Stores    int `json:"stores"`
	Terminals int `json:"terminals"`
	Rules     int `json:"rules"`
}

// MemberView is everything the ledger knows about a member's points.
type MemberView struct {
	// Member is the member's id.
	Member string `json:"member"`
	// Known is false for a member never seen.
	Known bool `json:"known"`
	// Balance is the member's points; negative when the member owes points.
	Balance int64 `json:"balance"`
	// Held is the points reserved by active holds.
	Held int64 `json:"held"`
	// Available is Balance less Held: what an online burn can take.
	Available int64 `json:"available"`
	// Lots are the member's points by when they were earned, oldest first,
	// with what is left of each (lots used up are left out).
	Lots []Lot `json:"lots"`
	// Holds are the member's active holds.
	Holds []Hold `json:"holds"`
	// Flag is set while the member owes points.
	Flag *Flag `json:"flag,omitempty"`
}

// Lot is points earned together, which expire together.
type Lot struct {
	// ID is the id of the transaction that created the lot (an earn).
	ID string `json:"id"`
	// Partner is the partner that issued the points.
	Partner string `json:"partner"`
	// EarnedAt dates the lot: the earn's creation time (never after the hub's clock).
	EarnedAt time.Time `json:"earned_at"`
	// ExpiresAt is when the lot's points expire; zero when they never do.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Points is what the lot started with.
	Points int64 `json:"points"`
	// Remaining is what is left of it.
	Remaining int64 `json:"remaining"`
}

// LotUse is the points a burn took from one lot, kept so that a return
// gives them back to the lot they came from.
type LotUse struct {
	// Lot is the lot's id.
	Lot string `json:"lot"`
	// At is the lot's earned-at time, which places it.
	At time.Time `json:"at"`
	// Points taken (and not yet given back).
	Points int64 `json:"points"`
}

// Hold is an active reservation of points.
type Hold struct {
	// ID is the hold's transaction id.
	ID string `json:"id"`
	// Store and Terminal placed the hold.
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	// Points reserved.
	Points int64 `json:"points"`
	// ExpiresAt is when the hold lapses unless captured or voided.
	ExpiresAt time.Time `json:"expires_at"`
}

// The reasons a member is flagged.
const (
	// FlagOverdraft: an offline burn, or a capture after its hold lapsed,
	// took more points than the member had.
	FlagOverdraft = "overdraft"
	// FlagReturnAfterSpend: a return took back points the member had
	// already spent (the earn–burn–return pattern).
	FlagReturnAfterSpend = "return_after_spend"
)

// Flag marks a member who owes points, for an operator to act on.
type Flag struct {
	// Member is the member.
	Member string `json:"member"`
	// Reason is overdraft or return_after_spend: what first took the member below zero.
	Reason string `json:"reason"`
	// Balance is the member's balance now (negative).
	Balance int64 `json:"balance"`
	// TxID is the transaction that first took the member below zero.
	TxID string `json:"tx_id"`
	// Since is the hub's time of that transaction.
	Since time.Time `json:"since"`
}

// ExpiryReport says what an expiry run posted.
type ExpiryReport struct {
	// AsOf is the time the run expired points up to.
	AsOf time.Time `json:"as_of"`
	// Lots is the number of lots that expired (in part or whole).
	Lots int `json:"lots"`
	// Members is the number of members who lost points.
	Members int `json:"members"`
	// Points is the total expired.
	Points int64 `json:"points"`
}

// Day is a calendar day in UTC, counted from 1970-01-01. Settlement periods
// are whole days.
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	return Day(t.UTC().Unix() / 86400)
}

// ParseDay parses YYYY-MM-DD.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 2000 || t.Year() >= 2100 {
		return 0, protocol.Errorf(protocol.CodeInvalidTime, "", "%q is not a day (YYYY-MM-DD) between 2000 and 2099", s)
	}
	return DayOf(t), nil
}

// Time returns the day's first instant.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String is YYYY-MM-DD.
func (d Day) String() string { return d.Time().Format(time.DateOnly) }

// MarshalJSON writes "YYYY-MM-DD".
func (d Day) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "YYYY-MM-DD". Unlike ParseDay (for what people type)
// it takes any date: the journal dates entries by whatever clock it had.
func (d *Day) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return protocol.Errorf(protocol.CodeInvalidTime, "", "%q is not a day (YYYY-MM-DD)", s)
	}
	*d = DayOf(t)
	return nil
}

// PeriodID names the period [from, to): "2026-10-01..2026-11-01".
func PeriodID(from, to Day) string { return from.String() + ".." + to.String() }

// SettlementLine is one partner's figures for a period, or for the late
// arrivals of one closed period (Restates set).
type SettlementLine struct {
	// Partner is the partner.
	Partner string `json:"partner"`
	// Restates names the closed period these late transactions belong to;
	// empty for the period's own line.
	Restates string `json:"restates,omitempty"`
	// Issued is the points the partner issued (earns less their reversals).
	Issued int64 `json:"issued"`
	// Redeemed is the points redeemed at the partner (burns and captures
	// less their reversals and voids).
	Redeemed int64 `json:"redeemed"`
	// Expired is the points of the partner's lots that expired (breakage,
	// kept by the coalition; shown for information).
	Expired int64 `json:"expired"`
	// IssuedValue is Issued at the point value, in minor units.
	IssuedValue int64 `json:"issued_value"`
	// RedeemedValue is Redeemed at the point value, in minor units.
	RedeemedValue int64 `json:"redeemed_value"`
	// Net is IssuedValue less RedeemedValue: positive, the partner owes the
	// coalition; negative, the coalition owes the partner.
	Net int64 `json:"net"`
}

// Add adds l's figures to t's (a total line).
func (t *SettlementLine) Add(l SettlementLine) {
	t.Issued += l.Issued
	t.Redeemed += l.Redeemed
	t.Expired += l.Expired
	t.IssuedValue += l.IssuedValue
	t.RedeemedValue += l.RedeemedValue
	t.Net += l.Net
}

// Settlement is the settlement report for [From, To).
type Settlement struct {
	// From is the first day of the report.
	From Day `json:"from"`
	// To is the day after the last.
	To Day `json:"to"`
	// Currency and PointValue are the coalition's, which values are in.
	Currency   string `json:"currency"`
	PointValue string `json:"point_value"`
	// Closed is set when [From, To) is exactly a closed period.
	Closed bool `json:"closed"`
	// Lines are the partners' lines, by partner, each followed by its
	// restatement lines (by the period they restate).
	Lines []SettlementLine `json:"lines"`
	// Total adds up every line (Partner "TOTAL").
	Total SettlementLine `json:"total"`
}

// Period is a closed settlement period.
type Period struct {
	// From is the period's first day.
	From Day `json:"from"`
	// To is the day after its last.
	To Day `json:"to"`
	// ClosedAt is the hub's time of the close.
	ClosedAt time.Time `json:"closed_at"`
	// JournalSeq is the last journal entry at the close.
	JournalSeq uint64 `json:"journal_seq"`
	// ChainHash is that entry's hash: it anchors the journal as it was.
	ChainHash string `json:"chain_hash"`
	// PointValue is the coalition's point value at the close: the period's
	// report keeps valuing its points at it.
	PointValue string `json:"point_value"`
	// Lines are the period's settlement lines as closed; Verify checks the
	// report still gives exactly these.
	Lines []SettlementLine `json:"lines"`
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkName refuses names with control characters or over 200 bytes.
func checkName(field, name string) error {
	if len(name) > 200 || strings.ContainsFunc(name, isControl) {
		return protocol.Errorf(protocol.CodeMalformed, field, "must be at most 200 characters, without control characters")
	}
	return nil
}

// idError is the error for an invalid id.
func idError(field, id string) error {
	if id == "" {
		return protocol.Errorf(protocol.CodeMissingField, field, "is required")
	}
	return protocol.Errorf(protocol.CodeInvalidID, field, "%q must be 1-%d characters of A-Z a-z 0-9 . _ -", id, protocol.MaxIDLen)
}
