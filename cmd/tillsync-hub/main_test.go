package main

// These tests build the real tillsync-hub once and run it as an operator
// would, checking what they see: the exit status and the one line on stderr.

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

const name = "tillsync-hub"

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

// contains checks that out mentions every want.
func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not mention %q:\n%s", what, w, out)
		}
	}
}

func answers(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"Usage:", "serve", "version"}},
		{[]string{"-h"}, []string{"Usage:", "serve"}},
		{[]string{"help"}, []string{"Usage:", "serve"}},
		{[]string{"serve", "--help"}, []string{"Usage:", "tillsync-hub serve", "--data-dir", "--mqtt-listen", "--broker", "--http-listen", "--log-level", "Examples:"}},
		{[]string{"help", "serve"}, []string{"--data-dir"}},
		{[]string{"version", "--help"}, []string{"Usage:", "tillsync-hub version"}},
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
	if out := run(t, "--version").OK(t); !strings.HasPrefix(out, name+" version ") {
		t.Errorf("--version printed %q", out)
	}
}

func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"serve", "--bogus"}, []string{"--bogus", "tillsync-hub serve --help"}},
		{[]string{"--bogus"}, []string{"--bogus", "--help"}},
		{[]string{"serve", "--mqtt-listen"}, []string{"--mqtt-listen", "--help"}},
		{[]string{"bogus"}, []string{`"bogus"`, "tillsync-hub --help"}},
		{[]string{"serv"}, []string{`"serv"`, "serve", "--help"}},
		{[]string{"serve", "extra"}, []string{`"extra"`, "tillsync-hub serve --help"}},
		{[]string{"version", "extra"}, []string{`"extra"`, "--help"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "nonsense"}, []string{"--broker", "nonsense", "tcp://host:port"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "http://127.0.0.1:1883"}, []string{"--broker", "tcp://host:port"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "tcp://127.0.0.1:1", "--mqtt-listen", "127.0.0.1:0"}, []string{"--broker", "--mqtt-listen"}},
		{[]string{"serve", "--data-dir", dir, "--log-level", "loud"}, []string{"--log-level", "loud", "debug, info, warn or error"}},
		{[]string{"serve", "--data-dir", dir, "--log-format", "xml"}, []string{"--log-format", "xml", "text or json"}},
		{[]string{"serve", "--data-dir", dir, "--mqtt-listen", "nonsense"}, []string{"nonsense", "host:port", "--mqtt-listen"}},
		{[]string{"serve", "--data-dir", dir, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "nonsense"}, []string{"nonsense", "host:port", "--http-listen"}},
		{[]string{"serve", "--data-dir", dir, "--broker-username", "tillsync-hub", "--broker-password-file", "x"}, []string{"--broker-username", "--broker"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "tcp://127.0.0.1:1", "--broker-username", "tillsync-hub"}, []string{"--broker-username and --broker-password-file"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "tcp://127.0.0.1:1", "--broker-ca", "ca.pem"}, []string{"--broker-ca", "tls://"}},
		{[]string{"serve", "--data-dir", dir, "--broker", "tls://hub:secret@127.0.0.1:1"}, []string{"--broker", "--broker-password-file"}},
		{[]string{"broker-config"}, []string{"mosquitto"}},
		{[]string{"broker-config", "mosquitto", "--data-dir", dir}, []string{"--out"}},
		{[]string{"broker-config", "mosquitto", "--data-dir", dir, "--out", dir, "--plain-listen", "0.0.0.0:1883"}, []string{"--plain-listen", "loopback"}},
		{[]string{"broker-config", "mosquitto", "--data-dir", dir, "--out", dir, "--listen", ""}, []string{"--listen", "--plain-listen"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
}

// A usage mistake is reported before anything touches the disk.
func TestUsageMistakeLeavesDataDirAlone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--broker", "nonsense"}, []string{"--broker"}},
		{[]string{"--mqtt-listen", "nonsense"}, []string{"--mqtt-listen", "nonsense", "host:port"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--mqtt-plain-listen", "nonsense"}, []string{"--mqtt-plain-listen", "nonsense"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "nonsense"}, []string{"--http-listen", "nonsense"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--https-listen", "nonsense"}, []string{"--https-listen", "nonsense"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--metrics-max-stores", "-1"}, []string{"--metrics-max-stores -1", "1 or more"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--metrics-max-stores", "0"}, []string{"--metrics-max-stores 0", "1 or more"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--memory-limit", "1G"}, []string{`--memory-limit "1G"`, "900MiB"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--memory-limit", "10MiB"}, []string{"--memory-limit 10MiB", "at least 64MiB"}},
		{[]string{"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--memory-limit", "99999999999TiB"}, []string{"--memory-limit", "too large"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "hub")
			run(t, append([]string{"serve", "--data-dir", dir}, tc.args...)...).OneLine(t, 2, tc.wants...)
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data dir %s was created by a command line that was refused (stat: %v)", dir, err)
			}
		})
	}
}

