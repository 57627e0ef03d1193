package protocol

import (
	"crypto/ed25519"
	"time"
)

// Kind says what a transaction does to a member's points.
type Kind string

// The kinds of transaction.
const (
	// KindEarn credits points for a purchase.
	KindEarn Kind = "earn"
	// KindBurn redeems points in one step. Online, the hub refuses it when
	// the member cannot cover it; a burn the till approved Offline is booked
	// even when it overdraws the member (flagged for the operator).
	KindBurn Kind = "burn"
	// KindHold reserves points for an online redemption: the first phase of a
	// two-phase burn. The hub refuses it when the member's available points
	// (balance less active holds) cannot cover it. A capture or a void
	// settles it; a hold neither captures nor voids lapses after the hub's
	// hold time.
	KindHold Kind = "hold"
	// KindCapture completes a hold (Original): it redeems Points, at most the
	// held points, and releases the rest.
	KindCapture Kind = "capture"
	// KindReverse gives back (part of) an earn or a burn, e.g. on a return.
	KindReverse Kind = "reverse"
	// KindVoid cancels a burn or hold the till declined (the hub answered too
	// late or not at all), or a hold the POS abandoned. It undoes the burn or
	// releases the hold if the hub applied it, and bars it if it arrives after
	// the void.
	KindVoid Kind = "void"
)

// Transaction is one movement of points, created and numbered at the till.
// The agent commits it to its outbox before it answers the POS; the hub
// applies it exactly once, keyed by ID.
type Transaction struct {
	// ID is created by the agent, unique across the coalition and sortable by
	// creation (a ULID). The hub deduplicates by it forever.
	ID string `json:"id"`
	// Store is the store the till belongs to.
	Store string `json:"store"`
	// Terminal is the till within the store.
	Terminal string `json:"terminal"`
	// Partner is the brand the store trades as; earns are its liability, burns its claim.
	Partner string `json:"partner"`
	// Member is the loyalty member, as read from the card or QR code.
	Member string `json:"member"`
	// Kind is earn, burn, hold, capture, reverse or void.
	Kind Kind `json:"kind"`
	// Amount is the purchase (or returned) amount in minor units of Currency;
	// zero when no money is involved. For a burn, hold or capture it is the
	// value of the goods paid with points, so that a partial return can give
	// back points in proportion. For a reverse it is the returned amount:
	// when both the reverse and its original carry an amount, the hub
	// reverses points in proportion to it and Points is only the till's quote.
	Amount int64 `json:"amount"`
	// Currency is the ISO 4217 code of Amount; required when Amount is not zero.
	Currency string `json:"currency,omitempty"`
	// Points moved. Always positive or zero; the Kind gives the direction.
	// For an earn it is the till's quote: the hub prices the earn itself with
	// the partner's rules in force at CreatedAt and books that (Ack.Points).
	Points int64 `json:"points"`
	// Lines are the purchase's line items, for category and SKU multipliers.
	// Optional; when present their amounts add up to Amount.
	Lines []Line `json:"lines,omitempty"`
	// Offline is set on a burn the till approved while the hub was
	// unreachable. The hub books it even when the member can no longer cover
	// it: the goods are gone, so the shortfall becomes a flagged overdraft.
	Offline bool `json:"offline,omitempty"`
	// RulesVersion is the version of the partner's earn rules the till quoted
	// an earn with (0: none, the till had no rules).
	RulesVersion int64 `json:"rules_version,omitempty"`
	// Receipt is the POS's reference for the sale, for statements and audits.
	Receipt string `json:"receipt,omitempty"`
	// Original is the ID of the transaction a reverse or void refers to.
	Original string `json:"original,omitempty"`
	// Seq is the terminal's sequence number: 1, 2, 3… per terminal, never reused.
	Seq uint64 `json:"seq"`
	// CreatedAt is when the till accepted the transaction, by the till's clock.
	CreatedAt time.Time `json:"created_at"`
}

// Line is one line item of a purchase.
type Line struct {
	// SKU is the product's stock-keeping unit; a SKU multiplier wins over a category one.
	SKU string `json:"sku,omitempty"`
	// Category is the product's category, as the partner's rules name it.
	Category string `json:"category,omitempty"`
	// Amount is the line's total in minor units (quantity included).
	Amount int64 `json:"amount"`
}

