package hub_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub"
)

// TestLoadBrokerPassword: made once, owner-only, the same ever after; a
// file others can read, or an empty one, is refused without its content.
func TestLoadBrokerPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), hub.BrokerPasswordFile)
	p1, created, err := hub.LoadBrokerPassword(path)
	if err != nil || !created || len(p1) < 40 {
		t.Fatalf("first load: %q, %v, %v", p1, created, err)
	}
	p2, created, err := hub.LoadBrokerPassword(path)
	if err != nil || created || p2 != p1 {
		t.Fatalf("second load: %v, %v (same password: %v)", created, err, p2 == p1)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := hub.LoadBrokerPassword(path); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), p1) {
		t.Fatalf("a password others can read: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.ReadPasswordFile(empty); err == nil {
		t.Fatal("an empty password file accepted")
	}
}
