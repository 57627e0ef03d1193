package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// killAfterCommits returns the hook of serve's hidden
// --fault-kill-after-commit: after the hub's nth ledger commit, before that
// commit's acks are published, the process kills itself as kill -9 would
// (no deferred function, no flush, no goodbye to the broker's clients).
// The chaos harness (tillsync-sim chaos) uses it to crash the hub at the
// one moment its invariant is about: transactions committed, not yet acked.
func killAfterCommits(n int64, log *slog.Logger) func() {
	var commits atomic.Int64
	return func() {
		if commits.Add(1) != n {
			return
		}
		log.Warn("fault injection: killing the hub after a ledger commit, before its acks", "commit", n)
		p, err := os.FindProcess(os.Getpid())
		if err == nil {
			err = p.Kill() // SIGKILL on Unix, TerminateProcess on Windows
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fault injection: kill:", err)
			os.Exit(137)
		}
		select {} // the kill is delivered asynchronously: publish nothing meanwhile
	}
}
