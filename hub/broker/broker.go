// Package broker is the hub's MQTT side: the embedded mochi-mqtt broker the
// hub runs by default, and an adapter for an external broker (Mosquitto,
// EMQX, HiveMQ) reached with paho. Both give the hub the same small Bus:
// subscribe with a handler, publish.
//
// Handlers run on the broker's or paho's goroutines and must hand work off
// without blocking (ARCHITECTURE.md, invariant 6).
//
// The embedded broker authenticates terminals and confines each to its own
// topics (terminalACL): an enrolled terminal connects with the credentials
// of its enrollment, checked through an Authenticator (the ledger), and its
// client id is refused without them; Disconnect drops a revoked one.
//
// An external broker must confine the terminals itself, since the hub
// cannot see who published: mosquitto.go writes the embedded broker's
// rules as a Mosquitto 2.x password file, ACL and configuration
// (tillsync-hub broker-config mosquitto). The hub reaches such a broker
// over TLS with credentials of its own (ExternalOptions, HubUsername).
//
// Never call mochi's Server.Close directly: in v2.7.9 it can deadlock when a
// client connects or leaves while it runs (mochi-mqtt/server#488). Shutdown
// (shutdown.go) closes a mochi server safely; the embedded broker and the
// test broker in internal/testkit both use it.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/logpace"
	"github.com/tillsync/tillsync/protocol"
)

// Message is one message delivered to a subscription.
type Message struct {
	Topic   string
	Payload []byte
	// ClientID is the publisher's MQTT client id when the broker can tell
	// (embedded), "" otherwise (external).
	ClientID string
}

// Handler receives messages. It must not block.
type Handler func(Message)

// Bus is what the hub needs of a broker.
type Bus interface {
	// Subscribe delivers messages matching filter to h, from now on and, for
	// an external broker, again after every reconnect.
	Subscribe(filter string, qos byte, h Handler) error
	// Publish sends payload on topic. It does not wait for delivery.
	Publish(topic string, qos byte, retain bool, payload []byte) error
	// Close disconnects (external) or stops the broker (embedded).
	Close() error
}

// MaxPacketSize is the largest MQTT packet the embedded broker accepts: a
// full batch plus room for the topic and headers.
const MaxPacketSize = protocol.MaxBatchBytes + 16<<10

// EmbeddedOptions configures the embedded broker.
type EmbeddedOptions struct {
	// Listener is the TCP listener MQTT clients connect to; the caller opens it
	// so that a port in use is reported where the address was chosen.
	Listener net.Listener
	// TLS, when set, makes Listener serve MQTT over TLS with it.
	TLS *tls.Config
	// Auth checks enrolled terminals' credentials; nil: no client has any.
	Auth Authenticator
	// RequireEnrollment refuses every client without valid credentials.
	// Off, a client without credentials may still connect — unless its
	// client id is that of an enrolled terminal.
	RequireEnrollment bool
	// PlainListener, when set, serves plain MQTT besides (or, with no
	// Listener, instead of) Listener, whatever TLS says. At least one of
	// the two is required.
	PlainListener net.Listener
	// Logger receives the broker's own lines at WARN and above.
	Logger *slog.Logger
	// Clock paces the refusal log; default the system clock.
	Clock clock.Clock
}

// Embedded is the in-process mochi broker. The hub talks to it through
// mochi's inline client: no TCP hop, and the publisher's client id is known.
type Embedded struct {
	acl   *terminalACL
	srv   *mochi.Server
	gates []*Gate
	close sync.Once
	mu    sync.Mutex
	subs  int
}

var _ Bus = (*Embedded)(nil)

// ClientWritesPending bounds the writes waiting for one client of the
// embedded broker.
const ClientWritesPending = 256

