// Package ledger is the coalition's authoritative points ledger: the
// coalition model (partners, stores, terminals, versioned earn rules), a
// hash-chained double-entry journal, members' balances, lots, holds and
// flags, the settlement totals partners settle on, and the permanent record
// of every answer the hub has given to a transaction id.
//
// # The model
//
// Points live in accounts:
//
//   - member/{id}: the points owed to a member; its value is the member's
//     balance, negative while the member owes points.
//   - partner/{p}/issued: the points partner p has issued (earns); it goes
//     negative as p's liability grows.
//   - partner/{p}/redeemed: the points redeemed at partner p (burns and
//     captures); p's claim on the coalition.
//   - partner/{p}/expired: the points p issued that expired (breakage).
//
// Every applied transaction that moves points appends one journal Entry whose
// postings sum to zero:
//
//	earn P at X for M:            member/M +P   partner/X/issued   −P
//	burn or capture P at X:       member/M −P   partner/X/redeemed +P
//	reverse of an earn:           member/M −P   partner/X/issued   +P   (X: the earn's partner)
//	reverse of a burn, void:      member/M +P   partner/X/redeemed −P   (X: the burn's partner)
//	expiry of a lot of X:         member/M −P   partner/X/expired  +P
//
// so the sum over all accounts is always zero and every balance can be
// recomputed from the journal. Each entry carries the SHA-256 of the entry
// before it and its own content (Entry.Hash): the journal is append-only
// and Verify says exactly where a changed or removed entry breaks the chain.
//
// # The coalition
//
// A store must be registered (with the partner it trades as) before its
// transactions are applied; until then they are answered "held" and stay in
// the till's outbox, so nothing a till accepted is lost to a registration
// that came late. An earn is priced by the hub with the partner's rules in
// force at the transaction's creation time (protocol.SelectRules and
// protocol.RuleSet.Price, the same code the till quotes with), so an offline
// earn synced days later books what the member was told at the till, and a
// till cannot mint points by quoting high. Rule versions never change and
// never take effect in the past.
//
// # Burns, holds, returns, lots
//
// An online redemption is two-phase: a hold reserves points (refused when
// the balance less active holds cannot cover it), a capture redeems them, a
// void releases them, and a hold neither captured nor voided lapses after
// the coalition's hold time. A one-step online burn is refused the same way.
// Online, nothing takes a balance below zero. What the till approved
// offline (offline burns, a capture after its hold lapsed) is booked anyway
// and a resulting negative balance is flagged for an operator; so is a
// return that takes back points the member has already spent (earn, spend,
// return the goods: the member owes, never gets free points).
//
// A return whose sale the hub has never seen — sold at another till that
// has not synced yet — is answered "held" like the transactions of an
// unregistered store: the till sends it again until the sale arrives, and
// only once the coalition's return wait (counted from the return's
// created_at) has run out is it refused unknown_original. A return that
// takes back points a live hold has reserved leaves the hold alone (the
// till may already have handed over the goods on it): the capture then
// books the overdraft and flags the member "overdraft".
//
// A return reverses points in proportion to the amount returned, rounded
// down on the running total, so the returns of a sale never add up to more
// than it earned and a full return gives back exactly all of it. Points live
// in lots (see lots.go) that expire at the end of a configurable number of
// months; burns take the oldest first and an expiry run posts expiry
// entries idempotently.
//
// # Exactly once
//
// The ledger deduplicates by transaction id forever, not by time window. The
// first answer for an id — applied, or rejected with a code — is recorded in
// the same commit as its effect, and every later transaction with that id gets
// a duplicate Ack repeating that answer, whether it arrives in the same Apply
// or years later. Rejections are final for the same reason: a retry must not
// turn a "no" into a "yes" behind the till's back. Held is not an answer and
// records nothing.
//
// A terminal numbers its transactions 1, 2, 3… and never reuses a number,
// so the ledger also records, in the same commit, which id each of a
// terminal's sequence numbers came with: a new id under a number already
// seen is a replay (a captured transaction sent again with its id
// changed) and is rejected seq_reused — a final answer like any other,
// recorded for its id, while the same id again stays a duplicate. The
// record starts afresh with each enrollment of the terminal
// (TerminalAuth.Generation): a till enrolled again may be a new machine
// whose outbox counts from 1 again. A till that has not enrolled has one
// record for good, so a reinstalled one must not come back under its old
// terminal id with a new outbox: enroll it, or give it a new id.
//
// A void cancels a burn or hold the till declined. If it was applied, the
// void gives back what was not yet reversed (or releases the hold); if it
// was rejected, the void changes nothing; if it has not arrived yet, the
// void is remembered and the burn or hold is rejected "voided" when it
// comes. A void only speaks for the terminal and member of its original.
//
// # Settlement
//
// Earns are the issuing partner's liability, redemptions the redeeming
// partner's claim; settle.go keeps per-day totals in the same commit and
// reports them per partner at the coalition's point value. Closed periods
// never change: late arrivals are booked as restatements (see settle.go).
//
// # Member token sightings
//
// Beside the journal, and moving no points, the ledger records which tills
// accepted which member token (a signed rotating QR code; tokens.go): a
// token accepted at a second store is flagged for an operator. Sightings
// are pruned an hour after their token expires; flags stay.
//
// # API tokens
//
// The bearer tokens of the hub's HTTP API live here too, each with a role
// (operator, partner, read-only), kept as salted hashes (apitokens.go).
//
// # Commits
//
// Apply is an explicit group commit: the caller (hub/ingest) gathers the
// batches that arrived concurrently and applies them in one durable commit,
// then acks. The bbolt store does that in a single bbolt.Update with fsync on
// (NoSync stays false); it never uses bbolt's DB.Batch, which may run a
// function twice. Acks are only valid once Apply has returned without error.
//
// # The file
//
// The bbolt file never shrinks: what expiry, pruning and every commit's
// copy-on-write free inside it is reused, not given back. Compact rewrites
// a ledger that no hub holds into a densely packed file and puts it in the
// original's place only once it has read it back, compared it with the
// original and verified it (compact.go). StatFile and BoltStore.FileStats
// tell the file's size against its live data.
//
// What a commit costs is the leaves of the file's B+trees it dirties:
// bbolt rewrites each whole. A member's lots, balance and statement index
// are therefore kept side by side in one bucket, ordered so that an earn's
// three writes land in one leaf (members.go), and the other hot buckets are
// keyed so that new keys go at their end (the journal by sequence number,
// the records by the tills' time-ordered ids). The journal, which never
// takes a key anywhere but at its end, fills its pages before splitting
// them (bbolt splits at half a page by default); the records do not, as a
// till's backlog from hours ago lands among them. That layout is schema 3; a
// writable open upgrades a schema-2 file in place, in resumable steps
// (upgrade.go).
//
// Store is the boundary; BoltStore is the bbolt implementation (a PostgreSQL
// one will follow). The conformance suite in package ledgertest runs against
// every Store, so the rules above hold whichever is in use.
package ledger

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// Store is the ledger. Implementations: the bbolt store here; PostgreSQL
// later. One conformance suite (package ledgertest) runs against every Store.
// All methods are safe for concurrent use.
type Store interface {
	// Apply applies the batches in one durable commit (explicit group commit:
	// the caller gathers concurrent batches and calls Apply once), in order,
	// and returns for each batch one Ack per transaction, in order. It also
	// records each batch's terminal info (last seen = now, backlog,
	// oldest_unsynced, highest seq) in the same commit. Apply returns an error
	// only when nothing could be committed (then nothing was); a rejected
	// transaction is an Ack with StatusRejected, not an error. A transaction
	// from a store the coalition has not registered gets StatusHeld and
	// leaves no trace but the terminal info. Batches are already validated by
	// protocol.Batch.Validate.
	Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error)
	// Balance returns a member's points; known is false for a member never
	// seen. A member id that is not a protocol id is an error
	// (invalid_id), as it is for Member and Statement.
	Balance(member string) (points int64, known bool, err error)
	// Member returns a member's balance, holds, lots and flag as of now
	// (holds past their expiry are not counted).
	Member(member string, now time.Time) (MemberView, error)
	// Statement returns the member's journal entries, newest first, at most
	// limit (limit <= 0 returns none).
	Statement(member string, limit int) ([]Entry, error)
	// Flags lists the members flagged for an operator (owing points), by member.
	Flags() ([]Flag, error)
	// Terminals lists every terminal that is registered or ever sent a
	// batch, ordered by store then terminal.
	Terminals() ([]Terminal, error)
	// Verify replays the whole journal and checks everything derived from
	// it; see VerifyReport. err is for I/O problems only.
	Verify() (VerifyReport, error)
	// VerifyContext is Verify, given up with ctx's error soon after ctx is
	// done (a hub stopping, a client gone).
	VerifyContext(ctx context.Context) (VerifyReport, error)
	// MemberBalances returns every member's stored balance (for checks and tests).
	MemberBalances() (map[string]int64, error)
	// Transactions returns the records of all transactions with a final
	// answer (applied or rejected), ordered by id — for end-to-end checks
	// such as "every accepted tx is in the ledger exactly once".
	Transactions() ([]TxRecord, error)

	// Coalition returns the coalition's settings (zero before any are set).
	Coalition() (Coalition, error)
	// SetCoalition records the coalition's settings. The currency cannot
	// change once a partner has rules.
	SetCoalition(c Coalition) error
	// PutPartner creates a partner or renames it.
	PutPartner(p Partner, now time.Time) error
	// Partners lists the partners, by id.
	Partners() ([]Partner, error)
	// PutStore registers a store with its partner, or renames it. Moving a
	// store to another partner is refused (CodeConflict) once it has
	// transactions.
	PutStore(s StoreInfo, now time.Time) error
	// Stores lists the registered stores, by id.
	Stores() ([]StoreInfo, error)
	// AddTerminal registers a terminal of a registered store; registering
	// one twice is harmless.
	AddTerminal(store, terminal string, now time.Time) error
	// AddRules records a new version of a partner's earn rules and returns
	// it with its Version. EffectiveFrom zero means now; a time before now
	// is refused (CodeInvalidRules) unless the partner has no rules yet.
	AddRules(rs protocol.RuleSet, now time.Time) (protocol.RuleSet, error)
	// Rules returns a partner's rule versions, oldest first.
	Rules(partner string) ([]protocol.RuleSet, error)
	// LoadSeed applies a seed (coalition, partners, stores, terminals,
	// rules) in one commit; loading the same seed again changes nothing.
	LoadSeed(s *Seed, now time.Time) (SeedReport, error)

	// ExpireHolds lapses every hold past its expiry, releasing its points,
	// and returns how many it lapsed.
	ExpireHolds(now time.Time) (int, error)
	// Expire posts an expiry entry for every lot whose points expired by
	// asOf. Running it again for the same asOf posts nothing. asOf is the
	// hub's clock for the run (holds lapse and entries are stamped by it),
	// so it must be now, never a time ahead.
	Expire(asOf time.Time) (ExpiryReport, error)
	// Settlement reports, per partner, the points issued, redeemed and
	// expired on the accounting days [from, to), their value and the net,
	// plus restatement lines for closed periods.
	Settlement(from, to Day) (Settlement, error)
	// ClosePeriod closes the settlement period [from, to): from then on,
	// transactions created in it are booked in the open period as
	// restatements. to must not be after today (by now); from must equal
	// the last closed period's to, when there is one.
	ClosePeriod(from, to Day, now time.Time) (Period, error)
	// Periods lists the closed periods, oldest first.
	Periods() ([]Period, error)

	// SeeToken records that a till accepted a member token (see
	// TokenSighting) and returns what is known of the token now. The first
	// sighting from another store than the token's first flags it; flagged
	// is true for that sighting only. A sighting of the same nonce for
	// another member is refused (CodeConflict) and changes nothing.
	SeeToken(s TokenSighting, now time.Time) (rec TokenRecord, flagged bool, err error)
	// TokenFlags lists the tokens accepted at two stores, oldest flag
	// first. Flags are kept when their sightings are pruned.
	TokenFlags() ([]TokenRecord, error)
	// PruneTokens forgets the sightings of tokens that expired
	// TokenRetention or more before now and returns how many it forgot;
	// a later sighting of one is a first sighting again.
	PruneTokens(now time.Time) (int, error)

	// IssueEnrollmentToken, Enroll, AuthenticateTerminal, Enrolled,
	// RevokeTerminal, Enrollments, TerminalAuth and BrokerUsers: terminal
	// enrollment (enroll.go).
	IssueEnrollmentToken(store, terminal string, ttl time.Duration, now time.Time) (EnrollmentToken, error)
	Enroll(tokenID string, secret []byte, publicKey []byte, now time.Time) (TerminalCredentials, error)
	AuthenticateTerminal(username string, password []byte) (ok bool, reason string)
	Enrolled(store, terminal string) bool
	RevokeTerminal(store, terminal string, now time.Time) error
	Enrollments() ([]Enrollment, error)
	// TerminalAuth is called for every message from a terminal: it must
	// answer from memory, and see an Enroll or RevokeTerminal as soon as
	// it has returned.
	TerminalAuth(store, terminal string) TerminalAuth
	BrokerUsers() ([]BrokerUser, error)

	// CreateAPIToken, AuthenticateAPIToken, APITokens and RevokeAPIToken:
	// the tokens of the hub's HTTP API and their roles (apitokens.go).
	CreateAPIToken(t APIToken, now time.Time) (APIToken, []byte, error)
	AuthenticateAPIToken(id string, secret []byte, now time.Time) (APIToken, error)
	APITokens() ([]APIToken, error)
	RevokeAPIToken(id string, now time.Time) (APIToken, error)

	// Close releases the store. Using it afterwards is an error.
	Close() error
}

