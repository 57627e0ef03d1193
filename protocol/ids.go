package protocol

// MaxIDLen is the longest identifier accepted anywhere in the protocol.
const MaxIDLen = 64

// ValidID reports whether s is a usable identifier: 1 to MaxIDLen characters
// from [A-Za-z0-9._-]. Everything else — MQTT wildcards (+ #), the topic
// separator (/), spaces, control characters, non-ASCII — is refused, so an id
// can be placed in a topic or a bbolt key without escaping.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	// "." and ".." are path-like and confuse operators reading topics and files.
	return s != "." && s != ".."
}

// checkID returns a *Error with CodeInvalidID naming field when s is not a
// valid identifier, and nil otherwise.
func checkID(field, s string) error {
	if s == "" {
		return Errorf(CodeMissingField, field, "is required")
	}
	if !ValidID(s) {
		return Errorf(CodeInvalidID, field, "must be 1-%d characters of A-Z a-z 0-9 . _ -", MaxIDLen)
	}
	return nil
}
