package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind names a fault.
type Kind string

// The faults a schedule is made of.
const (
	// KillAgent kills a till's agent with SIGKILL in the middle of its POS
	// traffic and starts it again after For.
	KillAgent Kind = "kill-agent"
	// SkewClock kills a till's agent and starts it again with its clock
	// Skew off the true time (up to a day either way).
	SkewClock Kind = "skew-clock"
	// KillHub kills the hub with SIGKILL and starts it again after For.
	KillHub Kind = "kill-hub"
	// CrashAfterCommit restarts the hub armed to kill itself right after
	// its Commits-th ledger commit, before that commit's acks go out;
	// after it died it is started again (unarmed) after For.
	CrashAfterCommit Kind = "crash-after-commit"
	// RestartBroker restarts the broker: stopped cleanly, started again
	// after For. With the embedded broker that is the hub.
	RestartBroker Kind = "restart-broker"
	// Partition takes a till's line down for For: its connection is cut
	// and new ones are refused (the till knows it is offline).
	Partition Kind = "partition"
	// Blackhole stalls a till's line for For: nothing passes either way,
	// the connection stays open.
	Blackhole Kind = "blackhole"
	// Delay adds Delay to every packet on a till's line for For.
	Delay Kind = "delay"
	// Drop loses PUBLISH and PUBACK packets on a till's line with
	// probability P for For.
	Drop Kind = "drop"
	// Duplicate delivers PUBLISH packets on a till's line twice with
	// probability P for For.
	Duplicate Kind = "duplicate"
	// Cut cuts a till's connection once; it may reconnect at once.
	Cut Kind = "cut"
)

// Kinds lists every fault kind, in the order reports show them.
var Kinds = []Kind{KillAgent, SkewClock, KillHub, CrashAfterCommit, RestartBroker, Partition, Blackhole, Delay, Drop, Duplicate, Cut}

// hubKind reports whether a fault stops the hub (or the broker).
func (k Kind) hubKind() bool { return k == KillHub || k == CrashAfterCommit || k == RestartBroker }

// Fault is one event of a schedule.
type Fault struct {
	At      time.Duration // from the start of the load
	Kind    Kind
	Till    int           // the till it hits (index into the run's tills); -1 for the hub
	For     time.Duration // how long it lasts, or how long a killed process stays down
	Delay   time.Duration // Delay: the added latency
	P       float64       // Drop, Duplicate: the probability per packet
	Commits int           // CrashAfterCommit: the commit after which the hub dies
	Skew    time.Duration // SkewClock: the till's clock minus the true time
}

func (f Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%7.2fs %-18s", f.At.Seconds(), f.Kind)
	if f.Till >= 0 {
		fmt.Fprintf(&b, " till %-2d", f.Till)
	} else {
		b.WriteString(" hub    ")
	}
	switch f.Kind {
	case Delay:
		fmt.Fprintf(&b, " %v", f.Delay)
	case Drop, Duplicate:
		fmt.Fprintf(&b, " p=%.2f", f.P)
	case CrashAfterCommit:
		fmt.Fprintf(&b, " after commit %d", f.Commits)
	case SkewClock:
		fmt.Fprintf(&b, " clock %+v", f.Skew)
	}
	if f.Kind != Cut {
		fmt.Fprintf(&b, " for %v", f.For)
	}
	return b.String()
}

// Schedule is a run's faults: a pure function of its seed and shape, so
// that a seed replays the same schedule.
type Schedule struct {
	Seed     uint64
	Tills    int
	Duration time.Duration
	// Skews are the tills' clocks at the start, off the true time.
	Skews  []time.Duration
	Faults []Fault // by At
}

// MaxSkew is the furthest a till's clock is set off the true time.
const MaxSkew = 24 * time.Hour

