package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// tokenKeysConfig is the golden config with the coalition's member token
// keys: the new one first, the one it replaced after.
func tokenKeysConfig() protocol.Config {
	c := validConfig()
	c.MemberTokenKeys = []string{protocol.EncodeTokenKey(tokenPubB), protocol.EncodeTokenKey(tokenPubA)}
	return c
}

// validSighting is a till's report of a token it accepted.
func validSighting() protocol.Sighting {
	return protocol.Sighting{
		Version: protocol.UnsealedVersion, Store: "store-042", Terminal: "till.3",
		Token: "TS1.Af6BLBIAAAAAawQPGHR3ZWx2ZS1ieXRlcwVNMTAwMQ.HF9UFTkfnbZIovv7JIljlfFBO6cW5Taon-r05tZCl051wdwMqKuQJrWE725t5JwnJNWao_rBeN0jxQEcEE_3Cg",
		At:    time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC),
	}
}

func TestSightingValidate(t *testing.T) {
	s := validSighting()
	if _, err := protocol.VerifyMemberToken(s.Token, nil, tokenNow, tokenLeeway); protocol.CodeOf(err) != protocol.CodeTokenForged {
		t.Fatalf("the golden sighting's token: %v (want a well-formed token, unknown key)", err)
	}
	if _, err := protocol.ParseMemberToken(s.Token, []ed25519.PublicKey{tokenPubA}); err != nil {
		t.Fatalf("the golden sighting's token is not one of key A's: %v", err)
	}
	for _, tc := range []struct {
		name  string
		mut   func(*protocol.Sighting)
		code  protocol.Code
		field string
	}{
		{"version 0", func(s *protocol.Sighting) { s.Version = 0 }, protocol.CodeUnsupported, "version"},
		{"version next", func(s *protocol.Sighting) { s.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"store empty", func(s *protocol.Sighting) { s.Store = "" }, protocol.CodeMissingField, "store"},
		{"store wildcard", func(s *protocol.Sighting) { s.Store = "+" }, protocol.CodeInvalidID, "store"},
		{"terminal with slash", func(s *protocol.Sighting) { s.Terminal = "t/1" }, protocol.CodeInvalidID, "terminal"},
		{"token empty", func(s *protocol.Sighting) { s.Token = "" }, protocol.CodeMissingField, "token"},
		{"token a card number", func(s *protocol.Sighting) { s.Token = "M1001" }, protocol.CodeTokenMalformed, "token"},
		{"token too long", func(s *protocol.Sighting) { s.Token += strings.Repeat("A", protocol.MaxTokenLen) }, protocol.CodeTokenMalformed, "token"},
		{"at missing", func(s *protocol.Sighting) { s.At = time.Time{} }, protocol.CodeMissingField, "at"},
		{"at in 1970", func(s *protocol.Sighting) { s.At = time.Unix(0, 0) }, protocol.CodeInvalidTime, "at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSighting()
			tc.mut(&s)
			checkErr(t, s.Validate(), tc.code, tc.field)
			got, err := protocol.DecodeSighting(encode(t, s))
			if got != nil {
				t.Errorf("DecodeSighting returned %+v with %v", got, err)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}
}

func TestDecodeSightingRefuses(t *testing.T) {
	valid := encode(t, validSighting())
	for name, tc := range map[string]struct {
		in   []byte
		code protocol.Code
	}{
		"one byte over the limit": {pad(valid, protocol.MaxSmallMessageBytes+1), protocol.CodeTooLarge},
		"trailing brace":          {append(bytes.Clone(valid), '}'), protocol.CodeMalformed},
		"not JSON":                {[]byte("TS1.x.y"), protocol.CodeMalformed},
		"token a number":          {withField(t, validSighting(), 7, "token"), protocol.CodeMalformed},
		"empty":                   {nil, protocol.CodeMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := protocol.DecodeSighting(tc.in)
			if got != nil {
				t.Errorf("returned %+v", got)
			}
			checkErr(t, err, tc.code, "")
		})
	}
}

func FuzzDecodeSighting(f *testing.F) {
	addGolden(f, "sighting.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzlimit.Check(t)
		s, err := protocol.DecodeSighting(data)
		if err != nil {
			if s != nil {
				t.Fatalf("returned a sighting with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded sighting does not validate: %v", err)
		}
		enc, err := protocol.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := protocol.DecodeSighting(enc)
		if err != nil {
			t.Fatalf("re-encoded sighting refused: %v\n%s", err, enc)
		}
		n1, n2 := *s, *s2
		n1.At, n2.At = utc(n1.At), utc(n2.At)
		if !reflect.DeepEqual(n1, n2) {
			t.Fatalf("round trip changed the sighting:\n got %+v\nwant %+v", n2, n1)
		}
	})
}
