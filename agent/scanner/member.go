package scanner

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tillsync/tillsync/protocol"
)

// ErrNotMemberID is returned (wrapped) by MemberID when a scan does not carry
// a valid member id: a product barcode scanned by mistake, a foreign QR code,
// a number with a wrong check digit, a payment card, or a scanner adding
// characters we do not expect. The error also wraps a *protocol.Error, so
// protocol.CodeOf gives its stable code: CodeMissingField, CodeInvalidID,
// CodeBadCheckDigit or CodePaymentCard.
var ErrNotMemberID = errors.New("scan is not a member id")

// ErrPaymentCard is returned (wrapped, together with ErrNotMemberID and
// protocol.CodePaymentCard) by MemberID when a scan looks like a payment
// card number (see LooksLikePaymentCard). The number is in no error, log
// record or return value: the caller gets only this.
var ErrPaymentCard = errors.New("scan looks like a payment card number; refused, not stored")

// MemberID returns the member id carried by s, checked with the coalition's
// check digit scheme.
//
// A GS1 scan (see IsGS1) is parsed with ParseGS1; its member id is the
// value of AI 8018 (GSRN – recipient), whose own GS1 mod 10 check digit
// applies instead of check. Any other scan is its Data trimmed of spaces,
// which must be a valid id per protocol.ValidID and, unless check is
// CheckNone, all digits with a correct check digit (CheckDigit.Valid).
//
// Before anything else, a scan that looks like a payment card number
// (LooksLikePaymentCard, on the whole data or on any GS1 value that is not
// a GS1 key with a valid check digit) is refused with ErrPaymentCard and
// code payment_card.
//
// Every error wraps ErrNotMemberID and a *protocol.Error, and its one-line
// message names the symbology and the length but never the data itself
// (it may be personal, and error text ends up in logs).
func MemberID(s Scan, check CheckDigit) (string, error) {
	if IsGS1(s) {
		return gs1MemberID(s)
	}
	id := strings.TrimSpace(s.Data)
	if LooksLikePaymentCard(s.Data) {
		return "", paymentCard(s)
	}
	switch {
	case id == "":
		return "", notMember(s, protocol.Errorf(protocol.CodeMissingField, "member", "the scan carries no data"))
	case !protocol.ValidID(id):
		return "", notMember(s, protocol.Errorf(protocol.CodeInvalidID, "member",
			"must be 1-%d characters of A-Z a-z 0-9 . _ -", protocol.MaxIDLen))
	case check == CheckNone || check == "":
		return id, nil
	case !allDigits(id) || len(id) < 2:
		return "", notMember(s, protocol.Errorf(protocol.CodeInvalidID, "member",
			"member numbers are digits ending in a %s check digit", check))
	case !check.Valid(id):
		return "", notMember(s, protocol.Errorf(protocol.CodeBadCheckDigit, "member",
			"the %s check digit does not match (mistyped or misread number?)", check))
	}
	return id, nil
}

func gs1MemberID(s Scan) (string, error) {
	d, err := ParseGS1(s.Data)
	if err != nil {
		if LooksLikePaymentCard(s.Data) {
			return "", paymentCard(s)
		}
		var ge *GS1Error
		code := protocol.CodeInvalidID
		if errors.As(err, &ge) && ge.BadCheckDigit && ge.AI == AIGSRNRecipient {
			code = protocol.CodeBadCheckDigit
		}
		return "", notMember(s, protocol.Errorf(code, "member", "%v", err))
	}
	if gs1CarriesCard(d) {
		return "", paymentCard(s)
	}
	id, ok := d.Get(AIGSRNRecipient)
	if !ok {
		return "", notMember(s, protocol.Errorf(protocol.CodeInvalidID, "member",
			"GS1 data without AI (%s) GSRN: a product or logistics label, not a member card", AIGSRNRecipient))
	}
	return id, nil
}

// gs1CarriesCard reports whether a value of d looks like a payment card. GS1
// keys with a check digit are exempt: ParseGS1 has proved them keys, and a
// German GSRN (prefix 4) passes Luhn one time in ten.
func gs1CarriesCard(d GS1Data) bool {
	for _, e := range d {
		if aiTable[e.AI].csum == 0 && LooksLikePaymentCard(e.Value) {
			return true
		}
	}
	return false
}

func paymentCard(s Scan) error {
	perr := protocol.Errorf(protocol.CodePaymentCard, "member",
		"looks like a payment card number: refused and not stored; scan the loyalty card instead")
	err := fmt.Errorf("scanner: %w (%s): %w", ErrNotMemberID, describeSymbology(s.Symbology), perr)
	return alsoIs{err, ErrPaymentCard}
}

// alsoIs is error, which errors.Is also finds to be also, without also's
// text repeating what error says.
type alsoIs struct {
	err, also error
}

func (e alsoIs) Error() string   { return e.err.Error() }
func (e alsoIs) Unwrap() []error { return []error{e.err, e.also} }

func notMember(s Scan, perr *protocol.Error) error {
	return fmt.Errorf("scanner: %w (%s, %d bytes): %w", ErrNotMemberID, describeSymbology(s.Symbology), len(strings.TrimSpace(s.Data)), perr)
}

func describeSymbology(sym string) string {
	switch {
	case sym == "":
		return "no symbology identifier"
	case len(sym) != 2 || !isAIMCode(sym[0]) || !isAIMModifier(sym[1]):
		return "malformed symbology identifier" // not from ParseAIM; keep the message one clean line
	}
	return "symbology ]" + sym + " " + SymbologyName(sym)
}
