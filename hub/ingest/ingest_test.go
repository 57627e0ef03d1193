package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// wait is how long any single expectation may take; generous for -race on a busy machine.
const wait = 10 * time.Second

// published is one message the ingest handed to its Publisher.
type published struct {
	Topic   string
	QoS     byte
	Payload []byte
}

// recorder is the Publisher under test: it keeps every message in order.
// It is the ingest's injection point for the broker, not a mock of one.
type recorder struct {
	mu   sync.Mutex
	msgs []published
	// before, when set, runs inside Publish before the message is recorded.
	before func(topic string, payload []byte)
}

func (r *recorder) publish(topic string, qos byte, payload []byte) error {
	if r.before != nil {
		r.before(topic, payload)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, published{topic, qos, bytes.Clone(payload)})
	return nil
}

func (r *recorder) all() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// fixture is an Ingest over a real bbolt ledger in t.TempDir().
type fixture struct {
	store *ledger.BoltStore
	in    *ingest.Ingest
	rec   *recorder
	clock *clock.Fake
}

// newFixture opens a fresh ledger and an Ingest over it. wrap, when not nil,
// gives the Store the ingest sees (an observing wrapper around the real one).
func newFixture(t *testing.T, o ingest.Options, wrap func(ledger.Store) ledger.Store) *fixture {
	t.Helper()
	st, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	registerTestStores(t, st)
	f := &fixture{store: st, rec: &recorder{}, clock: clock.NewFake(ledgertest.T0)}
	o.Store = st
	if wrap != nil {
		o.Store = wrap(st)
	}
	o.Publish = f.rec.publish
	o.Clock = f.clock
	f.in = ingest.New(o)
	return f
}

// run starts the commit loop; it is stopped (and must return) when the test ends.
// The returned func stops it early and waits for it.
func (f *fixture) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.in.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return %s after its context was cancelled", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func topic(t testing.TB, store, terminal string, ch protocol.Channel) string {
	t.Helper()
	s, err := protocol.TerminalTopic(store, terminal, ch)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeAcks(t testing.TB, p published) []protocol.Ack {
	t.Helper()
	ab, err := protocol.DecodeAckBatch(p.Payload)
	if err != nil {
		t.Fatalf("ingest published an ack batch the agent cannot decode on %s: %v\n%s", p.Topic, err, p.Payload)
	}
	return ab.Acks
}

// applied is the ack of a transaction applied now that booked points and
// left the member with balance available points.
func applied(id, member string, points, balance int64) protocol.Ack {
	return protocol.Ack{ID: id, Status: protocol.StatusApplied, Member: member, Balance: balance, Points: points}
}

func dupOf(a protocol.Ack) protocol.Ack {
	a.OriginalStatus, a.Status = a.Status, protocol.StatusDuplicate
	return a
}

func ids(acks []protocol.Ack) []string {
	out := make([]string, len(acks))
	for i, a := range acks {
		out[i] = a.ID
	}
	return out
}

// snapshot is everything of the ledger that money depends on.
type snapshot struct {
	Balances map[string]int64
	Txs      []ledger.TxRecord
	Stmts    map[string][]ledger.Entry
}

