package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Member tokens are the signed, short-lived codes a member app shows as a
// QR code instead of a member card:
//
//	TS1.<payload>.<signature>
//
// payload and signature are base64url without padding (RFC 4648 §5), so a
// token is one word of [A-Za-z0-9._-] a scanner passes on unchanged. The
// payload is binary, big-endian:
//
//	version    1 byte   1
//	key id     4 bytes  the first 4 bytes of SHA-256 of the signing public key
//	expires    8 bytes  Unix seconds
//	nonce     12 bytes  random: names the token for replay and sightings
//	member     1 byte length, then that many bytes (a ValidID)
//
// and the signature is Ed25519 by the coalition's key over the ASCII text
// before the last dot ("TS1." and the encoded payload), so the prefix is
// signed too. A token is 127 to 211 characters: longer than any member id,
// so it can never be mistaken for a card number, and at most 211 fits a
// version 10 QR code at error correction level M.
//
// Decoding is strict: one encoding per payload (no padding, no stray bits,
// no trailing bytes), so a token cannot be re-spelled into another string
// that still verifies.
const (
	// TokenPrefix starts every member token of this format.
	TokenPrefix = "TS1."
	// MaxTokenLen bounds a member token's length; longer input is refused
	// before it is decoded.
	MaxTokenLen = 256
	// MaxTokenLifetime is the longest a token may live: a till refuses one
	// that expires further ahead than this (plus its leeway), so a signer
	// bug or a stolen clock cannot make a token that is good for ever.
	MaxTokenLifetime = 10 * time.Minute
	// DefaultTokenTTL is how long the hub makes a token live unless asked
	// otherwise: long enough to walk to the till, short enough that a
	// screenshot is soon worthless.
	DefaultTokenTTL = 2 * time.Minute
	// DefaultTokenLeeway is how far a till's clock may be off the hub's
	// before it refuses good tokens: a token is accepted until its expiry
	// plus the leeway.
	DefaultTokenLeeway = time.Minute
	// MaxTokenKeys bounds the public keys one Config carries: the current
	// key and the ones it replaced that may still sign live tokens.
	MaxTokenKeys = 4
	// TokenNonceLen is the length of a token's nonce in bytes; its string
	// form (MemberToken.Nonce) is 16 characters of base64url.
	TokenNonceLen = 12
)

const (
	tokenVersion    = 1
	tokenKeyIDLen   = 4
	tokenHeaderLen  = 1 + tokenKeyIDLen + 8 + TokenNonceLen + 1 // up to the member's length byte
	tokenMinPayload = tokenHeaderLen + 1
	tokenMaxPayload = tokenHeaderLen + MaxIDLen
)

// b64 is the token alphabet: base64url, no padding, stray bits refused.
var b64 = base64.RawURLEncoding.Strict()

// MemberToken is what a verified member token says.
type MemberToken struct {
	// Member is the member the token stands for.
	Member string
	// Nonce names the token: 16 characters of base64url (a ValidID), the
	// same for every scan of the same token.
	Nonce string
	// KeyID is TokenKeyID of the key that signed it.
	KeyID string
	// ExpiresAt is when the token expires, to the second, in UTC.
	ExpiresAt time.Time
}

// TokenKeyID returns the id of a token signing key as it appears in tokens,
// logs and the hub's API: the hex of the first 4 bytes of SHA-256 of the
// public key.
func TokenKeyID(pub ed25519.PublicKey) string {
	return hex.EncodeToString(keyID(pub))
}

func keyID(pub ed25519.PublicKey) []byte {
	sum := sha256.Sum256(pub)
	return sum[:tokenKeyIDLen]
}

// IsMemberToken reports whether s looks like a member token — "TS", a
// format number, a dot — and is longer than any member id, so that a
// scan can be routed to VerifyMemberToken instead of being read as a card
// number. A token of a newer format is a member token too (and refused by
// VerifyMemberToken as malformed): the POS then hears "update the till"
// rather than "not a member card". It never reports true for a ValidID.
func IsMemberToken(s string) bool {
	if len(s) <= MaxIDLen || !strings.HasPrefix(s, "TS") {
		return false
	}
	i := 2
	for i < len(s) && i < 5 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 2 && i < len(s) && s[i] == '.'
}

