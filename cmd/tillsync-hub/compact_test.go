package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// stoppedHub writes a stopped hub's ledger in a new data dir: a seeded
// coalition and 600 transactions in 30 commits. It returns the data dir.
func stoppedHub(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := ledger.OpenBolt(filepath.Join(dir, hub.LedgerFile), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seed := &ledger.Seed{
		Coalition: ledger.Coalition{Currency: "EUR", PointValue: "0.01"},
		Partners: []ledger.SeedPartner{{ID: "p1", Rules: &protocol.RuleSet{Points: 1, Per: 100},
			Stores: []ledger.SeedStore{{ID: "s1", Terminals: []string{"t1"}}}}},
	}
	if _, err := st.LoadSeed(seed, ledgertest.T0.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	tl := ledgertest.NewTill("s1", "t1", "p1")
	n := 0
	for commit := range 30 {
		var txs []protocol.Transaction
		for range 20 {
			n++
			txs = append(txs, tl.Earn(fmt.Sprintf("e%04d", n), fmt.Sprintf("m%02d", n%40), 10))
		}
		ledgertest.Apply(t, st, ledgertest.T0.Add(time.Duration(commit)*time.Second), tl.Batch(t, txs...))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func absent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is there (stat: %v)", path, err)
	}
}

// compact on a stopped hub's data dir: progress, then what it gave back;
// the ledger verifies after it; --keep-original keeps the original.
func TestCompactCmd(t *testing.T) {
	t.Parallel()
	dir := stoppedHub(t)
	path := filepath.Join(dir, hub.LedgerFile)
	out := run(t, "compact", "--data-dir", dir).OK(t)
	contains(t, "compact", out,
		"Reading "+path, "Copying its live data into ledger.db.compact", "Syncing", "comparing it with the ledger", "Verifying the copy", "Putting the copy in the place of ledger.db",
		"Compacted "+path+" in ", "before", " on disk", "after", "live data", "checked", "keys: the same in the copy, which passes verify", "original   removed")
	if strings.Contains(out, "PROBLEM") {
		t.Errorf("compact printed a problem:\n%s", out)
	}
	absent(t, path+ledger.CompactSuffix)
	absent(t, path+ledger.BeforeCompactSuffix)
	contains(t, "verify --data-dir after compact", run(t, "verify", "--data-dir", dir).OK(t), "entries checked  600", "OK")

	out = run(t, "compact", "--data-dir", dir, "--keep-original").OK(t)
	keep := path + ledger.BeforeCompactSuffix
	contains(t, "compact --keep-original", out, "kept as "+keep)
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the original was not kept: %v", err)
	}
	run(t, "compact", "--data-dir", dir, "--keep-original").OneLine(t, 1, keep, "exists", "move it away")
	contains(t, "verify --data-dir after compact", run(t, "verify", "--data-dir", dir).OK(t), "entries checked  600", "OK")
}

// compact refuses, in one line, what it cannot do: a ledger a hub holds, a
// data dir with no ledger, a ledger that does not verify; and usage
// mistakes with exit 2. None of them changes the ledger.
func TestCompactCmdRefuses(t *testing.T) {
	t.Parallel()
	dir := stoppedHub(t)
	path := filepath.Join(dir, hub.LedgerFile)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string) {
		t.Helper()
		if now, err := os.ReadFile(path); err != nil || string(now) != string(before) {
			t.Errorf("%s changed the ledger (%v)", what, err)
		}
		absent(t, path+ledger.CompactSuffix)
	}

	// Held as a running hub holds it (whose open writes to it).
	st, err := ledger.OpenBolt(path, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if before, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	run(t, "compact", "--data-dir", dir).OneLine(t, 1, "ledger "+path+" is in use by a running hub", "stop the hub first")
	same("compact of a held ledger")
	st.Close()
	if before, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}

	run(t, "compact", "--data-dir", filepath.Join(dir, "nothing")).OneLine(t, 1, "no ledger in", "--data-dir")
	absent(t, filepath.Join(dir, "nothing"))
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"compact", "extra", "--data-dir", dir}, []string{`"extra"`, "tillsync-hub compact --help"}},
		{[]string{"compact", "--data-dir", ""}, []string{"--data-dir"}},
		{[]string{"compact", "--data-dir", dir, "--keep-original=maybe"}, []string{"--keep-original", "true or false"}},
	} {
		run(t, tc.args...).OneLine(t, 2, tc.wants...)
	}
	same("a usage mistake")

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// m01's balance: member, 0x00, 0x02 in the members bucket (hub/ledger/members.go).
		return tx.Bucket([]byte("members")).Put([]byte("m01\x00\x02"), binary.BigEndian.AppendUint64(nil, 1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if before, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	// It gets as far as the copy's check: what it did so far is on stdout.
	r := run(t, "compact", "--data-dir", dir)
	line := strings.TrimSpace(r.Stderr)
	if r.Code != 1 || strings.Contains(line, "\n") || !strings.HasPrefix(line, name+": ") {
		t.Errorf("compact of a ledger that does not verify: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	contains(t, "its stderr", line, "does not pass verify", "member/m01: stored 1", "left as it was", "tillsync-hub verify --data-dir "+dir)
	contains(t, "its stdout", r.Stdout, "Verifying the copy")
	if strings.Contains(r.Stdout, "Compacted") || strings.Contains(r.Stdout, "Putting the copy") {
		t.Errorf("compact of a ledger that does not verify printed:\n%s", r.Stdout)
	}
	same("compact of a ledger that does not verify")
}

func TestCompactHelp(t *testing.T) {
	t.Parallel()
	contains(t, "--help", run(t, "--help").OK(t), "Maintain a stopped hub", "compact")
	contains(t, "compact --help", run(t, "compact", "--help").OK(t),
		"Examples:", "--data-dir", "--keep-original", "ledger.db.before-compact", "hub stopped", "free disk space", "verify")
}
