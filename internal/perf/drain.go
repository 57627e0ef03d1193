package perf

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// liveRate is what each of scenario 3's live tills sends, tx/s.
const liveRate = 10

// drain is scenario 3: o.DrainStores stores, o.DrainQueued transactions
// queued at each, reconnect at once (a region back from an outage): the
// time until the hub has applied all of them, exactly once, and the
// round trip of liveTills tills selling meanwhile against the same idle.
func (b *bench) drain(ctx context.Context, mosq bool) error {
	id, via := "3", "embedded broker"
	if mosq {
		id, via = "3m", "Mosquitto"
	}
	backlog := b.coal.Terminals[:b.o.DrainStores]
	live := b.coal.Terminals[b.o.DrainStores : b.o.DrainStores+liveTills]
	total := len(backlog) * b.o.DrainQueued
	fmt.Fprintf(b.o.Out, "== %s backlog drain, %s: %d stores × %d queued, %d live tills at %d tx/s each\n", id, via, len(backlog), b.o.DrainQueued, len(live), liveRate)
	var m *Mosquitto
	var err error
	if mosq {
		if m, err = StartMosquitto(ctx, b.o.Bin, b.o.Mosquitto, b.coal, b.dir("mosquitto-drain")); err != nil {
			return err
		}
		defer m.Stop()
	}
	h, err := b.hub(ctx, "drain", false, m)
	if err != nil {
		return err
	}
	defer h.Kill()
	lf, err := NewFleet(live, h.MQTT, h.TLS, FleetOptions{Members: b.o.Members})
	if err != nil {
		return err
	}
	lf.Start(ctx)
	defer lf.Stop()
	if _, err := lf.WaitConnected(ctx, time.Minute); err != nil {
		return err
	}
	liveCtx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	var wg sync.WaitGroup
	liveSent := 0
	wg.Go(func() { liveSent = sendAt(liveCtx, lf, liveRate*len(live)) })
	if err := sleep(ctx, b.o.Warmup); err != nil {
		return err
	}
	var idle, during Samples
	lf.Measure(&idle)
	if err := sleep(ctx, b.o.Duration); err != nil {
		return err
	}
	lf.Measure(&during)

	bf, err := NewFleet(backlog, h.MQTT, h.TLS, FleetOptions{Members: b.o.Members})
	if err != nil {
		return err
	}
	for _, t := range bf.Terms {
		t.Earn(b.o.DrainQueued)
	}
	b.profile(h, "drain-"+id, 10*time.Second)
	m0, err := h.Metrics(ctx, metricAck, metricCommit)
	if err != nil {
		return err
	}
	start := time.Now()
	bf.Start(ctx)
	defer bf.Stop()
	var took time.Duration
	lastReport := time.Now()
	for {
		q := bf.Queued()
		if q == 0 {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("%d of %d transactions still unanswered after 10 minutes", q, total)
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(b.o.Out, "  %v: %s of %s applied\n", time.Since(start).Round(time.Second), thousands(int64(total-q)), thousands(int64(total)))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	lf.Measure(nil)
	m1, err := h.Metrics(ctx, metricAck, metricCommit)
	if err != nil {
		return err
	}
	stopLive()
	wg.Wait()
	if err := lf.WaitDrained(ctx, time.Minute); err != nil {
		return err
	}
	st, err := h.Stats(ctx)
	if err != nil {
		return err
	}
	bf.Stop()
	lf.Stop()
	if err := h.Stop(); err != nil {
		return err
	}
	// Exactly once: the ledger holds every transaction the tills queued,
	// one record each, and the tills were answered for every one.
	l, err := h.Ledger()
	if err != nil {
		return err
	}
	n, err := l.TransactionCount()
	l.Close()
	if err != nil {
		return err
	}
	want := int64(total + liveSent)
	ba, bd, br, _ := bf.Answers()
	la, ld, lr, _ := lf.Answers()
	if n != want || br+lr != 0 || ba+bd+la+ld != want {
		return fmt.Errorf("not exactly once: the tills queued %d, the ledger holds %d; answered applied %d, duplicate %d, rejected %d",
			want, n, ba+la, bd+ld, br+lr)
	}
	b.row(Row{ID: id, What: fmt.Sprintf("backlog drain, %d stores × %d, %s%s", len(backlog), b.o.DrainQueued, via, b.setup()),
		Figure: fmt.Sprintf("%.1f s (%s)", took.Seconds(), rate(float64(total)/took.Seconds())), Target: "≤ 10 s, exactly once", Met: took <= 10*time.Second,
		Note: fmt.Sprintf("ledger holds %s transactions = queued, each once; %s answered duplicate (re-sent after %s without an ack); %s batches dropped at the hub's full queue; %s group commits",
			thousands(n), thousands(bd+ld), "10s", thousands(st.Dropped), thousands(st.Commits))})
	dp, ip := during.Quantile(0.99), idle.Quantile(0.99)
	ratio := float64(dp) / float64(ip)
	b.row(Row{ID: id + "b", What: "live round trip during that drain (p99)", Figure: "p99 " + ms(dp), Baseline: "p99 " + ms(ip) + " idle", Ratio: ratio,
		Target: "≤ 3× idle", Met: ratio <= 3,
		Note: fmt.Sprintf("p50 %s (idle %s); %s live transactions during the drain; %s", ms(during.Quantile(0.5)), ms(idle.Quantile(0.5)), thousands(int64(during.Len())), hubSide(m0, m1))})
	return nil
}
