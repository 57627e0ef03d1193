//go:build unix

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// cliCase is one command line with a mistake in it.
type cliCase struct {
	args []string
	exit int
	// code is the hub's code the line relays, when it relays one.
	code string
	// wants are what the line must name: the flag, key or value at fault.
	wants []string
	// input, when set, is shown in the table instead of the command line.
	input string
	// problems is, for config check, the problem lines before the last.
	problems int
}

// cliEnv is the environment the commands run in: the test's, without any
// TILLSYNC_ variable (a developer's would change the answers), with HOME
// in the tour's files so that nothing escapes the snapshot.
func (tr *tour) cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TILLSYNC_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+filepath.Join(tr.root, "home"))
}

// runCLI runs a command line in the tour's files and checks it failed as
// c says: the exit status, nothing on stdout, and on stderr one line
// "NAME: …" naming what is wrong (config check: a line per problem, then
// that line).
func (tr *tour) runCLI(bin clitest.Binary, c cliCase) {
	t := tr.t
	t.Helper()
	cmdline := bin.Name + " " + shellJoin(c.args)
	var stdout, stderr bytes.Buffer
	code := -1
	tr.unchanged(cmdline, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin.Path, c.args...)
		cmd.Dir = filepath.Join(tr.root, "cwd")
		cmd.Env = tr.cliEnv()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			t.Fatalf("%s: still running after 20s (it should have refused its input); stderr:\n%s", cmdline, stderr.String())
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("%s: %v", cmdline, err)
		default:
			code = 0
		}
	})
	if code != c.exit {
		t.Errorf("%s: exit %d, want %d; stderr:\n%s", cmdline, code, c.exit, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("%s: printed on stdout:\n%s", cmdline, stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) != c.problems+1 {
		t.Errorf("%s: %d lines on stderr, want %d:\n%s", cmdline, len(lines), c.problems+1, stderr.String())
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, bin.Name+": ") {
		t.Errorf("%s: stderr %q does not start with %q", cmdline, last, bin.Name+": ")
	}
	for _, l := range lines {
		if m := cliInternals.FindString(l); m != "" || strings.TrimSpace(l) == "" {
			t.Errorf("%s: stderr line %q is empty or shows Go's %q", cmdline, l, m)
		}
	}
	if c.code != "" && !strings.Contains(last, c.code+": ") {
		t.Errorf("%s: %q does not relay the hub's code %s", cmdline, last, c.code)
	}
	for _, w := range c.wants {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("%s: stderr %q does not name %q", cmdline, stderr.String(), w)
		}
	}
	input := c.input
	if input == "" {
		input = "`" + cmdline + "`"
	}
	msg := strings.Join(lines, " ⏎ ")
	tr.record(tourRow{Surface: bin.Name, Input: input, Answer: "exit " + strconv.Itoa(code), Code: c.code, Message: msg})
}

// cliInternals matches what a command must never print: a panic, a
// stack, Go's parser errors and type names.
var cliInternals = regexp.MustCompile(`panic:|goroutine \d|\.go:\d|strconv\.|json: |reflect\.|\bu?int(8|16|32|64)\b|[\x00-\x09\x0b-\x1f\x7f]`)

var plainArg = regexp.MustCompile(`^[A-Za-z0-9._/:=@%+,^-]+$`)

// shellJoin writes args as a person would type them in a POSIX shell.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case plainArg.MatchString(a):
			out[i] = a
		case strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			q := strconv.Quote(a)
			out[i] = "$'" + strings.ReplaceAll(q[1:len(q)-1], `'`, `\'`) + "'"
		default:
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// file writes content to name in the tour's files and returns its path.
func (tr *tour) file(name, content string) string {
	tr.t.Helper()
	p := filepath.Join(tr.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tr.t.Fatal(err)
	}
	return p
}

