package ledger_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestVerifyChecksTerminalSeqs: Verify finds a terminal sequence number
// removed from the ledger's record, or pointed at another transaction.
func TestVerifyChecksTerminalSeqs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s) // s1/t1: e1 (seq 1), b2 (2), b1, e2 (4), v1
	if rep, err := s.Verify(); err != nil || !rep.OK() {
		t.Fatalf("Verify before corruption = %+v, %v", rep, err)
	}
	s.Close()
	corrupt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("terminal_seqs"))
		var keys [][]byte
		b.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
		if len(keys) != 5 {
			t.Fatalf("%d terminal sequence numbers recorded, want 5", len(keys))
		}
		if err := b.Delete(keys[0]); err != nil { // e1's
			return err
		}
		return b.Put(keys[1], []byte("e2")) // b2's number, now naming e2, which has its own
	})
	s = openBolt(t, path)
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"transaction e2 holds two sequence numbers of s1/t1: 2 and 4",
		"sequence number 2 of s1/t1 names transaction e2, whose record says 4 of s1/t1",
		"transaction b2 came with sequence number 2 of s1/t1, which does not name it",
		"transaction e1 came with sequence number 1 of s1/t1, which does not name it",
	}
	slices.Sort(want)
	got := slices.Clone(rep.Problems)
	slices.Sort(got)
	if rep.OK() || !slices.Equal(got, want) {
		t.Fatalf("Verify problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
