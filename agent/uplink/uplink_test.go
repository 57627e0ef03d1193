package uplink

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

func TestBackoffStaysInBounds(t *testing.T) {
	u, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s", Terminal: "t", Outbox: nopOutbox{},
		BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < 40; n++ {
		want := 100 * time.Millisecond << min(n-1, 20)
		want = min(want, 2*time.Second)
		for range 50 {
			d := u.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: wait %s outside [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

type nopOutbox struct{}

func (nopOutbox) Pending(uint64, int) ([]protocol.Transaction, error) { return nil, nil }
func (nopOutbox) Acked(a []protocol.Ack, _ time.Time) ([]protocol.Ack, []protocol.Ack, error) {
	return a, nil, nil
}
func (nopOutbox) Stats() (int64, time.Time, error)                { return 0, time.Time{}, nil }
func (nopOutbox) WaitingOn(*protocol.Transaction) (string, error) { return "", nil }
func (nopOutbox) Queued(string) (bool, error)                     { return false, nil }

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Store: "s", Terminal: "t", Outbox: nopOutbox{}},
		{Broker: "tcp://x:1", Store: "s", Terminal: "t"},
		{Broker: "tcp://x:1", Store: "s/x", Terminal: "t", Outbox: nopOutbox{}},
		{Broker: "tcp://x:1", Store: "s", Terminal: "#", Outbox: nopOutbox{}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// fixture is an uplink over a real outbox and a real broker, with a paho
// client standing in for the hub's side of the topics.
type fixture struct {
	ob     *outbox.Outbox
	up     *Uplink
	peer   mqtt.Client
	mu     sync.Mutex
	got    []protocol.Batch
	cancel context.CancelFunc
	done   chan struct{}
	seq    atomic.Int64
}

func newFixture(t *testing.T, ackTimeout time.Duration) *fixture {
	t.Helper()
	return newFixtureWith(t, ackTimeout, nil)
}

// newFixtureWith is newFixture with a hook that may change the uplink's
// options and act as the hub (f.peer is connected) before the uplink starts.
func newFixtureWith(t *testing.T, ackTimeout time.Duration, before func(*fixture, *Options)) *fixture {
	t.Helper()
	url := testkit.StartBroker(t).URL
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ob: ob, done: make(chan struct{})}
	f.peer = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("peer"))
	if tok := f.peer.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("peer connect: %v", tok.Error())
	}
	txTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelTx)
	tok := f.peer.Subscribe(txTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		bt, err := protocol.DecodeBatch(m.Payload())
		if err != nil {
			t.Errorf("agent sent a bad batch: %v", err)
			return
		}
		f.mu.Lock()
		f.got = append(f.got, *bt)
		f.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("peer subscribe: %v", tok.Error())
	}
	opts := Options{Broker: url, Store: "s1", Terminal: "t1", Outbox: ob, AckTimeout: ackTimeout,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, BatchMax: 10, Window: 25}
	if before != nil {
		before(f, &opts)
	}
	f.up, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { defer close(f.done); f.up.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-f.done; f.peer.Disconnect(0); ob.Close() })
	testkit.WaitFor(t, 5*time.Second, "the uplink to connect", f.up.Connected)
	return f
}

func (f *fixture) append(t *testing.T, kind protocol.Kind, original string) string {
	t.Helper()
	n := f.seq.Add(1)
	tx := protocol.Transaction{ID: "tx-" + string(rune('a'+n/26)) + string(rune('a'+n%26)), Store: "s1", Terminal: "t1", Partner: "p1",
		Member: "m1", Kind: kind, Amount: 1000, Currency: "EUR", Points: 10, Original: original,
		CreatedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	if kind == protocol.KindReverse {
		tx.Points, tx.Amount, tx.Currency = 1, 0, "" // by points
	}
	if err := f.ob.Append(&tx, "", nil, false); err != nil {
		t.Fatal(err)
	}
	f.up.Kick()
	return tx.ID
}

// open has the hub answer a first transaction, granting nothing, so that
// the window is Options.Window rather than a new connection's one batch.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	id := f.append(t, protocol.KindEarn, "")
	testkit.WaitFor(t, 5*time.Second, "the first transaction to go out", func() bool { return f.sent()[id] == 1 })
	f.ack(t, id)
	testkit.WaitFor(t, 5*time.Second, "the first ack", func() bool {
		n, _, _ := f.ob.Stats()
		return n == 0
	})
	f.mu.Lock()
	f.got = nil
	f.mu.Unlock()
}