// MintMemberToken signs a token for member that expires at expires (to the
// second; the fraction is dropped). rnd supplies the nonce; nil means
// crypto/rand. It refuses an invalid member id with a *Error
// (missing_field, invalid_id) and an expiry outside 2000 to 2100 with
// invalid_time. It does not bound the lifetime: the caller picks expires,
// and tills refuse a token that lives longer than MaxTokenLifetime.
func MintMemberToken(priv ed25519.PrivateKey, member string, expires time.Time, rnd io.Reader) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", errors.New("protocol: mint member token: not an Ed25519 private key")
	}
	if err := checkID("member", member); err != nil {
		return "", err
	}
	if expires.Before(minCreatedAt) || !expires.Before(maxCreatedAt) {
		return "", Errorf(CodeInvalidTime, "expires", "must be between 2000 and 2100")
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	p := make([]byte, 0, tokenHeaderLen+len(member))
	p = append(p, tokenVersion)
	p = append(p, keyID(priv.Public().(ed25519.PublicKey))...)
	p = binary.BigEndian.AppendUint64(p, uint64(expires.Unix()))
	nonce := make([]byte, TokenNonceLen)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return "", fmt.Errorf("protocol: mint member token: nonce: %w", err)
	}
	p = append(p, nonce...)
	p = append(p, byte(len(member)))
	p = append(p, member...)
	signed := TokenPrefix + b64.EncodeToString(p)
	return signed + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signed))), nil
}

// ParseMemberToken checks a token's form and signature against keys and
// returns what it says, without looking at the time: the hub uses it for
// sightings, which its tills have already checked for expiry. A refusal is
// a *Error with CodeTokenMalformed (not a token of this format, or not
// one well formed) or CodeTokenForged (no key of keys has the token's key
// id, or the signature does not verify).
func ParseMemberToken(token string, keys []ed25519.PublicKey) (MemberToken, error) {
	var mt MemberToken
	if len(token) > MaxTokenLen {
		return mt, Errorf(CodeTokenMalformed, "token", "%d characters, at most %d", len(token), MaxTokenLen)
	}
	// Only base64url and the dots: Go's base64 decoder skips CR and LF, so
	// without this a token with a line break in its signature would verify
	// as a second spelling of the same token.
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return mt, Errorf(CodeTokenMalformed, "token", "character %d is not base64url", i+1)
		}
	}
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		if IsMemberToken(token) {
			return mt, Errorf(CodeTokenMalformed, "token", "a token format this side does not read (it reads %s)", strings.TrimSuffix(TokenPrefix, "."))
		}
		return mt, Errorf(CodeTokenMalformed, "token", "does not start with %s", TokenPrefix)
	}
	enc, sigEnc, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigEnc, ".") {
		return mt, Errorf(CodeTokenMalformed, "token", "want %s<payload>.<signature>", TokenPrefix)
	}
	p, err := b64.DecodeString(enc)
	if err != nil {
		return mt, Errorf(CodeTokenMalformed, "token", "the payload is not base64url")
	}
	sig, err := b64.DecodeString(sigEnc)
	if err != nil {
		return mt, Errorf(CodeTokenMalformed, "token", "the signature is not base64url")
	}
	if len(sig) != ed25519.SignatureSize {
		return mt, Errorf(CodeTokenMalformed, "token", "the signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	if len(p) < tokenMinPayload || len(p) > tokenMaxPayload {
		return mt, Errorf(CodeTokenMalformed, "token", "the payload is %d bytes, want %d to %d", len(p), tokenMinPayload, tokenMaxPayload)
	}
	if p[0] != tokenVersion {
		return mt, Errorf(CodeTokenMalformed, "token", "payload version %d, this side reads %d", p[0], tokenVersion)
	}
	kid := p[1 : 1+tokenKeyIDLen]
	exp := binary.BigEndian.Uint64(p[1+tokenKeyIDLen:])
	nonce := p[1+tokenKeyIDLen+8 : tokenHeaderLen-1]
	n := int(p[tokenHeaderLen-1])
	if len(p) != tokenHeaderLen+n {
		return mt, Errorf(CodeTokenMalformed, "token", "the member id is %d bytes and %d follow it", n, len(p)-tokenHeaderLen)
	}
	member := string(p[tokenHeaderLen:])
	if !ValidID(member) {
		return mt, Errorf(CodeTokenMalformed, "member", "must be 1-%d characters of A-Z a-z 0-9 . _ -", MaxIDLen)
	}
	// exp is unsigned on the wire: anything past 2100 (or negative as an
	// int64) is out of range before it becomes a time.
	if exp < uint64(minCreatedAt.Unix()) || exp >= uint64(maxCreatedAt.Unix()) {
		return mt, Errorf(CodeTokenMalformed, "expires", "must be between 2000 and 2100")
	}
	known := false
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize || string(keyID(k)) != string(kid) {
			continue
		}
		known = true
		if ed25519.Verify(k, []byte(token[:len(TokenPrefix)+len(enc)]), sig) {
			return MemberToken{
				Member:    member,
				Nonce:     b64.EncodeToString(nonce),
				KeyID:     hex.EncodeToString(kid),
				ExpiresAt: time.Unix(int64(exp), 0).UTC(),
			}, nil
		}
	}
	if !known {
		return mt, Errorf(CodeTokenForged, "token", "signed with key %x, which is not one of the coalition's keys this side holds", kid)
	}
	return mt, Errorf(CodeTokenForged, "token", "the signature does not verify")
}