// StartEmbedded starts a broker serving on opts.Listener and opts.PlainListener.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.Listener == nil && opts.PlainListener == nil {
		return nil, errors.New("broker: no listener for the embedded broker")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// mochi logs every connect at INFO; the hub logs what matters itself.
	quiet := slog.New(levelFloor{log.Handler(), slog.LevelWarn})
	caps := mochi.NewDefaultServerCapabilities()
	// Nothing tillsync sends is bigger than a full batch; refuse larger
	// packets before the broker buffers them.
	caps.MaximumPacketSize = MaxPacketSize
	// mochi gives every client a queue of pending writes, allocated whole
	// when it connects: at its default of 8,192 that is 64 KiB a client,
	// 640 MB at 10,000 tills (tillsync-sim bench, docs/performance.md). A
	// till has at most its window (1,000 transactions, so 1,000 ack batches
	// at one transaction each) of acks coming, besides a config; a write
	// past the queue is dropped and counted, and its till sends the batch
	// again.
	caps.MaximumClientWritesPending = ClientWritesPending
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: quiet, Capabilities: caps})
	acl := &terminalACL{auth: opts.Auth, require: opts.RequireEnrollment, log: log, clock: opts.Clock, srv: srv}
	if acl.clock == nil {
		acl.clock = clock.Real{}
	}
	if err := srv.AddHook(acl, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	var gates []*Gate
	if l := opts.Listener; l != nil {
		g := NewGate(l)
		gates = append(gates, g)
		l, id := net.Listener(g), "mqtt"
		if opts.TLS != nil {
			// The handshake runs at the connection's first read, a bounded
			// number at a time (tlsgate.go), never in Accept.
			l, id = newTLSListener(l, opts.TLS), "mqtts"
		}
		if err := srv.AddListener(listeners.NewNet(id, l)); err != nil {
			return nil, fmt.Errorf("broker: listen: %w", err)
		}
	}
	if opts.PlainListener != nil {
		g := NewGate(opts.PlainListener)
		gates = append(gates, g)
		if err := srv.AddListener(listeners.NewNet("mqtt-plain", g)); err != nil {
			return nil, fmt.Errorf("broker: listen: %w", err)
		}
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Embedded{srv: srv, acl: acl, gates: gates}, nil
}

// Subscribe adds an inline subscription.
func (e *Embedded) Subscribe(filter string, _ byte, h Handler) error {
	e.mu.Lock()
	e.subs++
	id := e.subs
	e.mu.Unlock()
	err := e.srv.Subscribe(filter, id, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		// The client passed in is the inline one; Origin names the publisher.
		h(Message{Topic: pk.TopicName, Payload: pk.Payload, ClientID: pk.Origin})
	})
	if err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", filter, err)
	}
	return nil
}

// Publish injects a message as the inline client.
func (e *Embedded) Publish(topic string, qos byte, retain bool, payload []byte) error {
	if err := e.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// Close stops the broker and disconnects every client.
// Calling it again does nothing.
func (e *Embedded) Close() error {
	var err error
	e.close.Do(func() { err = Shutdown(e.srv, e.gates...) })
	return err
}

// Clients returns the number of connected clients (the inline client excluded).
func (e *Embedded) Clients() int {
	n := 0
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			n++
		}
	}
	return n
}

// terminalACL confines each client to its own terminal's topics: a client
// whose id is protocol.AgentClientID(S, T) may publish only on S/T's tx,
// query and scan topics and subscribe only to S/T's ack and reply topics and to its
// store's config topic (protocol.ConfigTopic(S)), with no wildcards. Only
// the hub (the inline client) publishes acks, replies and configs, so no
// client can answer for the hub, set a store's earn rules, or read another
// store's traffic or config; and a till reports member token sightings
// only as itself, so it cannot have a token flagged in another store's
// name. A forbidden QoS 1 publish disconnects the client; a forbidden QoS
// 0 one (sightings are sent QoS 0) is dropped.
//
// It also authenticates clients at CONNECT. A client with a username must
// connect as that username's terminal (client id
// protocol.AgentClientID, username protocol.AgentUsername — or the client
// id, for a terminal enrolled before protocol Version 3) and with that
// enrolled terminal's password; an enrolled (or revoked) terminal's client id
// without credentials is refused, so an enrolled terminal cannot be
// impersonated nor a revoked one come back anonymously; and with
// RequireEnrollment nobody connects without valid credentials. The
// credentials are checked again once the session is established, so a
// revoke that lands while a client is connecting cannot miss it.
//
// Refusals — of a connection, a publish or a subscription — are counted
// and logged at WARN without the password, at most once a minute per
// client id (and direction, for publishes and subscriptions) (a till with a wrong password retries every
// few seconds); the line says how many were not logged since.
type terminalACL struct {
	mochi.HookBase
	auth    Authenticator
	require bool
	log     *slog.Logger
	clock   clock.Clock
	srv     *mochi.Server
	refused atomic.Int64
	denied  atomic.Int64

	// pacer paces the refusal lines, per client id and kind.
	pacer logpace.Pacer
}

