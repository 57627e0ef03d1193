// Package hub is tillsync-hub: it holds the coalition's authoritative
// ledger, applies each transaction from the tills exactly once, acks it after
// the commit, and serves the operators' HTTP API. It wires the broker
// (hub/broker: embedded mochi by default, or an external broker), the ingest
// loop with its group commit (hub/ingest), the ledger (hub/ledger) and the
// HTTP API (hub/httpapi).
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// LedgerFile is the ledger's file name inside the data dir.
const LedgerFile = "ledger.db"

// Options configures a Hub. DataDir is required, and exactly one of
// MQTTListener (embedded broker) and BrokerURL (external broker).
type Options struct {
	// DataDir holds the ledger; created owner-only if missing.
	DataDir string
	// MQTTListener is where the embedded broker serves MQTT clients.
	MQTTListener net.Listener
	// BrokerURL names an external broker to use instead, e.g. tcp://127.0.0.1:1883.
	BrokerURL string
	// BrokerClientID is the hub's client id at an external broker; default "tillsync-hub".
	BrokerClientID string
	// HTTPListener serves the HTTP API; nil for none.
	HTTPListener net.Listener
	Logger       *slog.Logger
	Clock        clock.Clock
}

// Hub is a running hub. Make it with Open, run it with Run.
type Hub struct {
	o      Options
	log    *slog.Logger
	ledger *ledger.BoltStore
	ingest atomic.Pointer[ingest.Ingest] // set by Run; Stats may be called from anywhere
	ready  chan struct{}
}

// Open checks the options and opens the ledger (failing fast on a locked or
// unusable data dir).
func Open(o Options) (*Hub, error) {
	if o.DataDir == "" {
		return nil, errors.New("hub: no data dir")
	}
	if (o.MQTTListener == nil) == (o.BrokerURL == "") {
		return nil, errors.New("hub: need either an MQTT listener for the embedded broker or an external broker URL")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub: data dir: %w", err)
	}
	st, err := ledger.OpenBolt(filepath.Join(o.DataDir, LedgerFile), ledger.BoltOptions{Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	return &Hub{o: o, log: o.Logger, ledger: st, ready: make(chan struct{})}, nil
}

// Ready is closed once Run has the broker up and its subscriptions in place.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Ledger gives tests and tools read access to the ledger.
func (h *Hub) Ledger() ledger.Store { return h.ledger }

// Stats returns the ingest counters (zero before Run).
func (h *Hub) Stats() ingest.Stats {
	in := h.ingest.Load()
	if in == nil {
		return ingest.Stats{}
	}
	return in.Stats()
}

// Run serves until ctx is done, then stops taking messages, commits and acks
// what it already took, and closes the ledger.
func (h *Hub) Run(ctx context.Context) error {
	defer h.ledger.Close()
	var bus broker.Bus
	var err error
	if h.o.BrokerURL != "" {
		bus, err = broker.DialExternal(ctx, broker.ExternalOptions{URL: h.o.BrokerURL, ClientID: h.o.BrokerClientID, Logger: h.log})
	} else {
		bus, err = broker.StartEmbedded(broker.EmbeddedOptions{Listener: h.o.MQTTListener, Logger: h.log})
	}
	if err != nil {
		return err
	}
	in := ingest.New(ingest.Options{
		Store:   h.ledger,
		Publish: func(topic string, qos byte, payload []byte) error { return bus.Publish(topic, qos, false, payload) },
		Logger:  h.log, Clock: h.o.Clock,
	})
	h.ingest.Store(in)
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	ingestDone := make(chan struct{})
	go func() {
		defer close(ingestDone)
		in.Run(ingestCtx)
	}()
	subscribe := func() error {
		if err := bus.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, func(m broker.Message) { in.HandleTx(m.Topic, m.Payload) }); err != nil {
			return err
		}
		return bus.Subscribe(protocol.AllTerminals(protocol.ChannelQuery), 0, func(m broker.Message) { in.HandleQuery(m.Topic, m.Payload) })
	}
	var wg sync.WaitGroup
	if err = subscribe(); err == nil {
		where := h.o.BrokerURL
		if h.o.MQTTListener != nil {
			where = "mqtt://" + h.o.MQTTListener.Addr().String() + " (embedded)"
		}
		h.log.Info("hub running", "broker", where, "ledger", filepath.Join(h.o.DataDir, LedgerFile))
		close(h.ready)
		errc := make(chan error, 1)
		if h.o.HTTPListener != nil {
			h.log.Info("http api listening", "addr", "http://"+h.o.HTTPListener.Addr().String())
			wg.Go(func() {
				errc <- httpapi.Serve(ctx, h.o.HTTPListener, httpapi.Options{Store: h.ledger, Stats: func() any { return in.Stats() }, Logger: h.log, Clock: h.o.Clock})
			})
		}
		select {
		case <-ctx.Done():
		case err = <-errc:
		}
	}
	// Commit and ack what the ingest already took while the broker still
	// carries the acks; anything arriving meanwhile stays unacked and is
	// re-sent by its agent.
	stopIngest()
	<-ingestDone
	bus.Close()
	wg.Wait()
	h.log.Info("hub stopped", "stats", fmt.Sprintf("%+v", in.Stats()))
	return err
}
