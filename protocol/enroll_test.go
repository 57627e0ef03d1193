package protocol_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// FuzzParseEnrollmentToken: whatever is pasted as an enrollment token, the
// parser answers without panicking; what it accepts has a valid id, a
// secret of the right length and a fingerprint of 64 hex digits or none,
// and writes back to a token that parses the same; its error never quotes
// the input.
func FuzzParseEnrollmentToken(f *testing.F) {
	secret := bytes.Repeat([]byte{7}, protocol.EnrollmentSecretLen)
	fp := strings.Repeat("ab", 32)
	for _, s := range []string{
		protocol.FormatEnrollmentToken("QSEidjloLcBh", secret, fp),
		protocol.FormatEnrollmentToken("x", secret, ""),
		"  " + protocol.FormatEnrollmentToken("id-1", secret, fp) + "\n",
		"TSE1.", "TSE1...", "TSE1.a+b." + strings.Repeat("A", 43) + ".", "TSA1.x.y", "TSE1.id.secret.FP",
		"TSE1.id\x01." + strings.Repeat("A", 43) + ".",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fuzzlimit.Check(t)
		id, sec, fprint, err := protocol.ParseEnrollmentToken(s)
		if err != nil {
			if len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		if !protocol.ValidID(id) || len(sec) != protocol.EnrollmentSecretLen || (fprint != "" && len(fprint) != 64) {
			t.Fatalf("accepted %q as id %q, %d-byte secret, fingerprint %q", s, id, len(sec), fprint)
		}
		id2, sec2, fp2, err := protocol.ParseEnrollmentToken(protocol.FormatEnrollmentToken(id, sec, fprint))
		if err != nil || id2 != id || !bytes.Equal(sec2, sec) || fp2 != fprint {
			t.Fatalf("%q written back does not parse the same: %v", s, err)
		}
	})
}

func TestParseEnrollmentToken(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, protocol.EnrollmentSecretLen)
	for _, bad := range []string{
		"", "TSE1.", protocol.FormatEnrollmentToken("a+b", secret, ""), protocol.FormatEnrollmentToken("a b", secret, ""),
		protocol.FormatEnrollmentToken(strings.Repeat("i", 65), secret, ""), protocol.FormatEnrollmentToken("id", secret[:31], ""),
		protocol.FormatEnrollmentToken("id", secret, "ABCD"), protocol.FormatEnrollmentToken("id", secret, strings.Repeat("A", 64)),
	} {
		if _, _, _, err := protocol.ParseEnrollmentToken(bad); protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("%q: %v, want malformed", bad, err)
		}
	}
	if id, _, _, err := protocol.ParseEnrollmentToken(protocol.FormatEnrollmentToken("id_-1", secret, "")); err != nil || id != "id_-1" {
		t.Errorf("a good token: %q, %v", id, err)
	}
}
