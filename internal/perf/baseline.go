package perf

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/protocol"
)

// Publishers are the baseline of ingest: for each terminal a bare paho
// client, connected as that terminal (TLS, its credentials), publishing
// one batch of the bench's earns, sealed as its till would, at QoS 1 over
// and over, with a window of batches awaiting their PUBACK. Nothing is
// behind the broker, so what it measures is the broker and the
// connections alone.
type Publishers struct {
	clients  []mqtt.Client
	topics   []string
	payloads [][]byte
	batch    int
	// PubAcked counts the transactions in the batches the broker PUBACKed.
	PubAcked atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// ConnectPublishers connects one client per terminal, batch transactions
// per message.
func ConnectPublishers(ctx context.Context, creds []Creds, broker string, tlsCfg *tls.Config, batch int) (*Publishers, error) {
	p := &Publishers{batch: batch}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // connect 64 at a time, as the fleet's jitter would spread them
	p.clients = make([]mqtt.Client, len(creds))
	p.topics = make([]string, len(creds))
	p.payloads = make([][]byte, len(creds))
	for i, c := range creds {
		topic, err := protocol.TerminalTopic(c.Store, c.Terminal, protocol.ChannelTx)
		if err != nil {
			return nil, err
		}
		b := protocol.Batch{Version: protocol.Version, Store: c.Store, Terminal: c.Terminal, SentAt: time.Now().UTC()}
		var ids agent.IDs
		for n := range batch {
			tx := earn(c, ids.Next(time.Now()), n+1, time.Now(), DefaultMembers)
			tx.Seq = uint64(n + 1)
			b.Txs = append(b.Txs, tx)
		}
		body, err := protocol.Encode(&b)
		if err != nil {
			return nil, err
		}
		if p.payloads[i], err = protocol.Seal(c.MACKey, topic, body); err != nil {
			return nil, err
		}
		p.topics[i] = topic
		opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(protocol.AgentClientID(c.Store, c.Terminal)).
			SetProtocolVersion(4).SetUsername(c.Username).SetPassword(c.Password).SetCleanSession(true).
			SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).SetConnectTimeout(30 * time.Second).
			SetKeepAlive(15 * time.Second).SetWriteTimeout(30 * time.Second).SetTLSConfig(tlsCfg)
		cl := mqtt.NewClient(opts)
		p.clients[i] = cl
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok := cl.Connect()
			if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("perf: baseline client %s/%s: connect: %v", c.Store, c.Terminal, tok.Error())
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		p.Close()
		return nil, first
	}
	return p, nil
}

// Start publishes on every client, window messages in flight each, until Close.
func (p *Publishers) Start(ctx context.Context, window int) {
	ctx, p.cancel = context.WithCancel(ctx)
	for i, cl := range p.clients {
		p.wg.Go(func() {
			slots := make(chan struct{}, window)
			for {
				select {
				case <-ctx.Done():
					return
				case slots <- struct{}{}:
				}
				tok := cl.Publish(p.topics[i], 1, false, p.payloads[i])
				go func() {
					defer func() { <-slots }()
					if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
						p.PubAcked.Add(int64(p.batch))
					}
				}()
			}
		})
	}
}

// Close stops publishing and disconnects.
func (p *Publishers) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	for _, cl := range p.clients {
		if cl != nil && cl.IsConnected() {
			cl.Disconnect(100)
		}
	}
}
