package main

// These tests build the real tillsync-hub once and run it as an operator
// would, checking what they see: the exit status and the one line on stderr.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const name = "tillsync-hub"

// bin is the binary TestMain builds.
var bin string

func TestMain(m *testing.M) { os.Exit(buildAndRun(m)) }

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command(goTool(), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
		return 1
	}
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// run runs the binary to completion (at most 15s) in a scratch directory.
func run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after 15s; stderr:\n%s", name, strings.Join(args, " "), stderr.String())
	}
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// ok checks a successful run that prints to stdout only and returns stdout.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Errorf("%s %s: exit %d, want 0; stderr:\n%s", name, strings.Join(r.args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// oneLine checks that the run failed with code, printing nothing on stdout
// and one line "tillsync-hub: …" on stderr that contains every want.
func (r result) oneLine(t *testing.T, code int, wants ...string) string {
	t.Helper()
	cmdline := name + " " + strings.Join(r.args, " ")
	if r.code != code {
		t.Errorf("%s: exit %d, want %d; stderr:\n%s", cmdline, r.code, code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("%s: printed on stdout:\n%s", cmdline, r.stdout)
	}
	line := strings.TrimSpace(r.stderr)
	if strings.Contains(line, "\n") {
		t.Errorf("%s: stderr is not one line:\n%s", cmdline, r.stderr)
	}
	if !strings.HasPrefix(line, name+": ") {
		t.Errorf("%s: stderr %q does not start with %q", cmdline, line, name+": ")
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("%s: stderr %q does not mention %q", cmdline, line, w)
		}
	}
	return line
}

// freeAddr returns a loopback address nothing listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// busyAddr returns the address of a listener the test holds open.
func busyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// inUse is what the busy-port line says; Windows reports the bind error in
// its own words.
func inUse() string {
	if runtime.GOOS == "windows" {
		return ""
	}
	return "already in use"
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a long-running child; it is killed at cleanup if still running.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // from Wait, once done is closed
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exitCode waits up to timeout for the child to exit and returns its status.
func (p *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; output:\n%s", name, timeout, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after timeout or if
// the child exits first.
func (p *proc) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s; output:\n%s", name, what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; output:\n%s", timeout, what, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether GET url returns 200.
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
			out := run(t, tc.args...).ok(t)
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
	if out := run(t, "version").ok(t); !strings.HasPrefix(out, name+" ") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("version printed %q, want one line %q", out, name+" VERSION")
	}
	if out := run(t, "--version").ok(t); !strings.HasPrefix(out, name+" version ") {
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
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).oneLine(t, 2, tc.wants...)
		})
	}
}

// A usage mistake is reported before anything touches the disk.
func TestUsageMistakeLeavesDataDirAlone(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "hub")
	run(t, "serve", "--data-dir", dir, "--broker", "nonsense").oneLine(t, 2, "--broker")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir %s was created by a command line that was refused (stat: %v)", dir, err)
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
				oneLine(t, 1, "data dir "+dir, "--data-dir")
		})
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	t.Run("mqtt", func(t *testing.T) {
		t.Parallel()
		addr := busyAddr(t)
		line := run(t, "serve", "--data-dir", t.TempDir(), "--mqtt-listen", addr, "--http-listen", "127.0.0.1:0").
			oneLine(t, 1, addr, inUse(), "--mqtt-listen")
		if !strings.Contains(line, "--broker") {
			t.Errorf("%q does not offer --broker as the other way out", line)
		}
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		addr := busyAddr(t)
		run(t, "serve", "--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--http-listen", addr).
			oneLine(t, 1, addr, inUse(), "--http-listen")
	})
}

func TestBrokerUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	begin := time.Now()
	run(t, "serve", "--data-dir", t.TempDir(), "--broker", "tcp://"+addr, "--http-listen", "127.0.0.1:0").
		oneLine(t, 1, addr, "--broker")
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %s to give up on an unreachable broker, want under 10s", d)
	}
}
