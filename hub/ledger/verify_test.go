package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// stopAfter is a context whose Err turns context.Canceled after its first
// after calls, and counts them: a verification's looks at its context,
// made visible.
type stopAfter struct {
	context.Context
	after int64
	calls atomic.Int64
}

func (c *stopAfter) Err() error {
	if c.calls.Add(1) > c.after {
		return context.Canceled
	}
	return nil
}

// TestVerifyContextStops: a verification whose context is done gives up at
// its next look, with the context's error and no report, and leaves the
// store as usable as before: the read transaction is over, so a write
// commits and Close returns.
func TestVerifyContextStops(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Register(t, s, a)
	const batches = 24 // 12,000 entries: a few looks in each walk
	for b := range batches {
		txs := make([]protocol.Transaction, protocol.MaxBatchTxs)
		for i := range txs {
			n := b*protocol.MaxBatchTxs + i
			txs[i] = a.Earn(fmt.Sprintf("e%d", n), fmt.Sprintf("m%d", n%500), 10)
		}
		ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, txs...))
	}

	// A context that never stops: the whole walk, and how often it looked.
	whole := &stopAfter{Context: context.Background(), after: 1 << 62}
	rep, err := s.VerifyContext(whole)
	if err != nil || !rep.OK() || rep.Entries != batches*protocol.MaxBatchTxs {
		t.Fatalf("VerifyContext: %v, ok %v, %d entries", err, rep.OK(), rep.Entries)
	}
	looks := whole.calls.Load()
	if looks < 5 {
		t.Fatalf("a verification of %d entries looked at its context %d times; want one at the start and one every few thousand keys", rep.Entries, looks)
	}

	// Stopped at the first look inside the journal's walk.
	stop := &stopAfter{Context: context.Background(), after: 1}
	rep, err = s.VerifyContext(stop)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyContext stopped: err %v, want context.Canceled", err)
	}
	if rep.Entries != 0 || rep.ChainHead != "" {
		t.Fatalf("a stopped verification returned a report: %+v", rep)
	}
	if got := stop.calls.Load(); got != 2 {
		t.Fatalf("a stopped verification looked at its context %d times, want 2 (it went on after it was done)", got)
	}

	// Done before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.VerifyContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyContext with a done context: %v", err)
	}

	// The store goes on: a write commits, a verification passes, Close returns.
	ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, a.Earn("after", "m1", 1)))
	if rep := ledgertest.CheckVerify(t, s); rep.Entries != batches*protocol.MaxBatchTxs+1 {
		t.Fatalf("after the stopped verifications: %d entries", rep.Entries)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