func (f *fixture) sent() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, b := range f.got {
		for _, tx := range b.Txs {
			n[tx.ID]++
		}
	}
	return n
}

func (f *fixture) ack(t *testing.T, ids ...string) {
	t.Helper()
	f.ackGranting(t, 0, ids...)
}

// ackGranting acks ids with the hub's grant of a window (0: none).
func (f *fixture) ackGranting(t *testing.T, window int, ids ...string) {
	t.Helper()
	ab := protocol.AckBatch{Version: protocol.Version, Window: window}
	for _, id := range ids {
		ab.Acks = append(ab.Acks, protocol.Ack{ID: id, Status: protocol.StatusApplied, Member: "m1", Balance: 10})
	}
	payload, _ := protocol.Encode(&ab)
	topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelAck)
	f.peer.Publish(topic, 1, false, payload)
}

func TestUnackedIsResentAndAckedIsDeleted(t *testing.T) {
	f := newFixture(t, 300*time.Millisecond)
	id := f.append(t, protocol.KindEarn, "")
	// Without an ack, the transaction goes out again after AckTimeout, and stays queued.
	testkit.WaitFor(t, 5*time.Second, "a re-send", func() bool { return f.sent()[id] >= 2 })
	if q, _ := f.ob.Queued(id); !q {
		t.Fatal("unacked transaction left the outbox")
	}
	f.ack(t, id)
	testkit.WaitFor(t, 5*time.Second, "the ack to empty the outbox", func() bool {
		n, _, _ := f.ob.Stats()
		return n == 0
	})
}

func TestWindowBoundsInflightAndBatches(t *testing.T) {
	f := newFixture(t, time.Hour)
	var ids []string
	for range 60 {
		ids = append(ids, f.append(t, protocol.KindEarn, ""))
	}
	// One batch (BatchMax 10) until the hub answers.
	testkit.WaitFor(t, 5*time.Second, "the first batch", func() bool { return len(f.sent()) == 10 })
	time.Sleep(100 * time.Millisecond)
	if n := len(f.sent()); n != 10 {
		t.Fatalf("%d sent before the hub answered, want one batch of 10", n)
	}
	f.ack(t, ids[:10]...)
	// Window 25 (the hub grants none): 25 in flight, no more, until acks arrive.
	testkit.WaitFor(t, 5*time.Second, "the window to fill", func() bool { return len(f.sent()) == 35 })
	f.mu.Lock()
	for _, b := range f.got {
		if len(b.Txs) > 10 {
			t.Errorf("batch of %d, BatchMax is 10", len(b.Txs))
		}
	}
	f.mu.Unlock()
	f.ack(t, ids[10:35]...)
	testkit.WaitFor(t, 5*time.Second, "the rest", func() bool { return len(f.sent()) == 60 })
	f.mu.Lock()
	last := f.got[len(f.got)-1]
	f.mu.Unlock()
	if last.Backlog != 0 {
		t.Errorf("last batch reports backlog %d behind it, want 0", last.Backlog)
	}
}

