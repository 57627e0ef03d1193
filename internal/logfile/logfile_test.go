package logfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/tillsync/tillsync/internal/logfile"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Writing past the limit rotates: the newest lines are in agent.log, the
// ones before in agent.log.1, .2 …; no file beyond Keep is left, none is
// larger than the limit, and no line is split or lost among the kept files.
func TestRotates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	p := filepath.Join(dir, "agent.log")
	const maxBytes, keep = 1000, 3
	l, err := logfile.Open(p, logfile.Options{MaxBytes: maxBytes, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if _, err := fmt.Fprintf(l, "record %04d %s\n", i, strings.Repeat("x", 20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after Close: %v, want os.ErrClosed", err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"agent.log", "agent.log.1", "agent.log.2", "agent.log.3"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("files %q, want %q", names, want)
	}
	// Oldest to newest, the kept files hold consecutive records ending
	// with the last one written.
	var all []string
	for _, name := range []string{"agent.log.3", "agent.log.2", "agent.log.1", "agent.log"} {
		s := read(t, filepath.Join(dir, name))
		if len(s) > maxBytes {
			t.Errorf("%s is %d bytes, over the %d limit", name, len(s), maxBytes)
		}
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("%s ends in the middle of a record", name)
		}
		all = append(all, strings.Split(strings.TrimSuffix(s, "\n"), "\n")...)
	}
	first := n - len(all)
	for i, line := range all {
		if want := fmt.Sprintf("record %04d ", first+i); !strings.HasPrefix(line, want) {
			t.Fatalf("kept line %d is %q, want it to start %q", i, line, want)
		}
	}
	if first <= 0 {
		t.Errorf("nothing was rotated away: %d lines kept of %d", len(all), n)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("agent.log mode %v; want owner-only", fi.Mode())
	}
}

// Reopening appends and counts what is there towards the limit.
func TestReopenAppends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.log")
	o := logfile.Options{MaxBytes: 100, Keep: 1}
	for _, s := range []string{strings.Repeat("a", 59) + "\n", strings.Repeat("b", 59) + "\n"} {
		l, err := logfile.Open(p, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	if got := read(t, p+".1"); got != strings.Repeat("a", 59)+"\n" {
		t.Errorf("agent.log.1 = %q, want the first run's line", got)
	}
	if got := read(t, p); got != strings.Repeat("b", 59)+"\n" {
		t.Errorf("agent.log = %q, want the second run's line", got)
	}
}

// Keep 0 keeps no old file: the current one starts again empty.
func TestKeepNone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.log")
	l, err := logfile.Open(p, logfile.Options{MaxBytes: 10, Keep: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, s := range []string{"12345678\n", "abcdefgh\n"} {
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, p); got != "abcdefgh\n" {
		t.Errorf("agent.log = %q", got)
	}
	if _, err := os.Stat(p + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent.log.1 exists with Keep 0: %v", err)
	}
}

// A record larger than the limit is written whole, alone in its file.
func TestOversizeRecord(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.log")
	l, err := logfile.Open(p, logfile.Options{MaxBytes: 10, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := strings.Repeat("z", 50) + "\n"
	for _, s := range []string{"small\n", big, "next\n"} {
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if read(t, p+".2") != "small\n" || read(t, p+".1") != big || read(t, p) != "next\n" {
		t.Errorf("files: %q %q %q", read(t, p+".2"), read(t, p+".1"), read(t, p))
	}
}

// Concurrent writers never interleave within a record (run with -race).
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.log")
	l, err := logfile.Open(p, logfile.Options{MaxBytes: 4096, Keep: 50})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(l, "g%d-%03d %s\n", g, i, strings.Repeat("y", 30))
			}
		})
	}
	wg.Wait()
	l.Close()
	files, _ := filepath.Glob(p + "*")
	lines := 0
	for _, f := range files {
		for _, line := range strings.Split(strings.TrimSuffix(read(t, f), "\n"), "\n") {
			if len(line) != len("g0-000 ")+30 {
				t.Fatalf("%s: mangled line %q", f, line)
			}
			lines++
		}
	}
	if lines != 400 {
		t.Errorf("%d lines kept, want 400", lines)
	}
}
