package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// sendAt queues perSec transactions a second, one transaction per
// earn, spread over f's tills at random, until ctx is done: live tills,
// each POS sale on its own. It returns how many it queued.
func sendAt(ctx context.Context, f *Fleet, perSec int) int {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-t.C:
		}
		due := int(time.Since(start).Seconds()*float64(perSec)) - sent
		for range due {
			f.Terms[rand.IntN(len(f.Terms))].Earn(1)
		}
		sent += due
	}
}

// roundtrip is scenario 4: a till's round trip (a transaction queued at
// the till → the hub's commit → its ack taken at the till) at
// o.Background transactions a second spread over o.Terminals tills,
// against the same round trip at 50 a second (idle).
func (b *bench) roundtrip(ctx context.Context) error {
	creds := b.coal.Terminals[:b.o.Terminals]
	fmt.Fprintf(b.o.Out, "== 4 round trip: %d tills at %d tx/s in all, against 50 tx/s\n", len(creds), b.o.Background)
	h, err := b.hub(ctx, "roundtrip", false, nil)
	if err != nil {
		return err
	}
	defer h.Kill()
	f, err := NewFleet(creds, h.MQTT, h.TLS, FleetOptions{Members: b.o.Members})
	if err != nil {
		return err
	}
	f.Start(ctx)
	defer f.Stop()
	if _, err := f.WaitConnected(ctx, 2*time.Minute); err != nil {
		return err
	}
	phase := func(perSec int) (*Samples, int, error) {
		var s Samples
		pctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		sent := 0
		wg.Go(func() { sent = sendAt(pctx, f, perSec) })
		err := sleep(ctx, b.o.Warmup)
		if err == nil {
			f.Measure(&s)
			err = sleep(ctx, b.o.Duration)
			f.Measure(nil)
		}
		stop()
		wg.Wait()
		if err == nil {
			err = f.WaitDrained(ctx, time.Minute)
		}
		return &s, sent, err
	}
	idle, _, err := phase(50)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  idle (50 tx/s): p50 %s, p99 %s\n", ms(idle.Quantile(0.5)), ms(idle.Quantile(0.99)))
	b.profile(h, "roundtrip", b.o.Duration)
	m0, err := h.Metrics(ctx, metricAck, metricCommit)
	if err != nil {
		return err
	}
	loaded, sent, err := phase(b.o.Background)
	if err != nil {
		return err
	}
	m1, err := h.Metrics(ctx, metricAck, metricCommit)
	if err != nil {
		return err
	}
	if err := h.Stop(); err != nil {
		return err
	}
	p99 := loaded.Quantile(0.99)
	b.row(Row{ID: "4", What: fmt.Sprintf("round trip till → hub → ack at %s tx/s%s", thousands(int64(b.o.Background)), b.setup()), Figure: "p99 " + ms(p99),
		Baseline: "p99 " + ms(idle.Quantile(0.99)) + " idle", Ratio: float64(p99) / float64(idle.Quantile(0.99)),
		Target: "p99 ≤ 10 ms", Met: p99 <= 10*time.Millisecond,
		Note: fmt.Sprintf("p50 %s (idle %s); %s transactions sent in the loaded phase over %d tills, %s measured; %s",
			ms(loaded.Quantile(0.5)), ms(idle.Quantile(0.5)), thousands(int64(sent)), len(creds), thousands(int64(loaded.Len())), hubSide(m0, m1))})
	return nil
}