// The hub's grant bounds the window within Options.Window, and a hub
// that stops granting leaves it at Options.Window.
func TestWindowFollowsHubGrant(t *testing.T) {
	f := newFixture(t, time.Hour) // Window 25, BatchMax 10
	var ids []string
	for range 100 {
		ids = append(ids, f.append(t, protocol.KindEarn, ""))
	}
	testkit.WaitFor(t, 5*time.Second, "the first batch", func() bool { return len(f.sent()) == 10 })
	// A grant of 4: the acks free 10, and 4 go out, in a batch of 4.
	f.ackGranting(t, 4, ids[:10]...)
	testkit.WaitFor(t, 5*time.Second, "the granted window", func() bool { return len(f.sent()) == 14 })
	time.Sleep(100 * time.Millisecond)
	if n := len(f.sent()); n != 14 {
		t.Fatalf("%d sent under a grant of 4 after 10 acked, want 14", n)
	}
	// A grant above Window: Window (25) it is.
	f.ackGranting(t, 1000, ids[10:14]...)
	testkit.WaitFor(t, 5*time.Second, "Window", func() bool { return len(f.sent()) == 39 })
	time.Sleep(100 * time.Millisecond)
	if n := len(f.sent()); n != 39 {
		t.Fatalf("%d sent under a grant above Window, want 14 + 25", n)
	}
	// A grant of 3, then acks from a hub that grants none: Window again.
	f.ackGranting(t, 3, ids[14:16]...)
	time.Sleep(100 * time.Millisecond)
	if n := len(f.sent()); n != 39 {
		t.Fatalf("%d sent with 23 in flight under a grant of 3, want none more (39)", n)
	}
	f.ack(t, ids[16:39]...)
	testkit.WaitFor(t, 5*time.Second, "Window, the grant gone", func() bool { return len(f.sent()) == 64 })
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.got {
		if len(b.Txs) > 10 {
			t.Errorf("batch of %d, BatchMax is 10", len(b.Txs))
		}
	}
}

func TestReverseWaitsForItsOriginal(t *testing.T) {
	f := newFixture(t, time.Hour)
	earn := f.append(t, protocol.KindEarn, "")
	testkit.WaitFor(t, 5*time.Second, "the earn to go out", func() bool { return f.sent()[earn] == 1 })
	rev := f.append(t, protocol.KindReverse, earn)
	other := f.append(t, protocol.KindEarn, "")
	// The reverse (and what follows it) is held while the earn is unacked.
	// Give the uplink every chance to (wrongly) send it.
	f.up.Kick()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if f.sent()[rev] > 0 {
			t.Fatal("reverse sent before its original was acked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.ack(t, earn)
	testkit.WaitFor(t, 5*time.Second, "the reverse to go out after the ack", func() bool {
		s := f.sent()
		return s[rev] == 1 && s[other] == 1
	})
}

func (f *fixture) answer(t *testing.T, acks ...protocol.Ack) {
	t.Helper()
	payload, _ := protocol.Encode(&protocol.AckBatch{Version: protocol.Version, Acks: acks})
	topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelAck)
	f.peer.Publish(topic, 1, false, payload)
}

// ackLog records what OnAck and OnHeld were called with.
type ackLog struct {
	mu          sync.Mutex
	acked, held []protocol.Ack
}

func (l *ackLog) onAck(a protocol.Ack)  { l.mu.Lock(); l.acked = append(l.acked, a); l.mu.Unlock() }
func (l *ackLog) onHeld(a protocol.Ack) { l.mu.Lock(); l.held = append(l.held, a); l.mu.Unlock() }
func (l *ackLog) counts() (acked, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), len(l.held)
}