// Batch carries one or more transactions from one terminal. The agent sends
// single transactions as a batch of one, and batches up when it has a backlog.
type Batch struct {
	// Version is the protocol Version the sender speaks.
	Version int `json:"version"`
	// Store and Terminal name the sender; they must match the topic and every transaction.
	Store string `json:"store"`
	// Terminal is the sending till.
	Terminal string `json:"terminal"`
	// Backlog is how many transactions wait in the sender's outbox behind this
	// batch, not yet sent: zero when this batch empties the queue.
	Backlog int64 `json:"backlog"`
	// OldestUnsynced is when the oldest transaction still in the sender's
	// outbox was created; zero when nothing waits behind this batch.
	OldestUnsynced time.Time `json:"oldest_unsynced,omitzero"`
	// SentAt is the sender's clock when the batch left.
	SentAt time.Time `json:"sent_at"`
	// Txs are the transactions, oldest first.
	Txs []Transaction `json:"txs"`
	// MAC authenticates the batch with the terminal's MAC key (Seal): set
	// by an enrolled till, always its last member. Since Version 3.
	MAC string `json:"mac,omitempty"`
}

// Status is the hub's verdict on one transaction.
type Status string

// The statuses an ack can carry.
const (
	// StatusApplied: the transaction is committed to the ledger now.
	StatusApplied Status = "applied"
	// StatusDuplicate: the hub had already answered this ID; OriginalStatus,
	// Code and Balance repeat that first answer.
	StatusDuplicate Status = "duplicate"
	// StatusRejected: the hub refused the transaction for the reason in Code;
	// it changed nothing and never will.
	StatusRejected Status = "rejected"
	// StatusHeld: the hub has not applied the transaction and has recorded
	// nothing for its id, for the reason in Code (e.g. unknown_store: the
	// store is not registered yet). It is not an answer: the till keeps the
	// transaction and sends it again later.
	StatusHeld Status = "held"
)

// Ack is the hub's final answer for one transaction, sent only after the
// ledger commit that recorded it. The agent deletes the transaction from its
// outbox when the ack arrives, whatever the status — except held, which is
// not an answer.
type Ack struct {
	// ID is the transaction's ID.
	ID string `json:"id"`
	// Status is applied, duplicate, rejected or held.
	Status Status `json:"status"`
	// OriginalStatus is, for a duplicate, the status of the first answer (applied or rejected).
	OriginalStatus Status `json:"original_status,omitempty"`
	// Code says why a transaction was rejected (for a duplicate: why the original was).
	Code Code `json:"code,omitempty"`
	// Member is the member the transaction concerns.
	Member string `json:"member,omitempty"`
	// Balance is the member's available points after the transaction was
	// applied — the balance less active holds — (or, when rejected, the
	// available points that caused the rejection). It is negative when the
	// member owes points.
	Balance int64 `json:"balance"`
	// Points is what the hub booked: for an earn its own price, for a reverse
	// the points given back or taken, for a burn or capture the points
	// redeemed, for a hold the points reserved.
	Points int64 `json:"points,omitempty"`
}

// Final reports the outcome an ack stands for: for a duplicate, the original's.
func (a Ack) Final() Status {
	if a.Status == StatusDuplicate {
		return a.OriginalStatus
	}
	return a.Status
}

// AckBatch carries the acks for one terminal, in the order the hub committed them.
type AckBatch struct {
	// Version is the protocol Version the hub speaks.
	Version int `json:"version"`
	// Acks are the answers.
	Acks []Ack `json:"acks"`
	// Window is the hub's grant: the most transactions the till may have
	// sent and not yet had answered, its share of the hub's queue among
	// the tills sending a backlog. 0 (absent): no grant; the till keeps
	// its own window. A hub sends at most MaxWindow; a reader takes a
	// value of 0 or less as no grant and any other within its own window,
	// and never refuses the acks for it (a later hub may grant more).
	// Since Version 3, extended.
	Window int `json:"window,omitempty"`
	// MAC authenticates the acks with the terminal's MAC key (Seal): set
	// by the hub for an enrolled terminal. Since Version 3.
	MAC string `json:"mac,omitempty"`
}

