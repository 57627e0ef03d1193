package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// Token fixtures: two coalition keys from fixed seeds, a clock, a nonce.
var (
	tokenKeyA   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	tokenKeyB   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	tokenPubA   = tokenKeyA.Public().(ed25519.PublicKey)
	tokenPubB   = tokenKeyB.Public().(ed25519.PublicKey)
	tokenNow    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tokenNonce  = []byte("twelve-bytes")
	tokenLeeway = time.Minute
)

// mint signs a token for member with the fixed nonce, failing the test on error.
func mint(t testing.TB, priv ed25519.PrivateKey, member string, expires time.Time) string {
	t.Helper()
	tok, err := protocol.MintMemberToken(priv, member, expires, bytes.NewReader(tokenNonce))
	if err != nil {
		t.Fatalf("MintMemberToken(%q, %s): %v", member, expires, err)
	}
	return tok
}

var b64u = base64.RawURLEncoding

// payload builds a token payload field by field, so tests can sign payloads
// MintMemberToken never would.
func payload(version byte, kid []byte, exp int64, nonce []byte, member string, extra ...byte) []byte {
	p := []byte{version}
	p = append(p, kid...)
	p = binary.BigEndian.AppendUint64(p, uint64(exp))
	p = append(p, nonce...)
	p = append(p, byte(len(member)))
	p = append(p, member...)
	return append(p, extra...)
}

func kidOf(pub ed25519.PublicKey) []byte {
	s := sha256.Sum256(pub)
	return s[:4]
}

// sign makes a token of any payload, signed by priv as the hub would sign it.
func sign(priv ed25519.PrivateKey, p []byte) string {
	signed := protocol.TokenPrefix + b64u.EncodeToString(p)
	return signed + "." + b64u.EncodeToString(ed25519.Sign(priv, []byte(signed)))
}

// parts splits a token into its decoded payload and signature.
func parts(t *testing.T, tok string) (p, sig []byte) {
	t.Helper()
	f := strings.Split(strings.TrimPrefix(tok, protocol.TokenPrefix), ".")
	p, err1 := b64u.DecodeString(f[0])
	sig, err2 := b64u.DecodeString(f[1])
	if len(f) != 2 || err1 != nil || err2 != nil {
		t.Fatalf("not a token: %q", tok)
	}
	return p, sig
}

func join(p, sig []byte) string {
	return protocol.TokenPrefix + b64u.EncodeToString(p) + "." + b64u.EncodeToString(sig)
}

func TestMemberTokenRoundTrip(t *testing.T) {
	exp := tokenNow.Add(2*time.Minute + 700*time.Millisecond) // the fraction is dropped
	tok := mint(t, tokenKeyA, "M1001", exp)
	if !strings.HasPrefix(tok, protocol.TokenPrefix) || len(tok) > protocol.MaxTokenLen || !protocol.IsMemberToken(tok) {
		t.Fatalf("token %q: want %s…, at most %d characters, IsMemberToken", tok, protocol.TokenPrefix, protocol.MaxTokenLen)
	}
	if strings.ContainsFunc(tok, func(r rune) bool {
		return !strings.ContainsRune("-_.", r) && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		t.Errorf("token %q has characters outside base64url and the dots", tok)
	}
	got, err := protocol.VerifyMemberToken(tok, []ed25519.PublicKey{tokenPubA}, tokenNow, tokenLeeway)
	if err != nil {
		t.Fatalf("VerifyMemberToken: %v", err)
	}
	want := protocol.MemberToken{
		Member: "M1001", Nonce: b64u.EncodeToString(tokenNonce), KeyID: protocol.TokenKeyID(tokenPubA),
		ExpiresAt: time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC),
	}
	if got != want {
		t.Errorf("VerifyMemberToken = %+v, want %+v", got, want)
	}
	if !protocol.ValidID(got.Nonce) || len(got.Nonce) != 16 || len(got.KeyID) != 8 {
		t.Errorf("nonce %q, key id %q: want a 16-character id and 8 hex digits", got.Nonce, got.KeyID)
	}
	// Signatures are deterministic: the same nonce makes the same token; a
	// fresh nonce from crypto/rand another one.
	if again := mint(t, tokenKeyA, "M1001", exp); again != tok {
		t.Errorf("same inputs, different tokens:\n%s\n%s", tok, again)
	}
	r1, err1 := protocol.MintMemberToken(tokenKeyA, "M1001", exp, nil)
	r2, err2 := protocol.MintMemberToken(tokenKeyA, "M1001", exp, nil)
	if err1 != nil || err2 != nil || r1 == r2 {
		t.Errorf("two tokens from crypto/rand: %q, %q (%v, %v); want two different ones", r1, r2, err1, err2)
	}
	// The longest member id still makes a token within the limits.
	long := strings.Repeat("9", protocol.MaxIDLen)
	lt := mint(t, tokenKeyA, long, exp)
	if len(lt) != 211 || len(lt) > protocol.MaxTokenLen {
		t.Errorf("token for a %d-character member is %d characters, want 211", len(long), len(lt))
	}
	if m, err := protocol.VerifyMemberToken(lt, []ed25519.PublicKey{tokenPubA}, tokenNow, 0); err != nil || m.Member != long {
		t.Errorf("longest member: %+v, %v", m, err)
	}
	if n := len(mint(t, tokenKeyA, "M", exp)); n != 127 {
		t.Errorf("token for a 1-character member is %d characters, want 127", n)
	}
}