// Entry is one journal entry: the postings of one applied transaction.
type Entry struct {
	// Seq numbers the journal: 1, 2, 3… in commit order, never reused.
	Seq uint64 `json:"seq"`
	// TxID is the id of the transaction that made the entry.
	TxID string `json:"tx_id"`
	// Kind is the transaction's kind (earn, burn, capture, reverse, void), or
	// expire for an expiry.
	Kind string `json:"kind"`
	// Member is the member whose balance the entry moves.
	Member string `json:"member"`
	// Partner is the partner whose accounts are posted: the transaction's own
	// for an earn or burn, the original's for a reverse or void.
	Partner string `json:"partner"`
	// Store is the store the transaction came from.
	Store string `json:"store"`
	// Terminal is the till within Store.
	Terminal string `json:"terminal"`
	// Original is, for a reverse or void, the id of the transaction it undoes.
	Original string `json:"original,omitempty"`
	// Lot is, for an expiry, the lot that expired.
	Lot string `json:"lot,omitempty"`
	// Points is the signed effect on the member: positive for an earn, a
	// reverse of a burn and a void; negative for a burn, a capture, a
	// reverse of an earn and an expiry.
	Points int64 `json:"points"`
	// Postings are the account movements; they sum to zero.
	Postings []Posting `json:"postings"`
	// At is the hub's commit time.
	At time.Time `json:"at"`
	// CreatedAt is when the till accepted the transaction, by the till's clock.
	CreatedAt time.Time `json:"created_at"`
	// Day is the accounting day the entry settles on: the day it was created
	// (by the till's clock, never after At) — unless that day is in a closed
	// period, when it is the day it was booked and Restates names the period.
	Day Day `json:"day"`
	// Restates names the closed period the entry belongs to by creation.
	Restates string `json:"restates,omitempty"`
	// Hash is the hex SHA-256 of the previous entry's hash and this entry's
	// JSON without Hash: the chain Verify checks.
	Hash string `json:"hash"`
}

