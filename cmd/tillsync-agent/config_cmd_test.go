package main

// The config file as a technician meets it through the real binary:
// config check / show / example, run --config, and install refusing a
// broken file. Nothing here installs a service.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/config"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// goodConfig is a valid file for an agent with its data in dataDir, its
// POS API at pos and no hub.
func goodConfig(dataDir, pos string) string {
	return fmt.Sprintf(`data_dir: %s
hub: tcp://127.0.0.1:1
store: gc-berlin-01
terminal: till-1
partner: greencross
pos:
  listen: %s
log:
  file: true
`, dataDir, pos)
}

// stderrLines checks a failed run: exit code, nothing on stdout, and
// exactly these lines on stderr.
func stderrLines(t *testing.T, args []string, code int, want ...string) {
	t.Helper()
	r := run(t, args...)
	if r.Code != code {
		t.Errorf("%s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), r.Code, code, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("%s: printed on stdout:\n%s", strings.Join(args, " "), r.Stdout)
	}
	if got := strings.TrimSuffix(r.Stderr, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("%s: stderr:\n%s\nwant:\n%s", strings.Join(args, " "), got, strings.Join(want, "\n"))
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeConfig(t, goodConfig(dir, "127.0.0.1:8081"))
	out := run(t, "config", "check", "--config", good).OK(t)
	for _, w := range []string{good + ": ok", "store gc-berlin-01, terminal till-1, partner greencross", "data dir  " + dir, filepath.Join(dir, "logs", "agent.log")} {
		if !strings.Contains(out, w) {
			t.Errorf("config check of a good file does not say %q:\n%s", w, out)
		}
	}

	bad := writeConfig(t, `hub: http://hub
store: gc-berlin-01
terminal: till-1
partner: greencross
scanner:
  port: COM3
  usb: 0c2e:0b61
  prot: x
pos:
  listen: 0.0.0.0:8081
`)
	stderrLines(t, []string{"config", "check", "--config", bad, "--earn-rate", "0"}, 1,
		"line 8: scanner.prot: unknown key; did you mean scanner.port? (scanner takes port, usb, baud, check_digit)",
		`line 1: hub "http://hub": want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883`,
		"--earn-rate 0: want 1 to 10000 points per 100 minor units",
		`warning: line 10: pos.listen "0.0.0.0:8081": not a loopback address and no pos.secret_file: whoever reaches the POS API can earn and burn points; keep it on 127.0.0.1, or set a shared secret and keep the network trusted`,
		"scanner: both port (line 6) and usb (line 7) set; choose one",
		"tillsync-agent: "+bad+": 4 problems; fix them and check again",
	)

	// Flags alone, as run takes them.
	stderrLines(t, []string{"config", "check", "--store", "s1", "--data-dir", dir}, 1,
		"--terminal: missing; give this till's id within the store (e.g. till-1); or enroll the till (tillsync-agent enroll), which names it",
		"--partner: missing; give the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
		"tillsync-agent: the configuration (no file): 2 problems; fix them and check again",
	)

	// The data dir is checked as well, once the values are right.
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stderrLines(t, []string{"config", "check", "--config", good, "--data-dir", file}, 1,
		`--data-dir "`+file+`": not a directory; check as the user the agent runs as (a service: root or administrator), or choose a writable directory with --data-dir`,
		"tillsync-agent: "+good+": 1 problem; fix it and check again",
	)

	missing := filepath.Join(dir, "nope.yaml")
	run(t, "config", "check", "--config", missing).OneLine(t, 1, missing, "no such file", "config example")
}

func TestConfigCheckNoFile(t *testing.T) {
	if _, err := os.Stat(config.DefaultPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Skipf("this machine has %s", config.DefaultPath())
	}
	if os.Getenv(config.EnvConfig) != "" {
		t.Skipf("%s is set", config.EnvConfig)
	}
	t.Parallel()
	run(t, "config", "check").OneLine(t, 1, "no config file at "+config.DefaultPath(), "--config", "config example --output")
}

func TestConfigExample(t *testing.T) {
	t.Parallel()
	if out := run(t, "config", "example").OK(t); out != string(config.Example) {
		t.Errorf("config example printed something else than the example:\n%s", out)
	}
	p := filepath.Join(t.TempDir(), "etc", "agent.yaml")
	out := run(t, "config", "example", "--output", p).OK(t)
	if !strings.Contains(out, "wrote "+p) {
		t.Errorf("config example --output said %q", out)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != string(config.Example) {
		t.Fatalf("written example: %v", err)
	}
	run(t, "config", "example", "--output", p).OneLine(t, 1, p, "exists", "--force")
	run(t, "config", "example", "--output", p, "--force").OK(t)
}

// show: the file, then the environment, then the flags, each value saying
// where it came from.
func TestConfigShow(t *testing.T) {
	t.Setenv("TILLSYNC_AGENT_OFFLINE_STORE_CAP", "900")
	t.Setenv("TILLSYNC_AGENT_HUB", "tcp://env-hub:1883")
	p := writeConfig(t, goodConfig(t.TempDir(), "127.0.0.1:8081"))
	out := run(t, "config", "show", "--config", p, "--store", "s-flag", "--hub", "tcp://flag-hub:1883").OK(t)
	for _, w := range []string{
		"store: s-flag # --store\n",
		"hub: tcp://flag-hub:1883 # --hub\n",
		"store_cap: 900 # TILLSYNC_AGENT_OFFLINE_STORE_CAP\n",
		"terminal: till-1 # line 4\n",
		"earn_rate: 1\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("config show lacks %q:\n%s", w, out)
		}
	}
	// Without the flag, the variable wins over the file.
	if out := run(t, "config", "show", "--config", p).OK(t); !strings.Contains(out, "hub: tcp://env-hub:1883 # TILLSYNC_AGENT_HUB\n") {
		t.Errorf("config show without --hub:\n%s", out)
	}
	// TILLSYNC_AGENT_CONFIG names the file when --config does not.
	t.Setenv(config.EnvConfig, p)
	if out := run(t, "config", "show").OK(t); !strings.Contains(out, "partner: greencross # line 5\n") {
		t.Errorf("config show with %s:\n%s", config.EnvConfig, out)
	}
}

// run refuses a broken config with its first problem, as a usage mistake.
func TestRunConfigProblems(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, "store: gc-berlin-01\nterminal: till-1\npartner: greencross\nscanner:\n  baud: fast\noffline:\n  member_allowance: 5\n")
	run(t, "run", "--config", p).OneLine(t, 2, `line 5: scanner.baud "fast": want a whole number`, "(and 1 more", "config check")
	missing := filepath.Join(t.TempDir(), "agent.yaml")
	run(t, "run", "--config", missing).OneLine(t, 1, missing, "no such file")
}

// install checks the config file before anything else and refuses a
// broken one, listing every problem.
func TestInstallRefusesBrokenConfig(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, "data_dir: relative/dir\nhub: tls://hub:8883\nstore: gc-berlin-01\nterminal: till-1\n")
	stderrLines(t, []string{"install", "--config", p}, 1,
		"partner: missing; set partner: to the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
		`line 1: data_dir "relative/dir": a service needs an absolute path (it does not start in this directory)`,
		"tillsync-agent: config "+p+": 2 problems; not installed (fix, then: tillsync-agent config check --config "+p+")",
	)
	missing := filepath.Join(t.TempDir(), "agent.yaml")
	run(t, "install", "--config", missing).OneLine(t, 1, missing, "no such file", "config example")
}

