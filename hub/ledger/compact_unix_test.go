//go:build unix

package ledger_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
)

// The compacted ledger is owner-only, and the ledger's owner's: root
// compacting a hub's ledger leaves a file the hub's user can open.
func TestCompactOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	s.Close()
	const nobody = 65534
	asRoot := os.Geteuid() == 0
	if asRoot {
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ledger.Compact(path, ledger.CompactOptions{}); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("compacted ledger has mode %v, want 0600", perm)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if asRoot && (st.Uid != nobody || st.Gid != nobody) {
		t.Errorf("compacted ledger is owned by %d:%d, want the ledger's %d:%d", st.Uid, st.Gid, nobody, nobody)
	}
	if !asRoot && int(st.Uid) != os.Geteuid() {
		t.Errorf("compacted ledger is owned by %d, want %d", st.Uid, os.Geteuid())
	}
}

// A ledger.db that is a symbolic link stays one; the file it names is
// compacted where it is.
func TestCompactSymlink(t *testing.T) {
	real := filepath.Join(t.TempDir(), "elsewhere.db")
	s := openBolt(t, real)
	workload(t, s)
	s.Close()
	link := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Compact(link, ledger.CompactOptions{KeepOriginal: true})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if rep.Path != real || rep.Kept != real+ledger.BeforeCompactSuffix {
		t.Errorf("report: path %s, kept %s; want %s and its %s", rep.Path, rep.Kept, real, ledger.BeforeCompactSuffix)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("ledger.db is no longer a link (%v)", err)
	}
	noFile(t, link+ledger.CompactSuffix)
	noFile(t, link+ledger.BeforeCompactSuffix)
	ledgertest.CheckVerify(t, openBolt(t, link))
}