// Posting moves points in one account.
type Posting struct {
	// Account is member/{id}, partner/{p}/issued, partner/{p}/redeemed or partner/{p}/expired.
	Account string `json:"account"`
	// Delta is the signed change to the account.
	Delta int64 `json:"delta"`
}

// Terminal is what the hub knows about one till's sync state, as of its last batch.
type Terminal struct {
	// Store is the store the till belongs to.
	Store string `json:"store"`
	// Terminal is the till.
	Terminal string `json:"terminal"`
	// LastSeen is the hub's commit time of the terminal's last batch.
	LastSeen time.Time `json:"last_seen"`
	// Backlog is how many transactions the till's outbox held when it sent its last batch.
	Backlog int64 `json:"backlog"`
	// OldestUnsynced is the creation time of the oldest transaction in the
	// till's outbox, as of its last batch (zero when the outbox was empty).
	OldestUnsynced time.Time `json:"oldest_unsynced"`
	// LastSeq is the highest transaction sequence number the hub has received from the till.
	LastSeq uint64 `json:"last_seq"`
	// Applied counts the till's transactions the hub has applied (not
	// duplicates, not rejections).
	Applied int64 `json:"applied"`
	// Registered is set when the coalition registered the terminal.
	Registered bool `json:"registered"`
	// HeldBack is how many transactions of the terminal's last batch the
	// hub held back (status held), e.g. because its store is not registered.
	HeldBack int64 `json:"held_back"`
}