// TestHeldIsKeptAndResent: a held ack is not an answer. The transaction
// stays in the outbox, goes out again after AckTimeout, and leaves only
// with a real answer.
func TestHeldIsKeptAndResent(t *testing.T) {
	var log ackLog
	f := newFixtureWith(t, 300*time.Millisecond, func(_ *fixture, o *Options) { o.OnAck, o.OnHeld = log.onAck, log.onHeld })
	id := f.append(t, protocol.KindEarn, "")
	held := protocol.Ack{ID: id, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: "m1"}
	for n := 1; n <= 3; n++ {
		testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("send %d", n), func() bool { return f.sent()[id] >= n })
		f.answer(t, held)
		testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("held answer %d to reach OnHeld", n), func() bool { _, h := log.counts(); return h == n })
		if q, _ := f.ob.Queued(id); !q {
			t.Fatalf("held transaction left the outbox")
		}
	}
	if a, _ := log.counts(); a != 0 {
		t.Fatalf("OnAck called %d times for held answers", a)
	}
	if log.held[0] != held {
		t.Errorf("OnHeld got %+v, want %+v", log.held[0], held)
	}
	f.ack(t, id)
	testkit.WaitFor(t, 5*time.Second, "the real answer to empty the outbox", func() bool {
		n, _, _ := f.ob.Stats()
		a, _ := log.counts()
		return n == 0 && a == 1
	})
	// A late held answer for a transaction no longer queued is not reported.
	f.answer(t, held)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, h := log.counts(); h != 3 {
			t.Fatalf("OnHeld called %d times, want 3 (not for a transaction already answered)", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoPhaseBurnOrder: a capture waits for its hold's ack, and a reverse
// naming the hold (the id the POS knows) waits for the capture's.
func TestTwoPhaseBurnOrder(t *testing.T) {
	f := newFixture(t, time.Hour)
	hold := protocol.Transaction{ID: "hold-1", Store: "s1", Terminal: "t1", Partner: "p1", Member: "m1",
		Kind: protocol.KindHold, Points: 10, CreatedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	if err := f.ob.Append(&hold, "", nil, true); err != nil {
		t.Fatal(err)
	}
	f.up.Kick()
	testkit.WaitFor(t, 5*time.Second, "the hold to go out", func() bool { return f.sent()["hold-1"] == 1 })
	// A capture queued before the hold's ack (not what the agent does, but
	// the order must hold whatever the timing) is held back.
	capture := hold
	capture.ID, capture.Kind, capture.Original, capture.Seq = "cap-1", protocol.KindCapture, "hold-1", 0
	if _, err := f.ob.DecideBurn("hold-1", []byte(`{}`), true, &capture); err != nil {
		t.Fatal(err)
	}
	f.up.Kick()
	noSend(t, f, "cap-1", "capture sent before its hold was acked")
	f.ack(t, "hold-1")
	testkit.WaitFor(t, 5*time.Second, "the capture after the hold's ack", func() bool { return f.sent()["cap-1"] == 1 })

	rev := f.append(t, protocol.KindReverse, "hold-1")
	noSend(t, f, rev, "reverse of the hold sent before its capture was acked")
	f.ack(t, "cap-1")
	testkit.WaitFor(t, 5*time.Second, "the reverse after the capture's ack", func() bool { return f.sent()[rev] == 1 })
}

// noSend gives the uplink every chance to (wrongly) send id.
func noSend(t *testing.T, f *fixture, id, what string) {
	t.Helper()
	f.up.Kick()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if f.sent()[id] > 0 {
			t.Fatal(what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConfig(store, partner string, pub time.Time) protocol.Config {
	return protocol.Config{Version: protocol.Version, Store: store, Partner: partner, Currency: "EUR", PointValue: "0.01",
		Rules:       []protocol.RuleSet{{Partner: partner, Version: 1, EffectiveFrom: pub, Currency: "EUR", Points: 1, Per: 100}},
		PublishedAt: pub}
}

func (f *fixture) publishConfig(t *testing.T, payload []byte) {
	t.Helper()
	topic, _ := protocol.ConfigTopic("s1")
	if tok := f.peer.Publish(topic, 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish config: %v", tok.Error())
	}
}

// TestConfig: the retained config arrives at connect and each new one after
// it; bad ones and those for another store or partner never reach OnConfig.
func TestConfig(t *testing.T) {
	pub := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var got []protocol.Config
	configs := func() []protocol.Config { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Partner = "p1"
		o.OnConfig = func(c protocol.Config) { mu.Lock(); got = append(got, c); mu.Unlock() }
		// Published before the till connects: retained, it arrives on subscribe.
		first, _ := protocol.Encode(ptr(testConfig("s1", "p1", pub)))
		f.publishConfig(t, first)
	})
	// It may come twice: published as the till subscribes, the broker can
	// deliver it live as well as retained. OnConfig's user keeps the newest.
	testkit.WaitFor(t, 5*time.Second, "the retained config", func() bool { return len(configs()) >= 1 })
	if c := configs()[0]; !c.PublishedAt.Equal(pub) || c.Store != "s1" || len(c.Rules) != 1 {
		t.Fatalf("OnConfig got %+v", c)
	}

	otherPartner, _ := protocol.Encode(ptr(testConfig("s1", "p2", pub.Add(time.Minute))))
	otherStore, _ := protocol.Encode(ptr(testConfig("s2", "p1", pub.Add(time.Minute))))
	invalid := testConfig("s1", "p1", pub.Add(time.Minute))
	invalid.Currency = "euro"
	badRules, _ := protocol.Encode(&invalid)
	for _, p := range [][]byte{[]byte("{not json"), otherPartner, otherStore, badRules, nil} {
		f.publishConfig(t, p)
	}
	newer, _ := protocol.Encode(ptr(testConfig("s1", "p1", pub.Add(time.Hour))))
	f.publishConfig(t, newer)
	testkit.WaitFor(t, 5*time.Second, "the newer config", func() bool {
		c := configs()
		return len(c) > 1 && c[len(c)-1].PublishedAt.Equal(pub.Add(time.Hour))
	})
	for _, c := range configs() {
		if c.Partner != "p1" || c.Store != "s1" || c.Currency != "EUR" || !(c.PublishedAt.Equal(pub) || c.PublishedAt.Equal(pub.Add(time.Hour))) {
			t.Errorf("OnConfig got a config it should have ignored: %+v", c)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A hub that works through a long queue answers a till's batches late but
// in order: as long as the front of the till's queue keeps moving, nothing
// is sent again, however long ago its batch left.
func TestSlowHubIsNotResent(t *testing.T) {
	f := newFixture(t, 900*time.Millisecond)
	f.open(t)
	var ids []string
	for range 25 {
		ids = append(ids, f.append(t, protocol.KindEarn, ""))
	}
	testkit.WaitFor(t, 5*time.Second, "the window to go out", func() bool { return len(f.sent()) == 25 })
	// Five answers every 400 ms: the last comes 2 s after the batches left,
	// more than twice the ack timeout.
	for i := 0; i < len(ids); i += 5 {
		time.Sleep(400 * time.Millisecond)
		f.ack(t, ids[i:i+5]...)
	}
	testkit.WaitFor(t, 5*time.Second, "the acks to empty the outbox", func() bool {
		n, _, _ := f.ob.Stats()
		return n == 0
	})
	for id, n := range f.sent() {
		if n != 1 {
			t.Errorf("%s sent %d times while the hub kept answering", id, n)
		}
	}
}

// The front of the queue decides: a batch the hub never got is sent again
// even while the hub answers the batches after it.
func TestLostFrontResentWhileLaterAcked(t *testing.T) {
	f := newFixture(t, 600*time.Millisecond)
	f.open(t)
	var ids []string
	for range 20 {
		ids = append(ids, f.append(t, protocol.KindEarn, ""))
	}
	testkit.WaitFor(t, 5*time.Second, "the batches to go out", func() bool { return len(f.sent()) == 20 })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 10; i < 20; i++ { // the second batch, answered one by one
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			f.ack(t, ids[i])
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "the unanswered front to go again", func() bool { return f.sent()[ids[0]] >= 2 })
}

// After a re-send that brought no answer the timer doubles: a hub that
// answers nothing is not sent everything every ack timeout.
func TestResendBacksOff(t *testing.T) {
	f := newFixture(t, 300*time.Millisecond)
	id := f.append(t, protocol.KindEarn, "")
	time.Sleep(3500 * time.Millisecond)
	// At a fixed 300 ms (checked every 500 ms) it would have gone 7 or 8
	// times; doubling to the cap of 1.2 s, 5 at most.
	if n := f.sent()[id]; n < 2 || n > 5 {
		t.Errorf("sent %d times in 3.5 s with an ack timeout of 300 ms, want a re-send and then fewer", n)
	}
}