// A bad alert rules file stops serve with one line naming the file and
// the line in it, before anything touches the disk.
func TestAlertsFileRefused(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(file, []byte("rules:\n  - name: off\n    condition: store_offline\n    threshold: 10 minutes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hub")
	run(t, "serve", "--data-dir", dir, "--alerts", file).OneLine(t, 1, "--alerts "+file, "line 4", `"10 minutes" is not a duration`)
	run(t, "serve", "--data-dir", dir, "--alerts", file+".missing").OneLine(t, 1, "--alerts "+file+".missing")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir %s was created by a refused start (stat: %v)", dir, err)
	}
}

func TestDataDirUnusable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "hub")} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			run(t, "serve", "--data-dir", dir, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0").
				OneLine(t, 1, "data dir "+dir, "--data-dir")
		})
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	t.Run("mqtt", func(t *testing.T) {
		t.Parallel()
		addr := busyAddr(t)
		line := run(t, "serve", "--data-dir", t.TempDir(), "--mqtt-listen", addr, "--http-listen", "127.0.0.1:0").
			OneLine(t, 1, addr, inUse(), "--mqtt-listen")
		if !strings.Contains(line, "--broker") {
			t.Errorf("%q does not offer --broker as the other way out", line)
		}
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		addr := busyAddr(t)
		run(t, "serve", "--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--http-listen", addr).
			OneLine(t, 1, addr, inUse(), "--http-listen")
	})
}

// TestBrokerPasswordFile: serve refuses a missing password file, or one
// other users can read, in one line that never shows the password.
func TestBrokerPasswordFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "none")
	run(t, "serve", "--data-dir", dir, "--broker", "tcp://127.0.0.1:1", "--broker-username", "tillsync-hub", "--broker-password-file", missing).
		OneLine(t, 1, missing, "broker-config")
	if runtime.GOOS == "windows" {
		return
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("hunter2-hunter2-hunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := run(t, "serve", "--data-dir", dir, "--broker", "tcp://127.0.0.1:1", "--broker-username", "tillsync-hub", "--broker-password-file", open).
		OneLine(t, 1, open, "chmod 600")
	if strings.Contains(line, "hunter2") {
		t.Errorf("the refusal shows the password: %s", line)
	}
}

func TestBrokerUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	begin := time.Now()
	run(t, "serve", "--data-dir", t.TempDir(), "--broker", "tcp://"+addr, "--http-listen", "127.0.0.1:0").
		OneLine(t, 1, addr, "--broker")
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %s to give up on an unreachable broker, want under 10s", d)
	}
}

// --memory-limit reads GOMEMLIMIT's units.
func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "900MiB": 900 << 20, "2GiB": 2 << 30, "65536KiB": 64 << 20, "67108864B": 64 << 20, "1TiB": 1 << 40} {
		if got, err := parseMemoryLimit(in); err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1G", "900 MiB", "-1MiB", "0", "63MiB", "1.5GiB", "99999999999TiB"} {
		if _, err := parseMemoryLimit(in); err == nil {
			t.Errorf("parseMemoryLimit(%q) took it", in)
		}
	}
}