// TxRecord is the hub's permanent record of its first answer to a
// transaction id, kept forever for deduplication.
type TxRecord struct {
	// ID is the transaction's id.
	ID string `json:"id"`
	// Status is the first answer: applied or rejected (never duplicate).
	Status protocol.Status `json:"status"`
	// Code is why the transaction was rejected; empty when applied.
	Code protocol.Code `json:"code,omitempty"`
	// Kind is the transaction's kind.
	Kind protocol.Kind `json:"kind"`
	// Member is the transaction's member.
	Member string `json:"member"`
	// Points is the points the transaction booked: for an earn the hub's
	// price, for a reverse the points it moved, for an applied void the points
	// it gave back (what was left of its burn).
	Points int64 `json:"points"`
	// Reversed is, for an applied earn, burn or capture, how many of its
	// points later reverses and voids have given back (a voided burn: all).
	Reversed int64 `json:"reversed"`
	// Amount is the transaction's amount, in minor units.
	Amount int64 `json:"amount,omitempty"`
	// Returned is, for an earn, burn or capture, the amount later reverses
	// have returned.
	Returned int64 `json:"returned,omitempty"`
	// Quoted is, for an earn, the points the till quoted.
	Quoted int64 `json:"quoted,omitempty"`
	// RulesVersion is, for an earn, the rules version that priced it.
	RulesVersion int64 `json:"rules_version,omitempty"`
	// Offline is set on a burn the till approved offline.
	Offline bool `json:"offline,omitempty"`
	// HoldState is, for an applied hold: held, captured, voided or lapsed.
	HoldState string `json:"hold_state,omitempty"`
	// HoldExpires is, for an applied hold, when it lapses if still held.
	HoldExpires time.Time `json:"hold_expires,omitzero"`
	// Capture is, for a captured hold, the capture's id.
	Capture string `json:"capture,omitempty"`
	// Lots are, for a burn or capture, the points it took from each lot.
	Lots []LotUse `json:"lots,omitempty"`
	// LotAt is, for an earn that made a lot, the lot's earned-at time.
	LotAt time.Time `json:"lot_at,omitzero"`
	// JournalSeq is the journal entry the transaction made; 0 when it made none
	// (rejected, a hold, an earn worth 0 points, a reverse or void with
	// nothing to give back).
	JournalSeq uint64 `json:"journal_seq"`
	// Store is the store the transaction came from.
	Store string `json:"store"`
	// Terminal is the till within Store.
	Terminal string `json:"terminal"`
	// Balance is the member's balance right after the answer (for a
	// rejection: the balance at the time); duplicates repeat it.
	Balance int64 `json:"balance"`
	// Partner is the partner whose accounts were posted: the transaction's
	// own, or for a reverse or void the original's. Reverses post against it.
	Partner string `json:"partner,omitempty"`
	// Original is, for a reverse or void, the id of the transaction it names.
	Original string `json:"original,omitempty"`
	// TerminalSeq is the transaction's terminal sequence number (0 in
	// records written before the ledger kept it).
	TerminalSeq uint64 `json:"terminal_seq,omitempty"`
}

