package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// frame builds an MQTT packet of type typ with a body of n bytes.
func frame(typ byte, n int) []byte {
	f := []byte{typ << 4}
	for l := n; ; {
		b := byte(l & 0x7f)
		l >>= 7
		if l > 0 {
			f = append(f, b|0x80)
			continue
		}
		f = append(f, b)
		break
	}
	body := bytes.Repeat([]byte{typ}, n)
	return append(f, body...)
}

var (
	connect = frame(1, 12)
	publish = frame(mqttPublish, 40)
	puback  = frame(mqttPuback, 2)
	pingreq = frame(12, 0)
)

// peer is the far end of the proxy: it takes one connection at a time and
// hands over what arrives, a packet at a time.
type peer struct {
	ln    net.Listener
	conns chan net.Conn
}

func newPeer(t *testing.T) *peer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln, conns: make(chan net.Conn, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *peer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-p.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached the peer")
		return nil
	}
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy("127.0.0.1:0", target, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
}

// expect reads the frames want from c, in order, within five seconds.
func expect(t *testing.T, c net.Conn, want ...[]byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for i, w := range want {
		got, err := readFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got type %d, %d bytes; want type %d, %d bytes", i, got[0]>>4, len(got), w[0]>>4, len(w))
		}
	}
	c.SetReadDeadline(time.Time{})
}

// quiet asserts that nothing arrives on c for a while.
func quiet(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("expected nothing, got %d bytes, err %v", n, err)
	}
	c.SetReadDeadline(time.Time{})
}

// closed asserts that c was closed by the far side.
func closed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("expected the connection closed, got %v", err)
	}
}

// connected is a proxy to a peer with one connection through it, its
// CONNECT passed: the proxy, the peer, the client's end and the peer's.
func connected(t *testing.T) (*Proxy, *peer, net.Conn, net.Conn) {
	t.Helper()
	far := newPeer(t)
	p := newProxy(t, far.ln.Addr().String())
	c := dial(t, p.Addr())
	send(t, c, connect)
	s := far.accept(t)
	expect(t, s, connect)
	return p, far, c, s
}

func TestProxyPassesPackets(t *testing.T) {
	far := newPeer(t)
	p := newProxy(t, far.ln.Addr().String())
	c := dial(t, p.Addr())
	big := frame(mqttPublish, 20_000) // a three-byte remaining length
	send(t, c, connect, publish, big, pingreq)
	s := far.accept(t)
	expect(t, s, connect, publish, big, pingreq)
	send(t, s, puback, publish)
	expect(t, c, puback, publish)
	if st := p.Stats(); st.Packets != 6 || st.Conns != 1 {
		t.Errorf("stats %+v, want 6 packets over 1 connection", st)
	}
}

func TestProxyDropsAndDuplicates(t *testing.T) {
	p, _, c, s := connected(t)

	// A packet that passes goes last each time: once it arrived, the proxy
	// has decided on every packet before it, under the faults then in force.
	p.Set(Faults{Drop: 1})
	send(t, c, publish, puback, pingreq)
	expect(t, s, pingreq) // PUBLISH and PUBACK lost, the rest passes
	send(t, s, puback, pingreq)
	expect(t, c, pingreq)

	p.Set(Faults{Duplicate: 1})
	send(t, c, publish, puback, pingreq)
	expect(t, s, publish, publish, puback, pingreq) // only PUBLISH doubled

	p.Set(Faults{})
	send(t, c, publish)
	expect(t, s, publish)
	quiet(t, s)
	if st := p.Stats(); st.Dropped != 3 || st.Duplicated != 1 {
		t.Errorf("stats %+v, want 3 dropped and 1 duplicated", st)
	}
}

func TestProxyBlackholeStallsThenDelivers(t *testing.T) {
	p, _, c, s := connected(t)
	p.Set(Faults{Blackhole: true})
	send(t, c, publish, pingreq)
	send(t, s, puback)
	quiet(t, s)
	quiet(t, c)
	p.Set(Faults{})
	expect(t, s, publish, pingreq) // late, in order, as TCP would
	expect(t, c, puback)
}

func TestProxyDelay(t *testing.T) {
	far := newPeer(t)
	p := newProxy(t, far.ln.Addr().String())
	p.Set(Faults{Delay: 200 * time.Millisecond})
	c := dial(t, p.Addr())
	start := time.Now()
	send(t, c, connect)
	s := far.accept(t)
	expect(t, s, connect)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("a packet delayed 200ms arrived after %v", d)
	}
}

func TestProxyDownAndCut(t *testing.T) {
	p, far, c, s := connected(t)

	p.Set(Faults{Down: true}) // the line goes down: both ends see it
	closed(t, c)
	closed(t, s)
	refused := dial(t, p.Addr()) // and a new connection is closed at once
	closed(t, refused)

	p.Set(Faults{})
	c = dial(t, p.Addr())
	send(t, c, connect)
	s = far.accept(t)
	expect(t, s, connect)
	p.Cut()
	closed(t, c)
	closed(t, s)
	c = dial(t, p.Addr()) // a cut line takes the next connection at once
	send(t, c, connect)
	expect(t, far.accept(t), connect)
	if st := p.Stats(); st.Refused != 1 || st.Cut < 4 || st.Conns != 3 {
		t.Errorf("stats %+v, want 1 refused, 4 or more cut, 3 connections", st)
	}
}

// A packet longer than the proxy takes, or a length that does not end
// in four bytes, ends the connection rather than passing garbage on.
func TestProxyRefusesMalformedPackets(t *testing.T) {
	for name, bad := range map[string][]byte{
		"length of five bytes": {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"oversized":            {0x30, 0xff, 0xff, 0xff, 0x7f},
	} {
		t.Run(name, func(t *testing.T) {
			far := newPeer(t)
			p := newProxy(t, far.ln.Addr().String())
			c := dial(t, p.Addr())
			send(t, c, connect)
			s := far.accept(t)
			expect(t, s, connect)
			send(t, c, bad)
			closed(t, c)
			closed(t, s)
		})
	}
}
