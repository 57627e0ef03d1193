package agent_test

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestStatusAcrossRestart: the agent publishes its status retained when
// it connects, with its version and backlog; a clean stop says offline;
// after a restart on the same data dir the session counter has gone on.
func TestStatusAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := testkit.StartBroker(t)
	var mu sync.Mutex
	var got []protocol.TerminalStatus
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("status-reader").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	topic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelStatus)
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s, err := protocol.DecodeTerminalStatus(m.Payload())
		if err != nil {
			t.Errorf("bad status %s: %v", m.Payload(), err)
			return
		}
		mu.Lock()
		got = append(got, *s)
		mu.Unlock()
	}); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	last := func() protocol.TerminalStatus {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return protocol.TerminalStatus{}
		}
		return got[len(got)-1]
	}
	set := func(o *agent.Options) {
		o.Version = "1.2.3"
		o.Offline = agent.OfflinePolicy{MemberAllowance: 50, StoreCap: 300, StoreTills: 3, MaxBalanceAge: time.Hour}
	}

	p := startTill(t, dir, b.URL, set) // no hub answers: the earn stays queued
	testkit.WaitFor(t, waitLong, "session 1 online", func() bool { s := last(); return s.Session == 1 && s.Online })
	p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 1000, Currency: "EUR"})
	testkit.WaitFor(t, waitLong, "the backlog in the status", func() bool { return last().Backlog == 1 })
	// Its share of the store's offline cap goes with it, for the hub's
	// offline exposure alert.
	if s := last(); s.AgentVersion != "1.2.3" || s.ScannerConnected != nil || s.OldestUnsynced.IsZero() || s.OfflineCap != 100 || s.OfflinePoints != 0 {
		t.Fatalf("status %+v", s)
	}
	p.stop(t)
	testkit.WaitFor(t, waitLong, "session 1 offline", func() bool { s := last(); return s.Session == 1 && !s.Online })

	startTill(t, dir, b.URL, set)
	testkit.WaitFor(t, waitLong, "session 2 online after the restart", func() bool { s := last(); return s.Session == 2 && s.Online })
}