// The states of a hold.
const (
	HoldHeld     = "held"
	HoldCaptured = "captured"
	HoldVoided   = "voided"
	HoldLapsed   = "lapsed"
)

// VerifyReport is the result of replaying the journal.
type VerifyReport struct {
	// ChainHead is the hash of the last journal entry ("" when empty).
	ChainHead string `json:"chain_head"`
	// ChainBreak says where the hash chain first breaks, and how; empty
	// when it holds.
	ChainBreak string `json:"chain_break,omitempty"`
	// Problems are the other disagreements found, one line each: lots that
	// do not add up to a balance, settlement totals that differ from the
	// journal, a closed period whose report changed.
	Problems []string `json:"problems,omitempty"`
	// Entries is the number of journal entries replayed.
	Entries int `json:"entries"`
	// Accounts is the number of distinct accounts, stored or replayed.
	Accounts int `json:"accounts"`
	// Unbalanced lists the seqs of entries whose postings do not sum to zero.
	Unbalanced []uint64 `json:"unbalanced,omitempty"`
	// Mismatches has one line per account whose stored balance differs from
	// the replayed one: "account: stored X, replayed Y".
	Mismatches []string `json:"mismatches,omitempty"`
}

// OK reports whether the journal is balanced and agrees with every stored balance.
func (r VerifyReport) OK() bool {
	return len(r.Unbalanced) == 0 && len(r.Mismatches) == 0 && r.ChainBreak == "" && len(r.Problems) == 0
}

