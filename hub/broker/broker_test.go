package broker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// wait bounds every expectation; reconnects take paho a few seconds.
const wait = 30 * time.Second

// unique returns prefix plus random hex: client ids and topics that cannot
// collide with another test run on a shared broker.
func unique(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// embedded starts an embedded broker on addr ("127.0.0.1:0" for any port).
// The returned stop closes it once, whether the test or its cleanup asks.
func embedded(t *testing.T, addr string) (*broker.Embedded, string, func()) {
	t.Helper()
	var l net.Listener
	// Restarting on the port a broker just left: retry until the OS lets go.
	testkit.WaitFor(t, wait, "listening on "+addr, func() bool {
		var err error
		l, err = net.Listen("tcp", addr)
		return err == nil
	})
	e, err := broker.StartEmbedded(broker.EmbeddedOptions{Listener: l})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { e.Close() }) }
	t.Cleanup(stop)
	return e, l.Addr().String(), stop
}

// client is a real paho client, as an agent would use.
func client(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho %s connect to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// inbox collects what a Bus handler receives. Its handler never blocks.
type inbox struct {
	mu  sync.Mutex
	got []broker.Message
}

func (b *inbox) handle(m broker.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m.Payload = bytes.Clone(m.Payload)
	b.got = append(b.got, m)
}

func (b *inbox) find(payload string) (broker.Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.got {
		if string(m.Payload) == payload {
			return m, true
		}
	}
	return broker.Message{}, false
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func TestEmbedded(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	var hubIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, hubIn.handle); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if n := e.Clients(); n != 0 {
		t.Fatalf("Clients() = %d before anyone connected (the inline client does not count)", n)
	}

	agentID := protocol.AgentClientID("s1", "t1")
	agent := client(t, url, agentID)
	testkit.WaitFor(t, wait, "Clients() to count the agent", func() bool { return e.Clients() == 1 })

	// Agent to hub: QoS 1 on a terminal's tx topic reaches the inline handler
	// with the publisher's client id.
	txTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelTx)
	publish(t, agent, txTopic, 1, []byte("batch-1"))
	testkit.WaitFor(t, wait, "the hub handler to receive the batch", func() bool { _, ok := hubIn.find("batch-1"); return ok })
	m, _ := hubIn.find("batch-1")
	if m.Topic != txTopic || m.ClientID != agentID {
		t.Fatalf("hub got topic %q from %q, want %q from %q", m.Topic, m.ClientID, txTopic, agentID)
	}
	ackTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelAck)

	// Hub to agent: Publish reaches a paho subscriber.
	got := make(chan []byte, 10)
	tok := agent.Subscribe(ackTopic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- bytes.Clone(m.Payload()) })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho subscribe: %v", tok.Error())
	}
	if err := e.Publish(ackTopic, 1, false, []byte("acks-1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case p := <-got:
		if string(p) != "acks-1" {
			t.Fatalf("agent got %q, want acks-1", p)
		}
	case <-time.After(wait):
		t.Fatal("the agent never received the hub's publish")
	}
	// A second connection counts too; disconnects stop counting.
	other := client(t, url, protocol.AgentClientID("s1", "t2"))
	testkit.WaitFor(t, wait, "Clients() to count two", func() bool { return e.Clients() == 2 })
	other.Disconnect(250)
	agent.Disconnect(250)
	testkit.WaitFor(t, wait, "Clients() to drop to zero", func() bool { return e.Clients() == 0 })
}

