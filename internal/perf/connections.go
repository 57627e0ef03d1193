package perf

import (
	"context"
	"fmt"
	"time"
)

// connectionsMemoryLimit is the hub's --memory-limit in scenario 5: a hub
// with 1 GiB to itself, as its operator would run it, leaving room for
// what the limit does not count (the program's own pages).
const connectionsMemoryLimit = "900MiB"

// connections is scenario 5: o.Connections tills connected over TLS to
// one hub: the hub's resident memory, against the same hub with none;
// then the hub is stopped and started again, and every till must be back
// within 30 s, by the agent's own jittered backoff.
func (b *bench) connections(ctx context.Context) error {
	creds := b.coal.Terminals[:b.o.Connections]
	fmt.Fprintf(b.o.Out, "== 5 connections: %d tills over TLS to one hub\n", len(creds))
	h, err := b.hub(ctx, "connections", false, nil, "--memory-limit", connectionsMemoryLimit)
	if err != nil {
		return err
	}
	defer h.Kill()
	idle, _, err := rss(h.Pid())
	if err != nil {
		return err
	}
	f, err := NewFleet(creds, h.MQTT, h.TLS, FleetOptions{Members: b.o.Members})
	if err != nil {
		return err
	}
	f.Start(ctx)
	defer f.Stop()
	took, err := f.WaitConnected(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.o.Out, "  %d connected in %v\n", len(creds), took.Round(time.Millisecond))
	// A sale at every till, so that every connection has carried traffic
	// both ways, then the tills' trickle of sales (a sale a till every 10 s)
	// for a while: the hub's memory as it runs, not as the connection storm
	// left it (the peak says that).
	for _, t := range f.Terms {
		t.Earn(1)
	}
	if err := f.WaitDrained(ctx, 2*time.Minute); err != nil {
		return err
	}
	steadyFor := 2 * b.o.Duration
	trickle, stopTrickle := context.WithTimeout(ctx, steadyFor)
	sendAt(trickle, f, max(1, len(creds)/10))
	stopTrickle()
	now, peak, err := rss(h.Pid())
	if err != nil {
		return err
	}
	b.heapProfile(h, "connections-heap")
	const gib = 1 << 30
	b.row(Row{ID: "5", What: fmt.Sprintf("%s TLS tills on one hub: hub memory (--memory-limit %s)", thousands(int64(len(creds))), connectionsMemoryLimit) + b.hubFlags(),
		Figure: mib(now) + " RSS", Baseline: mib(idle) + " with none", Ratio: float64(now) / float64(idle),
		Target: "≤ 1 GiB", Met: now <= gib,
		Note: fmt.Sprintf("after %v of a sale a till every 10 s; peak %s, in the connection storm; %.1f KiB a connection; all connected in %.1f s from a standing start (every till's first attempt at once)",
			steadyFor, mib(peak), float64(now-idle)/float64(len(creds))/1024, took.Seconds())})

	fmt.Fprintf(b.o.Out, "  restarting the hub\n")
	if err := h.Stop(); err != nil {
		return err
	}
	stopped := time.Now()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	if err := h.Restart(ctx); err != nil {
		return err
	}
	up := time.Now()
	b.profile(h, "reconnect", 15*time.Second)
	back, err := f.WaitConnected(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	for _, t := range f.Terms {
		t.Earn(1)
	}
	if err := f.WaitDrained(ctx, 2*time.Minute); err != nil {
		return err
	}
	b.row(Row{ID: "5b", What: fmt.Sprintf("%s tills back after a hub restart", thousands(int64(len(creds)))),
		Figure: fmt.Sprintf("%.1f s", back.Seconds()), Target: "≤ 30 s", Met: back <= 30*time.Second,
		Note: fmt.Sprintf("from the hub answering again (it was down %.1f s) to the last till connected; then a sale at every till, all acked",
			up.Sub(stopped).Seconds())})
	f.Stop()
	return h.Stop()
}

// mib formats bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