func takeSnapshot(t *testing.T, s ledger.Store, members ...string) snapshot {
	t.Helper()
	var sn snapshot
	var err error
	if sn.Balances, err = s.MemberBalances(); err != nil {
		t.Fatal(err)
	}
	if sn.Txs, err = s.Transactions(); err != nil {
		t.Fatal(err)
	}
	sn.Stmts = make(map[string][]ledger.Entry)
	for _, m := range members {
		if sn.Stmts[m], err = s.Statement(m, 1000); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Verify()
	if err != nil || !rep.OK() {
		t.Fatalf("ledger does not verify: %+v, %v", rep, err)
	}
	return sn
}

func txIDs(t *testing.T, s ledger.Store) []string {
	t.Helper()
	recs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func TestValidBatchAppliedOnceThenDuplicate(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	f.run(t)
	till := ledgertest.NewTill("store-042", "till.3", "acme")
	b := till.Batch(t, till.Earn("e1", "m1", 100), till.Earn("e2", "m2", 50), till.Burn("b1", "m1", 30), till.Burn("b2", "m2", 51))
	payload := encode(t, b)

	f.in.HandleTx(topic(t, "store-042", "till.3", protocol.ChannelTx), payload)
	testkit.WaitFor(t, wait, "the first ack batch", func() bool { return f.rec.count() >= 1 })

	msgs := f.rec.all()
	if len(msgs) != 1 {
		t.Fatalf("published %d messages for one batch, want exactly 1", len(msgs))
	}
	// The wire contract, spelled out rather than built with the same builder.
	if want := "tillsync/v1/stores/store-042/terminals/till.3/ack"; msgs[0].Topic != want || msgs[0].QoS != 0 {
		t.Fatalf("acks on %q qos %d, want %q qos 0", msgs[0].Topic, msgs[0].QoS, want)
	}
	first := decodeAcks(t, msgs[0])
	want := []protocol.Ack{
		applied("e1", "m1", 100, 100),
		applied("e2", "m2", 50, 50),
		applied("b1", "m1", 30, 70),
		// A rejection books nothing.
		{ID: "b2", Status: protocol.StatusRejected, Code: protocol.CodeInsufficientPoints, Member: "m2", Balance: 50},
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("acks:\n got %+v\nwant %+v", first, want)
	}
	if st := f.in.Stats(); st.Batches != 1 || st.Commits != 1 || st.Applied != 3 || st.Rejected != 1 || st.Duplicates != 0 || st.Held != 0 || st.Refused != 0 {
		t.Fatalf("stats after the first batch: %+v", st)
	}
	before := takeSnapshot(t, f.store, "m1", "m2")

	// The agent did not see the ack and sends the same batch again.
	f.clock.Advance(time.Minute)
	f.in.HandleTx(topic(t, "store-042", "till.3", protocol.ChannelTx), payload)
	testkit.WaitFor(t, wait, "the second ack batch", func() bool { return f.rec.count() >= 2 })

	msgs = f.rec.all()
	if len(msgs) != 2 || msgs[1].Topic != msgs[0].Topic {
		t.Fatalf("after the resend: %d messages, second on %q", len(msgs), msgs[len(msgs)-1].Topic)
	}
	second := decodeAcks(t, msgs[1])
	wantDup := make([]protocol.Ack, len(want))
	for i, a := range want {
		wantDup[i] = dupOf(a)
	}
	if !reflect.DeepEqual(second, wantDup) {
		t.Fatalf("acks for the resend:\n got %+v\nwant %+v", second, wantDup)
	}
	for _, a := range second[:3] {
		if a.OriginalStatus != protocol.StatusApplied {
			t.Errorf("duplicate of %s: original_status %q, want applied", a.ID, a.OriginalStatus)
		}
	}
	if after := takeSnapshot(t, f.store, "m1", "m2"); !reflect.DeepEqual(before, after) {
		t.Fatalf("a duplicate batch changed the ledger:\nbefore %+v\nafter  %+v", before, after)
	}
	if st := f.in.Stats(); st.Batches != 2 || st.Applied != 3 || st.Duplicates != 4 || st.Rejected != 1 || st.Held != 0 {
		t.Fatalf("stats after the resend: %+v", st)
	}
}

// eventLog orders what happened across goroutines with one counter.
type eventLog struct {
	n         atomic.Uint64
	mu        sync.Mutex
	committed map[string]uint64 // tx id → event number when its Apply returned
	groups    []int             // batches per Apply call
	failed    int               // Apply calls that returned an error
}

// observedStore is the real store with Apply observed: it records when each
// Apply returned and what it committed. Behaviour is the real store's.
type observedStore struct {
	ledger.Store
	log *eventLog
}

func (s observedStore) Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error) {
	acks, err := s.Store.Apply(batches, now)
	n := s.log.n.Add(1)
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.groups = append(s.log.groups, len(batches))
	if err != nil {
		s.log.failed++
		return acks, err
	}
	for _, as := range acks {
		for _, a := range as {
			if _, ok := s.log.committed[a.ID]; !ok {
				s.log.committed[a.ID] = n
			}
		}
	}
	return acks, err
}

func observe(log *eventLog) func(ledger.Store) ledger.Store {
	log.committed = make(map[string]uint64)
	return func(s ledger.Store) ledger.Store { return observedStore{s, log} }
}

func TestAcksOnlyAfterCommit(t *testing.T) {
	var log eventLog
	f := newFixture(t, ingest.Options{MaxGroup: 7}, observe(&log))
	type pub struct {
		n   uint64
		ids []string
		// durable: every acked id was in the real ledger when the ack left.
		missing []string
	}
	var pmu sync.Mutex
	var pubs []pub
	f.rec.before = func(_ string, payload []byte) {
		n := log.n.Add(1)
		ab, err := protocol.DecodeAckBatch(payload)
		if err != nil {
			t.Errorf("undecodable ack batch: %v", err)
			return
		}
		recs, err := f.store.Transactions()
		if err != nil {
			t.Errorf("reading the ledger: %v", err)
			return
		}
		have := make(map[string]bool)
		for _, r := range recs {
			have[r.ID] = true
		}
		p := pub{n: n, ids: ids(ab.Acks)}
		for _, id := range p.ids {
			if !have[id] {
				p.missing = append(p.missing, id)
			}
		}
		pmu.Lock()
		pubs = append(pubs, p)
		pmu.Unlock()
	}
	f.run(t)

	const terminals, perTerminal = 4, 15
	var wg sync.WaitGroup
	for k := range terminals {
		wg.Go(func() {
			till := ledgertest.NewTill("s1", fmt.Sprintf("t%d", k), "p1")
			for i := range perTerminal {
				id := fmt.Sprintf("t%d-%02d", k, i)
				b := till.Batch(t, till.Earn(id+"-e", "m"+id, 10), till.Burn(id+"-b", "m"+id, 4), till.Burn(id+"-x", "m"+id, 100))
				f.in.HandleTx(topic(t, "s1", till.Terminal, protocol.ChannelTx), encode(t, b))
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, wait, "an ack batch for every batch", func() bool { return f.rec.count() >= terminals*perTerminal })
	if n := f.rec.count(); n != terminals*perTerminal {
		t.Errorf("%d ack batches for %d batches", n, terminals*perTerminal)
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	pmu.Lock()
	defer pmu.Unlock()
	acked := 0
	for _, p := range pubs {
		if len(p.missing) > 0 {
			t.Errorf("acks for %v left while the ledger did not hold them yet", p.missing)
		}
		for _, id := range p.ids {
			c, ok := log.committed[id]
			switch {
			case !ok:
				t.Errorf("ack for %s published, but no Apply ever returned it", id)
			case c >= p.n:
				t.Errorf("ack for %s published (event %d) before its Apply returned (event %d)", id, p.n, c)
			}
			acked++
		}
	}
	if want := terminals * perTerminal * 3; acked != want {
		t.Errorf("%d acks, want %d", acked, want)
	}
	for _, g := range log.groups {
		if g > 7 {
			t.Errorf("one commit took %d batches, more than MaxGroup 7", g)
		}
	}
}

func TestFailedCommitIsNotAcked(t *testing.T) {
	var log eventLog
	f := newFixture(t, ingest.Options{}, observe(&log))
	// A closed ledger fails every Apply for real.
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	till := ledgertest.NewTill("s1", "t1", "p1")
	f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, till.Batch(t, till.Earn("e1", "m1", 10))))
	stop := f.run(t)
	testkit.WaitFor(t, wait, "the commit to fail", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.failed > 0
	})
	stop()
	if n := f.rec.count(); n != 0 {
		t.Fatalf("%d messages published after a failed commit, want none", n)
	}
	if st := f.in.Stats(); st.Batches != 0 || st.Commits != 0 || st.Applied != 0 {
		t.Fatalf("stats count a failed commit: %+v", st)
	}
}

func TestRefusedMessages(t *testing.T) {
	till := func(store, terminal string) *ledgertest.Till { return ledgertest.NewTill(store, terminal, "p1") }
	good := func(t *testing.T) *protocol.Batch {
		tl := till("s1", "t1")
		return tl.Batch(t, tl.Earn("e1", "m1", 10))
	}
	goodJSON := func(t *testing.T) []byte { return encode(t, good(t)) }
	txTopic := "tillsync/v1/stores/s1/terminals/t1/tx"
	tests := []struct {
		name    string
		topic   string
		payload func(t *testing.T) []byte
	}{
		{"store differs from topic", txTopic, func(t *testing.T) []byte {
			tl := till("s2", "t1")
			return encode(t, tl.Batch(t, tl.Earn("e1", "m1", 10)))
		}},
		{"terminal differs from topic", txTopic, func(t *testing.T) []byte {
			tl := till("s1", "t2")
			return encode(t, tl.Batch(t, tl.Earn("e1", "m1", 10)))
		}},
		{"ack channel", "tillsync/v1/stores/s1/terminals/t1/ack", goodJSON},
		{"query channel", "tillsync/v1/stores/s1/terminals/t1/query", goodJSON},
		{"unknown channel", "tillsync/v1/stores/s1/terminals/t1/txs", goodJSON},
		{"other version root", "tillsync/v2/stores/s1/terminals/t1/tx", goodJSON},
		{"wildcard store", "tillsync/v1/stores/+/terminals/t1/tx", goodJSON},
		{"multi-level wildcard", "tillsync/v1/stores/s1/terminals/#", goodJSON},
		{"extra level", "tillsync/v1/stores/s1/terminals/t1/tx/x", goodJSON},
		{"missing level", "tillsync/v1/stores/s1/t1/tx", goodJSON},
		{"empty store", "tillsync/v1/stores//terminals/t1/tx", goodJSON},
		{"empty topic", "", goodJSON},
		{"empty payload", txTopic, func(*testing.T) []byte { return nil }},
		{"malformed JSON", txTopic, func(*testing.T) []byte { return []byte(`{"version":1,"store":"s1",`) }},
		{"not an object", txTopic, func(*testing.T) []byte { return []byte(`[1,2,3]`) }},
		{"wrong field type", txTopic, func(*testing.T) []byte { return []byte(`{"version":"1","store":"s1","terminal":"t1","txs":[]}`) }},
		{"trailing data", txTopic, func(t *testing.T) []byte { return append(goodJSON(t), '}') }},
		{"two messages", txTopic, func(t *testing.T) []byte { return append(goodJSON(t), goodJSON(t)...) }},
		{"wrong version", txTopic, func(t *testing.T) []byte {
			b := good(t)
			b.Version = protocol.Version + 1
			return encode(t, b)
		}},
		{"version zero", txTopic, func(t *testing.T) []byte {
			b := good(t)
			b.Version = 0
			return encode(t, b)
		}},
		{"oversize", txTopic, func(t *testing.T) []byte {
			// Valid JSON whose only fault is its size.
			p := goodJSON(t)
			return append(p, bytes.Repeat([]byte(" "), protocol.MaxBatchBytes-len(p)+1)...)
		}},
		{"no transactions", txTopic, func(t *testing.T) []byte {
			b := good(t)
			b.Txs = nil
			return encode(t, b)
		}},
		{"too many transactions", txTopic, func(t *testing.T) []byte {
			tl := till("s1", "t1")
			var txs []protocol.Transaction
			for i := range protocol.MaxBatchTxs + 1 {
				txs = append(txs, tl.Earn(fmt.Sprintf("e%d", i), "m1", 1))
			}
			return encode(t, &protocol.Batch{Version: protocol.Version, Store: "s1", Terminal: "t1", SentAt: ledgertest.T0, Txs: txs})
		}},
		{"negative backlog", txTopic, func(t *testing.T) []byte {
			b := good(t)
			b.Backlog = -1
			return encode(t, b)
		}},
		{"invalid store id in payload", "tillsync/v1/stores/s1/terminals/t1/tx", func(t *testing.T) []byte {
			b := good(t)
			b.Store = "s1/terminals/t1"
			return encode(t, b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, ingest.Options{}, nil)
			f.in.HandleTx(tt.topic, tt.payload(t))
			if st := f.in.Stats(); st.Refused != 1 || st.QueueDepth != 0 || st.Dropped != 0 {
				t.Fatalf("stats after the message: %+v, want refused 1 and nothing queued", st)
			}
			// A good batch from another terminal behind it: once it is acked,
			// the refused message had every chance to reach the ledger.
			f.run(t)
			other := till("s9", "t9")
			f.in.HandleTx(topic(t, "s9", "t9", protocol.ChannelTx), encode(t, other.Batch(t, other.Earn("sentinel", "m9", 1))))
			testkit.WaitFor(t, wait, "the sentinel's ack", func() bool { return f.rec.count() >= 1 })
			msgs := f.rec.all()
			if len(msgs) != 1 || msgs[0].Topic != topic(t, "s9", "t9", protocol.ChannelAck) {
				t.Fatalf("published %d messages (%+v), want only the sentinel's ack", len(msgs), msgs)
			}
			if got := txIDs(t, f.store); !slices.Equal(got, []string{"sentinel"}) {
				t.Fatalf("ledger holds %v, want only the sentinel", got)
			}
			if terms, err := f.store.Terminals(); err != nil || len(terms) != 1 {
				t.Fatalf("terminals %+v, %v: want only the sentinel's", terms, err)
			}
			if st := f.in.Stats(); st.Refused != 1 || st.Applied != 1 || st.Batches != 1 {
				t.Fatalf("stats: %+v", st)
			}
		})
	}
}

func TestInvalidTransactionAnsweredOnItsOwn(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*protocol.Transaction)
		code   protocol.Code
	}{
		{"bad currency", func(tx *protocol.Transaction) { tx.Currency = "eur" }, protocol.CodeInvalidCurrency},
		{"no currency with an amount", func(tx *protocol.Transaction) { tx.Currency = "" }, protocol.CodeInvalidCurrency},
		{"seq zero", func(tx *protocol.Transaction) { tx.Seq = 0 }, protocol.CodeInvalidSeq},
		{"created in 1999", func(tx *protocol.Transaction) { tx.CreatedAt = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC) }, protocol.CodeInvalidTime},
		{"no created_at", func(tx *protocol.Transaction) { tx.CreatedAt = time.Time{} }, protocol.CodeMissingField},
		{"negative points", func(tx *protocol.Transaction) { tx.Points = -5 }, protocol.CodeInvalidPoints},
		{"too many points", func(tx *protocol.Transaction) { tx.Points = protocol.MaxPoints + 1 }, protocol.CodeInvalidPoints},
		{"unknown kind", func(tx *protocol.Transaction) { tx.Kind = "gift" }, protocol.CodeInvalidKind},
		{"bad member", func(tx *protocol.Transaction) { tx.Member = "m 1" }, protocol.CodeInvalidID},
		{"bad partner", func(tx *protocol.Transaction) { tx.Partner = "p#" }, protocol.CodeInvalidID},
		{"another store's transaction", func(tx *protocol.Transaction) { tx.Store = "s2" }, protocol.CodeStoreMismatch},
		{"another terminal's transaction", func(tx *protocol.Transaction) { tx.Terminal = "t2" }, protocol.CodeStoreMismatch},
	}
	f := newFixture(t, ingest.Options{}, nil)
	f.run(t)
	till := ledgertest.NewTill("s1", "t1", "p1")
	ackTopic := topic(t, "s1", "t1", protocol.ChannelAck)
	var balance int64
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := f.rec.count()
			pre := till.Earn(fmt.Sprintf("pre%d", i), "m1", 10)
			bad := till.Earn(fmt.Sprintf("bad%d", i), "m1", 1000)
			tt.mutate(&bad)
			post := till.Earn(fmt.Sprintf("post%d", i), "m1", 5)
			b := &protocol.Batch{Version: protocol.Version, Store: "s1", Terminal: "t1", SentAt: ledgertest.T0, Txs: []protocol.Transaction{pre, bad, post}}
			st0 := f.in.Stats()
			f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, b))
			testkit.WaitFor(t, wait, "the ack batch", func() bool { return f.rec.count() > n })

			msgs := f.rec.all()
			if len(msgs) != n+1 || msgs[n].Topic != ackTopic {
				t.Fatalf("published %d new messages, the last on %q", len(msgs)-n, msgs[len(msgs)-1].Topic)
			}
			acks := decodeAcks(t, msgs[n])
			byID := make(map[string]protocol.Ack)
			for _, a := range acks {
				byID[a.ID] = a
			}
			if len(acks) != 3 || len(byID) != 3 {
				t.Fatalf("acks %+v: want one per transaction", acks)
			}
			if a := byID[bad.ID]; a.Status != protocol.StatusRejected || a.Code != tt.code || a.Points != 0 {
				t.Errorf("invalid transaction answered %+v, want rejected %s", a, tt.code)
			}
			balance += 10
			if a := byID[pre.ID]; a != applied(pre.ID, "m1", 10, balance) {
				t.Errorf("valid transaction before it: %+v, want applied with balance %d", a, balance)
			}
			balance += 5
			if a := byID[post.ID]; a != applied(post.ID, "m1", 5, balance) {
				t.Errorf("valid transaction after it: %+v, want applied with balance %d", a, balance)
			}
			// The ledger's answers keep the batch's order.
			if i, j := slices.Index(ids(acks), pre.ID), slices.Index(ids(acks), post.ID); i > j {
				t.Errorf("acks %v: %s after %s", ids(acks), pre.ID, post.ID)
			}
			if slices.Contains(txIDs(t, f.store), bad.ID) {
				t.Errorf("the invalid transaction %s reached the ledger", bad.ID)
			}
			st := f.in.Stats()
			if st.Applied-st0.Applied != 2 || st.Rejected-st0.Rejected != 1 || st.Held != st0.Held || st.Refused != st0.Refused {
				t.Errorf("stats went from %+v to %+v", st0, st)
			}
		})
	}
	if got, _, _ := f.store.Balance("m1"); got != balance {
		t.Fatalf("m1 has %d in the ledger, want %d", got, balance)
	}
}

