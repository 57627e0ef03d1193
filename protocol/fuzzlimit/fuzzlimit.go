// Package fuzzlimit holds the one rule every tillsync fuzz target shares
// besides "no crash": no single input may take longer than PerInput.
//
// The limit applies only while fuzzing (go test -fuzz, which sets the
// -test.fuzz flag). Ordinary go test runs, which replay the seed corpora in
// testdata/fuzz, are never timed: the project's tests make no timed
// assertions, and a loaded CI machine must not turn a slow moment into a
// failure. While fuzzing, an input over the limit fails like a crash: the
// fuzzer writes it to testdata/fuzz/<FuzzName>/ and make fuzz stops with the
// target's name.
//
// It lives beside protocol rather than in internal/ so that protocol's own
// fuzz targets can use it and the wire contract can still be vendored and
// fuzzed on its own; like protocol it imports only the standard library.
package fuzzlimit

import (
	"flag"
	"testing"
	"time"
)

// PerInput is the longest one input may take while fuzzing: decoding it,
// acting on it and checking the outcome.
const PerInput = time.Second

// Fuzzing reports whether the test binary is fuzzing rather than replaying
// its seed corpora.
func Fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// Check times the input t is running, from this call until the fuzz
// function returns, and fails it when that took longer than PerInput —
// only while fuzzing. Call it first thing in the function given to
// testing.F.Fuzz.
func Check(t testing.TB) {
	check(t, Fuzzing(), PerInput)
}

func check(t testing.TB, fuzzing bool, limit time.Duration) {
	if !fuzzing {
		return
	}
	start := time.Now()
	t.Cleanup(func() {
		if d := time.Since(start); d > limit {
			t.Errorf("this input took %s; no input may take longer than %s", d.Round(time.Millisecond), limit)
		}
	})
}
