package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/protocol"
)

// TestOverTLS: the embedded broker serves MQTT over TLS with the hub's own
// certificate; an agent that trusts the hub's CA earns and burns through
// it, and one that trusts another CA never connects, keeping its earn.
func TestOverTLS(t *testing.T) {
	e := newEnv(t, "embedded")
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.pki = p
	h := startHubOnce(t, e)
	store := e.store("tls-")
	member := store + "-m1"
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), HubCA: p.CACertPEM(), Store: store})
	a.earn(t, member, 5000)
	a.waitDrained(t)
	if r := a.burn(t, member, 20); r.Status != "approved" {
		t.Fatalf("burn over TLS: %+v", r)
	}
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance after earning 50 and burning 20 over TLS: %d", got)
	}

	other, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), HubCA: other.CACertPEM(), Store: store, Terminal: "till-2"})
	stranger.earn(t, member, 1000)
	time.Sleep(2 * time.Second) // several connection attempts
	if hl := stranger.health(t); hl.HubConnected || hl.Backlog != 1 {
		t.Fatalf("an agent that trusts another CA: %+v; want never connected, its earn kept", hl)
	}
	if r := stranger.burn(t, member, 1); r.Status != "declined" || r.Code != protocol.CodeOffline {
		t.Errorf("a burn at the agent that cannot verify the hub: %+v, want declined offline", r)
	}
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance changed: %d", got)
	}
}
