package broker

import (
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Shutdown stops a mochi server for good: listeners, clients, hooks.
//
// It works around a deadlock in mochi v2.7.9's Server.Close
// (mochi-mqtt/server#488): Close finds each listener's clients with
// Clients.GetByListener, which takes the clients' read lock twice, so a
// client connecting or going away at that moment (a writer queued between
// the two) hangs the server — and the hub's shutdown — for good. Shutdown
// closes each listener first with its own closer, which lists the clients
// under one read lock (Clients.GetAll) and disconnects them as Close would;
// Close then finds every listener already closed and never calls
// GetByListener.
func Shutdown(srv *mochi.Server) error {
	srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return srv.Close()
}
