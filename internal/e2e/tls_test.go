package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestOverTLS: the embedded broker serves MQTT over TLS with the hub's own
// certificate; an agent that trusts the hub's CA earns, burns and reverses
// through it, across a restart of the hub (which reloads its CA). One that
// trusts another CA never connects, keeps its earn, declines burns
// offline, and says why in its health.
func TestOverTLS(t *testing.T) {
	e := newEnv(t, "embedded-tls")
	h := startHubOnce(t, e)
	store := e.store("tls-")
	member := store + "-m1"
	if !strings.HasPrefix(e.brokerURL(), "tls://") {
		t.Fatalf("broker %s", e.brokerURL())
	}
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.earn(t, member, 5000)
	a.waitDrained(t)
	if r := a.burn(t, member, 20); r.Status != "approved" {
		t.Fatalf("burn over TLS: %+v", r)
	}
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance after earning 50 and burning 20 over TLS: %d", got)
	}
	h.stop(t)
	a.earn(t, member, 1000) // offline: kept in the outbox
	h = startHubOnce(t, e)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 40 {
		t.Fatalf("hub balance after a restart over TLS: %d, want 40", got)
	}

	other, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), HubCA: other.CACertPEM(), Store: store, Terminal: "till-2"})
	stranger.earn(t, member, 1000)
	testkit.WaitFor(t, waitLong, "the till to say why it cannot reach the hub", func() bool {
		return strings.Contains(stranger.health(t).HubError, "certificate signed by unknown authority")
	})
	hl := stranger.health(t)
	if hl.HubConnected || hl.Backlog != 1 || !strings.Contains(hl.HubError, "hub_ca") {
		t.Fatalf("an agent that trusts another CA: %+v; want never connected, its earn kept, a hint at hub_ca", hl)
	}
	if r := stranger.burn(t, member, 1); r.Status != "declined" || r.Code != protocol.CodeOffline {
		t.Errorf("a burn at the agent that cannot verify the hub: %+v, want declined offline", r)
	}
	if got, _ := h.balance(t, member); got != 40 {
		t.Fatalf("hub balance changed: %d", got)
	}
}
