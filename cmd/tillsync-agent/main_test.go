package main

// These tests build the real tillsync-agent once and run it as a store's
// technician would, checking what they see: the exit status and the one line
// on stderr.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

const name = "tillsync-agent"

// bin is the binary TestMain builds.
var bin clitest.Binary

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, name, &bin)) }

func run(t *testing.T, args ...string) clitest.Result { t.Helper(); return bin.Run(t, args...) }

func start(t *testing.T, args ...string) *clitest.Proc { t.Helper(); return bin.Start(t, args...) }

var (
	freeAddr = clitest.FreeAddr
	busyAddr = clitest.BusyAddr
	inUse    = clitest.InUse
)

var ids = []string{"--store", "s1", "--terminal", "t1", "--partner", "p1"}

func runArgs(extra ...string) []string {
	return append(append([]string{"run"}, ids...), extra...)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"Usage:", "run", "ping", "status", "version"}},
		{[]string{"-h"}, []string{"Usage:", "run"}},
		{[]string{"run", "--help"}, []string{"Usage:", "tillsync-agent run", "--data-dir", "--hub", "--store", "--terminal", "--partner", "--pos-listen", "--scanner", "Examples:"}},
		{[]string{"ping", "--help"}, []string{"Usage:", "tillsync-agent ping", "--hub", "--timeout"}},
		{[]string{"status", "--help"}, []string{"Usage:", "tillsync-agent status", "--pos"}},
		{[]string{"version", "--help"}, []string{"Usage:", "tillsync-agent version"}},
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

func TestVersion(t *testing.T) {
	t.Parallel()
	if out := run(t, "version").OK(t); !strings.HasPrefix(out, name+" ") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("version printed %q, want one line %q", out, name+" VERSION")
	}
}

func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"run"}, []string{"--store"}},
		{[]string{"run", "--store", "s1"}, []string{"--terminal"}},
		{[]string{"run", "--store", "s1", "--terminal", "t1"}, []string{"--partner"}},
		{[]string{"run", "--store", "s/1", "--terminal", "t1", "--partner", "p1"}, []string{"--store", `"s/1"`}},
		{[]string{"run", "--store", "s1", "--terminal", "t+1", "--partner", "p1"}, []string{"--terminal", `"t+1"`}},
		{runArgs("--earn-rate", "0"), []string{"--earn-rate", "0"}},
		{runArgs("--hub", "http://x"), []string{"--hub", "http://x", "tcp://host:port"}},
		{runArgs("--hub", "tcp://hub.example.com"), []string{"--hub", "tcp://host:port"}},
		{runArgs("--bogus"), []string{"--bogus", "tillsync-agent run --help"}},
		{runArgs("--data-dir", dir, "--log-level", "loud"), []string{"--log-level", "loud"}},
		{runArgs("--data-dir", dir, "--pos-listen", "nonsense"), []string{"nonsense", "host:port", "--pos-listen"}},
		{runArgs("--scanner-baud", "fast"), []string{"--scanner-baud", "--help"}},
		{[]string{"ping", "--hub", "127.0.0.1:1883"}, []string{"--hub", "tcp://host:port"}},
		{[]string{"ping", "--timeout", "soon"}, []string{"--timeout", "--help"}},
		{[]string{"bogus"}, []string{`"bogus"`, "tillsync-agent --help"}},
		{[]string{"status", "extra"}, []string{`"extra"`, "tillsync-agent status --help"}},
		// A mistyped subcommand is named as such, not the flags after it.
		{[]string{"config", "chek", "--config", "agent.yaml"}, []string{`"chek"`, `"check"`, "tillsync-agent config --help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
}

func TestDataDirUnusable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "agent")} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			run(t, runArgs("--data-dir", dir, "--hub", "tcp://"+freeAddr(t), "--pos-listen", "127.0.0.1:0")...).
				OneLine(t, 1, "data dir "+dir, "--data-dir")
		})
	}
}

func TestPOSPortInUse(t *testing.T) {
	t.Parallel()
	addr := busyAddr(t)
	run(t, runArgs("--data-dir", t.TempDir(), "--hub", "tcp://"+freeAddr(t), "--pos-listen", addr)...).
		OneLine(t, 1, addr, inUse(), "--pos-listen")
}

func TestPingHubUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	begin := time.Now()
	run(t, "ping", "--hub", "tcp://"+addr, "--timeout", "1s").OneLine(t, 1, addr, "unreachable", "--hub")
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("ping --timeout 1s took %s", d)
	}
}

func TestStatusNoAgent(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	run(t, "status", "--pos", addr).OneLine(t, 1, addr, "--pos")
}