// Authenticator is what the broker needs of the ledger's enrollment
// (ledger.Store has both methods).
type Authenticator interface {
	// AuthenticateTerminal checks a terminal's username and password: ok,
	// or why not, for the log (never the password).
	AuthenticateTerminal(username string, password []byte) (ok bool, reason string)
	// Enrolled reports whether the terminal enrolled (revoked or not): its
	// client id is then refused without credentials.
	Enrolled(store, terminal string) bool
}

func (*terminalACL) ID() string { return "tillsync-terminal-acl" }
func (*terminalACL) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnSessionEstablished || b == mochi.OnPublish
}

func (h *terminalACL) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	if why := h.check(cl.ID, pk.Connect.Username, pk.Connect.Password); why != "" {
		h.refuse(cl, why)
		return false
	}
	// mochi publishes a last will without asking OnACLCheck: a will is
	// checked here, once, like the publish it stands for.
	if pk.Connect.WillFlag && !allowedRetained(cl.ID, pk.Connect.WillTopic, pk.Connect.WillRetain) {
		h.refuse(cl, "a last will on "+pk.Connect.WillTopic+": a terminal's will may only be its own status")
		return false
	}
	return true
}

// OnPublish refuses a retained publish by a terminal anywhere but its own
// status topic: a retained message is handed to every later subscriber,
// and only the till's status is meant to be kept. (Its topic has passed
// OnACLCheck already.)
func (h *terminalACL) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !pk.FixedHeader.Retain || allowedRetained(cl.ID, pk.TopicName, true) {
		return pk, nil
	}
	h.deny(cl, pk.TopicName+" (retained)", true)
	return pk, packets.ErrRejectPacket
}

