package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/internal/proc"
)

// Options shape one run of the harness.
type Options struct {
	// Bin is the directory holding tillsync-hub and tillsync-agent.
	Bin string
	// Dir is where the run keeps the hub's and the tills' data and logs.
	Dir string
	// Seed chooses the schedule and the POS traffic.
	Seed uint64
	// Tills is how many tills (agents) run, two to a store; default 8.
	Tills int
	// Members is how many members the POS traffic serves; default 30.
	Members int
	// Workers is how many POS workers send requests to each till at
	// once; default 2.
	Workers int
	// Duration is how long the load and the faults run; default 20s, at
	// least 5s.
	Duration time.Duration
	// DrainWithin is how long after healing every outbox must be empty
	// and every POS request answered; default 60s.
	DrainWithin time.Duration
	// Mosquitto, when set, is the path of a mosquitto binary: the run's
	// broker is then a Mosquitto set up by tillsync-hub broker-config, the
	// hub reaches it as an external broker, and a broker restart is
	// Mosquitto's (kill -9, started again). Empty: the hub's embedded
	// broker, whose restart is the hub's.
	Mosquitto string
	// Out receives progress: the schedule, each fault as it is done, the
	// result. Nil: nothing.
	Out io.Writer
}

// The bounds of Options.
const (
	MaxTills    = 64
	MaxMembers  = 10_000
	MaxWorkers  = 16
	MinDuration = 5 * time.Second
)

// DefaultDrainWithin is how soon after healing every outbox must drain.
const DefaultDrainWithin = 60 * time.Second

