package perf

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// Scenario 6's shape: the ledger is filled in commits of agingFill
// batches of 100, as the hub's group commit makes them under load, by
// sales of agingMembers members; a probe commit is agingProbe batches of
// ten, as a busy day's live traffic makes them.
const (
	agingFill    = 20
	agingProbe   = 10
	agingMembers = 100_000
)

// agingLedger fills and probes one ledger in this process: the ledger
// package itself, with nothing around it, so that what changes with age
// is the ledger's alone.
type agingLedger struct {
	l     *ledger.BoltStore
	tills []Creds
	ids   []agent.IDs
	seqs  []uint64
	next  int
	// probes is how many probe commits are timed at each age.
	probes int
}

// batch is one batch of n sales from the next till.
func (a *agingLedger) batch(n int, now time.Time) *protocol.Batch {
	i := a.next % len(a.tills)
	a.next++
	c := a.tills[i]
	b := &protocol.Batch{Version: protocol.Version, Store: c.Store, Terminal: c.Terminal, SentAt: now}
	for range n {
		a.seqs[i]++
		tx := earn(c, a.ids[i].Next(now), int(a.seqs[i]), now, agingMembers)
		tx.Seq = a.seqs[i]
		b.Txs = append(b.Txs, tx)
	}
	return b
}

// commit applies batches of size each and returns how long the commit took.
func (a *agingLedger) commit(batches, size int) (time.Duration, error) {
	now := time.Now()
	group := make([]*protocol.Batch, batches)
	for i := range group {
		group[i] = a.batch(size, now)
	}
	t0 := time.Now()
	acks, err := a.l.Apply(group, now)
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	for _, ab := range acks {
		for _, ack := range ab {
			if ack.Status != protocol.StatusApplied {
				return 0, fmt.Errorf("aging: transaction %s answered %s %s", ack.ID, ack.Status, ack.Code)
			}
		}
	}
	return took, nil
}

// probe times a.probes probe commits.
func (a *agingLedger) probe() (*Samples, error) {
	var s Samples
	for range a.probes {
		d, err := a.commit(agingProbe, 10)
		if err != nil {
			return nil, err
		}
		s.Add(d)
	}
	return &s, nil
}

// aging is scenario 6: a probe commit's p99 on a ledger of o.AgingTxs
// transactions against the same on an empty one; then the file is
// compacted (tillsync-hub compact's ledger.Compact), and its size held
// against the data it holds.
func (b *bench) aging(ctx context.Context) error {
	fmt.Fprintf(b.o.Out, "== 6 aging: a ledger of %s transactions against an empty one\n", thousands(int64(b.o.AgingTxs)))
	dir := b.dir("aging")
	if err := copyDir(b.coal.Dir, dir); err != nil {
		return err
	}
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.OpenBolt(path, ledger.BoltOptions{})
	if err != nil {
		return err
	}
	defer func() { l.Close() }()
	n := min(100, len(b.coal.Terminals))
	a := &agingLedger{l: l, tills: b.coal.Terminals[:n], ids: make([]agent.IDs, n), seqs: make([]uint64, n), probes: b.o.AgingProbes}
	empty, err := a.probe()
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  empty: probe commit p50 %s, p99 %s\n", ms(empty.Quantile(0.5)), ms(empty.Quantile(0.99)))
	start, last := time.Now(), time.Now()
	filled := int64(a.probes * agingProbe * 10) // the probes' own
	start0 := filled
	for filled < int64(b.o.AgingTxs) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := a.commit(agingFill, 100); err != nil {
			return err
		}
		filled += agingFill * 100
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			el := time.Since(start)
			fmt.Fprintf(b.o.Out, "  filled %s of %s (%s; %v so far, about %v to go)\n", thousands(filled), thousands(int64(b.o.AgingTxs)),
				rate(float64(filled-start0)/el.Seconds()), el.Round(time.Second), time.Duration(float64(el)/float64(filled-start0)*float64(int64(b.o.AgingTxs)-filled)).Round(time.Second))
		}
	}
	fill := time.Since(start)
	aged, err := a.probe()
	if err != nil {
		return err
	}
	count, err := l.TransactionCount()
	if err != nil {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	ep, ap := empty.Quantile(0.99), aged.Quantile(0.99)
	ratio := float64(ap) / float64(ep)
	b.row(Row{ID: "6", What: fmt.Sprintf("ledger commit at %s transactions (p99)", thousands(count)), Figure: "p99 " + ms(ap), Baseline: "p99 " + ms(ep) + " empty",
		Ratio: ratio, Target: "≤ 1.2× empty", Met: ratio <= 1.2,
		Note: fmt.Sprintf("a commit of %d batches of 10 sales, %d of them each; p50 %s against %s empty; %s",
			agingProbe, a.probes, ms(aged.Quantile(0.5)), ms(empty.Quantile(0.5)), fillNote(filled-start0, fill))})

	fmt.Fprintf(b.o.Out, "  compacting\n")
	t0 := time.Now()
	rep, err := ledger.Compact(path, ledger.CompactOptions{})
	if err != nil {
		return err
	}
	took := time.Since(t0)
	after := float64(rep.After.FileBytes) / float64(rep.After.LiveBytes)
	b.row(Row{ID: "6b", What: "the ledger file after compaction", Figure: fmt.Sprintf("%s (%.2f× its data)", mib(rep.After.FileBytes), after),
		Baseline: mib(rep.After.LiveBytes) + " of data", Ratio: after, Target: "≤ 2× the data", Met: after <= 2,
		Note: fmt.Sprintf("%s before compaction (%.2f× its data); compacted and checked in %v",
			mib(rep.Before.FileBytes), float64(rep.Before.FileBytes)/float64(rep.Before.LiveBytes), took.Round(time.Second))})
	return nil
}

// fillNote says how the aged ledger was filled: n transactions in d.
func fillNote(n int64, d time.Duration) string {
	if n <= 0 {
		return "the probes alone filled it"
	}
	return fmt.Sprintf("filled with %s more at %s in %v", thousands(n), rate(float64(n)/d.Seconds()), d.Round(time.Second))
}
