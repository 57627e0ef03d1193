//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub"
)

// A data dir whose ledger an earlier hub wrote (schema 2): verify refuses
// it with one line saying what to do, the first serve upgrades it and says
// so in its log, and verify then finds it sound.
func TestServeUpgradesSchema2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "hub", "ledger", "testdata", "schema2", "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hub.LedgerFile), b, 0o600); err != nil {
		t.Fatal(err)
	}

	run(t, "verify", "--data-dir", dir).OneLine(t, 1, "schema 2", "tillsync-hub serve")

	p, _ := startHub(t, dir)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("serve on a schema-2 ledger: exit %d; output:\n%s", code, p.Output())
	}
	for _, want := range []string{"upgrading the ledger file to schema 3", "ledger file upgraded to schema 3"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("serve's log lacks %q:\n%s", want, p.Output())
		}
	}
	out := run(t, "verify", "--data-dir", dir).OK(t)
	if !strings.Contains(out, "OK") {
		t.Errorf("verify after the upgrade:\n%s", out)
	}
}
