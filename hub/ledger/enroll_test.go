package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
)

// enroll registers s1/t1 and enrolls it.
func enroll(t *testing.T, s ledger.Store) ledger.TerminalCredentials {
	t.Helper()
	ledgertest.Register(t, s, ledgertest.NewTill("s1", "t1", "p1"))
	if err := s.AddTerminal("s1", "t1", ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	tok, err := s.IssueEnrollmentToken("s1", "t1", 0, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	creds, err := s.Enroll(tok.ID, tok.Secret, pub, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// TestTerminalAuthDurable: the in-memory enrollment states are the file's
// after a reopen, read-only too.
func TestTerminalAuthDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	creds := enroll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		s, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		if a := s.TerminalAuth("s1", "t1"); !a.Enrolled || a.Revoked || !bytes.Equal(a.MACKey, creds.MACKey) || a.Generation != 1 || !s.Enrolled("s1", "t1") {
			t.Errorf("read-only %v: TerminalAuth after reopening: %+v", ro, a)
		}
		s.Close()
	}
}

// TestMosquittoHash: the broker account's hash is the password under
// PBKDF2-SHA512 with its salt, as Mosquitto checks it (and a fresh salt
// every time).
func TestMosquittoHash(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	creds := enroll(t, s)
	users, err := s.BrokerUsers()
	if err != nil || len(users) != 1 {
		t.Fatalf("BrokerUsers: %+v, %v", users, err)
	}
	for _, h := range []string{users[0].MosquittoHash, ledger.MosquittoHash(creds.Password)} {
		parts := strings.Split(h, "$")
		if len(parts) != 5 || parts[1] != "7" || parts[2] != "101" {
			t.Fatalf("hash %q", h)
		}
		salt, err := base64.StdEncoding.DecodeString(parts[3])
		if err != nil || len(salt) != 12 {
			t.Fatalf("salt %q: %v", parts[3], err)
		}
		want, _ := pbkdf2.Key(sha512.New, creds.Password, salt, 101, 64)
		if parts[4] != base64.StdEncoding.EncodeToString(want) {
			t.Fatalf("hash %q is not the password's", h)
		}
		// EMQX takes the salt as text, and the hash in lower-case hex
		// (emqx_passwd: pbkdf2 of the password over the salt's bytes).
		if strings.Trim(string(salt), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("salt %q is not text EMQX can import", salt)
		}
	}
	if ledger.MosquittoHash("x") == ledger.MosquittoHash("x") {
		t.Fatal("the same salt twice")
	}
}