func TestVerifyMemberToken(t *testing.T) {
	exp := tokenNow.Add(2 * time.Minute)
	good := mint(t, tokenKeyA, "M1001", exp)
	p, sig := parts(t, good)
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	keysA := []ed25519.PublicKey{tokenPubA}
	kidA := kidOf(tokenPubA)

	for _, tc := range []struct {
		name   string
		token  string
		keys   []ed25519.PublicKey
		now    time.Time
		leeway time.Duration
		code   protocol.Code // "" for accepted
	}{
		{"good", good, keysA, tokenNow, tokenLeeway, ""},
		{"good, key rotated: the old key still listed", good, []ed25519.PublicKey{tokenPubB, tokenPubA}, tokenNow, tokenLeeway, ""},
		{"good at its expiry", good, keysA, exp, 0, ""},
		{"good within the leeway", good, keysA, exp.Add(tokenLeeway), tokenLeeway, ""},
		{"expired just past the leeway", good, keysA, exp.Add(tokenLeeway + time.Nanosecond), tokenLeeway, protocol.CodeTokenExpired},
		{"expired without leeway", good, keysA, exp.Add(time.Second), 0, protocol.CodeTokenExpired},
		{"a negative leeway is none", good, keysA, exp.Add(time.Second), -time.Hour, protocol.CodeTokenExpired},
		{"expired long ago", good, keysA, exp.Add(24 * time.Hour), tokenLeeway, protocol.CodeTokenExpired},
		{"a till clock behind by the lifetime and the leeway", good, keysA, exp.Add(-protocol.MaxTokenLifetime - tokenLeeway), tokenLeeway, ""},
		{"lives longer than a token may", mint(t, tokenKeyA, "M1001", tokenNow.Add(protocol.MaxTokenLifetime+tokenLeeway+time.Second)), keysA, tokenNow, tokenLeeway, protocol.CodeTokenLifetime},
		{"a year ahead", mint(t, tokenKeyA, "M1001", tokenNow.AddDate(1, 0, 0)), keysA, tokenNow, tokenLeeway, protocol.CodeTokenLifetime},

		{"forged: payload byte flipped (nonce)", join(flip(p, 20), sig), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: payload byte flipped (member)", join(flip(p, len(p)-1), sig), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: payload byte flipped (expiry)", join(flip(p, 12), sig), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: signature byte flipped", join(p, flip(sig, 10)), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: signed by another key", mint(t, tokenKeyB, "M1001", exp), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: another key claiming the coalition's key id", sign(tokenKeyB, payload(1, kidA, exp.Unix(), tokenNonce, "M1001")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: no keys at all", good, nil, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged: a key of the wrong length is skipped", good, []ed25519.PublicKey{tokenPubA[:31]}, tokenNow, tokenLeeway, protocol.CodeTokenForged},
		{"forged and expired: forged", join(p, flip(sig, 0)), keysA, exp.Add(time.Hour), tokenLeeway, protocol.CodeTokenForged},

		{"malformed: empty", "", keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: a member card", "M1001", keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: the prefix alone", protocol.TokenPrefix, keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: lower-case prefix", "ts1." + strings.TrimPrefix(good, protocol.TokenPrefix), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: a newer format", "TS2." + strings.TrimPrefix(good, protocol.TokenPrefix), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: no signature", protocol.TokenPrefix + b64u.EncodeToString(p), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: a third part", good + ".AAAA", keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: bad base64 in the payload", protocol.TokenPrefix + "!!!!" + good[4:], keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: standard base64's +", protocol.TokenPrefix + "+" + good[5:], keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: padding", good + "==", keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: stray bits in the signature", join(p, sig)[:len(good)-1] + string(strayBits(good[len(good)-1])), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: a line break in the signature", good[:len(good)-10] + "\n" + good[len(good)-10:], keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: trailing newline", good + "\n", keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: leading space", " " + good, keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: short payload", sign(tokenKeyA, p[:20]), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: signature too short", join(p, sig[:63]), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: signature too long", join(p, append(bytes.Clone(sig), 0)), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: wrong payload version, signed", sign(tokenKeyA, payload(2, kidA, exp.Unix(), tokenNonce, "M1001")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: trailing junk after the member, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "M1001", 'x')), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: member length past the end, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "M1001")[:30]), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: expiry before 2000, signed", sign(tokenKeyA, payload(1, kidA, 0, tokenNonce, "M1001")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: negative expiry, signed", sign(tokenKeyA, payload(1, kidA, -1, tokenNonce, "M1001")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"malformed: too long", good + strings.Repeat("A", protocol.MaxTokenLen), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},

		{"member: empty, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"member: with a space, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "M 1001")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"member: a topic wildcard, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "M#")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"member: dotdot, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, "..")), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"member: one over the length limit, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, strings.Repeat("m", protocol.MaxIDLen+1))), keysA, tokenNow, tokenLeeway, protocol.CodeTokenMalformed},
		{"member: at the length limit, signed", sign(tokenKeyA, payload(1, kidA, exp.Unix(), tokenNonce, strings.Repeat("m", protocol.MaxIDLen))), keysA, tokenNow, tokenLeeway, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.VerifyMemberToken(tc.token, tc.keys, tc.now, tc.leeway)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !protocol.ValidID(got.Member) || got.ExpiresAt.IsZero() {
					t.Fatalf("accepted as %+v", got)
				}
				return
			}
			if got != (protocol.MemberToken{}) {
				t.Errorf("returned %+v with the error", got)
			}
			if c := protocol.CodeOf(err); c != tc.code {
				t.Fatalf("code %q (%v), want %q", c, err, tc.code)
			}
			checkOneLine(t, err)
			if strings.Contains(err.Error(), "M1001") {
				t.Errorf("the error names the member: %v", err)
			}
		})
	}
}

// strayBits returns a base64url character that decodes to the same leading
// bits as c with a non-zero trailing bit: the last character of an
// unpadded 64-byte signature (86 characters) carries 4 unused bits.
func strayBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i|1]
}