func TestTransactionWithoutUsableIDIsDropped(t *testing.T) {
	for _, id := range []string{"", "a b", "x/y", "+", "#", ".", strings.Repeat("i", protocol.MaxIDLen+1)} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			f := newFixture(t, ingest.Options{}, nil)
			f.run(t)
			till := ledgertest.NewTill("s1", "t1", "p1")
			bad := till.Earn(id, "m1", 7)
			good := till.Earn("good", "m1", 3)
			b := &protocol.Batch{Version: protocol.Version, Store: "s1", Terminal: "t1", SentAt: ledgertest.T0, Txs: []protocol.Transaction{bad, good}}
			f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, b))
			testkit.WaitFor(t, wait, "the ack batch", func() bool { return f.rec.count() >= 1 })
			acks := decodeAcks(t, f.rec.all()[0])
			if want := []protocol.Ack{applied("good", "m1", 3, 3)}; !reflect.DeepEqual(acks, want) {
				t.Fatalf("acks %+v, want %+v: nothing can be said about a transaction without an id", acks, want)
			}
			if st := f.in.Stats(); st.Refused != 1 || st.Applied != 1 || st.Rejected != 0 {
				t.Fatalf("stats: %+v, want the id-less transaction refused and counted", st)
			}
			if got := txIDs(t, f.store); !slices.Equal(got, []string{"good"}) {
				t.Fatalf("ledger holds %v", got)
			}
		})
	}
}

