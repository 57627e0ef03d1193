package uplink

import (
	"context"
	"path/filepath"
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
func (nopOutbox) Acked(a []protocol.Ack, _ time.Time) ([]protocol.Ack, error) {
	return a, nil
}
func (nopOutbox) Stats() (int64, time.Time, error) { return 0, time.Time{}, nil }
func (nopOutbox) Queued(string) (bool, error)      { return false, nil }

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
	f.up, err = New(Options{Broker: url, Store: "s1", Terminal: "t1", Outbox: ob, AckTimeout: ackTimeout,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, BatchMax: 10, Window: 25})
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
		tx.Points = 1
	}
	if err := f.ob.Append(&tx, "", nil, false); err != nil {
		t.Fatal(err)
	}
	f.up.Kick()
	return tx.ID
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
	ab := protocol.AckBatch{Version: protocol.Version}
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
	// Window 25: 25 sent, no more, until acks arrive.
	testkit.WaitFor(t, 5*time.Second, "the window to fill", func() bool { return len(f.sent()) == 25 })
	f.mu.Lock()
	for _, b := range f.got {
		if len(b.Txs) > 10 {
			t.Errorf("batch of %d, BatchMax is 10", len(b.Txs))
		}
	}
	f.mu.Unlock()
	f.ack(t, ids[:25]...)
	testkit.WaitFor(t, 5*time.Second, "the next window", func() bool { return len(f.sent()) == 50 })
	f.ack(t, ids[25:50]...)
	testkit.WaitFor(t, 5*time.Second, "the rest", func() bool { return len(f.sent()) == 60 })
	f.mu.Lock()
	last := f.got[len(f.got)-1]
	f.mu.Unlock()
	if last.Backlog != 0 {
		t.Errorf("last batch reports backlog %d behind it, want 0", last.Backlog)
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
