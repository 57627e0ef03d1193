// Package clitest runs tillsync's commands in tests as a person would: it
// builds the real binary once, runs it, and checks what a user sees — the
// exit status and the one line on stderr.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/tillsync/tillsync/internal/testkit"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Binary is a command built for a test run.
type Binary struct {
	Name string // e.g. tillsync-hub, as it prints itself
	Path string
}

// Main builds the package in the current directory as name, runs the tests
// with *bin set, and removes the build. Use it as
// func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "tillsync-hub", &bin)) }.
func Main(m *testing.M, name string, bin *Binary) int {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = Binary{Name: name, Path: filepath.Join(dir, name)}
	if runtime.GOOS == "windows" {
		bin.Path += ".exe"
	}
	if out, err := exec.Command(goTool(), "build", "-o", bin.Path, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
		return 1
	}
	return m.Run()
}

// Build builds the command package pkg (an import path, e.g.
// github.com/tillsync/tillsync/cmd/tillsync-hub) as name into dir, for
// tests outside the command's own package.
func Build(dir, name, pkg string) (Binary, error) {
	b := Binary{Name: name, Path: filepath.Join(dir, name)}
	if runtime.GOOS == "windows" {
		b.Path += ".exe"
	}
	if out, err := exec.Command(goTool(), "build", "-o", b.Path, pkg).CombinedOutput(); err != nil {
		return Binary{}, fmt.Errorf("build %s: %v\n%s", pkg, err, out)
	}
	return b, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Result is a finished run.
type Result struct {
	name           string
	args           []string
	Code           int    // exit status
	Stdout, Stderr string // what it printed
}

// Run runs the binary to completion (at most 15s) in a scratch directory.
func (b Binary) Run(t *testing.T, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Path, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after 15s; stderr:\n%s", b.Name, strings.Join(args, " "), stderr.String())
	}
	r := Result{name: b.Name, args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", b.Name, strings.Join(args, " "), err)
	}
	return r
}

// OK checks a successful run that prints to stdout only and returns stdout.
func (r Result) OK(t *testing.T) string {
	t.Helper()
	if r.Code != 0 || r.Stderr != "" {
		t.Errorf("%s %s: exit %d, want 0; stderr:\n%s", r.name, strings.Join(r.args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// OneLine checks that the run failed with code, printing nothing on stdout
// and one line "NAME: …" on stderr that contains every want.
func (r Result) OneLine(t *testing.T, code int, wants ...string) string {
	t.Helper()
	cmdline := r.name + " " + strings.Join(r.args, " ")
	if r.Code != code {
		t.Errorf("%s: exit %d, want %d; stderr:\n%s", cmdline, r.Code, code, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("%s: printed on stdout:\n%s", cmdline, r.Stdout)
	}
	line := strings.TrimSpace(r.Stderr)
	if strings.Contains(line, "\n") {
		t.Errorf("%s: stderr is not one line:\n%s", cmdline, r.Stderr)
	}
	if !strings.HasPrefix(line, r.name+": ") {
		t.Errorf("%s: stderr %q does not start with %q", cmdline, line, r.name+": ")
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("%s: stderr %q does not mention %q", cmdline, line, w)
		}
	}
	return line
}

// FreeAddr returns a loopback address nothing listens on (for a moment).
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BusyAddr returns the address of a listener the test holds open.
func BusyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// InUse is what the busy-port line says; Windows reports the bind error in
// its own words.
func InUse() string {
	if runtime.GOOS == "windows" {
		return ""
	}
	return "already in use"
}

// Proc is a long-running child; it is killed at cleanup if still running.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
	err  error // from Wait, once done is closed
}

// Start runs the binary in the background.
func (b Binary) Start(t *testing.T, args ...string) *Proc {
	t.Helper()
	p := &Proc{name: b.Name, cmd: exec.Command(b.Path, args...), out: new(testkit.Buffer), done: make(chan struct{})}
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

// ExitCode waits up to timeout for the child to exit and returns its status.
func (p *Proc) ExitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; output:\n%s", p.name, timeout, p.out.String())
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

// WaitFor polls cond until it holds, failing the test after timeout or if
// the child exits first.
func (p *Proc) WaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s; output:\n%s", p.name, what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; output:\n%s", timeout, what, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether GET url returns 200.

// Output is what the child printed so far, stdout and stderr together.
func (p *Proc) Output() string { return p.out.String() }

// Signal sends sig to the child.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