// start, stop, restart and uninstall of a service that is not installed:
// one line and a non-zero exit (or, without the rights, the line that says
// so). Skipped where the service is installed: the test never touches one.
func TestServiceCommandsNotInstalled(t *testing.T) {
	s, err := controlService()
	if err != nil {
		t.Skip(err)
	}
	if st, err := serviceState(s); err != nil || st != stateNotInstalled {
		t.Skipf("service %s on this machine: %q %v", serviceName, st, err)
	}
	t.Parallel()
	for _, cmd := range []string{"start", "stop", "restart", "uninstall"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			if isAdmin() {
				run(t, cmd).OneLine(t, 1, "service tillsync-agent is not installed", "tillsync-agent install --config")
			} else {
				run(t, cmd).OneLine(t, 1, cmd+" needs administrator rights", adminHint)
			}
		})
	}
}

func TestServiceHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"install", "uninstall", "start", "stop", "restart", "status", "config"}},
		{[]string{"install", "--help"}, []string{"tillsync-agent install", "--config", "--user", "Restart=always", "KeepAlive", "Examples:"}},
		{[]string{"uninstall", "--help"}, []string{"tillsync-agent uninstall", "left in place", "Examples:"}},
		{[]string{"start", "--help"}, []string{"tillsync-agent start", "Examples:"}},
		{[]string{"stop", "--help"}, []string{"tillsync-agent stop", "2 seconds", "Examples:"}},
		{[]string{"restart", "--help"}, []string{"tillsync-agent restart", "Examples:"}},
		{[]string{"status", "--help"}, []string{"running, stopped or not installed", "--pos", "--config", "Examples:"}},
		{[]string{"config", "--help"}, []string{"check", "show", "example", "TILLSYNC_AGENT_SCANNER_PORT", "Examples:"}},
		{[]string{"config", "check", "--help"}, []string{"--config", "--store", "Exit status 0", "Examples:"}},
		{[]string{"config", "show", "--help"}, []string{"--config", "# --store", "Examples:"}},
		{[]string{"config", "example", "--help"}, []string{"--output", "--force", "Examples:"}},
		{[]string{"run", "--help"}, []string{"--config", "--scanner-usb", "--scanner-check-digit", "TILLSYNC_AGENT_", "Examples:"}},
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
	run(t, "config").OneLine(t, 2, "check, show or example")
	run(t, "config", "bogus").OneLine(t, 2, `"bogus"`, "tillsync-agent config --help")
}
