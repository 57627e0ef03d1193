package scanner

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tillsync/tillsync/protocol"
)

// ErrNotMemberID is returned (wrapped) by MemberID when a scan does not carry
// a valid member id: a product barcode scanned by mistake, a foreign QR code,
// or a scanner adding characters we do not expect. The error also wraps a
// *protocol.Error, so protocol.CodeOf gives CodeMissingField or CodeInvalidID.
var ErrNotMemberID = errors.New("scan is not a member id")

// MemberID returns the member id carried by s: its Data trimmed of spaces,
// when that is a valid id per protocol.ValidID. Otherwise it returns an error
// wrapping ErrNotMemberID whose one-line message names the symbology and the
// length, but not the data itself (it may be personal, and error text ends up
// in logs).
func MemberID(s Scan) (string, error) {
	id := strings.TrimSpace(s.Data)
	if protocol.ValidID(id) {
		return id, nil
	}
	var perr *protocol.Error
	if id == "" {
		perr = protocol.Errorf(protocol.CodeMissingField, "member", "the scan carries no data")
	} else {
		perr = protocol.Errorf(protocol.CodeInvalidID, "member",
			"must be 1-%d characters of A-Z a-z 0-9 . _ -", protocol.MaxIDLen)
	}
	return "", fmt.Errorf("scanner: %w (%s, %d bytes): %w", ErrNotMemberID, describeSymbology(s.Symbology), len(id), perr)
}

func describeSymbology(sym string) string {
	if sym == "" {
		return "no symbology identifier"
	}
	return "symbology ]" + sym
}