func (o *Options) defaults() error {
	if o.Tills == 0 {
		o.Tills = 8
	}
	if o.Members == 0 {
		o.Members = 30
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.DrainWithin == 0 {
		o.DrainWithin = DefaultDrainWithin
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	switch {
	case o.Tills < 1 || o.Tills > MaxTills:
		return fmt.Errorf("chaos: %d tills: want 1 to %d", o.Tills, MaxTills)
	case o.Members < 1 || o.Members > MaxMembers:
		return fmt.Errorf("chaos: %d members: want 1 to %d", o.Members, MaxMembers)
	case o.Workers < 1 || o.Workers > MaxWorkers:
		return fmt.Errorf("chaos: %d workers a till: want 1 to %d", o.Workers, MaxWorkers)
	case o.Duration < MinDuration:
		return fmt.Errorf("chaos: duration %v: want %v or more", o.Duration, MinDuration)
	case o.Bin == "" || o.Dir == "":
		return errors.New("chaos: Bin and Dir are required")
	}
	return CheckBin(o.Bin)
}

// CheckBin reports whether dir holds the programs a run starts.
func CheckBin(dir string) error {
	for _, b := range []string{"tillsync-hub", "tillsync-agent"} {
		if _, err := os.Stat(filepath.Join(dir, proc.Exe(b))); err != nil {
			return fmt.Errorf("%s not found in %s; build it first (make build) or point --bin at it", b, dir)
		}
	}
	return nil
}

// Result is what one run found.
type Result struct {
	Seed     uint64       `json:"seed"`
	Schedule Schedule     `json:"-"`
	Injected map[Kind]int `json:"injected"` // faults carried out, by kind
	// CrashesFired counts the crash-after-commit faults whose hub died at
	// its commit (one that saw too few commits in its window did not).
	CrashesFired int `json:"crashes_fired"`
	// Skipped counts the faults of the schedule left out because the load
	// had ended before their turn: the hub's faults go one after another,
	// and a slow one (a hub that takes long to reach its fatal commit)
	// pushes the next ones back.
	Skipped int `json:"skipped"`
	// Drain is how long after healing every POS request had its answer and
	// every till's outbox was empty.
	Drain  time.Duration `json:"drain_ns"`
	Proxy  ProxyStats    `json:"proxy"`
	Report Report        `json:"report"`
	Dir    string        `json:"dir"`
}

// OK reports whether the run found no violation.
func (r *Result) OK() bool { return len(r.Report.Violations) == 0 }

// Faults is how many faults were carried out.
func (r *Result) Faults() int {
	n := 0
	for _, c := range r.Injected {
		n += c
	}
	return n
}

// run is one run in progress.
type run struct {
	o        Options
	c        *cluster
	sched    Schedule
	out      io.Writer
	outMu    sync.Mutex
	start    time.Time
	injected sync.Map // Kind -> *atomic.Int64
	fired    atomic.Int64
	skipped  atomic.Int64
	hubMu    sync.Mutex // one hub fault at a time, and healing after them
	slowMu   sync.Mutex
	slow     []error // processes that did not stop in time on SIGTERM
}

// stopped notes a process that did not stop in time; it is a violation.
func (r *run) stopped(err error) {
	if err == nil {
		return
	}
	r.slowMu.Lock()
	r.slow = append(r.slow, err)
	r.slowMu.Unlock()
}

func (r *run) say(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.out, format+"\n", args...)
}

func (r *run) count(k Kind) {
	v, _ := r.injected.LoadOrStore(k, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Run runs one seed: a hub and o.Tills agents on loopback, each till's
// line through a Proxy, POS traffic on every till while the seed's
// schedule of faults is carried out, then healing, draining, and the
// checker on the full history. An error means the run could not be
// carried out (a binary missing, a port taken); violations are in the
// Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &run{o: o, out: o.Out, sched: Plan(o.Seed, o.Tills, o.Duration)}
	res := &Result{Seed: o.Seed, Schedule: r.sched, Injected: map[Kind]int{}, Dir: o.Dir}
	r.say("%s", strings.TrimRight(r.sched.String(), "\n"))
	if err := r.setup(ctx); err != nil {
		if r.c != nil {
			r.c.stopAll()
		}
		return nil, err
	}
	defer r.c.stopAll() // for the early returns; a second stop does nothing

	// The load runs for Duration while the faults happen; then new
	// requests stop, the faults are lifted, and every request still
	// unanswered keeps being sent until it has its answer.
	l := newLoad(o.Members)
	loadCtx, stopLoad := context.WithTimeout(ctx, o.Duration)
	defer stopLoad()
	answerCtx, stopAnswers := context.WithCancel(ctx)
	defer stopAnswers()
	var workers sync.WaitGroup
	r.start = time.Now()
	for _, t := range r.c.tills {
		for w := range o.Workers {
			workers.Go(func() { l.run(loadCtx, answerCtx, t, w, o.Seed) })
		}
	}
	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	var faults sync.WaitGroup
	r.inject(faultCtx, &faults)
	<-loadCtx.Done()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	r.say("  %7.2fs healing: faults lifted, every process up, POS traffic stopped", time.Since(r.start).Seconds())
	stopFaults()
	faults.Wait()
	healed := time.Now()
	if err := r.heal(ctx); err != nil {
		return nil, err
	}
	rep, drain, err := r.finish(ctx, l, healed, &workers, stopAnswers)
	if err != nil {
		return nil, err
	}
	res.Report, res.Drain = rep, drain
	for _, k := range Kinds {
		if v, ok := r.injected.Load(k); ok {
			res.Injected[k] = int(v.(*atomic.Int64).Load())
		}
	}
	res.CrashesFired = int(r.fired.Load())
	res.Skipped = int(r.skipped.Load())
	for _, t := range r.c.tills {
		s := t.proxy.Stats()
		res.Proxy.Conns += s.Conns
		res.Proxy.Refused += s.Refused
		res.Proxy.Cut += s.Cut
		res.Proxy.Packets += s.Packets
		res.Proxy.Dropped += s.Dropped
		res.Proxy.Duplicated += s.Duplicated
	}
	return res, nil
}

// finish waits, from the moment the faults ended, until every POS request
// has its answer and every outbox is empty (drain), stops the processes,
// and holds the ledger against every answer (Check). A drain that took
// too long and a process that did not stop in time are violations too.
func (r *run) finish(ctx context.Context, l *load, from time.Time, workers *sync.WaitGroup, stopAnswers func()) (Report, time.Duration, error) {
	drainErr := r.drain(ctx, l, from, workers)
	drain := time.Since(from)
	stopAnswers()
	workers.Wait()
	if ctx.Err() != nil {
		return Report{}, drain, ctx.Err()
	}
	r.say("  %7.2fs drained in %.1fs; stopping and reading the ledger", time.Since(r.start).Seconds(), drain.Seconds())
	for _, err := range r.c.stopAll() {
		r.stopped(err)
	}
	view, err := ReadLedger(filepath.Join(r.c.hubDir, "ledger.db"))
	if err != nil {
		return Report{}, drain, err
	}
	ops := l.Ops()
	if err := writeOps(filepath.Join(r.o.Dir, "ops.jsonl"), ops); err != nil {
		return Report{}, drain, err
	}
	rep := Check(ops, view)
	if drainErr != nil {
		rep.violate("%v", drainErr)
	}
	for _, err := range r.slow {
		rep.violate("%v", err)
	}
	return rep, drain, nil
}

// writeOps keeps every POS request and its answer, a JSON line each, for
// a look at a failed run.
func writeOps(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// setup starts the hub, enrolls the tills, starts their proxies and
// agents, and waits until every till is connected with its rules.
func (r *run) setup(ctx context.Context) error {
	o := r.o
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	c := &cluster{bin: o.Bin, dir: o.Dir, hubDir: filepath.Join(o.Dir, "hub"), seedFile: filepath.Join(o.Dir, "coalition.yaml"),
		http: &http.Client{Timeout: 5 * time.Second}}
	r.c = c
	c.hub = &proc.Proc{Name: "hub", Bin: filepath.Join(o.Bin, proc.Exe("tillsync-hub")), Log: filepath.Join(o.Dir, "hub.log")}
	var err error
	for _, p := range []*string{&c.mqttPlain, &c.mqttTLS, &c.hubHTTP} {
		if *p, err = proc.FreePort(); err != nil {
			return err
		}
	}
	for i := range o.Tills {
		t := &till{idx: i, store: fmt.Sprintf("store-%02d", i/2), terminal: fmt.Sprintf("till-%d", i%2+1),
			partner: partners[(i/2)%len(partners)], dir: filepath.Join(o.Dir, fmt.Sprintf("till-%02d", i)), skew: r.sched.Skews[i]}
		t.config = filepath.Join(o.Dir, fmt.Sprintf("till-%02d.yaml", i))
		t.agent = &proc.Proc{Name: t.String(), Bin: filepath.Join(o.Bin, proc.Exe("tillsync-agent")), Log: filepath.Join(o.Dir, fmt.Sprintf("till-%02d.log", i))}
		if t.pos, err = proc.FreePort(); err != nil {
			return err
		}
		c.tills = append(c.tills, t)
	}
	if err := os.WriteFile(c.seedFile, coalitionSeed(c.tills), 0o600); err != nil {
		return err
	}
	broker := "the hub's embedded broker"
	if o.Mosquitto != "" {
		broker = "Mosquitto (" + o.Mosquitto + ")"
	}
	r.say("  setup: hub at %s, %s at %s, enrolling %d till(s); data and logs in %s", c.hubHTTP, broker, c.mqttPlain, len(c.tills), o.Dir)
	if o.Mosquitto != "" {
		if err := c.setupMosquitto(ctx, o.Mosquitto); err != nil {
			return err
		}
	}
	if err := c.startHub(ctx, 0); err != nil {
		return err
	}
	tillsIn := map[string]int{} // store -> its tills
	for _, t := range c.tills {
		tillsIn[t.store]++
	}
	for _, t := range c.tills {
		if err := os.WriteFile(t.config, agentConfig(tillsIn[t.store]), 0o600); err != nil {
			return err
		}
		if err := c.enroll(t); err != nil {
			return err
		}
	}
	if c.external() {
		// The tills' accounts, as the operator adds them after enrolling.
		if err := c.reloadMosquitto(); err != nil {
			return err
		}
	}
	for _, t := range c.tills {
		if t.proxy, err = NewProxy("127.0.0.1:0", c.mqttPlain, r.o.Seed<<8|uint64(t.idx)); err != nil {
			return err
		}
		if err := c.startAgent(ctx, t); err != nil {
			return err
		}
	}
	return proc.WaitFor(ctx, 30*time.Second, "every till connected with its rules", func() (bool, error) {
		for _, t := range c.tills {
			h, err := c.health(t)
			if err != nil || !h.HubConnected || h.RulesVersion == 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// partners are the brands of the run's coalition; the stores take them
// in turn.
var partners = []string{"pharmacy", "cafe", "fuel"}

// coalitionSeed is the run's coalition: one earn rate everywhere (a point
// per euro, as the tills' own rate before the rules arrive) and no
// bonuses, so that what a till tells the POS is what the hub books.
func coalitionSeed(tills []*till) []byte {
	var b strings.Builder
	b.WriteString("coalition:\n  name: Chaos Coalition\n  currency: EUR\n  point_value: \"0.01\"\n  expiry_months: 24\n  hold_minutes: 15\n  return_wait_days: 7\npartners:\n")
	for _, p := range partners {
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    rules:\n      points: 1\n      per: 100\n      rounding: down\n    stores:\n", p, p)
		stores := map[string][]string{}
		var order []string
		for _, t := range tills {
			if t.partner != p {
				continue
			}
			if _, ok := stores[t.store]; !ok {
				order = append(order, t.store)
			}
			stores[t.store] = append(stores[t.store], t.terminal)
		}
		if len(order) == 0 {
			b.WriteString("      []\n")
		}
		for _, s := range order {
			fmt.Fprintf(&b, "      - id: %s\n        name: %s\n        terminals: [%s]\n", s, s, strings.Join(stores[s], ", "))
		}
	}
	return []byte(b.String())
}

// agentConfig is a till's config file: an offline policy that approves
// small burns while the hub is unreachable.
func agentConfig(tillsInStore int) []byte {
	return fmt.Appendf(nil, "offline:\n  member_allowance: 150\n  store_cap: %d\n  store_tills: %d\n  max_balance_age: 1h\nlog:\n  level: info\n", 2000*tillsInStore, tillsInStore)
}

// inject carries out the schedule: each fault at its time, the hub's one
// after another, each till's process faults one after another. When ctx is
// done the faults in progress end early and the rest are left out.
func (r *run) inject(ctx context.Context, wg *sync.WaitGroup) {
	var hubFaults []Fault
	for _, f := range r.sched.Faults {
		if f.Kind.hubKind() {
			hubFaults = append(hubFaults, f)
			continue
		}
		wg.Go(func() {
			if !r.sleepUntil(ctx, f.At) {
				r.skipped.Add(1)
				return
			}
			r.tillFault(ctx, f)
		})
	}
	wg.Go(func() {
		for i, f := range hubFaults {
			if !r.sleepUntil(ctx, f.At) {
				r.skipped.Add(int64(len(hubFaults) - i))
				return
			}
			r.hubFault(ctx, f)
		}
	})
}

// sleepUntil waits until at after the start; false when ctx ended first.
func (r *run) sleepUntil(ctx context.Context, at time.Duration) bool {
	return sleep(ctx, time.Until(r.start.Add(at)))
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *run) event(f Fault, format string, args ...any) {
	r.say("  %7.2fs %-18s %s", time.Since(r.start).Seconds(), f.Kind, fmt.Sprintf(format, args...))
}

func (r *run) tillFault(ctx context.Context, f Fault) {
	t := r.c.tills[f.Till]
	r.count(f.Kind)
	switch f.Kind {
	case KillAgent, SkewClock:
		t.mu.Lock()
		defer t.mu.Unlock()
		t.agent.Kill()
		if f.Kind == SkewClock {
			t.skew = f.Skew
			r.event(f, "%s killed; back in %v with its clock %+v", t, f.For, f.Skew)
		} else {
			r.event(f, "%s killed (kill -9); back in %v", t, f.For)
		}
		sleep(ctx, f.For)
		if err := r.c.startAgent(context.WithoutCancel(ctx), t); err != nil {
			r.event(f, "%s did not come back: %v (healing tries again)", t, err)
		}
		return
	case Cut:
		t.proxy.Cut()
		r.event(f, "%s's connection cut", t)
		return
	}
	var set, unset func(*Faults)
	switch f.Kind {
	case Partition:
		set, unset = func(x *Faults) { x.Down = true }, func(x *Faults) { x.Down = false }
	case Blackhole:
		set, unset = func(x *Faults) { x.Blackhole = true }, func(x *Faults) { x.Blackhole = false }
	case Delay:
		set, unset = func(x *Faults) { x.Delay = f.Delay }, func(x *Faults) { x.Delay = 0 }
	case Drop:
		set, unset = func(x *Faults) { x.Drop = f.P }, func(x *Faults) { x.Drop = 0 }
	case Duplicate:
		set, unset = func(x *Faults) { x.Duplicate = f.P }, func(x *Faults) { x.Duplicate = 0 }
	}
	t.proxy.Update(set)
	r.event(f, "%s for %v", t, f.For)
	sleep(ctx, f.For)
	t.proxy.Update(unset)
}

func (r *run) hubFault(ctx context.Context, f Fault) {
	r.hubMu.Lock()
	defer r.hubMu.Unlock()
	r.count(f.Kind)
	c := r.c
	restart := func(arm int) {
		if err := c.startHub(context.WithoutCancel(ctx), arm); err != nil {
			r.event(f, "the hub did not come back: %v (healing tries again)", err)
		}
	}
	switch f.Kind {
	case KillHub:
		c.hub.Kill()
		r.event(f, "hub killed (kill -9); back in %v", f.For)
		sleep(ctx, f.For)
		restart(0)
	case RestartBroker:
		if c.external() {
			c.mosq.Kill()
			r.event(f, "Mosquitto killed (kill -9); back in %v", f.For)
			sleep(ctx, f.For)
			if err := c.startMosquitto(context.WithoutCancel(ctx)); err != nil {
				r.event(f, "Mosquitto did not come back: %v (healing tries again)", err)
			}
			return
		}
		r.stopped(c.hub.Stop())
		r.event(f, "broker (the hub's embedded one) stopped; back in %v", f.For)
		sleep(ctx, f.For)
		restart(0)
	case CrashAfterCommit:
		r.stopped(c.hub.Stop())
		restart(f.Commits)
		r.event(f, "hub restarted, armed to die after its ledger commit %d, before that commit's acks", f.Commits)
		select {
		case <-c.hub.Exited():
			r.fired.Add(1)
			r.event(f, "hub died after commit %d as armed; back in %v", f.Commits, f.For)
			sleep(ctx, f.For)
		case <-time.After(5 * time.Second):
			r.event(f, "hub saw fewer than %d commits in 5s; restarted unarmed", f.Commits)
			r.stopped(c.hub.Stop())
		case <-ctx.Done():
			r.stopped(c.hub.Stop())
		}
		restart(0)
	}
}

// heal lifts every proxy fault and makes sure the hub (unarmed) and every
// agent are up.
func (r *run) heal(ctx context.Context) error {
	r.hubMu.Lock()
	defer r.hubMu.Unlock()
	c := r.c
	for _, t := range c.tills {
		t.proxy.Set(Faults{})
	}
	if c.external() && !c.mosq.Running() {
		if err := c.startMosquitto(ctx); err != nil {
			return err
		}
	}
	if !c.hub.Running() {
		if err := c.startHub(ctx, 0); err != nil {
			return err
		}
	}
	for _, t := range c.tills {
		t.mu.Lock()
		var err error
		if !t.agent.Running() {
			err = c.startAgent(ctx, t)
		}
		t.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// drain waits until every POS request has its answer and every till is
// connected with an empty outbox; it returns an error naming what was
// not done when o.DrainWithin passed.
func (r *run) drain(ctx context.Context, l *load, healed time.Time, workers *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	var last string
	err := proc.WaitFor(ctx, time.Until(healed.Add(r.o.DrainWithin)), "the outboxes to drain", func() (bool, error) {
		select {
		case <-done:
		default:
			last = "POS requests still unanswered"
			return false, nil
		}
		var behind []string
		for _, t := range r.c.tills {
			h, err := r.c.health(t)
			switch {
			case err != nil:
				behind = append(behind, fmt.Sprintf("%s: %v", t, err))
			case !h.HubConnected || h.Backlog > 0:
				behind = append(behind, fmt.Sprintf("%s: connected %v, backlog %d", t, h.HubConnected, h.Backlog))
			}
		}
		last = strings.Join(behind, "; ")
		return len(behind) == 0, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("not drained within %v of healing: %s", r.o.DrainWithin, last)
	}
	return err
}
