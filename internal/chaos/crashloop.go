package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
)

// CrashOptions shape a crash loop.
type CrashOptions struct {
	// Bin is the directory holding tillsync-hub and tillsync-agent.
	Bin string
	// Dir is where the loop keeps the hub's and the till's data and logs.
	Dir string
	// Seed chooses the moments of the kills and the POS traffic.
	Seed uint64
	// Kills is how many times the agent is killed; default 1000.
	Kills int
	// Workers is how many POS workers send to the till at once; default 4.
	Workers int
	// MaxUp bounds how long the agent runs between its POS API answering
	// and its kill (a random moment up to it); default 300ms.
	MaxUp time.Duration
	// Out receives progress, a line every 50 kills. Nil: nothing.
	Out io.Writer
}

// CrashResult is what a crash loop found.
type CrashResult struct {
	Kills int `json:"kills"`
	// Clean counts the kills after which the outbox file checked clean
	// (bbolt's own consistency check, the file opened read-only).
	Clean int `json:"clean"`
	// MaxQueued is the most transactions the outbox held at a kill.
	MaxQueued int           `json:"max_queued"`
	Drain     time.Duration `json:"drain_ns"` // from the last restart to every request answered and the outbox empty
	Elapsed   time.Duration `json:"elapsed_ns"`
	Report    Report        `json:"report"`
}

// OK reports whether nothing was lost or applied twice and every check
// was clean.
func (r *CrashResult) OK() bool { return len(r.Report.Violations) == 0 && r.Clean == r.Kills }

// CrashLoop kills one till's agent with SIGKILL o.Kills times in the
// middle of its POS traffic: after each kill it checks the outbox file
// (bbolt's consistency check) and starts the agent again, while the POS
// workers keep sending, and re-sending by Idempotency-Key what got no
// answer. The hub stays up, so the till syncs between kills. At the end it
// waits until every request has its answer and the outbox is empty, and
// holds the ledger against every answer (Check): no accepted transaction
// lost, none applied twice.
func CrashLoop(ctx context.Context, o CrashOptions) (*CrashResult, error) {
	if o.Kills == 0 {
		o.Kills = 1000
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.MaxUp == 0 {
		o.MaxUp = 300 * time.Millisecond
	}
	if o.Kills < 1 || o.Workers < 1 || o.Workers > 64 || o.MaxUp < 10*time.Millisecond {
		return nil, fmt.Errorf("chaos: crash loop of %d kills, %d workers, up at most %v: want 1 or more kills, 1 to 64 workers, 10ms or more", o.Kills, o.Workers, o.MaxUp)
	}
	ro := Options{Bin: o.Bin, Dir: o.Dir, Seed: o.Seed, Tills: 1, Workers: o.Workers, Duration: time.Hour, Out: o.Out}
	if err := ro.defaults(); err != nil {
		return nil, err
	}
	r := &run{o: ro, out: ro.Out, sched: Schedule{Seed: o.Seed, Tills: 1, Skews: make([]time.Duration, 1)}}
	started := time.Now()
	if err := r.setup(ctx); err != nil {
		if r.c != nil {
			r.c.stopAll()
		}
		return nil, err
	}
	defer r.c.stopAll()
	t := r.c.tills[0]
	ob := filepath.Join(t.dir, "outbox.db")

	l := newLoad(ro.Members)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	answerCtx, stopAnswers := context.WithCancel(ctx)
	defer stopAnswers()
	var workers sync.WaitGroup
	for w := range o.Workers {
		workers.Go(func() { l.run(loadCtx, answerCtx, t, w, o.Seed) })
	}

	res := &CrashResult{}
	r.start = started
	rnd := rand.New(rand.NewPCG(o.Seed, 0x6372617368))
	for i := 1; i <= o.Kills; i++ {
		if !sleep(ctx, time.Duration(rnd.Int64N(int64(o.MaxUp)))) {
			return nil, ctx.Err()
		}
		t.agent.Kill()
		res.Kills++
		queued, err := outbox.CheckFile(ob)
		if err != nil {
			res.Report.violate("kill %d: %v", i, err)
		} else {
			res.Clean++
			res.MaxQueued = max(res.MaxQueued, queued)
		}
		if err := r.c.startAgent(ctx, t); err != nil {
			return nil, fmt.Errorf("chaos: kill %d: the agent did not come back: %w", i, err)
		}
		if i%50 == 0 || i == o.Kills {
			ops := l.Ops()
			answered := 0
			for _, op := range ops {
				if op.Answered {
					answered++
				}
			}
			r.say("  kill %4d of %d: outbox checked clean %d times, %d queued at this kill; %d POS requests answered so far (%.0fs)",
				i, o.Kills, res.Clean, queued, answered, time.Since(started).Seconds())
		}
	}
	stopLoad()
	rep, drain, err := r.finish(ctx, l, time.Now(), &workers, stopAnswers)
	if err != nil {
		return nil, err
	}
	res.Drain = drain
	rep.Violations = append(res.Report.Violations, rep.Violations...) // the unclean checks first
	res.Report = rep
	res.Elapsed = time.Since(started)
	return res, nil
}