// OnSessionEstablished checks a credentialed client again, now that it is
// in the broker's client list where Disconnect finds it: a revoke committed
// between its CONNECT and now drops it here.
func (h *terminalACL) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline || len(pk.Connect.Username) == 0 || h.auth == nil {
		return
	}
	if ok, why := h.auth.AuthenticateTerminal(string(pk.Connect.Username), pk.Connect.Password); !ok {
		h.refuse(cl, why)
		_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

// check says why a client may not connect with these credentials, or "".
func (h *terminalACL) check(id string, username, password []byte) string {
	user := string(username)
	switch {
	case user != "" && !sameTerminal(user, id):
		return "the username is not the client id's terminal"
	case user != "" && h.auth == nil:
		return "no terminal is enrolled at this hub"
	case user != "":
		if ok, why := h.auth.AuthenticateTerminal(user, password); !ok {
			return why
		}
		return ""
	case len(password) > 0:
		return "a password without a username"
	case h.require:
		return "no credentials; enroll the terminal (tillsync-agent enroll)"
	}
	if store, terminal, ok := protocol.ParseAgentClientID(id); ok && h.auth != nil && h.auth.Enrolled(store, terminal) {
		return "an enrolled terminal's client id without its credentials"
	}
	return ""
}

// sameTerminal reports whether a username may connect with client id:
// the terminal's username (protocol.AgentUsername) with its client id, or,
// for a terminal enrolled before protocol Version 3, the client id itself.
func sameTerminal(user, id string) bool {
	cs, ct, ok := protocol.ParseAgentClientID(id)
	if !ok {
		return false
	}
	if user == id {
		return true
	}
	us, ut, ok := protocol.ParseAgentUsername(user)
	return ok && us == cs && ut == ct
}

// refuse counts a refusal and logs it, paced per client id.
func (h *terminalACL) refuse(cl *mochi.Client, why string) {
	n := h.refused.Add(1)
	if log, suppressed := h.pace(cl.ID); log {
		h.log.Warn("MQTT connection refused", "client", cl.ID, "remote", cl.Net.Remote, "why", why,
			"refused", n, "not_logged", suppressed)
	}
}

// deny counts a publish or subscription the ACL refused and logs it,
// paced per client id and direction.
func (h *terminalACL) deny(cl *mochi.Client, topic string, write bool) {
	n := h.denied.Add(1)
	what, key := "MQTT subscription refused", "sub\x00"+cl.ID
	if write {
		what, key = "MQTT publish refused", "pub\x00"+cl.ID
	}
	if log, suppressed := h.pace(key); log {
		h.log.Warn(what, "client", cl.ID, "remote", cl.Net.Remote, "topic", topic,
			"why", "a terminal may publish only its own tx, query, scan and status topics (retained: status only) and read only its own ack, reply and its store's config",
			"denied", n, "not_logged", suppressed)
	}
}

// pace says whether to log a refusal for key now, and how many were not
// logged since the last line.
func (h *terminalACL) pace(key string) (log bool, suppressed int) {
	suppressed, log = h.pacer.Allow(key, h.clock.Now())
	return log, suppressed
}

// Refused counts the connections refused (at CONNECT, or right after for
// credentials revoked meanwhile).
func (e *Embedded) Refused() int64 { return e.acl.refused.Load() }

// Disconnect drops the client with id at once (a revoked terminal, or one
// whose credentials changed); a reconnect must then authenticate anew.
func (e *Embedded) Disconnect(id string) {
	if cl, ok := e.srv.Clients.Get(id); ok && !cl.Closed() {
		_ = e.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

// Denied counts the publishes and subscriptions the ACL refused.
func (e *Embedded) Denied() int64 { return e.acl.denied.Load() }

func (h *terminalACL) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if cl.Net.Inline || allowed(cl.ID, topic, write) {
		return true
	}
	h.deny(cl, topic, write)
	return false
}

// allowed is the terminal ACL: an agent's client id may publish only its
// own terminal's tx, query, scan and status topics, and read only its own
// ack and reply topics and its store's config.
func allowed(id, topic string, write bool) bool {
	if !write {
		if store, ok := agentStore(id); ok {
			if cfg, err := protocol.ConfigTopic(store); err == nil && topic == cfg {
				return true
			}
		}
	}
	store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
	if err != nil || id != protocol.AgentClientID(store, terminal) {
		return false
	}
	if write {
		return ch == protocol.ChannelTx || ch == protocol.ChannelQuery || ch == protocol.ChannelScan || ch == protocol.ChannelStatus
	}
	return ch == protocol.ChannelAck || ch == protocol.ChannelReply
}

// allowedRetained is the ACL of a terminal's last will and of its
// retained publishes: a publish allowed (write) and, when retained, only
// on its own status topic.
func allowedRetained(id, topic string, retain bool) bool {
	if !allowed(id, topic, true) {
		return false
	}
	if !retain {
		return true
	}
	_, _, ch, err := protocol.ParseTerminalTopic(topic)
	return err == nil && ch == protocol.ChannelStatus
}

// agentStore returns the store named by an agent's client id: ok only when
// id is exactly protocol.AgentClientID(store, terminal) for valid ids
// (':' cannot occur in an id, so the split is unambiguous).
func agentStore(id string) (store string, ok bool) {
	store, _, ok = protocol.ParseAgentClientID(id)
	return store, ok
}

// levelFloor drops records below a level, and mochi's own line for a
// connection refused at CONNECT (its listener logs each at WARN): the
// terminalACL hook has logged it, paced and with the reason. mochi's
// listener also logs, at WARN and with no message, every connection that
// ended with an error: one that merely ended (EOF, closed, reset: a till
// going offline, the hub stopping) is dropped, and the others are given a
// message an operator can read.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Handle(ctx context.Context, r slog.Record) error {
	refusal, ended := false, false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" {
			refusal = errors.Is(err, packets.ErrBadUsernameOrPassword)
			ended = r.Message == "" && connectionEnded(err)
		}
		return !refusal
	})
	if refusal || ended {
		return nil
	}
	if r.Message == "" {
		r.Message = "mqtt connection ended with an error"
	}
	return l.Handler.Handle(ctx, r)
}

