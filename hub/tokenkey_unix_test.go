//go:build unix

package hub_test

import (
	"github.com/tillsync/tillsync/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub"
)

func TestMemberTokenKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, hub.MemberTokenKeyFile)
	if _, _, err := hub.LoadMemberTokenKey(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// Readable by others: the hub starts, and warns.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	start(t, hub.Options{DataDir: dir, Logger: testLogger(&logs)})
	if !strings.Contains(logs.String(), "member token key can be read by other users") {
		t.Errorf("no warning about a key readable by others:\n%s", logs.String())
	}
}

func TestOperatorTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, hub.OperatorTokenFile)
	r := start(t, hub.Options{DataDir: dir})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	stopRunning(r)
	// Readable by others: the hub starts, and warns.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	start(t, hub.Options{DataDir: dir, Logger: testLogger(&logs)})
	if !strings.Contains(logs.String(), "operator API token can be read by other users") {
		t.Errorf("no warning about a token file readable by others:\n%s", logs.String())
	}
}