// ErrLocked is returned (wrapped, test with errors.Is) by OpenBolt when
// another process — or another open in this one — holds the ledger file.
var ErrLocked = errors.New("ledger file is in use by another process")

// lockedError names the file; it matches ErrLocked under errors.Is.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "ledger file " + e.path + " is in use by another process (is another tillsync-hub running with the same data dir?)"
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// Account names. Ids are protocol ids ([A-Za-z0-9._-]), so "/" separates unambiguously.
const (
	memberPrefix  = "member/"
	partnerPrefix = "partner/"
)

// MemberAccount returns the account name of a member: member/{id}.
func MemberAccount(member string) string { return memberPrefix + member }

// IssuedAccount returns the account of the points partner has issued: partner/{p}/issued.
func IssuedAccount(partner string) string { return partnerPrefix + partner + "/issued" }

// ExpiredAccount returns the account of the expired points partner issued: partner/{p}/expired.
func ExpiredAccount(partner string) string { return partnerPrefix + partner + "/expired" }

// RedeemedAccount returns the account of the points redeemed at partner: partner/{p}/redeemed.
func RedeemedAccount(partner string) string { return partnerPrefix + partner + "/redeemed" }

// mismatchLine formats one VerifyReport mismatch; a missing side is shown as "(none)".
func mismatchLine(account string, stored int64, hasStored bool, replayed int64, hasReplayed bool) string {
	s, r := "(none)", "(none)"
	if hasStored {
		s = strconv.FormatInt(stored, 10)
	}
	if hasReplayed {
		r = strconv.FormatInt(replayed, 10)
	}
	return account + ": stored " + s + ", replayed " + r
}
