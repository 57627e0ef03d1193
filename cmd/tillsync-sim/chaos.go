package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/internal/chaos"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/internal/proc"
)

type chaosOptions struct {
	bin, dir, broker, mosquitto    string
	seed, seedBase                 uint64
	seeds, tills, members, workers int
	duration                       time.Duration
	quiet                          bool
}

func chaosCmd() *cobra.Command {
	var o chaosOptions
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Run the hub and tills under seeded faults and check that nothing accepted was lost or applied twice",
		Long: `Run a real hub and real tills (agents) on loopback under POS traffic while a
seeded schedule of faults hits them: kill -9 of agents mid-burst, kill -9 of
the hub, the hub killed between a ledger commit and its acks, broker
restarts, partitions, stalled lines, delayed, lost and duplicated MQTT
packets (through a proxy of ours on each till's line), and till clocks up to
a day off. Then everything heals, every outbox must drain within 60s, and a
checker holds the ledger against every answer the POS got:

  - every earn and return accepted, and every burn approved, is in the
    ledger exactly once, for the points the POS was told;
  - every burn declined has no effect;
  - nothing is in the ledger that no till accepted;
  - every balance is what the tills' answers add up to, equals the
    journal's replay, and the hash chain verifies.

With --broker mosquitto the broker is a Mosquitto of its own (the mosquitto
binary on PATH or in /usr/sbin), set up by tillsync-hub broker-config, and a
broker restart is Mosquitto's; by default it is the hub's embedded broker,
and a broker restart is the hub's.

Each seed prints its schedule first; the same seed (--seed N) replays the
same schedule and the same POS requests from each worker (the timing of real
processes, such as which packet a loss hits, does not replay). A seed that fails keeps its
data and logs and prints the command that replays it.`,
		Example: `  tillsync-sim chaos                    # seeds 1-3, 20s each
  tillsync-sim chaos --seeds 50 --seed-base 1000
  tillsync-sim chaos --seed 17 --dir /tmp/chaos-17   # replay seed 17, keep its data
  tillsync-sim chaos --broker mosquitto --seeds 2`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := besideMe(&o.bin); err != nil {
				return err
			}
			if c.Flags().Changed("seed") {
				if c.Flags().Changed("seeds") || c.Flags().Changed("seed-base") {
					return cli.Usagef("--seed runs one seed: leave out --seeds and --seed-base")
				}
				o.seedBase, o.seeds = o.seed, 1
			}
			switch {
			case o.seeds < 1:
				return cli.Usagef("--seeds %d: want 1 or more", o.seeds)
			case o.tills < 1 || o.tills > chaos.MaxTills:
				return cli.Usagef("--tills %d: want 1 to %d", o.tills, chaos.MaxTills)
			case o.members < 1 || o.members > chaos.MaxMembers:
				return cli.Usagef("--members %d: want 1 to %d", o.members, chaos.MaxMembers)
			case o.workers < 1 || o.workers > chaos.MaxWorkers:
				return cli.Usagef("--workers %d: want 1 to %d", o.workers, chaos.MaxWorkers)
			case o.duration < chaos.MinDuration:
				return cli.Usagef("--duration %v: want %v or more", o.duration, chaos.MinDuration)
			}
			switch o.broker {
			case "embedded":
			case "mosquitto":
				p, err := proc.FindMosquitto()
				if err != nil {
					return fmt.Errorf("--broker mosquitto: %w; install Mosquitto (apt-get install mosquitto, brew install mosquitto) or use --broker embedded", err)
				}
				o.mosquitto = p
			default:
				return cli.Usagef("--broker %q: want embedded (the hub's own) or mosquitto", o.broker)
			}
			if err := chaos.CheckBin(o.bin); err != nil {
				return err
			}
			return runChaos(c.Context(), c.OutOrStdout(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.bin, "bin", "", "directory holding tillsync-hub and tillsync-agent (default: this program's own)")
	f.StringVar(&o.dir, "dir", "", "keep each seed's data and logs under this dir (default: a temporary dir, removed when the seed passes)")
	f.Uint64Var(&o.seed, "seed", 0, "run this one seed (replays its schedule)")
	f.IntVar(&o.seeds, "seeds", 3, "how many seeds to run, from --seed-base on")
	f.Uint64Var(&o.seedBase, "seed-base", 1, "the first seed")
	f.IntVar(&o.tills, "tills", 8, "tills (agents) per run, two to a store")
	f.IntVar(&o.members, "members", 30, "members the POS traffic serves")
	f.IntVar(&o.workers, "workers", 2, "POS workers sending to each till at once")
	f.DurationVar(&o.duration, "duration", 20*time.Second, "how long the traffic and the faults run, per seed (5s or more)")
	f.StringVar(&o.broker, "broker", "embedded", "the broker: embedded (the hub's own) or mosquitto")
	f.BoolVar(&o.quiet, "quiet", false, "print a line per seed instead of each schedule and fault")
	return c
}

func runChaos(ctx context.Context, out io.Writer, o chaosOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var (
		failed                  []uint64
		faults, ops, txs, viols int
		kinds                   = map[chaos.Kind]int{}
		fired                   int
		maxDrain                time.Duration
	)
	started := time.Now()
	for i := range o.seeds {
		seed := o.seedBase + uint64(i)
		dir := ""
		if o.dir != "" {
			dir = filepath.Join(o.dir, fmt.Sprintf("seed-%d", seed))
		} else {
			d, err := os.MkdirTemp("", fmt.Sprintf("tillsync-chaos-%d-", seed))
			if err != nil {
				return err
			}
			dir = d
		}
		progress := out
		if o.quiet {
			progress = io.Discard
		}
		fmt.Fprintf(out, "== seed %d (%d of %d)\n", seed, i+1, o.seeds)
		res, err := chaos.Run(ctx, chaos.Options{Bin: o.bin, Dir: dir, Seed: seed, Tills: o.tills, Members: o.members,
			Workers: o.workers, Duration: o.duration, Mosquitto: o.mosquitto, Out: progress})
		if err != nil {
			return fmt.Errorf("seed %d could not run: %w (its data and logs are in %s)", seed, err, dir)
		}
		faults += res.Faults()
		for k, n := range res.Injected {
			kinds[k] += n
		}
		fired += res.CrashesFired
		ops += res.Report.Ops
		txs += res.Report.LedgerTxs
		viols += len(res.Report.Violations)
		maxDrain = max(maxDrain, res.Drain)
		r := res.Report
		skipped := ""
		if res.Skipped > 0 {
			skipped = fmt.Sprintf(" (%d more left out: the load ended before their turn)", res.Skipped)
		}
		fmt.Fprintf(out, "seed %d: %d faults%s, %d POS requests (%d accepted, %d approved of which %d offline, %d declined, %d refused), %d ledger transactions and %d journal entries checked, drained in %.1fs, packets %d (lost %d, doubled %d): ",
			seed, res.Faults(), skipped, r.Ops, r.Accepted, r.Approved, r.Offline, r.Declined, r.Refused, r.LedgerTxs, r.Entries, res.Drain.Seconds(), res.Proxy.Packets, res.Proxy.Dropped, res.Proxy.Duplicated)
		if res.OK() {
			fmt.Fprintln(out, "OK")
			if o.dir == "" {
				os.RemoveAll(dir)
			}
			continue
		}
		failed = append(failed, seed)
		fmt.Fprintf(out, "FAILED, %d violations:\n", len(r.Violations))
		for _, v := range r.Violations {
			fmt.Fprintf(out, "  - %s\n", v)
		}
		fmt.Fprintf(out, "  data and logs: %s\n  replay: tillsync-sim chaos --seed %d --broker %s --tills %d --duration %v\n", dir, seed, o.broker, o.tills, o.duration)
	}
	var kl []string
	for _, k := range chaos.Kinds {
		if kinds[k] > 0 {
			kl = append(kl, fmt.Sprintf("%s %d", k, kinds[k]))
		}
	}
	fmt.Fprintf(out, "\nchaos (%s broker): %s in %v, %d faults (%s; hub killed between commit and ack %d times), %d POS requests, %d ledger transactions checked, longest drain %.1fs, %s\n",
		o.broker, plural(o.seeds, "seed"), time.Since(started).Round(time.Second), faults, strings.Join(kl, ", "), fired, ops, txs, maxDrain.Seconds(), plural(viols, "violation"))
	if len(failed) > 0 {
		replay := "tillsync-sim chaos --seed N"
		if o.broker != "embedded" {
			replay += " --broker " + o.broker
		}
		return fmt.Errorf("chaos: seeds %v failed; replay one with %s", failed, replay)
	}
	return nil
}

func crashLoopCmd() *cobra.Command {
	var (
		bin, dir       string
		seed           uint64
		kills, workers int
		maxUp          time.Duration
	)
	c := &cobra.Command{
		Use:   "crashloop",
		Short: "Kill a till's agent with kill -9 over and over in the middle of POS traffic; check that nothing accepted is lost",
		Long: `Run a real hub and one till (agent) on loopback with POS workers sending earns,
burns and returns, and kill the agent with SIGKILL --kills times, each at a
random moment up to --max-up after it came up. After every kill the outbox
file must pass bbolt's consistency check (opened read-only); then the agent
starts again and the POS re-sends, with the same Idempotency-Key, whatever
got no answer. At the end every request must have its answer, the outbox
must drain within 60s, and the ledger must hold every accepted transaction
exactly once and nothing else (the same checker as chaos).`,
		Example: `  tillsync-sim crashloop                  # 1000 kills, a few minutes
  tillsync-sim crashloop --kills 100 --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := besideMe(&bin); err != nil {
				return err
			}
			switch {
			case kills < 1:
				return cli.Usagef("--kills %d: want 1 or more", kills)
			case workers < 1 || workers > 64:
				return cli.Usagef("--workers %d: want 1 to 64", workers)
			case maxUp < 10*time.Millisecond:
				return cli.Usagef("--max-up %v: want 10ms or more", maxUp)
			}
			if err := chaos.CheckBin(bin); err != nil {
				return err
			}
			keep := dir != ""
			if !keep {
				d, err := os.MkdirTemp("", "tillsync-crashloop-")
				if err != nil {
					return err
				}
				dir = d
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "crash loop: %d kills of the agent, seed %d, %d POS workers; data and logs in %s\n", kills, seed, workers, dir)
			res, err := chaos.CrashLoop(c.Context(), chaos.CrashOptions{Bin: bin, Dir: dir, Seed: seed, Kills: kills, Workers: workers, MaxUp: maxUp, Out: out})
			if err != nil {
				return fmt.Errorf("%w (data and logs in %s)", err, dir)
			}
			r := res.Report
			fmt.Fprintf(out, "crash loop: %d kills in %v; outbox checked clean after %d (at most %d queued at a kill); %d POS requests (%d accepted, %d approved of which %d offline, %d declined, %d refused); %d ledger transactions and %d journal entries checked; drained in %.1fs after the last restart; %d violations\n",
				res.Kills, res.Elapsed.Round(time.Second), res.Clean, res.MaxQueued, r.Ops, r.Accepted, r.Approved, r.Offline, r.Declined, r.Refused, r.LedgerTxs, r.Entries, res.Drain.Seconds(), len(r.Violations))
			if !res.OK() {
				for _, v := range r.Violations {
					fmt.Fprintf(out, "  - %s\n", v)
				}
				return fmt.Errorf("crash loop FAILED (seed %d); data and logs in %s", seed, dir)
			}
			if !keep {
				os.RemoveAll(dir)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&bin, "bin", "", "directory holding tillsync-hub and tillsync-agent (default: this program's own)")
	f.StringVar(&dir, "dir", "", "keep the data and logs here (default: a temporary dir, removed when the loop passes)")
	f.Uint64Var(&seed, "seed", 1, "chooses the moments of the kills and the POS traffic")
	f.IntVar(&kills, "kills", 1000, "how many times to kill the agent")
	f.IntVar(&workers, "workers", 4, "POS workers sending to the till at once")
	f.DurationVar(&maxUp, "max-up", 300*time.Millisecond, "the longest the agent runs before its next kill")
	return c
}

// plural is "1 seed", "2 seeds".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
