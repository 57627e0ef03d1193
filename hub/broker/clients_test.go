package broker_test

import (
	"slices"
	"testing"

	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestConnectedClients: the list names every connected client by id, never
// the hub's inline client, and a client leaves it when it disconnects.
func TestConnectedClients(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	if ids := e.ConnectedClients(); len(ids) != 0 {
		t.Fatalf("ConnectedClients() = %v before anyone connected", ids)
	}
	a, b := protocol.AgentClientID("s1", "t1"), protocol.AgentClientID("s1", "t2")
	ca := client(t, url, a)
	cb := client(t, url, b)
	testkit.WaitFor(t, wait, "both clients listed", func() bool {
		ids := e.ConnectedClients()
		slices.Sort(ids)
		return slices.Equal(ids, []string{a, b})
	})
	cb.Disconnect(250)
	testkit.WaitFor(t, wait, "the disconnected client to leave the list", func() bool {
		return slices.Equal(e.ConnectedClients(), []string{a})
	})
	ca.Disconnect(250)
	testkit.WaitFor(t, wait, "the list to empty", func() bool { return len(e.ConnectedClients()) == 0 })
}