func TestEmbeddedManyPublishers(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	var hubIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	const clients, each = 5, 20
	ids := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		ids[i] = unique("till-")
		c := client(t, "tcp://"+addr, protocol.AgentClientID("s1", ids[i]))
		topic, _ := protocol.TerminalTopic("s1", ids[i], protocol.ChannelTx)
		wg.Go(func() {
			for j := range each {
				tok := c.Publish(topic, 1, false, []byte{byte(i), byte(j)})
				if !tok.WaitTimeout(wait) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
				}
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, wait, "every message at the hub", func() bool { return hubIn.len() == clients*each })
	hubIn.mu.Lock()
	defer hubIn.mu.Unlock()
	for _, m := range hubIn.got {
		_, terminal, _, err := protocol.ParseTerminalTopic(m.Topic)
		if err != nil || terminal != ids[m.Payload[0]] || m.ClientID != protocol.AgentClientID("s1", ids[m.Payload[0]]) {
			t.Fatalf("message %v on %q from %q: topic and client id should name the publisher", m.Payload, m.Topic, m.ClientID)
		}
	}
}

func TestStartEmbeddedNeedsListener(t *testing.T) {
	if _, err := broker.StartEmbedded(broker.EmbeddedOptions{}); err == nil {
		t.Fatal("StartEmbedded without a listener succeeded")
	}
}

func TestEmbeddedCloseDisconnects(t *testing.T) {
	e, addr, stop := embedded(t, "127.0.0.1:0")
	lost := make(chan struct{})
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(unique("agent-")).
		SetAutoReconnect(false).SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) }))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	testkit.WaitFor(t, wait, "the client to be counted", func() bool { return e.Clients() == 1 })
	stop()
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("client not disconnected when the broker closed")
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("still accepting connections after Close")
	}
}

