package ingest

import (
	"fmt"
	"testing"
	"time"
)

// The grants share out the smaller of three quarters of the queue and
// creditDelay of commits at the hub's pace; an idle hub (no commit timed)
// is held to the queue alone.
func TestCreditPace(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	c := newCredit(8192)
	for i := range 100 {
		c.arrived(fmt.Sprintf("till-%d", i), 100, true, t0)
	}
	now := t0.Add(time.Minute) // past the ramp
	// 6,144 batches among 100 tills: 61 each, of 100 transactions.
	if got := c.grant("till-0", now); got != 61*100 {
		t.Fatalf("no pace measured: granted %d, want %d", got, 61*100)
	}
	// 2,000 transactions a second: 3 s of commits are 6,000, 60 batches,
	// less than one each: one each.
	for range 10 {
		c.committed(2000, time.Second)
	}
	if got := c.grant("till-0", now); got != 100 {
		t.Fatalf("at 2,000 tx/s: granted %d, want one batch (100)", got)
	}
	// 400,000 a second: 1,200,000 in 3 s is more than the queue holds; the
	// queue's share again.
	c = newCredit(8192)
	for i := range 100 {
		c.arrived(fmt.Sprintf("till-%d", i), 100, true, t0)
	}
	c.committed(400_000, time.Second)
	if got := c.grant("till-0", now); got != 61*100 {
		t.Fatalf("at 400,000 tx/s: granted %d, want the queue's share %d", got, 61*100)
	}
	// Then 50,000 a second: the pace falls, and the grant below the queue's share.
	c.committed(50_000, time.Second)
	c.committed(50_000, time.Second)
	if got, want := c.grant("till-0", now), int(c.paceTxs/c.paceSecs*3/100)/100*100; got != want || got >= 61*100 {
		t.Fatalf("pace %.0f tx/s: granted %d, want %d", c.paceTxs/c.paceSecs, got, want)
	}
}

// The average batch size comes from backlog batches alone, and grants are
// rounded up: batches that tell nothing of it (a hold sent ahead of its
// till's backlog, a batch with nothing behind it) leave it alone, and a
// till granted one batch that fills it keeps the average where it is.
func TestCreditBatchSize(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	c := newCredit(8192)
	for i := range 1000 {
		c.arrived(fmt.Sprintf("till-%d", i), 100, true, t0)
	}
	now := t0.Add(time.Minute)
	for i := range 1000 {
		c.arrived(fmt.Sprintf("till-%d", i), 0, true, now) // holds jumping the backlog
	}
	if c.perTx != 100 {
		t.Fatalf("average batch %.2f after batches that are not backlog batches, want 100", c.perTx)
	}
	// 6,144 batches among 1,000 tills: 6 each.
	if got := c.grant("till-0", now); got != 600 {
		t.Fatalf("granted %d, want 600", got)
	}
	// One batch each (750 batches among 1,000 tills), batches of 99 and
	// 100 alternating: an average of 99.5, a grant of 100. Tills that send
	// what they are granted keep it there; rounded down, the grant would
	// have been 99, and the average and the grant would have followed each
	// other down.
	c = newCredit(1000)
	for i := range 2000 {
		c.arrived(fmt.Sprintf("till-%d", i%1000), 99+i%2, true, t0)
	}
	g := c.grant("till-0", now)
	for range 20_000 {
		c.arrived("till-0", g, true, now)
		g = c.grant("till-0", now)
	}
	if g != 100 {
		t.Fatalf("one batch each: granted %d after tills sent their grants, want 100", g)
	}
}
