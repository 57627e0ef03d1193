package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MQTT control packet types the proxy acts on (MQTT 3.1.1 §2.2.1).
const (
	mqttPublish = 3
	mqttPuback  = 4
)

// maxFrame bounds one MQTT packet through the proxy; tillsync's own limits
// are far below it (protocol.MaxBatchBytes).
const maxFrame = 4 << 20

// Faults is what a Proxy does to the traffic passing through it now. The
// zero value passes everything as it comes.
type Faults struct {
	// Down cuts every connection and closes new ones at once: the store's
	// line is down, and its till knows it at its next attempt.
	Down bool
	// Blackhole stalls every packet, both ways, until it is lifted: a
	// partition where TCP keeps retransmitting. Connections stay open, so
	// each side learns of it only from its keepalive; what was stalled is
	// delivered late if the connection outlives the partition.
	Blackhole bool
	// Delay holds each packet this long before passing it on.
	Delay time.Duration
	// Drop is the probability that a PUBLISH or PUBACK is lost: a message
	// (or its acknowledgement) that never arrives, which TCP alone would
	// not do but a broker under pressure or a buggy peer may.
	Drop float64
	// Duplicate is the probability that a PUBLISH is delivered twice.
	Duplicate float64
}

// ProxyStats counts what a Proxy did.
type ProxyStats struct {
	Conns      int64 // connections accepted and passed on
	Refused    int64 // connections closed at once while Down
	Cut        int64 // connections cut by Cut or Down
	Packets    int64 // MQTT packets sent on (a doubled one twice)
	Dropped    int64 // PUBLISH and PUBACK packets lost on purpose
	Duplicated int64 // PUBLISH packets delivered twice
}

// Proxy is a TCP proxy of the chaos harness between tills and the broker.
// It reads whole MQTT packets (the fixed header's type and length; nothing
// else is parsed) so that it can lose or repeat a message without breaking
// the stream; it therefore carries plain MQTT only, not TLS.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	faults Faults
	change chan struct{} // closed and replaced whenever faults change
	conns  map[net.Conn]struct{}
	rnd    *rand.Rand
	closed bool

	accepted, refused, cut, packets, dropped, duplicated atomic.Int64
	wg                                                   sync.WaitGroup
}

// NewProxy listens on addr (e.g. 127.0.0.1:0) and passes every connection
// on to target. seed seeds its choices of packets to drop or repeat.
func NewProxy(addr, target string, seed uint64) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy listen %s: %w", addr, err)
	}
	p := &Proxy{ln: ln, target: target, change: make(chan struct{}), conns: map[net.Conn]struct{}{}, rnd: rand.New(rand.NewPCG(seed, 0x70726f7879))}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set replaces the faults in force. Setting Down cuts every connection.
func (p *Proxy) Set(f Faults) { p.Update(func(x *Faults) { *x = f }) }

// Update changes the faults in force with fn, under the proxy's lock: the
// schedule's faults on one line overlap (a delay during a loss), and each
// sets and lifts only its own field.
func (p *Proxy) Update(fn func(*Faults)) {
	p.mu.Lock()
	fn(&p.faults)
	down := p.faults.Down
	close(p.change)
	p.change = make(chan struct{})
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

// Cut closes every connection now, both ways; new ones are taken as usual.
func (p *Proxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
		p.cut.Add(1)
	}
	p.mu.Unlock()
}

// Stats returns what the proxy has done so far.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{Conns: p.accepted.Load(), Refused: p.refused.Load(), Cut: p.cut.Load(), Packets: p.packets.Load(), Dropped: p.dropped.Load(), Duplicated: p.duplicated.Load()}
}

// Close stops the proxy and cuts its connections.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	close(p.change)
	p.change = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, closed := p.faults.Down, p.closed
		p.mu.Unlock()
		if down || closed {
			p.refused.Add(1)
			c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers c for Cut; false when the proxy is down or closed now.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.faults.Down || p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the broker is down: the till sees its connection closed
	}
	defer server.Close()
	if !p.track(client, server) {
		p.refused.Add(1)
		return
	}
	defer p.untrack(client, server)
	p.accepted.Add(1)
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	<-done
	// One side is gone: so is the other, as it would be for a till.
	client.Close()
	server.Close()
	<-done
}

// pipe copies MQTT packets from src to dst, applying the faults in force.
func (p *Proxy) pipe(dst, src net.Conn) {
	r := bufio.NewReaderSize(src, 32<<10)
	for {
		frame, err := readFrame(r)
		if err != nil {
			return
		}
		n, ok := p.decide(frame[0] >> 4)
		if !ok {
			return // closed while stalled
		}
		for range n {
			p.packets.Add(1) // counted before it can arrive, so a reader of Stats sees it
			if _, err := dst.Write(frame); err != nil {
				return
			}
		}
	}
}

// decide applies the faults to one packet of type typ: it waits out a
// blackhole and a delay, and returns how many times to send the packet (0:
// lost, 2: repeated). ok is false when the proxy closed meanwhile.
func (p *Proxy) decide(typ byte) (n int, ok bool) {
	for {
		p.mu.Lock()
		f, change, closed := p.faults, p.change, p.closed
		p.mu.Unlock()
		if closed {
			return 0, false
		}
		if f.Blackhole {
			<-change
			continue
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-change:
				continue // the faults changed while waiting: look again
			}
		}
		p.mu.Lock()
		drop := (typ == mqttPublish || typ == mqttPuback) && f.Drop > 0 && p.rnd.Float64() < f.Drop
		dup := !drop && typ == mqttPublish && f.Duplicate > 0 && p.rnd.Float64() < f.Duplicate
		p.mu.Unlock()
		switch {
		case drop:
			p.dropped.Add(1)
			return 0, true
		case dup:
			p.duplicated.Add(1)
			return 2, true
		}
		return 1, true
	}
}

// errFrame is returned by readFrame for a packet the proxy cannot pass on.
var errFrame = errors.New("chaos: malformed or oversized MQTT packet")

// readFrame reads one MQTT control packet: the fixed header's first byte,
// the remaining length (a variable byte integer of at most four bytes) and
// that many bytes.
func readFrame(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	var length, mult int
	header := []byte{first}
	for i := 0; ; i++ {
		if i == 4 {
			return nil, errFrame
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		header = append(header, b)
		length += int(b&0x7f) << mult
		mult += 7
		if b&0x80 == 0 {
			break
		}
	}
	if length > maxFrame {
		return nil, errFrame
	}
	frame := make([]byte, len(header)+length)
	copy(frame, header)
	if _, err := io.ReadFull(r, frame[len(header):]); err != nil {
		return nil, err
	}
	return frame, nil
}
