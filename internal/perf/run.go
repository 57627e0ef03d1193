package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/tillsync/tillsync/internal/proc"
)

// Scenarios are the bench's scenarios by name, in the order they run.
var Scenarios = []string{"confirm", "ingest", "drain", "roundtrip", "connections", "aging"}

// Options configure a bench run. Zero values take the defaults of a full
// run (the scales).
type Options struct {
	// Bin holds tillsync-hub and tillsync-agent.
	Bin string
	// Dir is the run's working dir (data dirs, logs, profiles); kept.
	Dir string
	// Out gets progress and the table.
	Out io.Writer
	// Run names the scenarios to run; empty: all.
	Run []string
	// Mosquitto is the mosquitto program for the side-by-side runs; empty:
	// found on PATH, and those runs are left out when there is none.
	Mosquitto string
	// NoMosquitto leaves out the side-by-side runs.
	NoMosquitto bool
	// Profile captures a CPU profile of the hub during each measured
	// phase, into Dir/profiles.
	Profile bool

	// Confirms is how many POS earns scenario 1 times (default 2,000).
	Confirms int
	// Terminals is how many tills load the hub in scenarios 2 and 4
	// (default 1,000).
	Terminals int
	// Duration is how long a throughput or latency phase is measured
	// (default 10s), after Warmup (default 3s).
	Duration, Warmup time.Duration
	// DrainStores and DrainQueued are scenario 3's backlog (default 1,000
	// stores with 1,000 queued each).
	DrainStores, DrainQueued int
	// Background is scenario 4's load (default 5,000 tx/s).
	Background int
	// Connections is how many tills scenario 5 connects (default 10,000).
	Connections int
	// Members is how many members the tills of scenarios 2 to 5 sell to
	// (default DefaultMembers); scenario 6 fills its ledger with its own.
	Members int
	// HubFlags are given to every hub the bench starts, after its own
	// (e.g. --memory-limit=2GiB), to measure a hub set up otherwise than the
	// default; the rows of scenarios 2 to 5 say so.
	HubFlags []string
	// AgingTxs is the size of scenario 6's aged ledger (default 10
	// million); AgingProbes how many probe commits it times at each age
	// (default 300).
	AgingTxs, AgingProbes int
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Confirms, 2000)
	def(&o.Terminals, 1000)
	def(&o.DrainStores, 1000)
	def(&o.DrainQueued, 1000)
	def(&o.Background, 5000)
	def(&o.Connections, 10000)
	def(&o.Members, DefaultMembers)
	def(&o.AgingTxs, 10_000_000)
	def(&o.AgingProbes, 300)
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 3 * time.Second
	}
	if len(o.Run) == 0 {
		o.Run = Scenarios
	}
}

// setup is what a row of scenarios 2 to 4 says of how the run differs
// from the defaults (the tills' members, --hub-flag): nothing for the
// defaults, which the docs give.
func (b *bench) setup() string {
	s := ""
	if b.o.Members != DefaultMembers {
		s = ", members from " + thousands(int64(b.o.Members))
	}
	return s + b.hubFlags()
}

// hubFlags is what a row says of HubFlags.
func (b *bench) hubFlags() string {
	if len(b.o.HubFlags) == 0 {
		return ""
	}
	return ", hub " + strings.Join(b.o.HubFlags, " ")
}

// bench is one run.
type bench struct {
	o    Options
	coal *Coalition
	rows []Row
	n    int // data dirs made
}

// Run runs the scenarios and returns the table's rows.
func Run(ctx context.Context, o Options) ([]Row, error) {
	o.defaults()
	for _, s := range o.Run {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("perf: no scenario %q (have %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if !o.NoMosquitto && o.Mosquitto == "" {
		o.Mosquitto, _ = proc.FindMosquitto()
	}
	b := &bench{o: o}
	stores := 1
	for _, s := range o.Run {
		switch s {
		case "ingest", "roundtrip":
			stores = max(stores, o.Terminals)
		case "drain":
			stores = max(stores, o.DrainStores+liveTills)
		case "connections":
			stores = max(stores, o.Connections)
		}
	}
	fmt.Fprintf(o.Out, "provisioning a coalition of %d stores, every till enrolled\n", stores)
	start := time.Now()
	var err error
	if b.coal, err = Provision(filepath.Join(o.Dir, "coalition"), stores, o.Out); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "  done in %v\n", time.Since(start).Round(100*time.Millisecond))
	if len(o.HubFlags) > 0 {
		fmt.Fprintf(o.Out, "every hub runs with %s\n", strings.Join(o.HubFlags, " "))
	}
	for _, s := range Scenarios {
		if !slices.Contains(o.Run, s) {
			continue
		}
		var err error
		switch s {
		case "confirm":
			err = b.confirm(ctx)
		case "ingest":
			err = b.ingest(ctx, false)
			if err == nil && o.Mosquitto != "" {
				err = b.ingest(ctx, true)
			}
		case "drain":
			err = b.drain(ctx, false)
			if err == nil && o.Mosquitto != "" {
				err = b.drain(ctx, true)
			}
		case "roundtrip":
			err = b.roundtrip(ctx)
		case "connections":
			err = b.connections(ctx)
		case "aging":
			err = b.aging(ctx)
		}
		if err != nil {
			return b.rows, fmt.Errorf("perf: scenario %s: %w", s, err)
		}
	}
	return b.rows, nil
}