func TestParseMemberTokenIgnoresTime(t *testing.T) {
	long := mint(t, tokenKeyA, "M1001", tokenNow.AddDate(10, 0, 0))
	old := mint(t, tokenKeyA, "M1001", tokenNow.AddDate(-10, 0, 0))
	for _, tok := range []string{long, old} {
		if _, err := protocol.ParseMemberToken(tok, []ed25519.PublicKey{tokenPubA}); err != nil {
			t.Errorf("ParseMemberToken: %v", err)
		}
	}
	if _, err := protocol.ParseMemberToken(long, []ed25519.PublicKey{tokenPubB}); protocol.CodeOf(err) != protocol.CodeTokenForged {
		t.Errorf("ParseMemberToken with another key: %v, want token_forged", err)
	}
}

func TestMintMemberTokenRefuses(t *testing.T) {
	exp := tokenNow.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		priv    ed25519.PrivateKey
		member  string
		expires time.Time
		code    protocol.Code
	}{
		{"member empty", tokenKeyA, "", exp, protocol.CodeMissingField},
		{"member with a slash", tokenKeyA, "m/1", exp, protocol.CodeInvalidID},
		{"member too long", tokenKeyA, strings.Repeat("m", protocol.MaxIDLen+1), exp, protocol.CodeInvalidID},
		{"member non-ASCII", tokenKeyA, "Müller", exp, protocol.CodeInvalidID},
		{"expiry before 2000", tokenKeyA, "M1", time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), protocol.CodeInvalidTime},
		{"expiry in 2100", tokenKeyA, "M1", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), protocol.CodeInvalidTime},
		{"no key", nil, "M1", exp, protocol.CodeInternal},
		{"a public key", ed25519.PrivateKey(tokenPubA), "M1", exp, protocol.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := protocol.MintMemberToken(tc.priv, tc.member, tc.expires, nil)
			if tok != "" || protocol.CodeOf(err) != tc.code {
				t.Fatalf("MintMemberToken = %q, %v; want code %s", tok, err, tc.code)
			}
		})
	}
	short := errors.New("the entropy ran out")
	if tok, err := protocol.MintMemberToken(tokenKeyA, "M1", exp, failingReader{short}); tok != "" || !errors.Is(err, short) {
		t.Errorf("MintMemberToken with a failing reader = %q, %v", tok, err)
	}
	if tok, err := protocol.MintMemberToken(tokenKeyA, "M1", exp, bytes.NewReader(make([]byte, 11))); tok == "" && err == nil || tok != "" {
		t.Errorf("MintMemberToken with 11 bytes of nonce = %q, %v; want an error", tok, err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestIsMemberToken(t *testing.T) {
	tok := mint(t, tokenKeyA, "M1001", tokenNow)
	long := strings.Repeat("x", 100)
	for s, want := range map[string]bool{
		tok:                 true,
		"TS2." + long:       true, // a newer format: still a token, refused as malformed
		"TS123." + long:     true,
		"TS1234." + long:    false,
		"TS." + long:        false,
		"TSa." + long:       false,
		"ts1." + long:       false,
		"TS1" + long:        false,
		"":                  false,
		"M1001":             false,
		"TS1.abc":           false, // short: a member id that happens to start like a token
		"TS1." + long[:60]:  false, // 64 characters: could be a card number
		"TS1." + long[:61]:  true,
		"]Q1" + tok:         false, // the scanner strips AIM prefixes before this
		"https://x.example": false,
	} {
		if got := protocol.IsMemberToken(s); got != want {
			t.Errorf("IsMemberToken(%.20q…) = %v, want %v", s, got, want)
		}
		if protocol.ValidID(s) && protocol.IsMemberToken(s) {
			t.Errorf("%q is both a valid member id and a token", s)
		}
	}
}

func TestTokenKeys(t *testing.T) {
	a, b := protocol.EncodeTokenKey(tokenPubA), protocol.EncodeTokenKey(tokenPubB)
	if len(a) != 44 || !strings.HasSuffix(a, "=") {
		t.Errorf("EncodeTokenKey = %q, want 44 characters of padded base64", a)
	}
	keys, err := protocol.ParseTokenKeys([]string{b, a})
	if err != nil || len(keys) != 2 || !keys[0].Equal(tokenPubB) || !keys[1].Equal(tokenPubA) {
		t.Fatalf("ParseTokenKeys = %v, %v", keys, err)
	}
	if keys, err := protocol.ParseTokenKeys(nil); err != nil || len(keys) != 0 {
		t.Errorf("ParseTokenKeys(nil) = %v, %v", keys, err)
	}
	if id := protocol.TokenKeyID(tokenPubA); len(id) != 8 || id == protocol.TokenKeyID(tokenPubB) {
		t.Errorf("TokenKeyID = %q (B: %q)", id, protocol.TokenKeyID(tokenPubB))
	}
	raw := base64.StdEncoding.EncodeToString
	for name, in := range map[string][]string{
		"short":           {raw(tokenPubA[:31])},
		"long":            {raw(append(bytes.Clone(tokenPubA), 0))},
		"not base64":      {"not a key"},
		"unpadded":        {base64.RawStdEncoding.EncodeToString(tokenPubA)},
		"url alphabet":    {base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))},
		"listed twice":    {a, b, a},
		"empty":           {""},
		"too many":        {a, b, raw(tokenKeyA.Seed()), raw(tokenKeyB.Seed()), raw(bytes.Repeat([]byte{1}, 32))},
		"a private key":   {raw(tokenKeyA)},
		"second key bad:": {a, "AAAA"},
	} {
		if keys, err := protocol.ParseTokenKeys(in); keys != nil || protocol.CodeOf(err) != protocol.CodeInvalidTokenKey {
			t.Errorf("%s: ParseTokenKeys = %v, %v; want invalid_token_key", name, keys, err)
		}
	}
}