// Plan makes the schedule for seed: tills tills under load for duration.
// Every schedule has at least one fault of each kind (the hub's spread
// over the run, never overlapping), then more at random, about one every
// 1.5 s; a third of the tills start with a skewed clock.
func Plan(seed uint64, tills int, duration time.Duration) Schedule {
	r := rand.New(rand.NewPCG(seed, 0x7363686564756c65))
	s := Schedule{Seed: seed, Tills: tills, Duration: duration, Skews: make([]time.Duration, tills)}
	for i := range tills {
		if r.IntN(3) == 0 {
			s.Skews[i] = skew(r)
		}
	}
	// Faults start after a tenth of the run (traffic is flowing) and end
	// before nine tenths (what the last one did is still in the air when
	// the run heals).
	lo, hi := duration/10, duration*9/10
	at := func() time.Duration { return lo + time.Duration(r.Int64N(max(int64(hi-lo), 1))) }
	dur := func(min, max time.Duration) time.Duration {
		return min + time.Duration(r.Int64N(int64(max-min)))
	}
	till := func() int { return r.IntN(tills) }
	mk := func(k Kind) Fault {
		f := Fault{Kind: k, Till: -1}
		switch k {
		case KillAgent:
			f.Till, f.For = till(), dur(100*time.Millisecond, 2*time.Second)
		case SkewClock:
			f.Till, f.For, f.Skew = till(), dur(100*time.Millisecond, time.Second), skew(r)
		case KillHub, RestartBroker:
			f.For = dur(200*time.Millisecond, 3*time.Second)
		case CrashAfterCommit:
			f.For, f.Commits = dur(200*time.Millisecond, 2*time.Second), 1+r.IntN(40)
		case Partition, Blackhole:
			f.Till, f.For = till(), dur(time.Second, 6*time.Second)
		case Delay:
			f.Till, f.For, f.Delay = till(), dur(time.Second, 5*time.Second), dur(5*time.Millisecond, 400*time.Millisecond)
		case Drop:
			f.Till, f.For, f.P = till(), dur(time.Second, 5*time.Second), 0.05+0.45*r.Float64()
		case Duplicate:
			f.Till, f.For, f.P = till(), dur(time.Second, 5*time.Second), 0.1+0.9*r.Float64()
		case Cut:
			f.Till = till()
		}
		return f
	}
	// The hub's faults: one of each, then more, in slots that do not
	// overlap (a hub fault waits for the one before to be over).
	hubKinds := []Kind{KillHub, CrashAfterCommit, RestartBroker}
	for range int(duration / (8 * time.Second)) {
		hubKinds = append(hubKinds, []Kind{KillHub, CrashAfterCommit, RestartBroker}[r.IntN(3)])
	}
	r.Shuffle(len(hubKinds), func(i, j int) { hubKinds[i], hubKinds[j] = hubKinds[j], hubKinds[i] })
	slot := (hi - lo) / time.Duration(len(hubKinds))
	for i, k := range hubKinds {
		f := mk(k)
		f.At = lo + time.Duration(i)*slot + time.Duration(r.Int64N(max(int64(slot/3), 1)))
		s.Faults = append(s.Faults, f)
	}
	tillKinds := []Kind{KillAgent, SkewClock, Partition, Blackhole, Delay, Drop, Duplicate, Cut}
	for _, k := range tillKinds {
		f := mk(k)
		f.At = at()
		s.Faults = append(s.Faults, f)
	}
	for range int(duration / (1500 * time.Millisecond)) {
		f := mk(tillKinds[r.IntN(len(tillKinds))])
		f.At = at()
		s.Faults = append(s.Faults, f)
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	return s
}

// skew is a clock error of up to MaxSkew either way, in whole seconds.
func skew(r *rand.Rand) time.Duration {
	d := time.Duration(1+r.Int64N(int64(MaxSkew/time.Second))) * time.Second
	if r.IntN(2) == 0 {
		d = -d
	}
	return d
}

// Count returns how many faults of each kind the schedule holds.
func (s Schedule) Count() map[Kind]int {
	m := map[Kind]int{}
	for _, f := range s.Faults {
		m[f.Kind]++
	}
	return m
}

// String prints the schedule, a fault a line, as the harness shows it
// before it starts.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d tills for %v, %d faults\n", s.Seed, s.Tills, s.Duration, len(s.Faults))
	for i, d := range s.Skews {
		if d != 0 {
			fmt.Fprintf(&b, "  start     till %-2d clock %+v\n", i, d)
		}
	}
	for _, f := range s.Faults {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}
