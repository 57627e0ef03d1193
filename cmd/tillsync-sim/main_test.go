package main

// These tests build the real tillsync-sim once and run it as a developer
// would, checking what they see: the exit status and the one line on stderr.

import (
	"os"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

const name = "tillsync-sim"

// bin is the binary TestMain builds.
var bin clitest.Binary

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, name, &bin)) }

func run(t *testing.T, args ...string) clitest.Result { t.Helper(); return bin.Run(t, args...) }

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"Usage:", "demo"}},
		{[]string{"demo", "--help"}, []string{"Usage:", "tillsync-sim demo", "--bin", "--data-dir", "--outage", "--verbose"}},
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

func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"demo", "--bogus"}, []string{"--bogus", "tillsync-sim demo --help"}},
		{[]string{"demo", "--outage", "long"}, []string{"--outage", "--help"}},
		{[]string{"bogus"}, []string{`"bogus"`, "tillsync-sim --help"}},
		{[]string{"demo", "extra"}, []string{`"extra"`, "tillsync-sim demo --help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
}
