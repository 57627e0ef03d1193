package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// OperatorTokenFile is the default file, in the data dir, of the operator
// API token the hub makes at its first start.
const OperatorTokenFile = "operator.token"

// operatorTokenName names the tokens the hub makes for itself in listings.
const operatorTokenName = "operator.token (made by the hub)"

// ensureOperatorToken makes an operator API token and writes it to path,
// when the ledger has no valid operator token (the hub's first start, or
// every operator token revoked) or when fresh asks for one anyway. It
// returns the new token's id, or "" when it made none. The file is
// owner-only and written whole or not at all; a token whose file could not
// be written is revoked, so the next start tries again.
func ensureOperatorToken(st ledger.Store, path string, fresh bool, now time.Time) (string, error) {
	if !fresh {
		toks, err := st.APITokens()
		if err != nil {
			return "", fmt.Errorf("hub: operator token: %w", err)
		}
		for _, t := range toks {
			if t.Role == ledger.RoleOperator && t.RevokedAt.IsZero() {
				return "", nil
			}
		}
	}
	tok, secret, err := st.CreateAPIToken(ledger.APIToken{Role: ledger.RoleOperator, Name: operatorTokenName}, now)
	if err != nil {
		return "", fmt.Errorf("hub: operator token: %w", err)
	}
	if err := writeTokenFile(path, []byte(protocol.FormatAPIToken(tok.ID, secret)+"\n")); err != nil {
		if _, rerr := st.RevokeAPIToken(tok.ID, now); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", fmt.Errorf("hub: operator token %s: %w; check that the data dir is writable", path, err)
	}
	return tok.ID, nil
}

// writeTokenFile replaces path with data, owner-only: written to a
// temporary file, synced and renamed into place, so that a crash leaves the
// old file or the new one, never half a token.
func writeTokenFile(path string, data []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // left by a crash before the rename
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// logOperatorToken says, once the hub runs, where the operator token it
// made is (never the token), or warns when the file is open to others.
func (h *Hub) logOperatorToken() {
	path := h.o.OperatorTokenFile
	if h.operatorTokenID != "" {
		h.log.Info("operator API token created; the admin commands read it from the data dir, others pass it as a bearer token", "path", path, "token_id", h.operatorTokenID)
		return
	}
	if fi, err := os.Stat(path); err == nil && keyFileOpen(fi) {
		h.log.Warn("the operator API token can be read by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
}