// BalanceQuery asks the hub for a member's balance on behalf of a till.
type BalanceQuery struct {
	// Version is the protocol Version the sender speaks.
	Version int `json:"version"`
	// RequestID pairs the reply with the query; unique per terminal.
	RequestID string `json:"request_id"`
	// Member is the member asked about.
	Member string `json:"member"`
	// MAC is set by an enrolled till (see Batch.MAC). Since Version 3.
	MAC string `json:"mac,omitempty"`
}

// BalanceReply answers a BalanceQuery.
type BalanceReply struct {
	// Version is the protocol Version the hub speaks.
	Version int `json:"version"`
	// RequestID repeats the query's.
	RequestID string `json:"request_id"`
	// Member repeats the query's.
	Member string `json:"member"`
	// Known is false when the hub has never seen the member (Balance is then 0).
	Known bool `json:"known"`
	// Balance is the member's points at the hub, as of AsOf.
	Balance int64 `json:"balance"`
	// AsOf is the hub's clock when it read the balance.
	AsOf time.Time `json:"as_of"`
	// Code is set when the query itself was refused.
	Code Code `json:"code,omitempty"`
	// MAC is set by the hub for an enrolled terminal (see AckBatch.MAC).
	// Since Version 3.
	MAC string `json:"mac,omitempty"`
}

// Config is what the hub tells every till of a store: the coalition's
// currency and point value and the partner's earn rules, so that a till can
// quote points offline exactly as the hub will book them. The hub publishes
// it retained on the store's config topic whenever it changes.
type Config struct {
	// Version is the protocol Version the hub speaks.
	Version int `json:"version"`
	// Store is the store the config is for.
	Store string `json:"store"`
	// Partner is the brand the store trades as.
	Partner string `json:"partner"`
	// Currency is the coalition's ISO 4217 currency.
	Currency string `json:"currency"`
	// PointValue is what one point is worth, in major units of Currency, as
	// a decimal string ("0.01").
	PointValue string `json:"point_value"`
	// Rules are the partner's earn rule versions still in force or
	// scheduled, oldest first. SelectRules picks the one for a time.
	Rules []RuleSet `json:"rules"`
	// MemberTokenKeys are the coalition's public keys for member tokens
	// (EncodeTokenKey: base64 of an Ed25519 key), newest first, at most
	// MaxTokenKeys: a till accepts a token signed by any of them, so a key
	// can be rotated without refusing the tokens it signed minutes ago.
	// Empty: the till cannot verify tokens (token_unverifiable).
	MemberTokenKeys []string `json:"member_token_keys,omitempty"`
	// PublishedAt is the hub's clock when it published the config.
	PublishedAt time.Time `json:"published_at"`
	// Sig is the hub's signature of the config with the coalition's
	// member token key (SignConfig), always its last member: an enrolled
	// till takes only a config signed by a key it trusts. Readers of
	// version 2 ignore it; the config stays UnsealedVersion. Since
	// Version 3, extended.
	Sig string `json:"sig,omitempty"`
}

// TokenKeys returns MemberTokenKeys decoded (see ParseTokenKeys).
func (c *Config) TokenKeys() ([]ed25519.PublicKey, error) {
	return ParseTokenKeys(c.MemberTokenKeys)
}

// Sighting tells the hub that a till accepted a member token, so that the
// hub can flag a token accepted at two stores (a screenshot passed on, a
// code read over someone's shoulder). Tills send it best effort, QoS 0, on
// their terminal's scan channel, and only while connected: a sighting is
// evidence, not a transaction, and nothing waits for it.
type Sighting struct {
	// Version is the protocol Version the sender speaks.
	Version int `json:"version"`
	// Store and Terminal name the till; they must match the topic.
	Store string `json:"store"`
	// Terminal is the till within Store.
	Terminal string `json:"terminal"`
	// Token is the member token as scanned. The hub checks its signature
	// itself and takes the member, nonce and expiry from it, so a till
	// cannot report a sighting of a token the hub never signed.
	Token string `json:"token"`
	// At is when the till accepted it, by the till's clock.
	At time.Time `json:"at"`
	// MAC is set by an enrolled till (see Batch.MAC). Since Version 3.
	MAC string `json:"mac,omitempty"`
}
