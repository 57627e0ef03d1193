package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// The embedded broker's TLS handshakes. A hub restarting under 10,000
// tills takes 10,000 handshakes at once. Run all at once, on a machine of
// two cores, every one of them finishes late, most after their tills gave
// up (a till waits 5 s for a connection), and the work is thrown away
// while the tills back off and come again: tillsync-sim bench measured
// 54 s to have 10,000 tills back. So at most a few handshakes per core run
// at a time, the rest wait their turn in arrival order, and each runs to
// its end or to handshakeTimeout.
const handshakeTimeout = 10 * time.Second

// handshakesPerCPU is how many handshakes run at a time, per CPU.
const handshakesPerCPU = 4

// tlsListener serves TLS on a listener, with the handshakes bounded as
// the comment above says.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
	sem chan struct{}
}

func newTLSListener(l net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: l, cfg: cfg, sem: make(chan struct{}, handshakesPerCPU*runtime.GOMAXPROCS(0))}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, l.cfg), sem: l.sem, accepted: time.Now()}, nil
}

// errHandshakeWait is returned when a connection waited handshakeTimeout
// for its turn.
var errHandshakeWait = errors.New("tls: no handshake slot within the handshake timeout")

// handshakeConn is a server-side TLS connection whose handshake runs at
// its first read or write, in its turn.
type handshakeConn struct {
	*tls.Conn
	sem      chan struct{}
	accepted time.Time
	once     sync.Once
	err      error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		deadline := c.accepted.Add(handshakeTimeout)
		wait := time.NewTimer(time.Until(deadline))
		defer wait.Stop()
		select {
		case c.sem <- struct{}{}:
		case <-wait.C:
			c.err = errHandshakeWait
			return
		}
		defer func() { <-c.sem }()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		c.err = c.Conn.HandshakeContext(ctx)
	})
	return c.err
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *handshakeConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
