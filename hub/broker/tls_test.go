package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestEmbeddedTLSAndPlainListeners: the broker serves MQTT over TLS on
// Listener and plain MQTT on PlainListener at once, and both reach the
// same subscriptions; plain MQTT on the TLS port gets nowhere.
func TestEmbeddedTLSAndPlainListeners(t *testing.T) {
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tlsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := broker.StartEmbedded(broker.EmbeddedOptions{Listener: tlsL, TLS: p.ServerTLSConfig(), PlainListener: plainL})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var in inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, in.handle); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CACertPEM())
	connect := func(url, id string, cfg *tls.Config) (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetTLSConfig(cfg).
			SetConnectTimeout(3 * time.Second).SetAutoReconnect(false).SetOrderMatters(false))
		tok := c.Connect()
		if !tok.WaitTimeout(wait) {
			return nil, errTimedOut
		}
		return c, tok.Error()
	}
	for i, url := range []string{"tls://" + tlsL.Addr().String(), "tcp://" + plainL.Addr().String()} {
		terminal := []string{"t-tls", "t-plain"}[i]
		c, err := connect(url, protocol.AgentClientID("s1", terminal), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		topic, _ := protocol.TerminalTopic("s1", terminal, protocol.ChannelTx)
		publish(t, c, topic, 1, []byte(url))
		c.Disconnect(0)
	}
	for _, want := range []string{"tls://", "tcp://"} {
		testkit.WaitFor(t, wait, "the message sent over "+want, func() bool {
			_, ok := in.findPrefix(want)
			return ok
		})
	}
	if _, err := connect("tcp://"+tlsL.Addr().String(), "plain-on-tls", nil); err == nil {
		t.Error("plain MQTT on the TLS port connected")
	}
	if _, err := connect("tls://"+tlsL.Addr().String(), "untrusting", &tls.Config{RootCAs: x509.NewCertPool()}); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a client that does not trust the hub's CA: %v, want unknown authority", err)
	}
}

type timedOut struct{}

func (timedOut) Error() string { return "timed out" }

var errTimedOut error = timedOut{}

func (b *inbox) findPrefix(prefix string) (broker.Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.got {
		if strings.HasPrefix(string(m.Payload), prefix) {
			return m, true
		}
	}
	return broker.Message{}, false
}
