package fuzzlimit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder stands in for the input's T: it keeps the cleanup and the errors.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheck(t *testing.T) {
	t.Run("slow input while fuzzing fails", func(t *testing.T) {
		r := &recorder{TB: t}
		check(r, true, time.Millisecond)
		time.Sleep(5 * time.Millisecond) // at least this long: the outcome does not depend on the machine
		r.finish()
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], "no input may take longer than 1ms") {
			t.Fatalf("errors %q, want one saying the input was over 1ms", r.errs)
		}
	})
	t.Run("quick input while fuzzing passes", func(t *testing.T) {
		r := &recorder{TB: t}
		check(r, true, time.Hour)
		r.finish()
		if len(r.errs) != 0 {
			t.Fatalf("errors %q for an input under the limit", r.errs)
		}
	})
	t.Run("never timed outside fuzzing", func(t *testing.T) {
		r := &recorder{TB: t}
		check(r, false, time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		r.finish()
		if len(r.cleanups) != 0 || len(r.errs) != 0 {
			t.Fatalf("%d cleanups, errors %q: a seed replay in go test must not be timed", len(r.cleanups), r.errs)
		}
	})
}

// TestNotFuzzing: go test without -fuzz replays the seeds untimed.
func TestNotFuzzing(t *testing.T) {
	if Fuzzing() {
		t.Skip("running under -fuzz")
	}
	r := &recorder{TB: t}
	Check(r)
	if len(r.cleanups) != 0 {
		t.Fatal("Check timed an input outside fuzzing")
	}
}
