package posapi

import (
	"crypto/sha256"
	"encoding/hex"
)

// bodyHash identifies a request (its path and exact body) so an
// Idempotency-Key reused for a different request can be refused.
func bodyHash(path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
