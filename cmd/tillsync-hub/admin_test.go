package main

import (
	"encoding/binary"
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

// demoSeed is the documented example seed, as an absolute path (commands
// run in a scratch directory).
func demoSeed(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../tillsync-sim/demo-coalition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every admin command explains itself, with examples and the --hub flag.
func TestAdminHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"Administer a running hub", "seed", "coalition", "partner", "store", "terminal", "rules", "campaign", "member", "flags", "settlement", "period", "expire", "verify", "apitoken", "TILLSYNC_HUB", "TILLSYNC_HUB_TOKEN", "operator.token"}},
		{[]string{"serve", "--help"}, []string{"operator.token", "--new-operator-token", "apitoken add"}},
		{[]string{"apitoken"}, []string{"add", "list", "revoke", "operator", "read-only", "partner"}},
		{[]string{"apitoken", "add", "--help"}, []string{"Examples:", "--role", "--partner", "--name", "--json", "--token", "--token-file", "--data-dir"}},
		{[]string{"apitoken", "list", "--help"}, []string{"Examples:", "last used"}},
		{[]string{"apitoken", "revoke", "--help"}, []string{"Examples:", "ID"}},
		{[]string{"partner", "list", "--help"}, []string{"--token", "--token-file", "--data-dir", "TILLSYNC_HUB_TOKEN", "operator.token"}},
		{[]string{"verify", "--help"}, []string{"--token", "--token-file"}},
		{[]string{"serve", "--help"}, []string{"--seed"}},
		{[]string{"seed", "--help"}, []string{"tillsync-hub seed FILE", "Examples:", "--hub", "--json"}},
		{[]string{"coalition", "--help"}, []string{"show", "set"}},
		{[]string{"coalition"}, []string{"show", "set"}},
		{[]string{"coalition", "show", "--help"}, []string{"Examples:", "--hub"}},
		{[]string{"coalition", "set", "--help"}, []string{"Examples:", "--name", "--currency", "--point-value", "--expiry-months", "--hold-minutes", "keep their current value"}},
		{[]string{"partner", "add", "--help"}, []string{"Examples:", "--name", "--hub"}},
		{[]string{"partner", "list", "--help"}, []string{"Examples:", "--json"}},
		{[]string{"store", "add", "--help"}, []string{"Examples:", "--partner", "--name"}},
		{[]string{"store", "list", "--help"}, []string{"Examples:"}},
		{[]string{"terminal", "add", "--help"}, []string{"Examples:", "--store", "--terminal"}},
		{[]string{"terminal", "list", "--help"}, []string{"Examples:"}},
		{[]string{"rules", "show", "--help"}, []string{"Examples:", "--partner"}},
		{[]string{"rules", "set", "--help"}, []string{"Examples:", "--partner", "--file", "--effective-from"}},
		{[]string{"campaign", "add", "--help"}, []string{"Examples:", "--partner", "--id", "--from", "--to", "--multiplier", "--bonus", "--min-amount", "--name"}},
		{[]string{"member", "show", "--help"}, []string{"Examples:", "MEMBER"}},
		{[]string{"member", "token", "--help"}, []string{"Examples:", "MEMBER", "--ttl", "--json"}},
		{[]string{"member"}, []string{"show", "token"}},
		{[]string{"flags", "--help"}, []string{"Examples:", "token_flags"}},
		{[]string{"serve", "--help"}, []string{"--member-token-key"}},
		{[]string{"settlement", "--help"}, []string{"Examples:", "--from", "--to", "--csv"}},
		{[]string{"period", "close", "--help"}, []string{"Examples:", "--from", "--to"}},
		{[]string{"period", "list", "--help"}, []string{"Examples:"}},
		{[]string{"expire", "--help"}, []string{"Examples:", "--as-of"}},
		{[]string{"verify", "--help"}, []string{"Examples:", "--data-dir", "--hub", "exits 1"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out := run(t, tc.args...).OK(t)
			for _, w := range tc.wants {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

// Mistakes on the command line are caught before any hub is asked: exit 2
// and one line.
func TestAdminUsageMistakes(t *testing.T) {
	t.Parallel()
	hub := "http://" + freeAddr(t) // nothing listens: a usage mistake must not get that far
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"seed"}, []string{"arg(s)", "--help"}},
		{[]string{"coalition", "bogus"}, []string{`"bogus"`, "tillsync-hub coalition --help"}},
		{[]string{"partner", "lst"}, []string{`"lst"`, `"list"`}},
		// A mistyped subcommand is named as such, not the flags after it.
		{[]string{"partner", "lst", "--hub", hub}, []string{`"lst"`, `"list"`, "tillsync-hub partner --help"}},
		{[]string{"tls", "sho", "--data-dir", t.TempDir()}, []string{`"sho"`, `"show"`}},
		{[]string{"coalition", "set", "--hub", hub}, []string{"nothing to set", "--currency"}},
		{[]string{"coalition", "set", "--expiry-months", "many"}, []string{"--expiry-months", "--help"}},
		{[]string{"partner", "add", "--hub", hub}, []string{"arg(s)"}},
		{[]string{"partner", "add", "a+b", "--hub", hub}, []string{`"a+b"`, "A-Z a-z 0-9"}},
		{[]string{"partner", "list", "--hub", "ftp://example.com"}, []string{"--hub", "ftp://example.com", "http://host:port"}},
		{[]string{"store", "add", "s1", "--hub", hub}, []string{"--partner is required"}},
		{[]string{"store", "add", "s1", "--partner", "p/1", "--hub", hub}, []string{"--partner", `"p/1"`}},
		{[]string{"terminal", "add", "--store", "s1", "--hub", hub}, []string{"--terminal"}},
		{[]string{"rules", "show", "--hub", hub}, []string{"--partner is required"}},
		{[]string{"rules", "set", "--partner", "p1", "--hub", hub}, []string{"--file"}},
		{[]string{"rules", "set", "--partner", "p1", "--file", "x.yaml", "--effective-from", "soon", "--hub", hub}, []string{"--effective-from", `"soon"`, "RFC 3339"}},
		{[]string{"campaign", "add", "--partner", "p1", "--id", "c1", "--from", "2026-12-01", "--to", "2026-12-02", "--hub", hub}, []string{"--multiplier or --bonus"}},
		{[]string{"campaign", "add", "--partner", "p1", "--id", "c1", "--from", "2026-12-01", "--to", "2026-12-02", "--multiplier", "double", "--hub", hub}, []string{"--multiplier", `"double"`}},
		{[]string{"campaign", "add", "--partner", "p1", "--id", "c1", "--from", "2026-12-02", "--to", "2026-12-01", "--bonus", "5", "--hub", hub}, []string{"--to", "after --from"}},
		{[]string{"campaign", "add", "--partner", "p1", "--id", "c1", "--from", "1 Dec", "--to", "2026-12-01", "--bonus", "5", "--hub", hub}, []string{"--from", `"1 Dec"`}},
		{[]string{"campaign", "add", "--partner", "p1", "--hub", hub}, []string{"--id", "--from", "--to"}},
		{[]string{"member", "show", "a b", "--hub", hub}, []string{`"a b"`}},
		{[]string{"member", "token", "a b", "--hub", hub}, []string{`"a b"`}},
		{[]string{"member", "token", "--hub", hub}, []string{"arg(s)"}},
		{[]string{"member", "token", "M1", "--ttl", "1h", "--hub", hub}, []string{"--ttl", "10s", "10m"}},
		{[]string{"member", "token", "M1", "--ttl", "5s", "--hub", hub}, []string{"--ttl"}},
		{[]string{"member", "token", "M1", "--ttl", "soon", "--hub", hub}, []string{"--ttl"}},
		{[]string{"settlement", "--to", "2026-12-01", "--hub", hub}, []string{"--from is required"}},
		{[]string{"settlement", "--from", "2026-13-01", "--to", "2026-12-01", "--hub", hub}, []string{"--from", `"2026-13-01"`, "YYYY-MM-DD"}},
		{[]string{"settlement", "--from", "2026-11-01", "--to", "2026-12-01", "--csv", "--json", "--hub", hub}, []string{"--csv", "--json"}},
		{[]string{"period", "close", "--from", "2026-11-01", "--hub", hub}, []string{"--to is required"}},
		{[]string{"expire", "--as-of", "yesterday", "--hub", hub}, []string{"--as-of", `"yesterday"`}},
		{[]string{"verify", "--data-dir", t.TempDir(), "--hub", hub}, []string{"--data-dir", "--hub"}},
		{[]string{"apitoken", "add", "--hub", hub}, []string{"--role is required", "operator, partner, read-only"}},
		{[]string{"apitoken", "add", "--role", "admin", "--hub", hub}, []string{"--role", `"admin"`}},
		{[]string{"apitoken", "add", "--role", "partner", "--hub", hub}, []string{"--partner is required"}},
		{[]string{"apitoken", "add", "--role", "read-only", "--partner", "p1", "--hub", hub}, []string{"--partner", "--role partner"}},
		{[]string{"apitoken", "add", "--role", "partner", "--partner", "p/1", "--hub", hub}, []string{"--partner", `"p/1"`}},
		{[]string{"apitoken", "revoke", "--hub", hub}, []string{"arg(s)"}},
		{[]string{"apitoken", "revoke", "a b", "--hub", hub}, []string{`"a b"`}},
		{[]string{"apitoken", "list", "--hub", hub, "--token", "TSA1.x.y"}, []string{"--token", "not one", "TSA1.<id>.<secret>"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
}

// Failures that are not usage mistakes: exit 1, one line saying what to do.
func TestAdminFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("coalition:\n  currency: EUR\npartners:\n  - id: p1\n    nmae: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	free := freeAddr(t)
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"partner", "list", "--hub", free}, []string{"cannot reach the hub", free, "--hub", "TILLSYNC_HUB"}},
		{[]string{"seed", filepath.Join(dir, "missing.yaml"), "--hub", free}, []string{"missing.yaml", "no such file"}},
		// A seed with a mistake is refused before the hub is asked.
		{[]string{"seed", bad, "--hub", free}, []string{bad, "partners[0]", "line 5", `unknown key "nmae"`, `did you mean "name"`}},
		{[]string{"serve", "--data-dir", filepath.Join(dir, "hub"), "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--seed", bad}, []string{"--seed", bad, `unknown key "nmae"`}},
		{[]string{"rules", "set", "--partner", "p1", "--file", bad, "--hub", free}, []string{"--file", bad, `unknown key "coalition"`}},
		{[]string{"verify", "--data-dir", filepath.Join(dir, "nothing")}, []string{"no ledger in", "--data-dir"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 1, tc.wants...)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "hub")); !os.IsNotExist(err) {
		t.Errorf("serve with a bad --seed created its data dir (stat: %v)", err)
	}
}

