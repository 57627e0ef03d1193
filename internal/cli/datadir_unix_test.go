//go:build unix

package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/internal/cli"
)

func TestDataDirOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := cli.DataDir(dir, "--data-dir"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data dir mode %v, want owner-only", perm)
	}
}

func TestDataDirUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which may write into any directory whatever its mode")
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	for _, tc := range []struct {
		dir   string
		wants []string
	}{
		{ro, []string{"data dir " + ro, "not writable", "permission denied", "--data-dir"}},
		{filepath.Join(ro, "sub"), []string{"data dir " + filepath.Join(ro, "sub"), "cannot be created", "permission denied", "--data-dir"}},
	} {
		err := cli.DataDir(tc.dir, "--data-dir")
		if err == nil {
			t.Errorf("DataDir(%s) succeeded in a read-only parent", tc.dir)
			continue
		}
		for _, w := range tc.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q does not mention %q", err, w)
			}
		}
	}
}