// agentCLI runs tillsync-agent with mistakes in its command line and its
// config file: each exits 2 (a usage mistake) or 1 with one line naming
// the flag, key or value, and no data dir, file or enrollment is made or
// changed.
func (tr *tour) agentCLI() {
	bin := agentCommand(tr.t)
	data := filepath.Join(tr.root, "agent-data") // never made
	ids := []string{"--store", "s1", "--terminal", "t1", "--partner", "p1"}
	run := func(extra ...string) []string {
		return append(append([]string{"run", "--data-dir", data, "--hub", "tcp://127.0.0.1:1"}, ids...), extra...)
	}
	// A config file with a mistake: the rest of it is good, and names
	// data_dir, which must not be made.
	config := func(name, mistake string) string {
		base := "data_dir: " + data + "\nhub: tcp://127.0.0.1:1\nstore: s1\nterminal: t1\npartner: p1\npos:\n  listen: 127.0.0.1:0\n"
		return tr.file("agent-config/"+name, base+mistake)
	}
	unknownKey := config("unknown-key.yaml", "scanner:\n  prot: /dev/ttyACM0\n")
	badBaud := config("bad-baud.yaml", "scanner:\n  baud: fast\n")
	rate := config("earn-rate.yaml", "earn_rate: 0\n")
	timeout := config("burn-timeout.yaml", "burn_timeout: soon\n")
	allowance := config("allowance.yaml", "offline:\n  member_allowance: -5\n")
	level := config("log-level.yaml", "log:\n  level: loud\n")
	syntax := tr.file("agent-config/syntax.yaml", "store: [s1\nterminal: t1\n")
	badStore := tr.file("agent-config/bad-store.yaml", "data_dir: "+data+"\nhub: tcp://127.0.0.1:1\nstore: s/1\nterminal: t1\npartner: p1\n")
	badHub := tr.file("agent-config/bad-hub.yaml", "data_dir: "+data+"\nhub: http://hub.example.com\nstore: s1\nterminal: t1\npartner: p1\n")
	noSecret := config("no-secret.yaml", "")
	noSecret = tr.file("agent-config/no-secret.yaml", strings.Replace(mustRead(tr.t, noSecret), "  listen: 127.0.0.1:0\n", "  listen: 127.0.0.1:0\n  secret_file: "+filepath.Join(tr.root, "no-such-secret")+"\n", 1))
	example := tr.file("agent-config/agent.yaml", "# already here\n")
	missing := filepath.Join(tr.root, "agent-config", "missing.yaml")
	enrollDir := filepath.Join(tr.root, "enroll-data")
	if err := os.MkdirAll(enrollDir, 0o700); err != nil {
		tr.t.Fatal(err)
	}
	hubHTTP := "http://" + tr.e.httpAddr
	unknownEnroll := tr.unknownEnroll

	for _, c := range []cliCase{
		// run's flags.
		{args: []string{"run", "--data-dir", data}, exit: 2, wants: []string{"--store"}},
		{args: run("--store", "s/1"), exit: 2, wants: []string{"--store", `"s/1"`}},
		{args: run("--terminal", "t\x01"), exit: 2, wants: []string{"--terminal"}},
		{args: run("--partner", strings.Repeat("p", 65)), exit: 2, wants: []string{"--partner"}, input: "`tillsync-agent run … --partner <65 characters>`"},
		{args: run("--earn-rate", "0"), exit: 2, wants: []string{"--earn-rate", "0"}},
		{args: run("--earn-rate", "-5"), exit: 2, wants: []string{"--earn-rate", "-5"}},
		{args: run("--earn-rate", "lots"), exit: 2, wants: []string{"--earn-rate"}},
		{args: run("--earn-rate", "99999999999999999999"), exit: 2, wants: []string{"--earn-rate"}},
		{args: run("--hub", "http://hub.example.com:1883"), exit: 2, wants: []string{"--hub", "tcp://host:port"}},
		{args: run("--hub", "tcp://hub.example.com"), exit: 2, wants: []string{"--hub"}},
		{args: run("--pos-listen", "nonsense"), exit: 2, wants: []string{"--pos-listen", "nonsense"}},
		{args: run("--log-level", "loud"), exit: 2, wants: []string{"--log-level", "loud"}},
		{args: run("--log-format", "xml"), exit: 2, wants: []string{"--log-format", "xml"}},
		{args: run("--scanner-baud", "fast"), exit: 2, wants: []string{"--scanner-baud"}},
		{args: run("--scanner-baud", "-9600"), exit: 2, wants: []string{"--scanner-baud"}},
		{args: run("--scanner-check-digit", "crc"), exit: 2, wants: []string{"--scanner-check-digit", "crc"}},
		{args: run("--scanner-usb", "keyboard"), exit: 2, wants: []string{"--scanner-usb", "keyboard"}},
		{args: run("--scanner", "/dev/ttyACM0", "--scanner-usb", "0c2e:0b61"), exit: 2, wants: []string{"--scanner", "--scanner-usb"}},
		{args: run("--burn-timeout", "soon"), exit: 2, wants: []string{"--burn-timeout"}},
		{args: run("--burn-timeout", "-3s"), exit: 2, wants: []string{"--burn-timeout"}},
		{args: run("--pos-secret-file", filepath.Join(tr.root, "no-such-secret")), exit: 2, wants: []string{"--pos-secret-file", "no-such-secret"}},
		{args: run("--bogus"), exit: 2, wants: []string{"--bogus"}},
		{args: run("extra"), exit: 2, wants: []string{`"extra"`}},

		// The config file.
		{args: []string{"run", "--config", unknownKey}, exit: 2, wants: []string{"line 9", "scanner.prot"}},
		{args: []string{"run", "--config", badBaud}, exit: 2, wants: []string{"line 9", "scanner.baud", `"fast"`}},
		{args: []string{"run", "--config", rate}, exit: 2, wants: []string{"line 8", "earn_rate"}},
		{args: []string{"run", "--config", timeout}, exit: 2, wants: []string{"line 8", "burn_timeout"}},
		{args: []string{"run", "--config", allowance}, exit: 2, wants: []string{"line 9", "member_allowance"}},
		{args: []string{"run", "--config", level}, exit: 2, wants: []string{"line 9", "log.level", "loud"}},
		{args: []string{"run", "--config", syntax}, exit: 2, wants: []string{"line 1"}},
		{args: []string{"run", "--config", badStore}, exit: 2, wants: []string{"line 3", "store", `"s/1"`}},
		{args: []string{"run", "--config", badHub}, exit: 2, wants: []string{"line 2", "hub"}},
		{args: []string{"run", "--config", noSecret}, exit: 2, wants: []string{"pos.secret_file", "no-such-secret"}},
		{args: []string{"run", "--config", missing}, exit: 1, wants: []string{missing}},
		{args: []string{"config", "check", "--config", unknownKey}, exit: 1, problems: 1, wants: []string{"line 9", "scanner.prot", "1 problem"}},
		{args: []string{"config", "check", "--config", badStore, "--earn-rate", "0"}, exit: 1, problems: 2, wants: []string{"store", "--earn-rate 0", "2 problems"}},
		{args: []string{"config"}, exit: 2, wants: []string{"check, show or example"}},
		{args: []string{"config", "example", "--output", example}, exit: 1, wants: []string{example, "--force"}},

		// enroll.
		{args: []string{"enroll", "--hub", hubHTTP, "--data-dir", enrollDir}, exit: 2, wants: []string{"--token"}},
		{args: []string{"enroll", "--hub", hubHTTP, "--token", "TSE1.x", "--data-dir", enrollDir}, exit: 2, wants: []string{"--token", "TSE1"}},
		{args: []string{"enroll", "--hub", "ftp://hub.example.com", "--token", unknownEnroll, "--data-dir", enrollDir}, exit: 2, wants: []string{"--hub", "ftp://hub.example.com"}},
		{args: []string{"enroll", "--hub", "http://hub.example.com:8080", "--token", unknownEnroll, "--data-dir", enrollDir}, exit: 2, wants: []string{"--hub", "https://"}},
		{args: []string{"enroll", "--hub", hubHTTP, "--token", unknownEnroll, "--data-dir", enrollDir}, exit: 1, code: "enrollment_token_unknown", wants: []string{"refused the enrollment"}},
		{args: []string{"enroll", "--hub", hubHTTP, "--token", unknownEnroll, "--data-dir", tr.tillDir}, exit: 1, wants: []string{"already enrolled", "--force"}},

		// ping, status, scan-test, the command itself.
		{args: []string{"ping", "--hub", "127.0.0.1:1883"}, exit: 2, wants: []string{"--hub", "tcp://host:port"}},
		{args: []string{"ping", "--hub", "tcp://hub.example.com:1883"}, exit: 2, wants: []string{"--hub", "--hub-plain"}},
		{args: []string{"ping", "--hub", "tcp://127.0.0.1:1", "--timeout", "soon"}, exit: 2, wants: []string{"--timeout"}},
		{args: []string{"ping", "--hub", "tls://127.0.0.1:1", "--hub-ca", missing}, exit: 1, wants: []string{"--hub-ca", missing}},
		{args: []string{"status", "--pos", strings.TrimPrefix(tr.till.pos, "http://")}, exit: 1, wants: []string{"shared secret"}},
		{args: []string{"status", "--config", missing}, exit: 1, wants: []string{missing}},
		{args: []string{"status", "extra"}, exit: 2, wants: []string{`"extra"`}},
		{args: []string{"scan-test"}, exit: 2, wants: []string{"--port or --usb"}},
		{args: []string{"scan-test", "--port", "/dev/ttyACM0", "--usb", "0c2e:0b61"}, exit: 2, wants: []string{"--port", "--usb"}},
		{args: []string{"scan-test", "--port", "/dev/ttyACM0", "--baud", "0"}, exit: 2, wants: []string{"--baud 0"}},
		{args: []string{"scan-test", "--usb", "keyboard"}, exit: 2, wants: []string{"--usb"}},
		{args: []string{"scan-test", "--port", "/dev/ttyACM0", "--check-digit", "crc"}, exit: 2, wants: []string{"--check-digit"}},
		{args: []string{"ports", "extra"}, exit: 2, wants: []string{`"extra"`}},
		{args: []string{"bogus"}, exit: 2, wants: []string{`"bogus"`}},
	} {
		tr.runCLI(bin, c)
	}
}

