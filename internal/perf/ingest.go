package perf

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// Scenario 2's shape: the agent's batch size, and how many transactions
// each till keeps queued (a batch's worth: with more, a thousand tills
// queue more than the hub commits in the tills' ack timeout of 10 s, and
// they send it again), as its POS would at a rush. The baselines publish at QoS 1 from the same tills: one
// transaction a message with singleWindow messages in flight (the
// issue's baseline: the broker's rate for transactions sent one by one),
// and the tills' own batches with the same window (the broker's ceiling
// for what the tills actually send).
const (
	ingestBatch  = 100
	ingestWindow = 1
	singleWindow = 20
)

// ingest is scenario 2: the hub's live ingest, durable end to end, from
// o.Terminals tills in this process, against the same tills' batches
// published to the broker with nothing behind it.
func (b *bench) ingest(ctx context.Context, mosq bool) error {
	id, via := "2", "embedded broker"
	if mosq {
		id, via = "2m", "Mosquitto"
	}
	creds := b.coal.Terminals[:b.o.Terminals]
	fmt.Fprintf(b.o.Out, "== %s ingest, %s: %d tills; baselines first: QoS 1 publishes, nothing behind the broker\n", id, via, len(creds))
	single, err := b.ingestBaseline(ctx, creds, mosq, 1, singleWindow)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  baseline, a transaction a message: %s\n", rate(single))
	batched, err := b.ingestBaseline(ctx, creds, mosq, ingestBatch, ingestWindow)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  baseline, the tills' batches of %d: %s\n", ingestBatch, rate(batched))

	var m *Mosquitto
	if mosq {
		if m, err = StartMosquitto(ctx, b.o.Bin, b.o.Mosquitto, b.coal, b.dir("mosquitto-ingest")); err != nil {
			return err
		}
		defer m.Stop()
	}
	h, err := b.hub(ctx, "ingest", false, m)
	if err != nil {
		return err
	}
	defer h.Kill()
	f, err := NewFleet(creds, h.MQTT, h.TLS, FleetOptions{BatchMax: ingestBatch, Members: b.o.Members})
	if err != nil {
		return err
	}
	f.Start(ctx)
	defer f.Stop()
	took, err := f.WaitConnected(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  %d tills connected in %v; loading for %v, measuring for %v\n", len(creds), took.Round(time.Millisecond), b.o.Warmup, b.o.Duration)
	feedCtx, stopFeed := context.WithCancel(ctx)
	var feed sync.WaitGroup
	feed.Go(func() { keepQueued(feedCtx, f, ingestBatch*ingestWindow) })
	if err := sleep(ctx, b.o.Warmup); err != nil {
		stopFeed()
		return err
	}
	b.profile(h, "ingest-"+id, b.o.Duration)
	a0, t0 := f.Acked.Load(), time.Now()
	sleep(ctx, b.o.Duration)
	got := float64(f.Acked.Load()-a0) / time.Since(t0).Seconds()
	stopFeed()
	feed.Wait()
	if err := f.WaitDrained(ctx, 2*time.Minute); err != nil {
		return err
	}
	st, err := h.Stats(ctx)
	if err != nil {
		return err
	}
	f.Stop()
	if err := h.Stop(); err != nil {
		return err
	}
	applied, dups, rejected, _ := f.Answers()
	ratio := got / single
	b.row(Row{ID: id, What: fmt.Sprintf("live ingest, durable, %d tills, %s%s", len(creds), via, b.setup()), Figure: rate(got), Baseline: rate(single) + " QoS 1, a tx a message", Ratio: ratio,
		Target: "≥ 50,000 tx/s and ≥ 0.70×", Met: got >= 50000 && ratio >= 0.7,
		Note: fmt.Sprintf("%s applied in all, %d duplicates, %d rejected; the hub: %s group commits, %d batches dropped at a full queue, %.0f transactions a batch",
			thousands(applied), dups, rejected, thousands(st.Commits), st.Dropped, float64(st.Applied+st.Duplicates)/float64(max(1, st.Batches)))})
	b.row(Row{ID: id + "c", What: "the same, against the broker's ceiling for the tills' batches", Figure: rate(got), Baseline: rate(batched) + " QoS 1, batches of 100",
		Ratio: got / batched, Target: "none: what the ledger path costs", NoTarget: true})
	return nil
}

// ingestBaseline measures a baseline of scenario 2: batch transactions a
// message, window messages in flight at each till.
func (b *bench) ingestBaseline(ctx context.Context, creds []Creds, mosq bool, batch, window int) (float64, error) {
	var broker string
	var tlsCfg *tls.Config
	var stop func() error
	if mosq {
		m, err := StartMosquitto(ctx, b.o.Bin, b.o.Mosquitto, b.coal, b.dir("mosquitto-baseline"))
		if err != nil {
			return 0, err
		}
		stop = m.Stop
		if broker, tlsCfg, err = m.Dial(); err != nil {
			m.Stop()
			return 0, err
		}
	} else {
		h, err := b.hub(ctx, "ingest-baseline", true, nil)
		if err != nil {
			return 0, err
		}
		stop, broker, tlsCfg = h.Stop, h.MQTT, h.TLS
	}
	defer stop()
	p, err := ConnectPublishers(ctx, creds, broker, tlsCfg, batch)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	p.Start(ctx, window)
	if err := sleep(ctx, b.o.Warmup); err != nil {
		return 0, err
	}
	a0, t0 := p.PubAcked.Load(), time.Now()
	if err := sleep(ctx, b.o.Duration); err != nil {
		return 0, err
	}
	return float64(p.PubAcked.Load()-a0) / time.Since(t0).Seconds(), nil
}

// keepQueued keeps n transactions queued at every till of f until ctx is
// done: a POS at a rush, as fast as the hub answers.
func keepQueued(ctx context.Context, f *Fleet, n int) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		for _, term := range f.Terms {
			if q := term.Out.Len(); q < n {
				term.Earn(n - q)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