// TestUnknownStoreIsHeld: the ledger holds back the transactions of a store
// the coalition has not registered. A held ack is no answer: nothing is
// recorded, it books no points, and once the store is registered the till's
// re-send is applied, not answered as a duplicate.
func TestUnknownStoreIsHeld(t *testing.T) {
	var logs testkit.Buffer
	const warning = "holding back transactions from a store the coalition has not registered"
	f := newFixture(t, ingest.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	f.run(t)
	till := ledgertest.NewTill("s-new", "t1", "p1")
	tp := topic(t, "s-new", "t1", protocol.ChannelTx)
	payload := encode(t, till.Batch(t, till.Earn("e1", "m1", 10), till.Burn("b1", "m1", 4)))
	held := func(id string) protocol.Ack {
		return protocol.Ack{ID: id, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: "m1"}
	}

	// Held twice within a minute: acked both times, warned about once.
	for i := range 2 {
		f.in.HandleTx(tp, payload)
		testkit.WaitFor(t, wait, "the held acks", func() bool { return f.rec.count() > i })
		msgs := f.rec.all()
		if msgs[i].Topic != topic(t, "s-new", "t1", protocol.ChannelAck) {
			t.Fatalf("acks on %q", msgs[i].Topic)
		}
		if acks, want := decodeAcks(t, msgs[i]), []protocol.Ack{held("e1"), held("b1")}; !reflect.DeepEqual(acks, want) {
			t.Fatalf("acks for an unregistered store:\n got %+v\nwant %+v", acks, want)
		}
	}
	if st := f.in.Stats(); st.Held != 4 || st.Applied != 0 || st.Rejected != 0 || st.Duplicates != 0 || st.Batches != 2 || st.Refused != 0 {
		t.Fatalf("stats after two held batches: %+v", st)
	}
	if got := txIDs(t, f.store); len(got) != 0 {
		t.Fatalf("ledger holds %v after held transactions, want nothing", got)
	}
	if _, known, err := f.store.Balance("m1"); err != nil || known {
		t.Fatalf("m1 known=%v (%v) after held transactions only", known, err)
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings about the unregistered store within a minute, want 1:\n%s", n, logs.String())
	}

	// The operator registers the store; the till sends the same batch again.
	ledgertest.Register(t, f.store, till)
	f.clock.Advance(time.Minute)
	f.in.HandleTx(tp, payload)
	testkit.WaitFor(t, wait, "the acks after registration", func() bool { return f.rec.count() > 2 })
	if acks, want := decodeAcks(t, f.rec.all()[2]), []protocol.Ack{applied("e1", "m1", 10, 10), applied("b1", "m1", 4, 6)}; !reflect.DeepEqual(acks, want) {
		t.Fatalf("acks for the re-send after registration:\n got %+v\nwant %+v", acks, want)
	}
	if st := f.in.Stats(); st.Held != 4 || st.Applied != 2 || st.Duplicates != 0 || st.Batches != 3 {
		t.Fatalf("stats after the store was registered: %+v", st)
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings about the store, want still 1: nothing was held after registration", n)
	}
	takeSnapshot(t, f.store, "m1") // verifies
}

func TestGroupCommit(t *testing.T) {
	var log eventLog
	f := newFixture(t, ingest.Options{}, observe(&log))
	const goroutines, perGoroutine = 8, 25
	sent := make([][]string, 2*goroutines) // ids per terminal, in the order handed in
	handIn := func(phase int) {
		var wg sync.WaitGroup
		for g := range goroutines {
			k := phase*goroutines + g
			wg.Go(func() {
				till := ledgertest.NewTill("s1", fmt.Sprintf("t%02d", k), "p1")
				for i := range perGoroutine {
					id := fmt.Sprintf("%s-%03d", till.Terminal, i)
					b := till.Batch(t, till.Earn(id+"a", "m"+till.Terminal, 2), till.Earn(id+"b", "m"+till.Terminal, 3))
					sent[k] = append(sent[k], id+"a", id+"b")
					f.in.HandleTx(topic(t, "s1", till.Terminal, protocol.ChannelTx), encode(t, b))
				}
			})
		}
		wg.Wait()
	}

	// Phase 1: everything is waiting before the loop starts.
	handIn(0)
	if st := f.in.Stats(); st.QueueDepth != goroutines*perGoroutine || st.Dropped != 0 {
		t.Fatalf("stats before Run: %+v", st)
	}
	f.run(t)
	testkit.WaitFor(t, wait, "every queued batch to be acked", func() bool { return f.rec.count() == goroutines*perGoroutine })
	st := f.in.Stats()
	if st.Batches != goroutines*perGoroutine || st.Commits >= st.Batches {
		t.Fatalf("stats %+v: want %d batches sharing fewer commits", st, goroutines*perGoroutine)
	}

	// Phase 2: batches arrive from several goroutines while the loop runs.
	handIn(1)
	total := 2 * goroutines * perGoroutine
	testkit.WaitFor(t, wait, "every batch to be acked", func() bool { return f.rec.count() == total })
	st = f.in.Stats()
	if st.Batches != int64(total) || st.Applied != int64(2*total) || st.Commits >= st.Batches || st.Dropped != 0 {
		t.Fatalf("stats %+v: want %d batches, %d applied, in fewer commits", st, total, 2*total)
	}
	log.mu.Lock()
	commits := len(log.groups)
	log.mu.Unlock()
	if int64(commits) != st.Commits {
		t.Errorf("Stats says %d commits, the ledger saw %d Apply calls", st.Commits, commits)
	}

	// Each terminal's acks arrive in the order its batches were handed in.
	got := make(map[string][]string)
	for _, m := range f.rec.all() {
		got[m.Topic] = append(got[m.Topic], ids(decodeAcks(t, m))...)
	}
	for k, want := range sent {
		tp := topic(t, "s1", fmt.Sprintf("t%02d", k), protocol.ChannelAck)
		if !slices.Equal(got[tp], want) {
			t.Errorf("%s: acks %v, want %v", tp, got[tp], want)
		}
	}
	if n := len(txIDs(t, f.store)); n != 2*total {
		t.Errorf("ledger holds %d transactions, want %d", n, 2*total)
	}
	terms, err := f.store.Terminals()
	if err != nil || len(terms) != 2*goroutines {
		t.Fatalf("terminals: %d, %v", len(terms), err)
	}
	for _, tm := range terms {
		if tm.LastSeq != 2*perGoroutine || tm.Applied != 2*perGoroutine {
			t.Errorf("terminal %+v: want last seq and applied %d", tm, 2*perGoroutine)
		}
	}
	takeSnapshot(t, f.store) // verifies
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	f := newFixture(t, ingest.Options{QueueSize: 1}, nil)
	till := ledgertest.NewTill("s1", "t1", "p1")
	tp := topic(t, "s1", "t1", protocol.ChannelTx)
	first := encode(t, till.Batch(t, till.Earn("e1", "m1", 10)))
	second := encode(t, till.Batch(t, till.Earn("e2", "m1", 20)))

	f.in.HandleTx(tp, first)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.in.HandleTx(tp, second)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("HandleTx blocked on a full queue")
	}
	if st := f.in.Stats(); st.Dropped != 1 || st.QueueDepth != 1 || st.Refused != 0 {
		t.Fatalf("stats: %+v, want one queued and one dropped", st)
	}

	// The queued one is committed; the dropped one stays with its agent.
	f.run(t)
	testkit.WaitFor(t, wait, "the first batch's ack", func() bool { return f.rec.count() >= 1 })
	if acks := decodeAcks(t, f.rec.all()[0]); !reflect.DeepEqual(acks, []protocol.Ack{applied("e1", "m1", 10, 10)}) {
		t.Fatalf("acks %+v", acks)
	}
	if got := txIDs(t, f.store); !slices.Equal(got, []string{"e1"}) {
		t.Fatalf("ledger holds %v, want only e1", got)
	}
	if n := f.rec.count(); n != 1 {
		t.Fatalf("%d messages published, want 1", n)
	}
}