// hubCLI runs tillsync-hub with mistakes: serve's flags and files, and the
// admin commands against the running hub with values it refuses, or with
// tokens it refuses. Each exits 2 or 1 with one line (relaying the hub's
// code when the hub refused), and nothing in the ledger or on disk
// changes: serve makes no data dir.
func (tr *tour) hubCLI() {
	bin := hubCommand(tr.t)
	data := filepath.Join(tr.root, "hub-data") // never made
	serve := func(extra ...string) []string {
		return append([]string{"serve", "--data-dir", data, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)
	}
	badSeed := tr.file("hub-files/bad-seed.yaml", "coalition:\n  currency: EUR\npartners:\n  - id: p1\n    nmae: x\n")
	badRules := tr.file("hub-files/bad-rules.yaml", "points: 1\nper: 0\ncurrency: EUR\n")
	typoRules := tr.file("hub-files/typo-rules.yaml", "points: 1\npre: 100\n")
	goodRules := tr.file("hub-files/rules.yaml", "points: 1\nper: 100\ncurrency: EUR\n")
	badAlerts := tr.file("hub-files/alerts.yaml", "rules:\n  - name: off\n    condition: store_offline\n    threshold: 10 minutes\n")
	missing := filepath.Join(tr.root, "hub-files", "missing.yaml")
	api := func(token string, args ...string) []string {
		return append(args, "--hub", "http://"+tr.e.httpAddr, "--token", tr.tokens[token])
	}
	op := func(args ...string) []string { return api("operator", args...) }

	for _, c := range []cliCase{
		// serve.
		{args: serve("--bogus"), exit: 2, wants: []string{"--bogus"}},
		{args: serve("extra"), exit: 2, wants: []string{`"extra"`}},
		{args: []string{"serve", "--data-dir", data, "--mqtt-listen", "nonsense"}, exit: 2, wants: []string{"--mqtt-listen", "nonsense"}},
		{args: []string{"serve", "--data-dir", data, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "nonsense"}, exit: 2, wants: []string{"--http-listen", "nonsense"}},
		{args: serve("--log-level", "loud"), exit: 2, wants: []string{"--log-level", "loud"}},
		{args: serve("--log-format", "xml"), exit: 2, wants: []string{"--log-format", "xml"}},
		{args: []string{"serve", "--data-dir", data, "--broker", "nonsense"}, exit: 2, wants: []string{"--broker", "nonsense"}},
		{args: []string{"serve", "--data-dir", data, "--broker", "http://127.0.0.1:1883"}, exit: 2, wants: []string{"--broker"}},
		{args: []string{"serve", "--data-dir", data, "--broker", "tls://hub:secret@127.0.0.1:1"}, exit: 2, wants: []string{"--broker", "--broker-password-file"}},
		{args: serve("--metrics-max-stores", "-1"), exit: 2, wants: []string{"--metrics-max-stores"}},
		{args: serve("--metrics-max-stores", "many"), exit: 2, wants: []string{"--metrics-max-stores"}},
		{args: serve("--memory-limit", "1G"), exit: 2, wants: []string{"--memory-limit", "900MiB"}},
		{args: serve("--memory-limit", "10MiB"), exit: 2, wants: []string{"--memory-limit", "64MiB"}},
		{args: serve("--seed", missing), exit: 1, wants: []string{"--seed", missing}},
		{args: serve("--seed", badSeed), exit: 1, wants: []string{"--seed", "line 5", `"nmae"`}},
		{args: serve("--alerts", badAlerts), exit: 1, wants: []string{"--alerts", "line 4", `"10 minutes"`}},

		// Admin commands: mistakes caught before the hub is asked.
		{args: op("partner", "add", "a+b"), exit: 2, wants: []string{`"a+b"`}},
		{args: op("store", "add", "s/9", "--partner", "pharmacy"), exit: 2, wants: []string{`"s/9"`}},
		{args: op("store", "add", "s9"), exit: 2, wants: []string{"--partner"}},
		{args: op("rules", "show", "--partner", "a+b"), exit: 2, wants: []string{"--partner", `"a+b"`}},
		{args: op("campaign", "add", "--partner", "pharmacy", "--id", "c1", "--from", "2030-01-02", "--to", "2030-01-01", "--bonus", "5"), exit: 2, wants: []string{"--to", "--from"}},
		{args: op("campaign", "add", "--partner", "pharmacy", "--id", "c1", "--from", "2030-01-01", "--to", "2030-01-02", "--multiplier", "double"), exit: 2, wants: []string{"--multiplier", `"double"`}},
		{args: op("member", "show", "a b"), exit: 2, wants: []string{`"a b"`}},
		{args: op("campaign", "add", "--partner", "pharmacy", "--id", "c1", "--from", "2030-01-01", "--to", "2030-01-02", "--bonus", "-5"), exit: 2, wants: []string{"--bonus"}},
		{args: op("member", "token", "M1001", "--ttl", "1h"), exit: 2, wants: []string{"--ttl"}},
		{args: op("settlement", "--from", "2026-13-01", "--to", "2026-12-01"), exit: 2, wants: []string{"--from", `"2026-13-01"`}},
		{args: op("expire", "--as-of", "yesterday"), exit: 2, wants: []string{"--as-of", `"yesterday"`}},
		{args: op("apitoken", "add", "--role", "admin"), exit: 2, wants: []string{"--role", `"admin"`}},
		{args: op("coalition", "set", "--expiry-months", "many"), exit: 2, wants: []string{"--expiry-months"}},
		{args: op("partner", "lst"), exit: 2, wants: []string{`"lst"`, `"list"`}},
		{args: []string{"partner", "list", "--hub", "ftp://hub.example.com", "--token", tr.tokens["operator"]}, exit: 2, wants: []string{"--hub", "ftp://hub.example.com"}},
		{args: []string{"partner", "list", "--hub", "http://" + tr.e.httpAddr, "--token", "TSA1.x"}, exit: 2, wants: []string{"--token", "TSA1.<id>.<secret>"}},
		{args: []string{"partner", "list", "--hub", "http://" + tr.e.httpAddr, "--token-file", missing}, exit: 1, wants: []string{"--token-file", missing}},
		{args: []string{"seed", badSeed, "--hub", "http://" + tr.e.httpAddr, "--token", tr.tokens["operator"]}, exit: 1, wants: []string{"line 5", `"nmae"`}},
		{args: []string{"seed", missing, "--hub", "http://" + tr.e.httpAddr, "--token", tr.tokens["operator"]}, exit: 1, wants: []string{missing}},
		{args: op("rules", "set", "--partner", "pharmacy", "--file", typoRules), exit: 1, wants: []string{"--file", `"pre"`, "line 2"}},
		{args: []string{"verify", "--data-dir", filepath.Join(tr.root, "no-hub")}, exit: 1, wants: []string{"no ledger", "--data-dir"}},
		{args: []string{"bogus"}, exit: 2, wants: []string{`"bogus"`}},

		// Admin commands: values the hub refuses, with its code.
		{args: op("store", "add", "s9", "--partner", "nope"), exit: 1, code: "unknown_partner", wants: []string{`"nope"`}},
		{args: op("store", "add", tourStore, "--partner", "cafe"), exit: 1, code: "conflict", wants: []string{"cafe"}},
		{args: op("partner", "add", "p9", "--name", "a\nb"), exit: 1, code: "malformed", wants: []string{"name"}},
		{args: op("terminal", "add", "--store", "nope", "--terminal", "t1"), exit: 1, code: "unknown_store", wants: []string{`"nope"`}},
		{args: op("terminal", "token", "--store", "nope", "--terminal", "t1"), exit: 1, code: "not_found", wants: []string{"t1"}},
		{args: op("terminal", "revoke", "--store", tourStore, "--terminal", "t9"), exit: 1, code: "not_found", wants: []string{"t9"}},
		{args: op("coalition", "set", "--currency", "eur"), exit: 1, code: "invalid_currency", wants: []string{"currency"}},
		{args: op("coalition", "set", "--point-value", "abc"), exit: 1, code: "invalid_amount", wants: []string{"point_value"}},
		{args: op("coalition", "set", "--currency", "USD"), exit: 1, code: "conflict", wants: []string{"currency"}},
		{args: op("coalition", "set", "--hold-minutes", "-5"), exit: 1, code: "malformed", wants: []string{"hold_minutes"}},
		{args: op("rules", "set", "--partner", "pharmacy", "--file", badRules), exit: 1, code: "invalid_rules", wants: []string{"per"}},
		{args: op("rules", "set", "--partner", "nope", "--file", goodRules), exit: 1, code: "unknown_partner", wants: []string{`"nope"`}},
		{args: op("campaign", "add", "--partner", "cafe", "--id", "c1", "--from", "2030-01-01", "--to", "2030-01-02", "--bonus", "5"), exit: 1, code: "conflict", wants: []string{"cafe"}},
		{args: op("period", "close", "--from", "2026-01-01", "--to", "2099-01-01"), exit: 1, code: "invalid_time", wants: []string{"2099-01-01"}},
		{args: op("settlement", "--from", "2026-03-01", "--to", "2026-02-01"), exit: 1, code: "invalid_time", wants: []string{"to"}},
		{args: op("expire", "--as-of", "2999-01-01"), exit: 1, code: "invalid_time", wants: []string{"as_of"}},
		{args: op("apitoken", "add", "--role", "partner", "--partner", "nope"), exit: 1, code: "unknown_partner", wants: []string{`"nope"`}},
		{args: op("apitoken", "revoke", "nope"), exit: 1, code: "not_found", wants: []string{`"nope"`}},

		// Admin commands with a token the hub refuses.
		{args: api("revoked", "partner", "list"), exit: 1, code: "unauthorized", wants: []string{"revoked", "--token"}},
		{args: api("read-only", "partner", "add", "p9"), exit: 1, code: "forbidden", wants: []string{"read-only", "--token"}},
		{args: api("partner", "member", "show", tourMember), exit: 1, code: "forbidden", wants: []string{"partner token"}},
		{args: api("partner", "apitoken", "list"), exit: 1, code: "forbidden", wants: []string{"partner token"}},
	} {
		tr.runCLI(bin, c)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
