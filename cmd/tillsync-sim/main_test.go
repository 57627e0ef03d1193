package main

// These tests build the real tillsync-sim once and run it as a developer
// would, checking what they see: the exit status and the one line on stderr.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const name = "tillsync-sim"

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
// and one line "tillsync-sim: …" on stderr that contains every want.
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
			out := run(t, tc.args...).ok(t)
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
			run(t, tc.args...).oneLine(t, 2, tc.wants...)
		})
	}
}
