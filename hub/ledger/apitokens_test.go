package ledger_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// API tokens survive a reopen, revocations too; the file never holds a
// secret, only its salted hash.
func TestBoltAPITokensDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	op, opSecret, err := s.CreateAPIToken(ledger.APIToken{Role: ledger.RoleOperator}, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	ro, roSecret, err := s.CreateAPIToken(ledger.APIToken{Role: ledger.RoleReadOnly, Name: "dashboard"}, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	used := ledgertest.T0.Add(time.Hour)
	if _, err := s.AuthenticateAPIToken(op.ID, opSecret, used); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAPIToken(ro.ID, used); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range [][]byte{opSecret, roSecret} {
		for _, form := range [][]byte{sec, []byte(base64.RawURLEncoding.EncodeToString(sec)), []byte(base64.StdEncoding.EncodeToString(sec))} {
			if bytes.Contains(data, form) {
				t.Fatalf("the ledger file holds a token's secret")
			}
		}
	}

	s = openBolt(t, path)
	got, err := s.AuthenticateAPIToken(op.ID, opSecret, used.Add(time.Second))
	if err != nil || got.Role != ledger.RoleOperator || !got.LastUsed.Equal(used) {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if _, err := s.AuthenticateAPIToken(ro.ID, roSecret, used.Add(time.Second)); protocol.CodeOf(err) != protocol.CodeUnauthorized {
		t.Fatalf("the revoked token after reopen: %v", err)
	}
	list, err := s.APITokens()
	if err != nil || len(list) != 2 || list[0].Name+list[1].Name != "dashboard" {
		t.Fatalf("after reopen: %+v, %v", list, err)
	}
}

// A ledger file from before API tokens, opened read-only, has none.
func TestBoltAPITokensReadOnlyOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	s.Close()
	dropBucket(t, path, "api_tokens")
	ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if list, err := ro.APITokens(); err != nil || len(list) != 0 {
		t.Fatalf("APITokens() = %+v, %v", list, err)
	}
	if _, err := ro.AuthenticateAPIToken("x", make([]byte, 32), ledgertest.T0); protocol.CodeOf(err) != protocol.CodeUnauthorized {
		t.Fatalf("AuthenticateAPIToken: %v", err)
	}
}

// dropBucket deletes a top-level bucket from the ledger file at path, as if
// it were written before the bucket existed.
func dropBucket(t *testing.T, path, name string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(name)) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}
