package protocol

import (
	"encoding/base64"
	"strings"
)

// EnrollmentTokenPrefix starts every enrollment token:
// "TSE1.<id>.<secret, base64url>.<the hub CA's SHA-256 in hex, or empty>".
// The fingerprint lets a till pin the hub's certificate at enrollment,
// before it holds the hub's CA.
const EnrollmentTokenPrefix = "TSE1."

// EnrollmentSecretLen is the length of an enrollment token's secret.
const EnrollmentSecretLen = 32

// FormatEnrollmentToken writes an enrollment token.
func FormatEnrollmentToken(id string, secret []byte, caFingerprint string) string {
	return EnrollmentTokenPrefix + id + "." + base64.RawURLEncoding.EncodeToString(secret) + "." + caFingerprint
}

// ParseEnrollmentToken reads a token FormatEnrollmentToken wrote; the
// error is a CodeMalformed *Error that never quotes the token.
func ParseEnrollmentToken(s string) (id string, secret []byte, caFingerprint string, err error) {
	bad := Errorf(CodeMalformed, "token", "not an enrollment token (TSE1.…); copy it whole from tillsync-hub terminal add")
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), EnrollmentTokenPrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 || !ValidID(parts[0]) {
		return "", nil, "", bad
	}
	secret, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(secret) != EnrollmentSecretLen {
		return "", nil, "", bad
	}
	if fp := parts[2]; fp != "" && (len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "") {
		return "", nil, "", Errorf(CodeMalformed, "token", "the token's CA fingerprint is not 64 lower-case hex digits")
	}
	return parts[0], secret, parts[2], nil
}