// externalSubscribePublish is the External adapter against a broker at url:
// subscribe, a paho client publishes, the handler receives; the hub publishes,
// a paho subscriber receives.
func externalSubscribePublish(t *testing.T, url string) {
	x, err := broker.DialExternal(context.Background(), broker.ExternalOptions{URL: url, ClientID: unique("hub-"), ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("DialExternal %s: %v", url, err)
	}
	defer x.Close()
	root := unique("tillsync-test-")
	var hubIn inbox
	if err := x.Subscribe(root+"/+/tx", 1, hubIn.handle); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	agent := client(t, url, unique("agent-"))
	publish(t, agent, root+"/t1/tx", 1, []byte("batch-1"))
	testkit.WaitFor(t, wait, "the hub handler to receive the batch", func() bool { _, ok := hubIn.find("batch-1"); return ok })
	if m, _ := hubIn.find("batch-1"); m.Topic != root+"/t1/tx" || m.ClientID != "" {
		t.Fatalf("got %+v: want the topic, and no client id from an external broker", m)
	}

	got := make(chan []byte, 10)
	if tok := agent.Subscribe(root+"/t1/ack", 1, func(_ mqtt.Client, m mqtt.Message) { got <- bytes.Clone(m.Payload()) }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho subscribe: %v", tok.Error())
	}
	if err := x.Publish(root+"/t1/ack", 1, false, []byte("acks-1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case p := <-got:
		if string(p) != "acks-1" {
			t.Fatalf("agent got %q", p)
		}
	case <-time.After(wait):
		t.Fatal("the agent never received the hub's publish")
	}
}

func TestExternal(t *testing.T) {
	t.Run("a plain broker", func(t *testing.T) {
		externalSubscribePublish(t, testkit.StartBroker(t).URL)
	})
	t.Run("TILLSYNC_TEST_MQTT", func(t *testing.T) {
		url := testkit.ExternalBroker()
		if url == "" {
			t.Skip("TILLSYNC_TEST_MQTT not set")
		}
		externalSubscribePublish(t, url)
	})
}

func TestExternalResubscribesAfterBrokerRestart(t *testing.T) {
	b := testkit.StartBroker(t)
	addr, url := b.Addr, b.URL
	x, err := broker.DialExternal(context.Background(), broker.ExternalOptions{URL: url, ClientID: unique("hub-"), ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("DialExternal: %v", err)
	}
	defer x.Close()
	var hubIn inbox
	if err := x.Subscribe("tillsync-test/+/tx", 1, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	agent := client(t, url, unique("agent-"))
	publish(t, agent, "tillsync-test/t1/tx", 1, []byte("before"))
	testkit.WaitFor(t, wait, "the message before the restart", func() bool { _, ok := hubIn.find("before"); return ok })

	// The broker goes away and comes back on the same address with no memory
	// of the hub's subscription.
	b.Close()
	var e2 *testkit.Broker
	testkit.WaitFor(t, wait, "the port to be free again", func() bool {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		e2 = testkit.StartBrokerAt(t, addr)
		return true
	})
	agent2 := client(t, url, unique("agent-"))
	testkit.WaitFor(t, wait, "the hub to reconnect", func() bool { return e2.Clients() == 2 })
	// The hub resubscribes in its OnConnect without waiting; keep publishing
	// until the subscription is in place (a message before that has no
	// subscriber and is dropped by the broker, as it would be in production).
	testkit.WaitFor(t, wait, "a message after the restart", func() bool {
		if _, ok := hubIn.find("after"); ok {
			return true
		}
		tok := agent2.Publish("tillsync-test/t1/tx", 1, false, []byte("after"))
		tok.WaitTimeout(time.Second)
		return false
	})
	// And the hub can publish again.
	got := make(chan []byte, 10)
	if tok := agent2.Subscribe("tillsync-test/t1/ack", 1, func(_ mqtt.Client, m mqtt.Message) { got <- bytes.Clone(m.Payload()) }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if err := x.Publish("tillsync-test/t1/ack", 1, false, []byte("acks")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(wait):
		t.Fatal("the hub's publish after the restart never arrived")
	}
}

func TestDialExternalFails(t *testing.T) {
	// A port nobody listens on: refused at once.
	closed := testkit.FreePort(t)
	// A port that accepts TCP and never speaks MQTT: only the timeout ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	defer func() {
		// Closing the listener ends the accept loop, which then drops the
		// connections it held (releasing any paho connect still reading).
		silent.Close()
		held.Wait()
	}()
	held.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	const timeout = 2 * time.Second
	for _, tt := range []struct{ name, addr string }{
		{"closed port", closed},
		{"silent listener", silent.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := "tcp://" + tt.addr
			start := time.Now()
			x, err := broker.DialExternal(context.Background(), broker.ExternalOptions{URL: url, ClientID: unique("hub-"), ConnectTimeout: timeout})
			took := time.Since(start)
			if err == nil {
				x.Close()
				t.Fatalf("DialExternal %s succeeded", url)
			}
			if !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("error %q does not name the address %s", err, tt.addr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			// DialExternal's own bound is ConnectTimeout plus a second of grace.
			if limit := timeout + time.Second + 2*time.Second; took > limit {
				t.Errorf("DialExternal took %s, over ConnectTimeout %s", took, timeout)
			}
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		// The caller gives up long before ConnectTimeout.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := broker.DialExternal(ctx, broker.ExternalOptions{URL: "tcp://" + silent.Addr().String(), ClientID: unique("hub-"), ConnectTimeout: time.Minute})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("DialExternal with an expired context: %v, want the context's error", err)
		}
	})
}

// TestEmbeddedRefusesOversizePackets: a publish over MaxPacketSize never
// reaches the hub, and the client that sent it is disconnected; a full-size
// batch still goes through.
func TestEmbeddedRefusesOversizePackets(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	hubIn := &inbox{}
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelTx)
	ok := client(t, "tcp://"+addr, protocol.AgentClientID("s1", "t1"))
	publish(t, ok, topic, 1, bytes.Repeat([]byte("a"), protocol.MaxBatchBytes))
	testkit.WaitFor(t, wait, "the full-size batch to arrive", func() bool { return hubIn.len() == 1 })

	big := client(t, "tcp://"+addr, protocol.AgentClientID("s1", "t2"))
	bigTopic, _ := protocol.TerminalTopic("s1", "t2", protocol.ChannelTx)
	big.Publish(bigTopic, 1, false, bytes.Repeat([]byte("b"), broker.MaxPacketSize+1))
	testkit.WaitFor(t, wait, "the sender of an oversize packet to be disconnected", func() bool { return !big.IsConnectionOpen() })
	if n := hubIn.len(); n != 1 {
		t.Fatalf("hub received %d messages, want only the full-size one", n)
	}
}

// TestEmbeddedConfinesClientsToTheirTerminal: a client may publish only on
// its own terminal's tx and query topics and read only its own acks and
// replies. Nobody but the hub can answer for the hub.
func TestEmbeddedConfinesClientsToTheirTerminal(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	var hubIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	victimAck, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelAck)
	victim := client(t, url, protocol.AgentClientID("s1", "t1"))
	got := make(chan string, 10)
	if tok := victim.Subscribe(victimAck, 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	refused := []struct {
		name, id, topic string
		write           bool
	}{
		{"forge an ack for another terminal", protocol.AgentClientID("s2", "t1"), victimAck, true},
		{"forge an ack from its own terminal's store", protocol.AgentClientID("s1", "t9"), victimAck, true},
		{"post for another store", protocol.AgentClientID("s2", "t1"), "tillsync/v1/stores/s1/terminals/t1/tx", true},
		{"post without an agent id", unique("someone-"), "tillsync/v1/stores/s1/terminals/t1/tx", true},
		{"post outside tillsync", protocol.AgentClientID("s1", "t1"), "other/topic", true},
		{"read every store's transactions", protocol.AgentClientID("s1", "t1"), protocol.AllTerminals(protocol.ChannelTx), false},
		{"read another terminal's acks", protocol.AgentClientID("s2", "t1"), victimAck, false},
		{"read its own tx topic", protocol.AgentClientID("s1", "t2"), "tillsync/v1/stores/s1/terminals/t2/tx", false},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			c2 := client(t, url, c.id)
			if c.write {
				c2.Publish(c.topic, 1, false, []byte("forged:"+c.name))
				testkit.WaitFor(t, wait, "the client to be disconnected", func() bool { return !c2.IsConnectionOpen() })
				return
			}
			tok := c2.Subscribe(c.topic, 1, func(mqtt.Client, mqtt.Message) {})
			if !tok.WaitTimeout(wait) {
				t.Fatal("no SUBACK")
			}
			st, ok := tok.(*mqtt.SubscribeToken)
			if !ok || st.Result()[c.topic] != 0x80 {
				t.Fatalf("subscribe to %s: result %v, want refused (0x80)", c.topic, st.Result())
			}
		})
	}
	if n := hubIn.len(); n != 0 {
		t.Errorf("the hub received %d forged messages", n)
	}
	if n := e.Denied(); n != int64(len(refused)) {
		t.Errorf("%d denials counted for %d attempts", n, len(refused))
	}
	select {
	case p := <-got:
		t.Errorf("the terminal received a forged ack %q", p)
	default:
	}
}

// TestEmbeddedScanTopic: a till reports member token sightings on its own
// terminal's scan topic, QoS 0; one published in another terminal's name
// is dropped (QoS 0: without a disconnect), and no till may read them.
func TestEmbeddedScanTopic(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	var hubIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelScan), 0, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	own, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelScan)
	till := client(t, url, protocol.AgentClientID("s1", "t1"))
	intruder := client(t, url, protocol.AgentClientID("s2", "t1"))
	publish(t, intruder, own, 0, []byte("sighting in s1's name"))
	publish(t, till, own, 0, []byte("sighting-1"))
	testkit.WaitFor(t, wait, "the hub to receive the sighting", func() bool { _, ok := hubIn.find("sighting-1"); return ok })
	if m, _ := hubIn.find("sighting-1"); m.Topic != own || m.ClientID != protocol.AgentClientID("s1", "t1") {
		t.Errorf("hub got %+v", m)
	}
	// The broker handles a client's packets in order: the intruder's went
	// first, so a second message of its own, on its own topic, arriving
	// means the first was dropped, not delayed.
	intruderOwn, _ := protocol.TerminalTopic("s2", "t1", protocol.ChannelScan)
	publish(t, intruder, intruderOwn, 0, []byte("sighting-2"))
	testkit.WaitFor(t, wait, "the intruder's own sighting", func() bool { _, ok := hubIn.find("sighting-2"); return ok })
	if _, ok := hubIn.find("sighting in s1's name"); ok || !intruder.IsConnectionOpen() {
		t.Errorf("a sighting in another terminal's name reached the hub (or its sender was disconnected: open %v)", intruder.IsConnectionOpen())
	}
	if code := subscribeResult(t, till, own, func(mqtt.Client, mqtt.Message) {}); code != 0x80 {
		t.Errorf("a till subscribing to its own scan topic: SUBACK %#x, want refused", code)
	}
}

