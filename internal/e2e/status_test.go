package e2e

import (
	"encoding/base64"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestStatusOnPermissiveBroker: behind a broker that lets anyone publish
// anywhere, the hub takes an enrolled till's sealed status (its only
// online signal with an external broker), refuses statuses forged in its
// name — unsealed, or sealed with another key, claiming a newer session
// and offline — and sees the till go offline when it stops.
func TestStatusOnPermissiveBroker(t *testing.T) {
	url := testkit.StartBroker(t).URL
	e := &env{t: t, external: url, hubDir: filepath.Join(t.TempDir(), "hub"), clientID: randomID("tillsync-hub-e2e-"), httpAddr: testkit.FreePort(t)}
	hp := e.startHub()
	t.Cleanup(func() { hp.stop(t) })
	store := e.store("status-")
	dir, _ := enrollTerminal(t, e, hp.h.Ledger(), store, "till-1")
	_, other := enrollTerminal(t, e, hp.h.Ledger(), store, "till-2")
	topic := topicOf(t, store, "till-1", protocol.ChannelStatus)

	status := func() *protocol.TerminalStatus { return agentStatusAt(t, e, store, "till-1") }
	a := startTill(t, agent.Options{DataDir: dir, Broker: url, Store: store, Terminal: "till-1", Version: "3.1.4"})
	testkit.WaitFor(t, waitLong, "till-1's status at the hub", func() bool { s := status(); return s != nil && s.Online })
	s := status()
	if s.AgentVersion != "3.1.4" || s.Session != 1 || s.Version != protocol.Version || s.MAC != "" {
		t.Fatalf("status at the hub %+v", s)
	}
	refused := hp.h.Stats().MACRefused

	in := newIntruder(t, url)
	forged := protocol.TerminalStatus{Version: protocol.Version, Store: store, Terminal: "till-1", Session: 99, Online: false, SentAt: time.Now()}
	otherKey, err := base64.RawURLEncoding.DecodeString(other.MACKey)
	if err != nil {
		t.Fatal(err)
	}
	unsealed := forged
	unsealed.Version = protocol.UnsealedVersion
	in.publish(t, topic, mustEncode(t, &unsealed))
	in.publish(t, topic, sealWith(t, otherKey, topic, &forged))
	testkit.WaitFor(t, waitLong, "both forgeries refused", func() bool { return hp.h.Stats().MACRefused >= refused+2 })
	if s := status(); !s.Online || s.Session != 1 {
		t.Fatalf("after forged statuses: %+v, want session 1 online", s)
	}

	// A balance query gives the till its clock offset from the hub (the
	// same machine here: near zero), in its health and its status.
	if s.ClockOffsetMS != nil {
		t.Fatalf("a clock offset before any balance query: %d", *s.ClockOffsetMS)
	}
	var b posapi.Balance
	getJSON(t, a.pos+"/v1/members/"+store+"-m1/balance", &b)
	if b.Source != "hub" {
		t.Fatalf("balance %+v, want the hub's", b)
	}
	if off := a.health(t).ClockOffsetMS; off == nil || *off < -1000 || *off > 1000 {
		t.Fatalf("health clock_offset_ms %v, want about 0", off)
	}
	testkit.WaitFor(t, waitLong, "the clock offset in the status at the hub", func() bool {
		s := status()
		return s != nil && s.ClockOffsetMS != nil && *s.ClockOffsetMS > -1000 && *s.ClockOffsetMS < 1000
	})

	a.stop(t)
	testkit.WaitFor(t, waitLong, "till-1 offline at the hub", func() bool { s := status(); return s != nil && !s.Online && s.Session == 1 })
}

// agentStatusAt is what GET /v1/stores says store/terminal's till last
// reported about itself; nil when nothing.
func agentStatusAt(t *testing.T, e *env, store, terminal string) *protocol.TerminalStatus {
	t.Helper()
	var out struct {
		Stores []struct {
			Store     string `json:"store"`
			Terminals []struct {
				Terminal    string                   `json:"terminal"`
				AgentStatus *protocol.TerminalStatus `json:"agent_status"`
			} `json:"terminals"`
		} `json:"stores"`
	}
	hubGet(t, e, "/v1/stores", &out)
	for _, s := range out.Stores {
		for _, tm := range s.Terminals {
			if s.Store == store && tm.Terminal == terminal {
				return tm.AgentStatus
			}
		}
	}
	return nil
}