// FuzzVerifyMemberToken: whatever a scanner delivers, verification answers
// with a token code or a token that is exactly what the hub would have
// minted — one spelling per token, so a replay cannot be disguised.
func FuzzVerifyMemberToken(f *testing.F) {
	f.Add(mint(f, tokenKeyA, "M1001", tokenNow.Add(2*time.Minute)))
	keys := []ed25519.PublicKey{tokenPubB, tokenPubA}
	f.Fuzz(func(t *testing.T, token string) {
		fuzzlimit.Check(t)
		got, err := protocol.VerifyMemberToken(token, keys, tokenNow, tokenLeeway)
		parsed, perr := protocol.ParseMemberToken(token, keys)
		if err != nil {
			switch c := protocol.CodeOf(err); c {
			case protocol.CodeTokenMalformed, protocol.CodeTokenForged:
				if perr == nil || protocol.CodeOf(perr) != c {
					t.Fatalf("Verify says %v, Parse %v", err, perr)
				}
			case protocol.CodeTokenExpired, protocol.CodeTokenLifetime:
				if perr != nil {
					t.Fatalf("Verify says %v, Parse %v", err, perr)
				}
			default:
				t.Fatalf("refused with %q: %v", c, err)
			}
			if got != (protocol.MemberToken{}) {
				t.Fatalf("returned %+v with %v", got, err)
			}
			checkOneLine(t, err)
			return
		}
		if perr != nil || parsed != got {
			t.Fatalf("Verify accepts %+v, Parse says %+v, %v", got, parsed, perr)
		}
		if !protocol.IsMemberToken(token) || len(token) > protocol.MaxTokenLen {
			t.Fatalf("accepted %q, which IsMemberToken does not recognise", token)
		}
		if !protocol.ValidID(got.Member) || !protocol.ValidID(got.Nonce) || len(got.Nonce) != 16 {
			t.Fatalf("accepted with member %q, nonce %q", got.Member, got.Nonce)
		}
		if got.ExpiresAt.Before(tokenNow.Add(-tokenLeeway)) || got.ExpiresAt.After(tokenNow.Add(tokenLeeway+protocol.MaxTokenLifetime)) || got.ExpiresAt.Location() != time.UTC {
			t.Fatalf("accepted, expiring at %s", got.ExpiresAt)
		}
		priv := tokenKeyA
		if got.KeyID == protocol.TokenKeyID(tokenPubB) {
			priv = tokenKeyB
		} else if got.KeyID != protocol.TokenKeyID(tokenPubA) {
			t.Fatalf("accepted with key id %s", got.KeyID)
		}
		nonce, err := b64u.DecodeString(got.Nonce)
		if err != nil {
			t.Fatal(err)
		}
		again, err := protocol.MintMemberToken(priv, got.Member, got.ExpiresAt, bytes.NewReader(nonce))
		if err != nil || again != token {
			t.Fatalf("accepted %q, but the hub would mint %q (%v)", token, again, err)
		}
	})
}
