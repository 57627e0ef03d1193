package uplink

import (
	"context"
	"io"
	"net"
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

// statusWatch is a paho client reading a terminal's status topic, as the
// hub does, keeping every status with whether it came retained.
type statusWatch struct {
	mu  sync.Mutex
	got []seenStatus
}

type seenStatus struct {
	s        protocol.TerminalStatus
	retained bool
	at       time.Time
}

func watchStatus(t *testing.T, url, store, terminal string) *statusWatch {
	t.Helper()
	w := &statusWatch{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("watch-" + t.Name()).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	topic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelStatus)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s, err := protocol.DecodeTerminalStatus(m.Payload())
		if err != nil {
			t.Errorf("bad status: %v\n%s", err, m.Payload())
			return
		}
		w.mu.Lock()
		w.got = append(w.got, seenStatus{*s, m.Retained(), time.Now()})
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	return w
}

func (w *statusWatch) all() []seenStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seenStatus(nil), w.got...)
}

func (w *statusWatch) last() (seenStatus, bool) {
	all := w.all()
	if len(all) == 0 {
		return seenStatus{}, false
	}
	return all[len(all)-1], true
}

// agentPart is a Status func whose scan time the test moves.
type agentPart struct{ scans atomic.Int64 }

func (p *agentPart) status() protocol.TerminalStatus {
	yes := true
	return protocol.TerminalStatus{AgentVersion: "9.8.7", ScannerConnected: &yes,
		LastScan: time.Unix(1_790_000_000+p.scans.Load(), 0).UTC(), OfflinePoints: 300, OfflineBurns: 2}
}

func TestStatusRetainedOnConnect(t *testing.T) {
	var part agentPart
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Status, o.NextSession = part.status, f.ob.NextSession
	})
	f.append(t, protocol.KindEarn, "")
	f.append(t, protocol.KindEarn, "")
	url := f.up.o.Broker
	// A reader coming later gets the status retained, the backlog in it.
	var w *statusWatch
	testkit.WaitFor(t, 5*time.Second, "a retained status with the backlog", func() bool {
		w = watchStatus(t, url, "s1", "t1")
		time.Sleep(100 * time.Millisecond)
		s, ok := w.last()
		return ok && s.retained && s.s.Backlog == 2
	})
	s, _ := w.last()
	got := s.s
	if !got.Online || got.Session != 1 || got.Store != "s1" || got.Terminal != "t1" || got.AgentVersion != "9.8.7" ||
		got.ScannerConnected == nil || !*got.ScannerConnected || got.LastScan.IsZero() || got.OfflinePoints != 300 || got.OfflineBurns != 2 ||
		got.OldestUnsynced.IsZero() || got.SentAt.IsZero() || got.Version != protocol.UnsealedVersion || got.MAC != "" {
		t.Fatalf("status %+v", got)
	}
	if got.ClockOffsetMS != nil {
		t.Errorf("a clock offset %d before any balance reply", *got.ClockOffsetMS)
	}
}

// TestStatusPaced: a burst of changes gives at most one status a second.
func TestStatusPaced(t *testing.T) {
	var part agentPart
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Status, o.NextSession = part.status, f.ob.NextSession
	})
	w := watchStatus(t, f.up.o.Broker, "s1", "t1")
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		part.scans.Add(1)
		f.up.StatusChanged()
		time.Sleep(5 * time.Millisecond)
	}
	// The last change goes out within a second and a half.
	want := time.Unix(1_790_000_000+part.scans.Load(), 0).UTC()
	testkit.WaitFor(t, 5*time.Second, "the last change", func() bool {
		s, ok := w.last()
		return ok && s.s.LastScan.Equal(want)
	})
	all := w.all()
	var live []seenStatus
	for _, s := range all {
		if !s.retained {
			live = append(live, s)
		}
	}
	if len(live) < 3 || len(live) > 6 {
		t.Errorf("%d statuses in about 4s of changes, want 3 to 6", len(live))
	}
	for i := 1; i < len(live); i++ {
		if gap := live[i].s.SentAt.Sub(live[i-1].s.SentAt); gap < time.Second {
			t.Errorf("statuses %d and %d only %v apart", i-1, i, gap)
		}
	}
}

