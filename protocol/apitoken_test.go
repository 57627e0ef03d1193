package protocol_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

var apiSecret = bytes.Repeat([]byte{0xab}, protocol.APISecretLen)

func TestAPIToken(t *testing.T) {
	tok := protocol.FormatAPIToken("k3Xa9_-Q", apiSecret)
	if !strings.HasPrefix(tok, "TSA1.k3Xa9_-Q.") {
		t.Fatalf("FormatAPIToken = %q", tok)
	}
	for _, s := range []string{tok, " " + tok + "\n", tok + "\r\n"} {
		id, secret, err := protocol.ParseAPIToken(s)
		if err != nil || id != "k3Xa9_-Q" || !bytes.Equal(secret, apiSecret) {
			t.Errorf("ParseAPIToken(%q) = %q, %x, %v", s, id, secret, err)
		}
	}
	enc := tok[len("TSA1.k3Xa9_-Q."):]
	for _, c := range []struct{ name, s string }{
		{"empty", ""},
		{"prefix only", "TSA1."},
		{"no secret", "TSA1.k3Xa9_-Q"},
		{"empty id", "TSA1.." + enc},
		{"id with a slash", "TSA1.a/b." + enc},
		{"id too long", "TSA1." + strings.Repeat("i", protocol.MaxIDLen+1) + "." + enc},
		{"another format", "TSA2.k3Xa9_-Q." + enc},
		{"an enrollment token", "TSE1.k3Xa9_-Q." + enc + "."},
		{"lower-case prefix", "tsa1.k3Xa9_-Q." + enc},
		{"a secret too short", "TSA1.k3Xa9_-Q." + enc[:len(enc)-4]},
		{"a secret too long", "TSA1.k3Xa9_-Q." + enc + "AAAA"},
		{"padding", "TSA1.k3Xa9_-Q." + enc + "="},
		{"standard base64", "TSA1.k3Xa9_-Q." + strings.ReplaceAll(strings.ReplaceAll(enc, "-", "+"), "_", "/") + "+"},
		{"a line break in the secret", "TSA1.k3Xa9_-Q." + enc[:10] + "\n" + enc[10:]},
		{"a third part", tok + ".x"},
		{"the bearer scheme", "Bearer " + tok},
	} {
		id, secret, err := protocol.ParseAPIToken(c.s)
		if err == nil {
			t.Errorf("%s: ParseAPIToken(%q) = %q, %x; want an error", c.name, c.s, id, secret)
			continue
		}
		if protocol.CodeOf(err) != protocol.CodeMalformed || strings.Contains(err.Error(), enc) {
			t.Errorf("%s: error %v: want malformed, without the token", c.name, err)
		}
	}
	// Non-canonical base64url: 32 bytes leave 2 bits of the last
	// character over, which must be zero.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	stray := alphabet[strings.IndexByte(alphabet, enc[len(enc)-1])|1]
	if _, _, err := protocol.ParseAPIToken(tok[:len(tok)-1] + string(stray)); err == nil {
		t.Errorf("a secret ending %q instead of %q (stray bits) was accepted", stray, enc[len(enc)-1])
	}
}

// FuzzParseAPIToken: whatever ParseAPIToken accepts is exactly what
// FormatAPIToken writes for it (one spelling per token), and its error
// never repeats the input.
func FuzzParseAPIToken(f *testing.F) {
	f.Add(protocol.FormatAPIToken("k3Xa9_-Q", apiSecret))
	f.Add(protocol.FormatAPIToken("a", make([]byte, protocol.APISecretLen)))
	f.Add("TSA1.a.b")
	f.Add("TSA1..")
	f.Add("TSA1.id." + strings.Repeat("A", 43) + "=")
	f.Fuzz(func(t *testing.T, s string) {
		fuzzlimit.Check(t)
		id, secret, err := protocol.ParseAPIToken(s)
		if err != nil {
			if len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error quotes the input: %v", err)
			}
			return
		}
		if got := protocol.FormatAPIToken(id, secret); got != strings.TrimSpace(s) {
			t.Fatalf("accepted %q, which is written %q", s, got)
		}
	})
}
