package protocol

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason. Codes cross the wire in acks and
// in API error bodies; their spelling never changes once released. Internal
// error text is logged, never sent.
type Code string

// The codes. Validation codes name what was wrong with a message; ledger codes
// say why a well-formed transaction was refused.
const (
	CodeMalformed       Code = "malformed"        // not valid JSON, or the wrong shape
	CodeTooLarge        Code = "too_large"        // over a size limit
	CodeUnsupported     Code = "unsupported"      // a protocol version this side does not speak
	CodeMissingField    Code = "missing_field"    // a required field is empty
	CodeInvalidID       Code = "invalid_id"       // an identifier breaks the id rules
	CodeInvalidKind     Code = "invalid_kind"     // kind is not earn, burn, reverse or void
	CodeInvalidAmount   Code = "invalid_amount"   // amount out of range
	CodeInvalidPoints   Code = "invalid_points"   // points out of range
	CodeInvalidCurrency Code = "invalid_currency" // not three upper-case letters
	CodeInvalidSeq      Code = "invalid_seq"      // terminal sequence number is zero
	CodeInvalidTime     Code = "invalid_time"     // created_at missing or absurd
	CodeTooMany         Code = "too_many"         // a batch with too many entries
	CodeStoreMismatch   Code = "store_mismatch"   // store/terminal disagree with the topic, the batch, or the first use of a transaction id
	CodePartnerMismatch Code = "partner_mismatch" // a store posting as another partner than the one it trades as
	CodeInvalidLines    Code = "invalid_lines"    // line items that are malformed or do not add up to the amount
	CodeInvalidRules    Code = "invalid_rules"    // earn rules or a campaign that cannot be applied as written
	CodeBadCheckDigit   Code = "bad_check_digit"  // a member number whose check digit does not match
	CodePaymentCard     Code = "payment_card"     // a payment card number where a member id was expected: refused, never stored or logged

	CodeInsufficientPoints Code = "insufficient_points" // a burn the member cannot cover
	CodeUnknownMember      Code = "unknown_member"      // no such member at the hub
	CodeUnknownOriginal    Code = "unknown_original"    // a reverse or void names a transaction the hub never applied
	CodeOriginalMismatch   Code = "original_mismatch"   // a reverse names a transaction of another member or kind
	CodeOverReversed       Code = "over_reversed"       // reversals would exceed the original
	CodeVoided             Code = "voided"              // a burn whose void arrived first
	CodeDuplicate          Code = "duplicate"           // the request repeats one already answered
	CodeSeqReused          Code = "seq_reused"          // a new transaction id with a terminal sequence number the hub has seen with another id (a replay)
	CodeUnknownStore       Code = "unknown_store"       // the store is not registered with the coalition (held, not rejected)
	CodeUnknownPartner     Code = "unknown_partner"     // no such partner in the coalition
	CodeCurrencyMismatch   Code = "currency_mismatch"   // an amount in another currency than the coalition's
	CodeExceedsHold        Code = "exceeds_hold"        // a capture of more points than its hold reserved
	CodeHoldSettled        Code = "hold_settled"        // a capture or void of a hold already captured or voided
	CodeNotFound           Code = "not_found"           // the thing asked for does not exist
	CodeConflict           Code = "conflict"            // the change contradicts what is recorded (e.g. moving a store that has transactions)
	CodePeriodClosed       Code = "period_closed"       // a settlement period that overlaps or precedes a closed one

	CodeEnrollmentUnknown Code = "enrollment_token_unknown" // no such enrollment token (or a wrong secret)
	CodeEnrollmentUsed    Code = "enrollment_token_used"    // the enrollment token was used, or replaced by a newer one
	CodeEnrollmentExpired Code = "enrollment_token_expired" // the enrollment token's time ran out

	// Why the hub's HTTP API refused a request before looking at it.
	CodeUnauthorized Code = "unauthorized" // no API token, or one that is malformed, unknown or revoked
	CodeForbidden    Code = "forbidden"    // the token's role may not do this, or a partner's token reached another partner's data

	CodeOffline Code = "offline" // the hub is unreachable; the agent declines what needs it (offline burns are off)

	// Why a burn was declined while the hub is unreachable: each names the
	// limit of the till's offline policy that it hit.
	CodeOfflineNoBalance    Code = "offline_no_balance"    // the till has never had the member's balance from the hub
	CodeOfflineStaleBalance Code = "offline_stale_balance" // the member's last balance from the hub is older than max_balance_age
	CodeOfflineBalance      Code = "offline_balance"       // the last balance less what this till burned offline for the member cannot cover it
	CodeOfflineMemberLimit  Code = "offline_member_limit"  // over the member's offline allowance at this till
	CodeOfflineStoreCap     Code = "offline_store_cap"     // over this till's share of the store's offline exposure cap

	// Why a member token (a signed, rotating QR code; see MintMemberToken)
	// was refused. The POS shows the member what to do about each.
	CodeTokenMalformed    Code = "token_malformed"    // not a member token of a format this side reads
	CodeTokenForged       Code = "token_forged"       // signed by no key of the coalition's, or the signature does not verify
	CodeTokenExpired      Code = "token_expired"      // past its expiry (plus the till's leeway): the member refreshes the code
	CodeTokenReplayed     Code = "token_replayed"     // already accepted at this till
	CodeTokenLifetime     Code = "token_lifetime"     // expires further ahead than MaxTokenLifetime: the signer or the till's clock is wrong
	CodeTokenUnverifiable Code = "token_unverifiable" // the till has no token keys from the hub yet, so cannot tell a good token from a forged one
	CodeInvalidTokenKey   Code = "invalid_token_key"  // a member token public key that is not an Ed25519 key in base64

	CodeTimeout  Code = "timeout"  // the hub did not answer in time
	CodeInternal Code = "internal" // something broke on our side; details are in the log
)

// Error is a protocol error: a stable Code, the Field it concerns (may be
// empty) and a human-readable message. Error() gives one line:
// "invalid_id: member: must be …".
type Error struct {
	Code  Code
	Field string
	Msg   string
}

func (e *Error) Error() string {
	switch {
	case e.Field == "" && e.Msg == "":
		return string(e.Code)
	case e.Field == "":
		return string(e.Code) + ": " + e.Msg
	default:
		return string(e.Code) + ": " + e.Field + ": " + e.Msg
	}
}

// Errorf builds an *Error.
func Errorf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code carried by err (anywhere in its chain), or
// CodeInternal when err carries none. CodeOf(nil) is "".
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}
