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