// connectionEnded reports whether err only says that a connection ended.
func connectionEnded(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}
func (l levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{l.Handler.WithAttrs(a), l.min}
}
func (l levelFloor) WithGroup(g string) slog.Handler {
	return levelFloor{l.Handler.WithGroup(g), l.min}
}

// HubUsername is the hub's username at an external broker, as
// broker-config writes it into the broker's password file and ACL.
const HubUsername = "tillsync-hub"

// ExternalOptions configures the connection to an external broker.
type ExternalOptions struct {
	// URL of the broker: tcp://127.0.0.1:1883, or tls://broker:8883 (also
	// ssl:// or mqtts://) for MQTT over TLS.
	URL string
	// TLS verifies the broker's certificate on a tls:// URL (nil: the
	// system's roots).
	TLS *tls.Config
	// ClientID defaults to "tillsync-hub". Two hubs must not share one.
	ClientID string
	// Username and Password, when the broker wants them. The password is
	// never logged.
	Username, Password string
	// ConnectTimeout bounds the first connection; default 5s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// External is a paho connection to an external broker. Its subscriptions
// are renewed on every reconnect (a clean session forgets them).
type External struct {
	c   mqtt.Client
	log *slog.Logger

	mu   sync.Mutex
	subs []subscription
}

type subscription struct {
	filter string
	qos    byte
	h      Handler
}

var _ Bus = (*External)(nil)

// DialExternal connects to an external broker, failing with one clear line
// when it cannot be reached within ConnectTimeout. After that first
// connection paho reconnects by itself.
func DialExternal(ctx context.Context, opts ExternalOptions) (*External, error) {
	if opts.ClientID == "" {
		opts.ClientID = "tillsync-hub"
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	x := &External{log: opts.Logger}
	co := mqtt.NewClientOptions().
		AddBroker(opts.URL).
		SetClientID(opts.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1 only: no second full timeout trying 3.1
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(opts.ConnectTimeout).
		SetKeepAlive(15 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {}).
		SetTLSConfig(opts.TLS).
		SetOnConnectHandler(x.resubscribe).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			x.log.Warn("connection to external broker lost; reconnecting", "broker", opts.URL, "err", err)
		})
	x.c = mqtt.NewClient(co)
	tok := x.c.Connect()
	select {
	case <-tok.Done():
	case <-time.After(opts.ConnectTimeout + time.Second):
		x.c.Disconnect(0)
		return nil, fmt.Errorf("broker: cannot reach %s: timed out after %s", opts.URL, opts.ConnectTimeout)
	case <-ctx.Done():
		x.c.Disconnect(0)
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("broker: cannot reach %s: %w", opts.URL, err)
	}
	return x, nil
}

// resubscribe runs in paho's OnConnect: it renews every subscription without
// waiting on the tokens (waiting inside a paho callback can deadlock it).
func (x *External) resubscribe(c mqtt.Client) {
	x.mu.Lock()
	subs := append([]subscription(nil), x.subs...)
	x.mu.Unlock()
	for _, s := range subs {
		c.Subscribe(s.filter, s.qos, wrap(s.h))
	}
}

func wrap(h Handler) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		h(Message{Topic: m.Topic(), Payload: m.Payload()})
	}
}

// Subscribe subscribes now and after every reconnect.
func (x *External) Subscribe(filter string, qos byte, h Handler) error {
	x.mu.Lock()
	x.subs = append(x.subs, subscription{filter, qos, h})
	x.mu.Unlock()
	tok := x.c.Subscribe(filter, qos, wrap(h))
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("broker: subscribe %s: timed out", filter)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", filter, err)
	}
	return nil
}

// Publish hands the message to paho without waiting for the PUBACK.
func (x *External) Publish(topic string, qos byte, retain bool, payload []byte) error {
	x.c.Publish(topic, qos, retain, payload)
	return nil
}

// Close disconnects, giving in-flight messages a moment to leave.
func (x *External) Close() error {
	x.c.Disconnect(250)
	return nil
}
