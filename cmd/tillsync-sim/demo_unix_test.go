//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The demo needs the other two binaries and says which one is missing and
// how to get it, before it starts anything.
func TestDemoMissingBinary(t *testing.T) {
	t.Parallel()
	onlyHub := t.TempDir()
	if err := os.WriteFile(filepath.Join(onlyHub, "tillsync-hub"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		missing string
		in      string
	}{
		{"nonexistent", []string{"demo", "--bin", "/nonexistent"}, "tillsync-hub", "/nonexistent"},
		{"agent missing", []string{"demo", "--bin", onlyHub}, "tillsync-agent", onlyHub},
		// Without --bin the demo looks beside itself, where TestMain left it
		// alone. (Only the dir's own name: the OS may spell its parents
		// differently, e.g. /private/var on macOS.)
		{"default", []string{"demo"}, "tillsync-hub", filepath.Base(filepath.Dir(bin.Path))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 1, tc.missing+" not found in ", tc.in, "make build", "--bin")
		})
	}
}
