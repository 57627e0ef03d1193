package testkit

import (
	"github.com/tillsync/tillsync/hub/broker"
	"log/slog"
	"net"
	"sync"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a real MQTT broker (mochi) on a loopback port with no access
// rules, standing in for an external broker (Mosquitto, EMQX): for tests of
// MQTT clients that must not depend on the hub, and for a hub that uses an
// external broker.
type Broker struct {
	URL  string // tcp://127.0.0.1:N
	Addr string // 127.0.0.1:N
	srv  *mochi.Server
	gate *broker.Gate
	once sync.Once
}

// StartBroker starts a broker on a free port; it is stopped when the test ends.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	return StartBrokerAt(t, "127.0.0.1:0")
}

// StartBrokerAt starts a broker on addr (to restart one where it was).
func StartBrokerAt(t testing.TB, addr string) *Broker {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("broker listen %s: %v", addr, err)
	}
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	gate := broker.NewGate(l)
	if err := srv.AddListener(listeners.NewNet("t", gate)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &Broker{URL: "tcp://" + l.Addr().String(), Addr: l.Addr().String(), srv: srv, gate: gate}
	t.Cleanup(func() { b.Close() })
	return b
}

// Close stops the broker, dropping every connection. Calling it again does nothing.
func (b *Broker) Close() { b.once.Do(func() { broker.Shutdown(b.srv, b.gate) }) }

// Clients counts the connected clients.
func (b *Broker) Clients() int {
	n := 0
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			n++
		}
	}
	return n
}
