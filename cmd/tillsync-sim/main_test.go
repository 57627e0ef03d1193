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
		{[]string{"chaos", "--help"}, []string{"Usage:", "tillsync-sim chaos", "--seed", "--seeds", "--seed-base", "--broker", "--duration", "--tills", "kill -9", "replays"}},
		{[]string{"crashloop", "--help"}, []string{"Usage:", "tillsync-sim crashloop", "--kills", "--max-up", "bbolt's consistency check"}},
		{[]string{"bench", "--help"}, []string{"Usage:", "tillsync-sim bench", "--run", "confirm", "ingest", "drain", "roundtrip", "connections", "aging", "--profile", "baseline"}},
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
		{[]string{"chaos", "--seeds", "0"}, []string{"--seeds 0", "1 or more"}},
		{[]string{"chaos", "--seed", "1", "--seeds", "2"}, []string{"--seed runs one seed", "--seeds"}},
		{[]string{"chaos", "--broker", "emqx"}, []string{`--broker "emqx"`, "embedded", "mosquitto"}},
		{[]string{"chaos", "--duration", "2s"}, []string{"--duration 2s", "5s or more"}},
		{[]string{"chaos", "--tills", "0"}, []string{"--tills 0", "1 to 64"}},
		{[]string{"chaos", "--workers", "17"}, []string{"--workers 17", "1 to 16"}},
		{[]string{"chaos", "--members", "0"}, []string{"--members 0"}},
		{[]string{"chaos", "--seed", "x"}, []string{"--seed", "--help"}},
		{[]string{"crashloop", "--kills", "0"}, []string{"--kills 0", "1 or more"}},
		{[]string{"crashloop", "--max-up", "1ms"}, []string{"--max-up 1ms", "10ms or more"}},
		{[]string{"crashloop", "--workers", "0"}, []string{"--workers 0"}},
		{[]string{"bench", "--run", "ingest,warp"}, []string{`no scenario "warp"`, "confirm, ingest"}},
		{[]string{"bench", "--terminals", "0"}, []string{"--terminals 0", "1 or more"}},
		{[]string{"bench", "--aging-txs", "-1"}, []string{"--aging-txs -1", "1 or more"}},
		{[]string{"bench", "--members", "0"}, []string{"--members 0", "1 or more"}},
		{[]string{"bench", "--hub-flag", "memory-limit=2GiB"}, []string{`--hub-flag "memory-limit=2GiB"`, "--hub-flag=--memory-limit=2GiB"}},
		{[]string{"bench", "--duration", "10ms"}, []string{"--duration 10ms", "1s or more"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
}

// The harnesses need the other two binaries and say which one is missing
// and how to get it, before they start anything or make any directory.
func TestChaosMissingBinary(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"chaos", "--bin", "/nonexistent", "--seed", "1"},
		{"crashloop", "--bin", "/nonexistent", "--kills", "1"},
		{"bench", "--bin", "/nonexistent", "--run", "ingest"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			// The temp dir is shared: other tests' dirs come and go
			// meanwhile, so look for a new one of ours by name.
			existed := map[string]bool{}
			before, _ := os.ReadDir(os.TempDir())
			for _, e := range before {
				existed[e.Name()] = true
			}
			run(t, args...).OneLine(t, 1, "tillsync-hub not found in /nonexistent", "make build", "--bin")
			after, _ := os.ReadDir(os.TempDir())
			for _, e := range after {
				if existed[e.Name()] {
					continue
				}
				if strings.HasPrefix(e.Name(), "tillsync-chaos-") || strings.HasPrefix(e.Name(), "tillsync-crashloop-") || strings.HasPrefix(e.Name(), "tillsync-bench-") {
					t.Errorf("a refused run left %s behind", e.Name())
				}
			}
		})
	}
}
