package uplink

import (
	"errors"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

const sightingToken = "TS1.Af6BLBIAAAAAawQPGHR3ZWx2ZS1ieXRlcwVNMTAwMQ.HF9UFTkfnbZIovv7JIljlfFBO6cW5Taon-r05tZCl051wdwMqKuQJrWE725t5JwnJNWao_rBeN0jxQEcEE_3Cg"

// TestPublishSighting: while connected, a sighting goes out on the
// terminal's scan topic, QoS 0, with the till's ids; offline it is refused
// at once, never queued for later.
func TestPublishSighting(t *testing.T) {
	got := make(chan *protocol.Sighting, 10)
	f := newFixtureWith(t, time.Second, func(f *fixture, _ *Options) {
		topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelScan)
		tok := f.peer.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) {
			s, err := protocol.DecodeSighting(m.Payload())
			if err != nil {
				t.Errorf("bad sighting: %v", err)
				return
			}
			got <- s
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
	})
	at := time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC)
	if err := f.up.PublishSighting(protocol.Sighting{Token: sightingToken, At: at}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.Store != "s1" || s.Terminal != "t1" || s.Version != protocol.UnsealedVersion || s.Token != sightingToken || !s.At.Equal(at) {
			t.Fatalf("sighting %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no sighting arrived")
	}
	if err := f.up.PublishSighting(protocol.Sighting{Token: "M1001", At: at}); protocol.CodeOf(err) != protocol.CodeTokenMalformed {
		t.Errorf("a sighting of a card number: %v", err)
	}

	f.cancel()
	<-f.done
	testkit.WaitFor(t, 5*time.Second, "the uplink to be down", func() bool { return !f.up.Connected() })
	if err := f.up.PublishSighting(protocol.Sighting{Token: sightingToken, At: at}); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline: %v, want ErrOffline", err)
	}
	if n := len(f.up.sightings); n != 0 {
		t.Fatalf("%d sightings kept for later", n)
	}
	f.done = make(chan struct{}) // the fixture's cleanup waits on it once more
	close(f.done)
}

// TestPublishSightingNeverBlocks: with the connection's queue full (the
// uplink goroutine busy), a sighting is dropped at once.
func TestPublishSightingNeverBlocks(t *testing.T) {
	u, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s1", Terminal: "t1", Outbox: nopOutbox{}})
	if err != nil {
		t.Fatal(err)
	}
	u.connected.Store(true) // as if connected, with no session draining the queue
	at := time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC)
	for i := range cap(u.sightings) {
		if err := u.PublishSighting(protocol.Sighting{Token: sightingToken, At: at}); err != nil {
			t.Fatalf("sighting %d: %v", i, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- u.PublishSighting(protocol.Sighting{Token: sightingToken, At: at}) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSightingDropped) {
			t.Fatalf("with the queue full: %v, want ErrSightingDropped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishSighting blocked")
	}
	u.dropSightings()
	if n := len(u.sightings); n != 0 {
		t.Fatalf("%d sightings left after dropping", n)
	}
}