// liveTills are the tills that send live traffic beside scenario 3's backlog.
const liveTills = 20

// row adds r and prints it.
func (b *bench) row(r Row) {
	b.rows = append(b.rows, r)
	met := "met"
	switch {
	case r.NoTarget:
		met = "no target"
	case !r.Met:
		met = "NOT met"
	}
	base := ""
	if r.Baseline != "" {
		base = " (baseline " + r.Baseline
		if r.Ratio != 0 {
			base += fmt.Sprintf(", %.2f×", r.Ratio)
		}
		base += ")"
	}
	fmt.Fprintf(b.o.Out, "  => %s %s: %s%s; target %s: %s\n", r.ID, r.What, r.Figure, base, r.Target, met)
}

// dir returns a new data dir's path for what.
func (b *bench) dir(what string) string {
	b.n++
	return filepath.Join(b.o.Dir, fmt.Sprintf("%02d-%s", b.n, what))
}

// hub starts a hub for a scenario; args are more flags for serve.
func (b *bench) hub(ctx context.Context, what string, brokerOnly bool, m *Mosquitto, args ...string) (*Hub, error) {
	args = append(args, b.o.HubFlags...)
	return StartHub(ctx, HubOptions{Bin: b.o.Bin, Coalition: b.coal, Dir: b.dir(what), BrokerOnly: brokerOnly, Mosquitto: m, Pprof: b.o.Profile, Args: args})
}

// profile captures the hub's CPU profile for d into
// Dir/profiles/name.pprof, and this process's (the load generator's) into
// name-generator.pprof, when asked to; it returns at once, the captures
// run on.
func (b *bench) profile(h *Hub, name string, d time.Duration) {
	if !b.o.Profile || h.Pprof == "" {
		return
	}
	if f, err := os.Create(b.profilePath(name + "-generator.pprof")); err == nil {
		if err := pprof.StartCPUProfile(f); err == nil {
			time.AfterFunc(d, func() { pprof.StopCPUProfile(); f.Close() })
		} else {
			f.Close()
		}
	}
	go func() {
		if err := b.savePprof(h, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), name+".pprof"); err != nil {
			fmt.Fprintf(b.o.Out, "  profile %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(b.o.Out, "  profile: %s\n", b.profilePath(name+".pprof"))
	}()
}

// heapProfile saves the hub's heap profile into Dir/profiles/name.pprof,
// when asked to; and as text, with the runtime's memory statistics
// (stacks, heap in use and held) at its end, and its goroutines.
func (b *bench) heapProfile(h *Hub, name string) {
	if !b.o.Profile || h.Pprof == "" {
		return
	}
	for _, p := range []struct{ path, file string }{{"heap", name + ".pprof"}, {"heap?debug=1", name + ".txt"}, {"goroutine?debug=1", name + "-goroutines.txt"}} {
		if err := b.savePprof(h, p.path, p.file); err != nil {
			fmt.Fprintf(b.o.Out, "  heap profile %s: %v\n", name, err)
			return
		}
	}
}

// profilePath is where the profile file goes, in Dir/profiles (made when missing).
func (b *bench) profilePath(file string) string {
	dir := filepath.Join(b.o.Dir, "profiles")
	os.MkdirAll(dir, 0o700)
	return filepath.Join(dir, file)
}

// savePprof saves what the hub's profiler answers at path into file.
func (b *bench) savePprof(h *Hub, path, file string) error {
	resp, err := http.Get("http://" + h.Pprof + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", path, resp.Status)
	}
	f, err := os.Create(b.profilePath(file))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// stopAll stops what a scenario started, in order, and joins their errors.
func stopAll(stops ...func() error) error {
	var errs []error
	for _, s := range stops {
		if s != nil {
			errs = append(errs, s())
		}
	}
	return errors.Join(errs...)
}
