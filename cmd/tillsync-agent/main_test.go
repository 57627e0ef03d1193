package main

// These tests build the real tillsync-agent once and run it as a store's
// technician would, checking what they see: the exit status and the one line
// on stderr.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const name = "tillsync-agent"

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
// and one line "tillsync-agent: …" on stderr that contains every want.
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

// ids are the three flags run requires.
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
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).oneLine(t, 2, tc.wants...)
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
				oneLine(t, 1, "data dir "+dir, "--data-dir")
		})
	}
}

func TestPOSPortInUse(t *testing.T) {
	t.Parallel()
	addr := busyAddr(t)
	run(t, runArgs("--data-dir", t.TempDir(), "--hub", "tcp://"+freeAddr(t), "--pos-listen", addr)...).
		oneLine(t, 1, addr, inUse(), "--pos-listen")
}

func TestPingHubUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	begin := time.Now()
	run(t, "ping", "--hub", "tcp://"+addr, "--timeout", "1s").oneLine(t, 1, addr, "unreachable", "--hub")
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("ping --timeout 1s took %s", d)
	}
}

func TestStatusNoAgent(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	run(t, "status", "--pos", addr).oneLine(t, 1, addr, "--pos")
}