func TestBalanceQuery(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	till := ledgertest.NewTill("s1", "t1", "p1")
	// m1 has 75 points, 20 of them reserved by a hold that lives for the
	// default hold time from T0.
	ledgertest.Apply(t, f.store, ledgertest.T0, till.Batch(t, till.Earn("e1", "m1", 100), till.Burn("b1", "m1", 25), till.Hold("h1", "m1", 20)))
	f.clock.Advance(42 * time.Second)
	f.run(t)

	replyTopic := "tillsync/v1/stores/s1/terminals/t1/reply"
	queryTopic := topic(t, "s1", "t1", protocol.ChannelQuery)
	tests := []struct {
		member  string
		version int           // the version the query speaks
		advance time.Duration // the hub clock moves on before the query
		want    protocol.BalanceReply
	}{
		// A reply reports what a burn can take: the balance less active holds.
		{"m1", protocol.Version, 0, protocol.BalanceReply{Member: "m1", Known: true, Balance: 55}},
		{"m-unknown", protocol.Version, 0, protocol.BalanceReply{Member: "m-unknown", Known: false, Balance: 0}},
		// The hub still answers a version-1 till, in its version.
		{"m1", protocol.MinVersion, 0, protocol.BalanceReply{Member: "m1", Known: true, Balance: 55}},
		{"m1", protocol.UnsealedVersion, 0, protocol.BalanceReply{Member: "m1", Known: true, Balance: 55}},
		// Once the hold has lapsed, the whole balance is available again.
		{"m1", protocol.Version, ledger.DefaultHoldMinutes * time.Minute, protocol.BalanceReply{Member: "m1", Known: true, Balance: 75}},
	}
	for i, tt := range tests {
		f.clock.Advance(tt.advance)
		n := f.rec.count()
		reqID := fmt.Sprintf("req-%d", i)
		f.in.HandleQuery(queryTopic, encode(t, &protocol.BalanceQuery{Version: tt.version, RequestID: reqID, Member: tt.member}))
		testkit.WaitFor(t, wait, "the balance reply for "+tt.member, func() bool { return f.rec.count() > n })
		m := f.rec.all()[n]
		if m.Topic != replyTopic {
			t.Fatalf("reply on %q, want %q", m.Topic, replyTopic)
		}
		r, err := protocol.DecodeBalanceReply(m.Payload)
		if err != nil {
			t.Fatalf("undecodable reply: %v", err)
		}
		want := tt.want
		want.Version, want.RequestID, want.AsOf = tt.version, reqID, f.clock.Now()
		if !r.AsOf.Equal(want.AsOf) {
			t.Errorf("as_of %v, want the hub clock %v", r.AsOf, want.AsOf)
		}
		r.AsOf = want.AsOf
		if *r != want {
			t.Errorf("reply %+v, want %+v", *r, want)
		}
	}
	if st := f.in.Stats(); st.Queries != int64(len(tests)) || st.Refused != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// Queries that are not queries are refused and never answered.
	good := func() []byte {
		return encode(t, &protocol.BalanceQuery{Version: protocol.Version, RequestID: "r", Member: "m1"})
	}
	bad := []struct {
		name, topic string
		payload     []byte
	}{
		{"tx channel", topic(t, "s1", "t1", protocol.ChannelTx), good()},
		{"bad topic", "tillsync/v1/stores/s1/terminals/+/query", good()},
		{"malformed", queryTopic, []byte(`{"version":1`)},
		{"wrong version", queryTopic, []byte(`{"version":99,"request_id":"r","member":"m1"}`)},
		{"invalid member", queryTopic, []byte(`{"version":1,"request_id":"r","member":"m/1"}`)},
		{"no request id", queryTopic, []byte(`{"version":1,"member":"m1"}`)},
		{"oversize", queryTopic, append(good(), bytes.Repeat([]byte(" "), protocol.MaxSmallMessageBytes)...)},
	}
	n := f.rec.count()
	for i, b := range bad {
		f.in.HandleQuery(b.topic, b.payload)
		if st := f.in.Stats(); st.Refused != int64(i+1) {
			t.Errorf("%s: refused %d, want %d", b.name, st.Refused, i+1)
		}
	}
	// A good query behind them: once it is answered, no reply for the bad ones can follow.
	f.in.HandleQuery(queryTopic, encode(t, &protocol.BalanceQuery{Version: protocol.Version, RequestID: "last", Member: "m1"}))
	testkit.WaitFor(t, wait, "the last reply", func() bool { return f.rec.count() > n })
	if msgs := f.rec.all()[n:]; len(msgs) != 1 {
		t.Fatalf("%d replies for %d refused queries and one good one", len(msgs), len(bad))
	}
}

