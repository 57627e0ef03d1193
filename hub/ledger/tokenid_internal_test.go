package ledger

import "testing"

// TestRandomTokenID: token ids are typed as command arguments, so none may
// start with '-' (a flag) or '_'; 2,000 draws make a leading '-' or '_'
// from plain base64url all but certain (1 - (62/64)^2000).
func TestRandomTokenID(t *testing.T) {
	for range 2000 {
		id := randomTokenID(9)
		if len(id) != 12 || id[0] == '-' || id[0] == '_' {
			t.Fatalf("token id %q", id)
		}
	}
}