// VerifyMemberToken checks a token as a till does: its form and signature
// (ParseMemberToken) and its time. A token is good until ExpiresAt+leeway
// by now — the leeway absorbs the difference between the till's clock and
// the hub's — and is refused CodeTokenExpired after that. A token that
// expires more than MaxTokenLifetime+leeway after now is refused
// CodeTokenLifetime: no good token lives that long, so either it was
// signed in error or this side's clock is behind. A negative leeway is 0.
//
// Replays are the caller's to catch: the same token verifies every time,
// with the same Nonce.
func VerifyMemberToken(token string, keys []ed25519.PublicKey, now time.Time, leeway time.Duration) (MemberToken, error) {
	mt, err := ParseMemberToken(token, keys)
	if err != nil {
		return MemberToken{}, err
	}
	leeway = max(leeway, 0)
	if now.After(mt.ExpiresAt.Add(leeway)) {
		return MemberToken{}, Errorf(CodeTokenExpired, "token", "expired at %s, %s ago", mt.ExpiresAt.Format(time.RFC3339), now.Sub(mt.ExpiresAt).Round(time.Second))
	}
	if mt.ExpiresAt.After(now.Add(leeway + MaxTokenLifetime)) {
		return MemberToken{}, Errorf(CodeTokenLifetime, "token", "expires at %s, more than %s ahead of this clock (%s): the signer or this clock is wrong",
			mt.ExpiresAt.Format(time.RFC3339), MaxTokenLifetime, now.UTC().Format(time.RFC3339))
	}
	return mt, nil
}

// EncodeTokenKey returns a public key as Config.MemberTokenKeys and the
// hub's API carry it: standard base64 with padding of its 32 bytes.
func EncodeTokenKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParseTokenKeys decodes public keys as EncodeTokenKey writes them,
// refusing (with a *Error, CodeInvalidTokenKey) more than MaxTokenKeys, a
// key that is not 32 bytes of base64, and a key listed twice.
func ParseTokenKeys(keys []string) ([]ed25519.PublicKey, error) {
	if len(keys) > MaxTokenKeys {
		return nil, Errorf(CodeInvalidTokenKey, "member_token_keys", "%d keys, at most %d", len(keys), MaxTokenKeys)
	}
	out := make([]ed25519.PublicKey, 0, len(keys))
	for i, s := range keys {
		f := "member_token_keys[" + itoa(i) + "]"
		k, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, Errorf(CodeInvalidTokenKey, f, "must be the %d bytes of an Ed25519 public key in base64", ed25519.PublicKeySize)
		}
		for _, prev := range out {
			if string(prev) == string(k) {
				return nil, Errorf(CodeInvalidTokenKey, f, "listed twice")
			}
		}
		out = append(out, k)
	}
	return out, nil
}