// subscribeResult subscribes c to topic and returns the broker's SUBACK code
// for it (0, 1 or 2 granted; 0x80 refused).
func subscribeResult(t *testing.T, c mqtt.Client, topic string, h mqtt.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(topic, 1, h)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: no SUBACK (%v)", topic, tok.Error())
	}
	st, ok := tok.(*mqtt.SubscribeToken)
	if !ok {
		t.Fatalf("subscribe token is a %T", tok)
	}
	return st.Result()[topic]
}

// TestEmbeddedConfigTopic: an agent may read its own store's config, which
// the hub publishes retained, and nothing else: not another store's, not
// every store's, and it may never publish one.
func TestEmbeddedConfigTopic(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	s1Config, _ := protocol.ConfigTopic("s1")
	s2Config, _ := protocol.ConfigTopic("s2")
	// The hub publishes before any till is connected: retained, a till
	// subscribing later gets it at once.
	if err := e.Publish(s1Config, 1, true, []byte("config-s1-v1")); err != nil {
		t.Fatal(err)
	}
	if err := e.Publish(s2Config, 1, true, []byte("config-s2-v1")); err != nil {
		t.Fatal(err)
	}

	type got struct {
		payload  string
		retained bool
	}
	recv := func() (chan got, mqtt.MessageHandler) {
		ch := make(chan got, 10)
		return ch, func(_ mqtt.Client, m mqtt.Message) { ch <- got{string(m.Payload()), m.Retained()} }
	}
	expect := func(t *testing.T, ch chan got, want got) {
		t.Helper()
		select {
		case g := <-ch:
			if g != want {
				t.Fatalf("received %+v, want %+v", g, want)
			}
		case <-time.After(wait):
			t.Fatalf("never received %+v", want)
		}
	}

	t.Run("its own store's config, retained and live", func(t *testing.T) {
		till := client(t, url, protocol.AgentClientID("s1", unique("t-")))
		ch, h := recv()
		if code := subscribeResult(t, till, s1Config, h); code != 1 {
			t.Fatalf("subscribe to its own store's config: SUBACK %#x, want 1", code)
		}
		expect(t, ch, got{"config-s1-v1", true})
		if err := e.Publish(s1Config, 1, true, []byte("config-s1-v2")); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, got{"config-s1-v2", false})
		// Another till of the same store joining later gets the newest one.
		other := client(t, url, protocol.AgentClientID("s1", unique("t-")))
		ch2, h2 := recv()
		if code := subscribeResult(t, other, s1Config, h2); code != 1 {
			t.Fatalf("second till: SUBACK %#x, want 1", code)
		}
		expect(t, ch2, got{"config-s1-v2", true})
	})

	for _, c := range []struct{ name, id, topic string }{
		{"another store's config", protocol.AgentClientID("s2", "t1"), s1Config},
		{"every store's config", protocol.AgentClientID("s1", "t1"), "tillsync/v1/stores/+/config"},
		{"a config without an agent id", unique("someone-"), s1Config},
		{"a config with an id naming more than a terminal", "tillsync-agent:s1:t1:x", s1Config},
	} {
		t.Run("refused: "+c.name, func(t *testing.T) {
			cl := client(t, url, c.id)
			ch, h := recv()
			if code := subscribeResult(t, cl, c.topic, h); code != 0x80 {
				t.Fatalf("subscribe to %s as %s: SUBACK %#x, want refused (0x80)", c.topic, c.id, code)
			}
			select {
			case g := <-ch:
				t.Fatalf("a refused subscriber received %+v", g)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}

	t.Run("refused: publishing a config", func(t *testing.T) {
		for _, topic := range []string{s1Config, s2Config} {
			forger := client(t, url, protocol.AgentClientID("s1", unique("t-")))
			forger.Publish(topic, 1, true, []byte("forged"))
			testkit.WaitFor(t, wait, "the forger to be disconnected", func() bool { return !forger.IsConnectionOpen() })
		}
		// The retained configs are still the hub's.
		for _, r := range []struct{ store, topic, want string }{{"s1", s1Config, "config-s1-v2"}, {"s2", s2Config, "config-s2-v1"}} {
			reader := client(t, url, protocol.AgentClientID(r.store, unique("t-")))
			ch, h := recv()
			if code := subscribeResult(t, reader, r.topic, h); code != 1 {
				t.Fatalf("subscribe %s: SUBACK %#x", r.topic, code)
			}
			expect(t, ch, got{r.want, true})
		}
	})
}

// TestEmbeddedStatusTopic: a till publishes its status retained on its
// own status topic and may leave a retained last will there; a status in
// another terminal's name, a will on another terminal's topic, and a
// retained publish on any other topic are refused.
func TestEmbeddedStatusTopic(t *testing.T) {
	e, addr, _ := embedded(t, "127.0.0.1:0")
	url := "tcp://" + addr
	var hubIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelStatus), 0, hubIn.handle); err != nil {
		t.Fatal(err)
	}
	var txIn inbox
	if err := e.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, txIn.handle); err != nil {
		t.Fatal(err)
	}
	own, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelStatus)
	ownTx, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelTx)

	// Its own status, retained, with a retained will there too.
	till := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(protocol.AgentClientID("s1", "t1")).
		SetConnectTimeout(5*time.Second).SetAutoReconnect(false).SetBinaryWill(own, []byte("will-1"), 1, true))
	if tok := till.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect with a will on its own status topic: %v", tok.Error())
	}
	if tok := till.Publish(own, 0, true, []byte("status-1")); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	testkit.WaitFor(t, wait, "the hub to receive the status", func() bool { _, ok := hubIn.find("status-1"); return ok })

	// A retained batch is refused; the same batch not retained goes through.
	till.Publish(ownTx, 0, true, []byte("batch retained"))
	publish(t, till, ownTx, 0, []byte("batch-1"))
	testkit.WaitFor(t, wait, "the plain batch", func() bool { _, ok := txIn.find("batch-1"); return ok })
	if _, ok := txIn.find("batch retained"); ok {
		t.Error("a retained batch reached the hub")
	}

	// Another terminal's status: dropped (QoS 0), no disconnect.
	intruder := client(t, url, protocol.AgentClientID("s2", "t1"))
	intruder.Publish(own, 0, true, []byte("forged status"))
	intruderOwn, _ := protocol.TerminalTopic("s2", "t1", protocol.ChannelStatus)
	publish(t, intruder, intruderOwn, 0, []byte("status-2"))
	testkit.WaitFor(t, wait, "the intruder's own status", func() bool { _, ok := hubIn.find("status-2"); return ok })
	if _, ok := hubIn.find("forged status"); ok {
		t.Error("a status in another terminal's name reached the hub")
	}

	// A will on another terminal's status topic, or a retained will
	// elsewhere, is refused at CONNECT.
	for name, o := range map[string]*mqtt.ClientOptions{
		"will on another terminal's status": mqtt.NewClientOptions().SetClientID(protocol.AgentClientID("s2", "t2")).SetBinaryWill(own, []byte("forged will"), 1, true),
		"retained will on its own tx":       mqtt.NewClientOptions().SetClientID(protocol.AgentClientID("s2", "t2")).SetBinaryWill("tillsync/v1/stores/s2/terminals/t2/tx", []byte("forged will"), 1, true),
	} {
		c := mqtt.NewClient(o.AddBroker(url).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() == nil {
			c.Disconnect(0)
			t.Errorf("%s: connected", name)
		}
	}

	// The till's connection dies: the broker publishes its will.
	e.Disconnect(protocol.AgentClientID("s1", "t1"))
	testkit.WaitFor(t, wait, "the will", func() bool { _, ok := hubIn.find("will-1"); return ok })
}
