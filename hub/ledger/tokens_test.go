package ledger_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
)

// TestTokenSightingsDurable: a sighting survives a restart of the hub, so
// the second store's sighting after it is still flagged; the flag too.
func TestTokenSightingsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	exp := ledgertest.T0.Add(2 * time.Minute)
	sg := ledger.TokenSighting{Nonce: "n1", Member: "m1", ExpiresAt: exp, Store: "s1", Terminal: "t1", At: ledgertest.T0}
	if _, _, err := s.SeeToken(sg, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openBolt(t, path)
	sg.Store = "s2"
	rec, flagged, err := s.SeeToken(sg, ledgertest.T0.Add(time.Second))
	if err != nil || !flagged || rec.First.Store != "s1" || rec.Sightings != 2 {
		t.Fatalf("after a restart: %+v, flagged %v, %v; want flagged against s1", rec, flagged, err)
	}
	s.Close()
	s = openBolt(t, path)
	if fs, err := s.TokenFlags(); err != nil || len(fs) != 1 || !ledgertest.SameTokenRecord(fs[0], rec) {
		t.Fatalf("flags after a restart: %+v, %v; want %+v", fs, err, rec)
	}
}

// TestReadOnlyLedgerWithoutTokenBuckets: a ledger written before member
// tokens (no token buckets) opens read-only for verify and reports no token
// flags; a writable open adds the buckets.
func TestReadOnlyLedgerWithoutTokenBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"token_sightings", "token_expiry", "token_flags"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a ledger without token buckets: %v", err)
	}
	if fs, err := ro.TokenFlags(); err != nil || len(fs) != 0 {
		t.Errorf("TokenFlags: %+v, %v", fs, err)
	}
	if rep, err := ro.Verify(); err != nil || !rep.OK() {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	ro.Close()
	s = openBolt(t, path)
	if _, _, err := s.SeeToken(ledger.TokenSighting{Nonce: "n1", Member: "m1", ExpiresAt: ledgertest.T0, Store: "s1", Terminal: "t1", At: ledgertest.T0}, ledgertest.T0); err != nil {
		t.Fatalf("SeeToken after a writable open: %v", err)
	}
}