// verify --data-dir reads a stopped hub's ledger: OK, exit 0; a ledger whose
// stored balance was tampered with: each problem on stdout, exit 1 and one
// line on stderr.
func TestVerifyDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, hub.LedgerFile)
	st, err := ledger.OpenBolt(path, ledger.BoltOptions{})
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
	ledgertest.Apply(t, st, ledgertest.T0, tl.Batch(t, tl.Earn("e1", "m1", 40), tl.Earn("e2", "m2", 2)))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out := run(t, "verify", "--data-dir", dir).OK(t)
	for _, w := range []string{"entries checked  2", "chain head", "OK"} {
		if !strings.Contains(out, w) {
			t.Errorf("verify of a sound ledger does not mention %q:\n%s", w, out)
		}
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// m1's balance: member, 0x00, 0x02 in the members bucket (hub/ledger/members.go).
		return tx.Bucket([]byte("members")).Put([]byte("m1\x00\x02"), binary.BigEndian.AppendUint64(nil, 41))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "verify", "--data-dir", dir)
	if r.Code != 1 {
		t.Errorf("verify of a tampered ledger: exit %d, want 1", r.Code)
	}
	if !strings.Contains(r.Stdout, "PROBLEM: member/m1: stored 41, replayed 40") || strings.Contains(r.Stdout, "OK:") {
		t.Errorf("verify of a tampered ledger printed:\n%s", r.Stdout)
	}
	line := strings.TrimSpace(r.Stderr)
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, name+": ") || !strings.Contains(line, "NOT consistent") || !strings.Contains(line, "mismatch") {
		t.Errorf("stderr %q: want one line saying the ledger is not consistent", r.Stderr)
	}
}
