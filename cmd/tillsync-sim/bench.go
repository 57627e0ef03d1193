package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/internal/chaos"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/internal/perf"
)

func benchCmd() *cobra.Command {
	var (
		o        perf.Options
		run      string
		jsonOut  string
		markdown bool
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hub and the tills against their targets, each figure beside a baseline from the same run",
		Long: `Run tillsync's performance scenarios on this machine and print one table: each
figure beside a baseline measured in the same run, their ratio, the target
and whether it was met (docs/performance.md says what each one measures and
what bounds it).

  confirm      a POS earn at a real agent, its durable commit included,
               against a bare bbolt Update of the same size
  ingest       the hub's live ingest from --terminals tills (the agent's own
               uplink, in this process, over TLS with enrolled credentials)
               against the same tills publishing at QoS 1 to the broker with
               nothing behind it, a transaction a message and in their own
               batches; also with Mosquitto when it is installed
  drain        --drain-stores stores with --drain-queued transactions queued
               each reconnect at once: the time to apply all, exactly once,
               and the live tills' p99 meanwhile against idle
  roundtrip    a till's round trip (queued → hub → ack) under --background
               tx/s of load, against the same idle
  connections  --connections TLS tills on one hub: its memory, and their
               return after a hub restart
  aging        the ledger's commit time at --aging-txs transactions against
               empty, and its file after compaction

The hub runs as its own process (tillsync-hub serve beside this program, or
--bin), on a copy of a coalition provisioned at the start with every till
enrolled. Figures are measurements, not assertions: a missed target is
reported, and the exit status is 0 as long as every scenario ran.`,
		Example: `  tillsync-sim bench                                  # everything, at full scale
  tillsync-sim bench --run ingest,drain --terminals 200 --drain-stores 200
  tillsync-sim bench --run ingest --profile --dir /tmp/bench   # CPU profiles of the hub in /tmp/bench/profiles
  tillsync-sim bench --run ingest --hub-flag=--memory-limit=2GiB   # every hub started with this flag too`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := besideMe(&o.Bin); err != nil {
				return err
			}
			if run != "" {
				o.Run = strings.Split(run, ",")
			}
			for _, s := range o.Run {
				if !slices.Contains(perf.Scenarios, s) {
					return cli.Usagef("--run %q: no scenario %q (have %s)", run, s, strings.Join(perf.Scenarios, ", "))
				}
			}
			for _, v := range []struct {
				name string
				n    int
			}{{"confirms", o.Confirms}, {"terminals", o.Terminals}, {"drain-stores", o.DrainStores}, {"drain-queued", o.DrainQueued}, {"background", o.Background}, {"connections", o.Connections}, {"members", o.Members}, {"aging-txs", o.AgingTxs}} {
				if v.n < 1 {
					return cli.Usagef("--%s %d: want 1 or more", v.name, v.n)
				}
			}
			if o.Duration < time.Second || o.Warmup < 0 {
				return cli.Usagef("--duration %v, --warmup %v: want a duration of 1s or more, and a warmup of 0 or more", o.Duration, o.Warmup)
			}
			for _, hf := range o.HubFlags {
				if !strings.HasPrefix(hf, "--") {
					return cli.Usagef("--hub-flag %q: want a flag of tillsync-hub serve, e.g. --hub-flag=--memory-limit=2GiB", hf)
				}
			}
			if err := chaos.CheckBin(o.Bin); err != nil {
				return err
			}
			keep := o.Dir != ""
			if !keep {
				d, err := os.MkdirTemp("", "tillsync-bench-")
				if err != nil {
					return err
				}
				o.Dir = d
			}
			o.Out = c.OutOrStdout()
			return runBench(c.Context(), o, keep, jsonOut, markdown)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Bin, "bin", "", "directory holding tillsync-hub and tillsync-agent (default: this program's own)")
	f.StringVar(&o.Dir, "dir", "", "keep the run's data, logs and profiles under this dir (default: a temporary dir, removed at the end)")
	f.StringVar(&run, "run", "", "the scenarios to run, comma-separated (default: all): "+strings.Join(perf.Scenarios, ", "))
	f.IntVar(&o.Confirms, "confirms", 2000, "POS earns timed in confirm")
	f.IntVar(&o.Terminals, "terminals", 1000, "tills loading the hub in ingest and roundtrip")
	f.IntVar(&o.DrainStores, "drain-stores", 1000, "stores reconnecting with a backlog in drain")
	f.IntVar(&o.DrainQueued, "drain-queued", 1000, "transactions queued at each of them")
	f.IntVar(&o.Background, "background", 5000, "roundtrip's background load, tx/s")
	f.IntVar(&o.Connections, "connections", 10000, "tills connected at once in connections")
	f.IntVar(&o.Members, "members", perf.DefaultMembers, "members the tills of ingest, drain, roundtrip and connections sell to")
	f.IntVar(&o.AgingTxs, "aging-txs", 10_000_000, "transactions in aging's aged ledger")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each throughput or latency phase is measured")
	f.DurationVar(&o.Warmup, "warmup", 3*time.Second, "how long the load runs before it is measured")
	f.BoolVar(&o.NoMosquitto, "no-mosquitto", false, "leave out the runs with Mosquitto (left out anyway when it is not installed)")
	f.BoolVar(&o.Profile, "profile", false, "capture a CPU profile of the hub during each measured phase (with --dir, to keep them)")
	f.StringArrayVar(&o.HubFlags, "hub-flag", nil, "give this flag to every hub the bench starts (repeatable), e.g. --hub-flag=--memory-limit=2GiB; the rows say so")
	f.StringVar(&jsonOut, "json", "", "also write the table's rows as JSON to this file")
	f.BoolVar(&markdown, "markdown", false, "print the table as Markdown (for docs/performance.md)")
	return c
}

func runBench(ctx context.Context, o perf.Options, keep bool, jsonOut string, markdown bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	started := time.Now()
	rows, err := perf.Run(ctx, o)
	if !keep {
		defer os.RemoveAll(o.Dir)
	} else {
		fmt.Fprintf(o.Out, "data, logs and profiles: %s\n", o.Dir)
	}
	if len(rows) > 0 {
		fmt.Fprintf(o.Out, "\nbench: %d figures in %v\n", len(rows), time.Since(started).Round(time.Second))
		if markdown {
			perf.MarkdownTable(o.Out, rows)
		} else {
			perf.PrintTable(o.Out, rows)
		}
	}
	if jsonOut != "" && len(rows) > 0 {
		data, jerr := json.MarshalIndent(rows, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(jsonOut, append(data, '\n'), 0o644)
		}
		if jerr != nil {
			return jerr
		}
	}
	if err != nil && !keep {
		err = fmt.Errorf("%w (run with --dir to keep the logs)", err)
	} else if err != nil {
		err = fmt.Errorf("%w (logs in %s)", err, filepath.Join(o.Dir))
	}
	return err
}