// proxy forwards TCP connections to a broker until kill drops them all,
// as a network failure would: no DISCONNECT, so the broker sends the will.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, to string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	t.Cleanup(func() { l.Close(); p.kill() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestStatusSessionsAndWill: the session counter goes on across a
// restart of the till (the outbox reopened); a clean stop publishes the
// offline status; a dead connection's will says offline with its own
// session, and the reconnect's status has the next.
func TestStatusSessionsAndWill(t *testing.T) {
	b := testkit.StartBroker(t)
	p := newProxy(t, b.Addr)
	path := filepath.Join(t.TempDir(), "outbox.db")
	w := watchStatus(t, b.URL, "s1", "t1")
	var part agentPart
	run := func() (*Uplink, func()) {
		ob, err := outbox.Open(path, outbox.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		up, err := New(Options{Broker: "tcp://" + p.l.Addr().String(), Store: "s1", Terminal: "t1", Outbox: ob,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			Status: part.status, NextSession: ob.NextSession})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); up.Run(ctx) }()
		return up, func() { cancel(); <-done; ob.Close() }
	}
	seen := func(session uint64, online bool) func() bool {
		return func() bool {
			s, ok := w.last()
			return ok && s.s.Session == session && s.s.Online == online
		}
	}
	_, stop := run()
	testkit.WaitFor(t, 5*time.Second, "session 1 online", seen(1, true))
	stop()
	testkit.WaitFor(t, 5*time.Second, "session 1 offline (clean stop)", seen(1, false))

	_, stop = run()
	defer stop()
	testkit.WaitFor(t, 5*time.Second, "session 2 online after the restart", seen(2, true))
	p.kill()
	testkit.WaitFor(t, 10*time.Second, "session 3 online after the reconnect", seen(3, true))
	var will bool
	for _, s := range w.all() {
		if s.s.Session == 2 && !s.s.Online {
			will = true
		}
	}
	if !will {
		t.Errorf("no will of session 2: %+v", w.all())
	}
}

// TestStatusSealed: an enrolled till seals its status and its will.
func TestStatusSealed(t *testing.T) {
	key := make([]byte, protocol.MACKeyLen)
	key[0] = 7
	var part agentPart
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Status, o.NextSession, o.MACKey = part.status, f.ob.NextSession, key
	})
	topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelStatus)
	got := make(chan []byte, 8)
	tok := f.peer.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case payload := <-got:
		s, err := protocol.DecodeTerminalStatus(payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := protocol.VerifyMAC(key, topic, payload, s.MAC); err != nil || s.Version != protocol.Version {
			t.Fatalf("status not sealed (version %d): %v", s.Version, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no status")
	}
}

func TestNoteClock(t *testing.T) {
	u, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s", Terminal: "t", Outbox: nopOutbox{}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if _, ok := u.ClockOffset(); ok {
		t.Fatal("an offset before any reply")
	}
	u.noteClock(t0, t0.Add(3*time.Second), t0) // too slow a round trip to say anything
	if _, ok := u.ClockOffset(); ok {
		t.Fatal("an offset from a 3s round trip")
	}
	u.noteClock(t0, t0.Add(100*time.Millisecond), t0.Add(-2*time.Second))
	if d, ok := u.ClockOffset(); !ok || d != 2050*time.Millisecond {
		t.Fatalf("offset %v %v, want 2.05s", d, ok)
	}
}

// TestStatusRefreshedUnchanged: with nothing changing the status still
// goes out every StatusEvery.
func TestStatusRefreshedUnchanged(t *testing.T) {
	var part agentPart
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Status, o.NextSession, o.StatusEvery = part.status, f.ob.NextSession, 1500*time.Millisecond
	})
	w := watchStatus(t, f.up.o.Broker, "s1", "t1")
	testkit.WaitFor(t, 10*time.Second, "two refreshes", func() bool {
		n := 0
		for _, s := range w.all() {
			if !s.retained {
				n++
			}
		}
		return n >= 2
	})
	var live []seenStatus
	for _, s := range w.all() {
		if !s.retained {
			live = append(live, s)
		}
	}
	if gap := live[1].s.SentAt.Sub(live[0].s.SentAt); gap < 1500*time.Millisecond || gap > 3*time.Second {
		t.Errorf("refreshed after %v, want about 1.5s", gap)
	}
}

// TestStatusWithoutSessionStillSyncs: when the session counter cannot be
// read the till connects without a status and still syncs.
func TestStatusWithoutSessionStillSyncs(t *testing.T) {
	var part agentPart
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.Status = part.status
		o.NextSession = func() (uint64, error) { return 0, io.ErrUnexpectedEOF }
	})
	w := watchStatus(t, f.up.o.Broker, "s1", "t1")
	id := f.append(t, protocol.KindEarn, "")
	testkit.WaitFor(t, 5*time.Second, "the transaction sent", func() bool { return f.sent()[id] == 1 })
	if got := w.all(); len(got) != 0 {
		t.Errorf("statuses without a session: %+v", got)
	}
}
