package broker

import (
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Shutdown stops a mochi server for good: listeners, clients, hooks. The
// gates are the listeners given to mochi (NewGate); closing them first
// keeps shutdown clear of two faults of mochi v2.7.9:
//
//   - Server.Close finds each listener's clients with
//     Clients.GetByListener, which takes the clients' read lock twice, so
//     a client connecting or going away at that moment (a writer queued
//     between the two) hangs the server — and the hub's shutdown — for
//     good (mochi-mqtt/server#488). Shutdown lists the clients under one
//     read lock (Clients.GetAll) and disconnects them as Close would, then
//     closes the listeners with a closer of its own that has nothing left
//     to do; Close finds every listener already closed and never calls
//     GetByListener.
//   - A connection accepted just before shutdown calls
//     Listeners.ClientsWg.Add on its own goroutine, racing with the Wait
//     in Listeners.CloseAll (a WaitGroup misuse the race detector
//     reports, and a Wait that can return before that client is gone).
//     A closed gate accepts nothing more, and Shutdown waits until every
//     connection it let through has reached its first read, which mochi
//     does only after its Add.
//
// and of one more: a connection mochi has accepted but whose CONNECT has
// not arrived yet (a stalled network: the chaos harness's blackhole) is
// not among its clients, so nothing disconnects it; when its CONNECT comes
// after all, mochi attaches it and CloseAll waits for it for as long as
// the till keeps pinging. After disconnecting every client, Shutdown
// closes every connection its gates let through that is still open.
func Shutdown(srv *mochi.Server, gates ...*Gate) error {
	for _, g := range gates {
		g.close()
	}
	for _, g := range gates {
		g.settle(5 * time.Second)
	}
	for _, cl := range srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	for _, g := range gates {
		g.closeConns()
	}
	// Every client is disconnected and every connection closed: the closer,
	// which CloseAll calls for each listener, has nothing left to do.
	srv.Listeners.CloseAll(func(string) {})
	return srv.Close()
}

// Gate is a listener for mochi that Shutdown can close ahead of mochi's
// own shutdown (see Shutdown). Wrap the raw listener, under any TLS.
type Gate struct {
	net.Listener
	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup // accepted, not yet read from or closed
	open    map[*gatedConn]struct{}
}

// NewGate wraps l.
func NewGate(l net.Listener) *Gate { return &Gate{Listener: l, open: map[*gatedConn]struct{}{}} }

// Accept hands out connections until the gate is closed.
func (g *Gate) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	g.pending.Add(1)
	gc := &gatedConn{Conn: c, gate: g}
	g.open[gc] = struct{}{}
	return gc, nil
}

// closeConns closes every connection the gate let through that is still open.
func (g *Gate) closeConns() {
	g.mu.Lock()
	open := make([]*gatedConn, 0, len(g.open))
	for c := range g.open {
		open = append(open, c)
	}
	g.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// Close closes the gate and the listener.
func (g *Gate) Close() error {
	g.close()
	return nil
}

func (g *Gate) close() {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	if first {
		g.Listener.Close()
	}
}

// settle waits, at most d, until every connection the gate let through
// has been read from or closed.
func (g *Gate) settle(d time.Duration) {
	done := make(chan struct{})
	go func() { g.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// gatedConn tells its gate when mochi first reads from it, and when it is
// closed.
type gatedConn struct {
	net.Conn
	gate *Gate
	once sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	c.once.Do(c.gate.pending.Done)
	return c.Conn.Read(p)
}

func (c *gatedConn) Close() error {
	c.once.Do(c.gate.pending.Done)
	c.gate.mu.Lock()
	delete(c.gate.open, c)
	c.gate.mu.Unlock()
	return c.Conn.Close()
}
