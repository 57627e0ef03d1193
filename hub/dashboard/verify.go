package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
)

// LedgerHealth is the result of the ledger's last verification (a replay of
// the whole journal: hash chain, balances, lots, settlement totals, closed
// periods), as the dashboard shows it.
type LedgerHealth struct {
	// State is never (not verified since the hub started), running, ok,
	// problems or error (the verification itself failed).
	State string `json:"state"`
	// Running is set while a verification runs (State is the last one's).
	Running bool `json:"running"`
	// LastRun is when the last verification finished; DurationMS how long
	// it took; Trigger what started it (start, scheduled, asked).
	LastRun    time.Time `json:"last_run,omitzero"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Trigger    string    `json:"trigger,omitempty"`
	// ChainIntact is false when the hash chain breaks; ChainBreak says where.
	ChainIntact bool   `json:"chain_intact"`
	ChainHead   string `json:"chain_head,omitempty"`
	ChainBreak  string `json:"chain_break,omitempty"`
	Entries     int    `json:"entries"`
	Accounts    int    `json:"accounts"`
	// Problems counts the disagreements found; Details are the first
	// maxDetails of them, one line each.
	Problems int      `json:"problems"`
	Details  []string `json:"details,omitempty"`
	// Error is why the verification could not run.
	Error string `json:"error,omitempty"`
	// NextRun is when the next scheduled verification is due; zero when
	// only asked ones run.
	NextRun time.Time `json:"next_run,omitzero"`
	// NextAsk is the earliest a verification may be asked for again.
	NextAsk time.Time `json:"next_ask,omitzero"`
}

// Ledger health states.
const (
	LedgerNever    = "never"
	LedgerOK       = "ok"
	LedgerProblems = "problems"
	LedgerError    = "error"
)

const maxDetails = 20

// verifier runs the ledger's verification one at a time, on Run's
// goroutine: at start, every VerifyEvery, and when asked (at most once per
// VerifyGap).
type verifier struct {
	o     Options
	asked chan struct{}
	mu    sync.Mutex
	h     LedgerHealth
	// asked is when a verification was last asked for: the scheduled ones
	// do not count against VerifyGap.
	lastAsked time.Time
}

func newVerifier(o Options) *verifier {
	v := &verifier{o: o, asked: make(chan struct{}, 1)}
	v.h.State = LedgerNever
	return v
}

// health returns the last result.
func (v *verifier) health() LedgerHealth {
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.h
	h.Details = append([]string(nil), v.h.Details...)
	return h
}

// ask queues a verification unless one runs or is queued, or the last one
// asked for was asked less than VerifyGap ago; it returns when it may be
// asked again (zero when queued).
func (v *verifier) ask(now time.Time) (queued bool, retry time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.h.Running {
		return false, now.Add(time.Second)
	}
	if next := v.lastAsked.Add(v.o.VerifyGap); !v.lastAsked.IsZero() && now.Before(next) {
		return false, next
	}
	select {
	case v.asked <- struct{}{}:
		v.lastAsked = now
		v.h.Running = true // shown at once; run clears it
		v.h.NextAsk = now.Add(v.o.VerifyGap)
		return true, time.Time{}
	default:
		return false, now.Add(time.Second)
	}
}

// run verifies the ledger now and records the result. A verification
// given up because ctx is done (the hub stopping) records nothing: the
// last result stands.
func (v *verifier) run(ctx context.Context, log *slog.Logger, trigger string) {
	start := v.o.Clock.Now()
	v.mu.Lock()
	v.h.Running = true
	v.mu.Unlock()
	rep, err := v.o.Store.VerifyContext(ctx)
	end := v.o.Clock.Now()
	if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		v.mu.Lock()
		v.h.Running = false
		v.mu.Unlock()
		log.Info("ledger verification stopped: the hub is stopping", "trigger", trigger, "after", end.Sub(start))
		return
	}
	h := LedgerHealth{LastRun: end, DurationMS: float64(end.Sub(start)) / float64(time.Millisecond), Trigger: trigger}
	if v.o.VerifyEvery > 0 {
		h.NextRun = start.Add(v.o.VerifyEvery)
	}
	v.mu.Lock()
	if !v.lastAsked.IsZero() {
		h.NextAsk = v.lastAsked.Add(v.o.VerifyGap)
	}
	v.mu.Unlock()
	switch {
	case err != nil:
		h.State, h.Error = LedgerError, err.Error()
		log.Error("ledger verification failed to run", "err", err)
	default:
		h.ChainHead, h.ChainBreak, h.ChainIntact = rep.ChainHead, rep.ChainBreak, rep.ChainBreak == ""
		h.Entries, h.Accounts = rep.Entries, rep.Accounts
		details := problems(rep)
		h.Problems = len(details)
		if len(details) > maxDetails {
			details = details[:maxDetails]
		}
		h.Details = details
		h.State = LedgerOK
		if !rep.OK() {
			h.State = LedgerProblems
			log.Error("ledger verification found problems; run tillsync-hub verify for the whole report", "problems", h.Problems, "chain_break", rep.ChainBreak)
		} else {
			log.Debug("ledger verified", "entries", rep.Entries, "trigger", trigger, "took", end.Sub(start))
		}
	}
	v.mu.Lock()
	v.h = h
	v.mu.Unlock()
}

// problems lists a report's disagreements, one line each.
func problems(rep ledger.VerifyReport) []string {
	var out []string
	if rep.ChainBreak != "" {
		out = append(out, "hash chain: "+rep.ChainBreak)
	}
	for _, seq := range rep.Unbalanced {
		out = append(out, "entry "+strconv.FormatUint(seq, 10)+" does not balance")
	}
	out = append(out, rep.Mismatches...)
	out = append(out, rep.Problems...)
	return out
}
