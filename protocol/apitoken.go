package protocol

import (
	"encoding/base64"
	"strings"
)

// APITokenPrefix starts every token of the hub's HTTP API:
// "TSA1.<id>.<secret, base64url>". The id names the token in logs and
// listings; only the secret is secret, and the hub keeps it hashed.
const APITokenPrefix = "TSA1."

// APISecretLen is the length of an API token's secret.
const APISecretLen = 32

// FormatAPIToken writes an API token.
func FormatAPIToken(id string, secret []byte) string {
	return APITokenPrefix + id + "." + base64.RawURLEncoding.EncodeToString(secret)
}

// ParseAPIToken reads a token FormatAPIToken wrote, with surrounding
// white space (a line read from a file) ignored. Each token has one
// spelling: the secret's base64url must be canonical. The error is a
// CodeMalformed *Error that never quotes the token.
func ParseAPIToken(s string) (id string, secret []byte, err error) {
	bad := Errorf(CodeMalformed, "token", "not an API token (TSA1.<id>.<secret>); copy it whole from tillsync-hub apitoken add or the hub's operator.token")
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), APITokenPrefix)
	id, enc, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || !ValidID(id) {
		return "", nil, bad
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(secret) != APISecretLen || strings.ContainsAny(enc, "\r\n") {
		return "", nil, bad
	}
	return id, secret, nil
}