func TestRunDrainsQueueOnCancel(t *testing.T) {
	t.Run("cancelled before Run", func(t *testing.T) {
		var log eventLog
		f := newFixture(t, ingest.Options{MaxGroup: 3}, observe(&log))
		const batches = 10
		for i := range batches {
			tl := ledgertest.NewTill("s1", fmt.Sprintf("t%d", i), "p1")
			f.in.HandleTx(topic(t, "s1", tl.Terminal, protocol.ChannelTx), encode(t, tl.Batch(t, tl.Earn(fmt.Sprintf("e%d", i), "m1", 1))))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- f.in.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Run with a cancelled context did not return")
		}
		// Run has returned: everything it took is committed and acked by now.
		if n := f.rec.count(); n != batches {
			t.Fatalf("%d ack batches after Run returned, want %d", n, batches)
		}
		if n := len(txIDs(t, f.store)); n != batches {
			t.Fatalf("ledger holds %d transactions, want %d", n, batches)
		}
		if st := f.in.Stats(); st.Batches != batches || st.QueueDepth != 0 {
			t.Fatalf("stats: %+v", st)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		for _, g := range log.groups {
			if g > 3 {
				t.Errorf("draining committed %d batches at once, more than MaxGroup 3", g)
			}
		}
	})
	t.Run("cancelled while running", func(t *testing.T) {
		f := newFixture(t, ingest.Options{}, nil)
		stop := f.run(t)
		const batches = 50
		for i := range batches {
			tl := ledgertest.NewTill("s1", fmt.Sprintf("t%d", i), "p1")
			f.in.HandleTx(topic(t, "s1", tl.Terminal, protocol.ChannelTx), encode(t, tl.Batch(t, tl.Earn(fmt.Sprintf("e%d", i), "m1", 1))))
		}
		stop()
		if n := f.rec.count(); n != batches {
			t.Fatalf("%d ack batches after Run returned, want %d: handed-in batches were lost", n, batches)
		}
		if n := len(txIDs(t, f.store)); n != batches {
			t.Fatalf("ledger holds %d transactions, want %d", n, batches)
		}
	})
}

// The ingest's Publisher is the hub's only way out; a failing one must not
// stop the loop (the agent re-sends and gets a duplicate ack).
func TestPublishErrorDoesNotStopTheLoop(t *testing.T) {
	st, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	registerTestStores(t, st)
	var calls atomic.Int64
	in := ingest.New(ingest.Options{Store: st, Clock: clock.NewFake(ledgertest.T0), Publish: func(string, byte, []byte) error {
		calls.Add(1)
		return fmt.Errorf("broker gone")
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	till := ledgertest.NewTill("s1", "t1", "p1")
	for i := range 3 {
		in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), encode(t, till.Batch(t, till.Earn(fmt.Sprintf("e%d", i), "m1", 1))))
	}
	testkit.WaitFor(t, wait, "three publish attempts", func() bool { return calls.Load() == 3 })
	if got, _, _ := st.Balance("m1"); got != 3 {
		t.Fatalf("balance %d, want 3", got)
	}
}

func TestStatsJSON(t *testing.T) {
	// /v1/health shows the stats; their names are part of the operator API.
	b, err := json.Marshal(ingest.Stats{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"applied", "batches", "commits", "dropped", "duplicates", "held", "mac_refused", "queries", "queue_depth", "refused", "rejected", "replays_refused", "sightings", "token_flags"}
	if !slices.Equal(keys, want) {
		t.Fatalf("stats fields %v, want %v", keys, want)
	}
}

// poisonStore fails any Apply that includes a batch from the store named
// poison, as a disk or encoding fault tied to one batch would; every other
// Apply goes to the real ledger.
type poisonStore struct {
	ledger.Store
	poison string
}

func (s poisonStore) Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error) {
	for _, b := range batches {
		if b.Store == s.poison {
			return nil, fmt.Errorf("injected fault for %s", b.Store)
		}
	}
	return s.Store.Apply(batches, now)
}

// TestFailingBatchDoesNotHoldBackItsGroup: when a group commit fails, the
// batches are committed one by one, so only the failing one waits for its
// agent's re-send.
func TestFailingBatchDoesNotHoldBackItsGroup(t *testing.T) {
	f := newFixture(t, ingest.Options{MaxGroup: 16}, func(s ledger.Store) ledger.Store { return poisonStore{s, "bad"} })
	const good = 6
	for i := range good {
		tl := ledgertest.NewTill("s1", fmt.Sprintf("t%d", i), "p1")
		f.in.HandleTx(topic(t, "s1", tl.Terminal, protocol.ChannelTx), encode(t, tl.Batch(t, tl.Earn(fmt.Sprintf("e%d", i), "m1", 1))))
		if i == 2 {
			bad := ledgertest.NewTill("bad", "t1", "p1")
			f.in.HandleTx(topic(t, "bad", "t1", protocol.ChannelTx), encode(t, bad.Batch(t, bad.Earn("poisoned", "m1", 1))))
		}
	}
	f.run(t)
	testkit.WaitFor(t, wait, "the good batches to be acked", func() bool { return f.rec.count() == good })
	if n := len(txIDs(t, f.store)); n != good {
		t.Fatalf("ledger holds %d transactions, want the %d good ones", n, good)
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	for _, p := range f.rec.msgs {
		if p.Topic == topic(t, "bad", "t1", protocol.ChannelAck) {
			t.Fatal("the batch whose commit failed was acked")
		}
	}
}

// registerTestStores registers the stores these tests send from with the
// coalition (the ledger holds back transactions of unknown stores).
func registerTestStores(t testing.TB, st ledger.Store) {
	t.Helper()
	var tills []*ledgertest.Till
	for _, s := range []string{"s1", "s2", "s9", "bad"} {
		tills = append(tills, ledgertest.NewTill(s, "t1", "p1"))
	}
	tills = append(tills, ledgertest.NewTill("store-042", "till.3", "acme"))
	ledgertest.Register(t, st, tills...)
}

// A backlog filling its queue neither drops nor delays a live batch: the
// live one has a queue of its own and goes into the next commit first.
func TestLiveBatchesGoFirst(t *testing.T) {
	f := newFixture(t, ingest.Options{QueueSize: 2}, nil)
	back := ledgertest.NewTill("s1", "t1", "p1")
	backlog := func(id string) []byte {
		b := back.Batch(t, back.Earn(id+"a", "m1", 1), back.Earn(id+"b", "m1", 1))
		b.Backlog = 10 // more waits behind it at the till
		return encode(t, b)
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		f.in.HandleTx(topic(t, "s1", "t1", protocol.ChannelTx), backlog(id))
	}
	if st := f.in.Stats(); st.Dropped != 1 || st.QueueDepth != 2 {
		t.Fatalf("stats after three backlog batches into a queue of two: %+v, want 2 queued, 1 dropped", st)
	}
	live := ledgertest.NewTill("s1", "t2", "p1")
	f.in.HandleTx(topic(t, "s1", "t2", protocol.ChannelTx), encode(t, live.Batch(t, live.Earn("l1", "m2", 5), live.Earn("l2", "m2", 5))))
	if st := f.in.Stats(); st.Dropped != 1 || st.QueueDepth != 3 {
		t.Fatalf("stats after the live batch: %+v, want it queued beside the full backlog queue", st)
	}
	f.run(t)
	testkit.WaitFor(t, wait, "the acks of the three queued batches", func() bool { return f.rec.count() == 3 })
	// Acks go out in the order of the commit's batches.
	if got := ids(decodeAcks(t, f.rec.all()[0])); !slices.Equal(got, []string{"l1", "l2"}) {
		t.Fatalf("first acks %v, want the live batch's", got)
	}
	if got := txIDs(t, f.store); len(got) != 6 {
		t.Fatalf("ledger holds %v, want the live batch and the two queued backlog batches", got)
	}
}

// Acks grant each till a share of the backlog queue (credit.go): three
// quarters of it, divided among the tills sending a backlog (until a batch
// says nothing is queued behind it, or for a minute after their last), in
// transactions at their batches' size; a till's grant starts at one batch
// and grows by one a second.
func TestAcksGrantAShareOfTheQueue(t *testing.T) {
	f := newFixture(t, ingest.Options{QueueSize: 40}, nil) // 30 batches to share
	f.run(t)
	tills := map[string]*ledgertest.Till{}
	for _, s := range []string{"s1", "s2", "s9"} {
		tills[s] = ledgertest.NewTill(s, "t1", "p1")
	}
	n := 0
	grant := func(store string, backlog int64) int {
		t.Helper()
		tl := tills[store]
		var txs []protocol.Transaction
		for range 4 {
			n++
			txs = append(txs, tl.Earn(fmt.Sprintf("g%d", n), "m1", 1))
		}
		b := tl.Batch(t, txs...)
		b.Backlog = backlog
		before := f.rec.count()
		f.in.HandleTx(topic(t, store, "t1", protocol.ChannelTx), encode(t, b))
		testkit.WaitFor(t, wait, "the ack batch", func() bool { return f.rec.count() > before })
		msgs := f.rec.all()
		last := msgs[len(msgs)-1]
		if want := topic(t, store, "t1", protocol.ChannelAck); last.Topic != want {
			t.Fatalf("acks on %s, want %s", last.Topic, want)
		}
		ab, err := protocol.DecodeAckBatch(last.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return ab.Window
	}
	check := func(what string, got, batches int) {
		t.Helper()
		if got != batches*4 {
			t.Fatalf("%s: granted %d, want %d batches of 4", what, got, batches)
		}
	}
	check("a till's first backlog batch", grant("s1", 10), 1)
	f.clock.Advance(5 * time.Second)
	check("5 s later", grant("s1", 10), 6)
	f.clock.Advance(30 * time.Second)
	check("35 s later, alone", grant("s1", 10), 30)
	check("a second till's first", grant("s2", 10), 1)
	check("a third till's first", grant("s9", 10), 1)
	check("the first, among three", grant("s1", 10), 10)
	// A batch with nothing behind it ends its till's backlog: two count.
	check("the first's last batch", grant("s1", 0), 15)
	f.clock.Advance(20 * time.Second)
	check("the second, 20 s on", grant("s2", 10), 15)
	// 59 s after its last batch the third still counts; past a minute it went away.
	f.clock.Advance(39 * time.Second)
	check("the second, the third quiet for 59 s", grant("s2", 10), 15)
	f.clock.Advance(2 * time.Second)
	check("the second, the third gone", grant("s2", 10), 30)
}

// A till counts for the grants from the moment its backlog batch arrives,
// before its commit: the first ack of a region reconnecting at once grants
// a share among all of them, not among the tills committed so far.
func TestGrantCountsTillsOnArrival(t *testing.T) {
	f := newFixture(t, ingest.Options{QueueSize: 40, MaxGroup: 1}, nil) // a commit a batch
	for i, s := range []string{"s1", "s2", "s9"} {
		tl := ledgertest.NewTill(s, "t1", "p1")
		b := tl.Batch(t, tl.Earn(fmt.Sprintf("r%da", i), "m1", 1), tl.Earn(fmt.Sprintf("r%db", i), "m1", 1))
		b.Backlog = 5
		f.in.HandleTx(topic(t, s, "t1", protocol.ChannelTx), encode(t, b))
	}
	f.clock.Advance(20 * time.Second) // past the grants' ramp
	f.run(t)
	testkit.WaitFor(t, wait, "three ack batches", func() bool { return f.rec.count() == 3 })
	for _, m := range f.rec.all() {
		ab, err := protocol.DecodeAckBatch(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ab.Window != 10*2 {
			t.Errorf("%s: granted %d, want 30 batches / 3 tills × 2 = 20", m.Topic, ab.Window)
		}
	}
}

// A till that has sent all it has still counts for the grants while its
// batches wait in the queues: it holds that much of them until the hub
// has taken them.
func TestGrantCountsTillsUntilTheirBatchesAreTaken(t *testing.T) {
	f := newFixture(t, ingest.Options{QueueSize: 40, MaxGroup: 1}, nil) // a commit a batch
	s1, s2 := ledgertest.NewTill("s1", "t1", "p1"), ledgertest.NewTill("s2", "t1", "p1")
	for i, c := range []struct {
		tl      *ledgertest.Till
		backlog int64
	}{{s1, 5}, {s1, 0}, {s2, 5}} {
		b := c.tl.Batch(t, c.tl.Earn(fmt.Sprintf("q%da", i), "m1", 1), c.tl.Earn(fmt.Sprintf("q%db", i), "m1", 1))
		b.Backlog = c.backlog
		f.in.HandleTx(topic(t, c.tl.Store, "t1", protocol.ChannelTx), encode(t, b))
	}
	f.clock.Advance(40 * time.Second) // past the grants' ramp
	f.run(t)
	testkit.WaitFor(t, wait, "three ack batches", func() bool { return f.rec.count() == 3 })
	var got []string
	for _, m := range f.rec.all() {
		ab, err := protocol.DecodeAckBatch(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d", strings.Split(m.Topic, "/")[3], ab.Window))
	}
	// s1's last batch is live and goes first: s1 still has its backlog
	// batch queued, so two tills count (15 batches of 2 each); then s1's
	// backlog batch, the last of it, leaves one (30 batches).
	if want := []string{"s1 30", "s1 60", "s2 60"}; !slices.Equal(got, want) {
		t.Fatalf("grants %v, want %v", got, want)
	}
}
