package broker

// ConnectedClients returns the ids of the clients connected to the embedded
// broker now (the hub's inline client excluded), in no particular order.
// The dashboard reads a terminal's online state from it: a till that stops
// or loses its connection leaves the list at once (or when its keepalive
// runs out), long before the hub would miss its transactions.
func (e *Embedded) ConnectedClients() []string {
	var ids []string
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			ids = append(ids, cl.ID)
		}
	}
	return ids
}
