package perf

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/uplink"
	"github.com/tillsync/tillsync/protocol"
)

// Fleet is many simulated tills in this process, each the agent's own
// uplink over an Outbox, connected to one broker.
type Fleet struct {
	Terms []*Term
	// Acked counts the transactions the hub answered (applied or
	// duplicate), over the whole fleet.
	Acked atomic.Int64
	// Lat, when set, gets each answered transaction's round trip: from
	// when it was queued to when its ack was taken at the till.
	lat    atomic.Pointer[Samples]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Term is one simulated till.
type Term struct {
	Creds
	Out     *Outbox
	Up      *uplink.Uplink
	ids     agent.IDs
	n       int
	members int
}

// FleetOptions tune the tills' uplinks; zero values take the agent's
// defaults, so that the fleet sends as real tills do.
type FleetOptions struct {
	Window, BatchMax int
	AckTimeout       time.Duration
	// BackoffMax bounds a till's jittered wait between connection attempts.
	BackoffMax time.Duration
	// Members is how many members the tills' sales are by, drawn at
	// random; zero means DefaultMembers.
	Members int
}

// DefaultMembers is how many members the simulated tills sell to unless
// told otherwise (Options.Members, tillsync-sim bench --members).
const DefaultMembers = 10_000

// NewFleet makes one till for each of creds, connecting to broker with tlsCfg
// once started (Start).
func NewFleet(creds []Creds, broker string, tlsCfg *tls.Config, o FleetOptions) (*Fleet, error) {
	f := &Fleet{}
	for _, c := range creds {
		t := &Term{Creds: c, members: cmp.Or(o.Members, DefaultMembers)}
		t.Out = NewOutbox(func(a protocol.Ack, at time.Time) {
			if a.Status == protocol.StatusApplied || a.Status == protocol.StatusDuplicate {
				f.Acked.Add(1)
			}
			if s := f.lat.Load(); s != nil {
				s.Add(time.Since(at))
			}
		})
		up, err := uplink.New(uplink.Options{
			Broker: broker, TLS: tlsCfg, Store: c.Store, Terminal: c.Terminal, Partner: c.Partner,
			Username: c.Username, Password: c.Password, MACKey: c.MACKey, Outbox: t.Out,
			Window: o.Window, BatchMax: o.BatchMax, AckTimeout: o.AckTimeout, BackoffMax: o.BackoffMax,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return nil, err
		}
		t.Up = up
		f.Terms = append(f.Terms, t)
	}
	return f, nil
}

// Measure sends every round trip from now on to s (nil: none).
func (f *Fleet) Measure(s *Samples) { f.lat.Store(s) }

// Start connects every till at once.
func (f *Fleet) Start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	for _, t := range f.Terms {
		f.wg.Go(func() { t.Up.Run(ctx) })
	}
}

// WaitConnected waits until every till is connected, and returns how long that took.
func (f *Fleet) WaitConnected(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		up := 0
		for _, t := range f.Terms {
			if t.Up.Connected() {
				up++
			}
		}
		if up == len(f.Terms) {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("perf: %d of %d tills connected after %v", up, len(f.Terms), timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop disconnects every till.
func (f *Fleet) Stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// Queued is how many transactions wait in the fleet's outboxes.
func (f *Fleet) Queued() int {
	n := 0
	for _, t := range f.Terms {
		n += t.Out.Len()
	}
	return n
}

// Answers sums the tills' answers (Outbox.Answers).
func (f *Fleet) Answers() (applied, duplicates, rejected, held int64) {
	for _, t := range f.Terms {
		a, d, r, h := t.Out.Answers()
		applied, duplicates, rejected, held = applied+a, duplicates+d, rejected+r, held+h
	}
	return
}

// WaitDrained waits until every outbox is empty.
func (f *Fleet) WaitDrained(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for f.Queued() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("perf: %d transactions still unanswered after %v", f.Queued(), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Earn queues n earns at t, as its agent does when the POS asks, and
// wakes its uplink.
func (t *Term) Earn(n int) {
	now := time.Now()
	txs := make([]protocol.Transaction, n)
	for i := range txs {
		t.n++
		txs[i] = earn(t.Creds, t.ids.Next(now), t.n, now, t.members)
	}
	t.Out.Add(now, txs...)
	t.Up.Kick()
}

// earn is the bench's purchase, the till's nth: 12.50 EUR by one of
// members members.
func earn(c Creds, id string, n int, at time.Time, members int) protocol.Transaction {
	return protocol.Transaction{
		ID: id, Store: c.Store, Terminal: c.Terminal, Partner: c.Partner,
		Member: fmt.Sprintf("M%08d", rand.IntN(members)), Kind: protocol.KindEarn, Amount: 1250, Currency: "EUR", Points: 12,
		Receipt: "R" + strconv.Itoa(n), CreatedAt: at.UTC(),
	}
}

// Samples are durations, kept whole for exact quantiles.
type Samples struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records d.
func (s *Samples) Add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// Len is how many were recorded.
func (s *Samples) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.d)
}

// Quantile returns the q-quantile (0 < q ≤ 1) by nearest rank; 0 when empty.
func (s *Samples) Quantile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return 0
	}
	sort.Slice(s.d, func(i, j int) bool { return s.d[i] < s.d[j] })
	i := int(q*float64(len(s.d))+0.999999) - 1
	return s.d[max(0, min(i, len(s.d)-1))]
}
