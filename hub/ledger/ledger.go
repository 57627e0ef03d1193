// Package ledger is the hub's authoritative points ledger: a double-entry
// journal, the balances it produces, and the permanent record of every answer
// the hub has given to a transaction id.
//
// # The model
//
// Points live in accounts:
//
//   - member/{id}: the points owed to a member; its value is the member's balance.
//   - partner/{p}/issued: the points partner p has issued (earns); it goes
//     negative as p's liability grows.
//   - partner/{p}/redeemed: the points redeemed at partner p (burns); p's claim
//     on the coalition.
//
// Every applied transaction that moves points appends one journal Entry whose
// postings sum to zero:
//
//	earn P at X for M:         member/M +P   partner/X/issued   −P
//	burn P at X for M:         member/M −P   partner/X/redeemed +P
//	reverse of an earn:        member/M −P   partner/X/issued   +P   (X: the earn's partner)
//	reverse of a burn, void:   member/M +P   partner/X/redeemed −P   (X: the burn's partner)
//
// so the sum over all accounts is always zero and every balance can be
// recomputed from the journal (Verify does exactly that). A reverse of an
// earn may take a member below zero (the points were already spent); a burn
// never does.
//
// # Exactly once
//
// The ledger deduplicates by transaction id forever, not by time window. The
// first answer for an id — applied, or rejected with a code — is recorded in
// the same commit as its effect, and every later transaction with that id gets
// a duplicate Ack repeating that answer, whether it arrives in the same Apply
// or years later. Rejections are final for the same reason: a retry must not
// turn a "no" into a "yes" behind the till's back.
//
// A void cancels a burn the till declined. If the burn was applied, the void
// gives back what was not yet reversed; if the burn was rejected, the void
// changes nothing; if the burn has not arrived yet, the void is remembered and
// the burn is rejected "voided" when it comes. A void only speaks for the
// terminal and member of its burn: one naming another terminal's or member's
// burn is rejected original_mismatch, and a remembered void bars only a burn
// from its own terminal and member.
//
// # Commits
//
// Apply is an explicit group commit: the caller (hub/ingest) gathers the
// batches that arrived concurrently and applies them in one durable commit,
// then acks. The bbolt store does that in a single bbolt.Update with fsync on
// (NoSync stays false); it never uses bbolt's DB.Batch, which may run a
// function twice. Acks are only valid once Apply has returned without error.
//
// Store is the boundary; BoltStore is the bbolt implementation (a PostgreSQL
// one will follow). The conformance suite in package ledgertest runs against
// every Store, so the rules above hold whichever is in use.
package ledger

import (
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
	// transaction is an Ack with StatusRejected, not an error. Batches are
	// already validated by protocol.Batch.Validate.
	Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error)
	// Balance returns a member's points; known is false for a member never seen.
	Balance(member string) (points int64, known bool, err error)
	// Statement returns the member's journal entries, newest first, at most
	// limit (limit <= 0 returns none).
	Statement(member string, limit int) ([]Entry, error)
	// Terminals lists every terminal that ever sent a batch, ordered by store
	// then terminal.
	Terminals() ([]Terminal, error)
	// Verify replays the whole journal: every entry's postings sum to zero,
	// and the replayed balances equal the stored balance of every account. It
	// returns a report; err is for I/O problems only.
	Verify() (VerifyReport, error)
	// MemberBalances returns every member's stored balance (for checks and tests).
	MemberBalances() (map[string]int64, error)
	// Transactions returns the records of all transactions with a final
	// answer (applied or rejected), ordered by id — for end-to-end checks
	// such as "every accepted tx is in the ledger exactly once".
	Transactions() ([]TxRecord, error)
	// Close releases the store. Using it afterwards is an error.
	Close() error
}

// Entry is one journal entry: the postings of one applied transaction.
type Entry struct {
	// Seq numbers the journal: 1, 2, 3… in commit order, never reused.
	Seq uint64 `json:"seq"`
	// TxID is the id of the transaction that made the entry.
	TxID string `json:"tx_id"`
	// Kind is the transaction's kind: earn, burn, reverse or void.
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
	// Points is the signed effect on the member: positive for an earn, a
	// reverse of a burn and a void; negative for a burn and a reverse of an earn.
	Points int64 `json:"points"`
	// Postings are the account movements; they sum to zero.
	Postings []Posting `json:"postings"`
	// At is the hub's commit time.
	At time.Time `json:"at"`
	// CreatedAt is when the till accepted the transaction, by the till's clock.
	CreatedAt time.Time `json:"created_at"`
}

// Posting moves points in one account.
type Posting struct {
	// Account is member/{id}, partner/{p}/issued or partner/{p}/redeemed.
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
	// Points is the points the transaction carried; for an applied void, the
	// points it gave back (what was left of its burn).
	Points int64 `json:"points"`
	// Reversed is, for an applied earn or burn, how many of its points later
	// reverses and voids have given back (a voided burn: all of them).
	Reversed int64 `json:"reversed"`
	// JournalSeq is the journal entry the transaction made; 0 when it made none
	// (rejected, or a void with nothing to give back).
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
}

// VerifyReport is the result of replaying the journal.
type VerifyReport struct {
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
func (r VerifyReport) OK() bool { return len(r.Unbalanced) == 0 && len(r.Mismatches) == 0 }

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
