// Package uplink is the agent's MQTT side: it keeps a connection to the
// broker, publishes the outbox to the hub and hands the hub's acks back, and
// receives the store's config (the partner's earn rules), which the hub
// publishes retained on the store's config topic.
//
// Delivery is decided by the outbox and the hub's acks, never by paho: a
// publish token can complete with no error and no delivery, and a broker's
// PUBACK proves nothing about the ledger. So the uplink keeps its own bounded
// in-flight window over the outbox, re-sends whatever the hub has not acked
// after AckTimeout or a reconnect. The timeout runs, as TCP's does, from
// the last time the hub answered the oldest transaction queued, not from
// when the batch left: a region of tills back from an outage puts
// hundreds of thousands of transactions in front of the hub at once, the
// hub works through them in order, and a till whose queue keeps moving is
// not lost, only waiting (tillsync-sim bench's drain of a million
// transactions from a thousand tills took 71 s with a fixed 10 s and 60 s
// with this timer: docs/performance.md). After a re-send the timeout
// doubles, up to four times AckTimeout, until the hub answers again.
// A "held" ack is not an answer: the
// transaction stays queued and in flight, and goes out again with the next
// re-send. paho's auto-reconnect is off, and its
// in-memory store dies with each connection's client: nothing durable is
// left to it. A fresh paho client (and connection) is made for each
// attempt, with jittered exponential backoff between attempts.
//
// The window is also the hub's to set. Each ack batch may carry a grant
// (protocol.AckBatch.Window): the till's share of the hub's queue among the
// tills sending a backlog, so that a region back from an outage fills the
// queue without overflowing it (an overflowing batch is dropped, and waits
// out the re-send timer). The window is the grant, within Options.Window;
// a hub that grants none leaves it at Options.Window. A new connection
// starts at one batch until the hub answers, so that a thousand tills
// reconnecting at once put one batch each in front of it, not a window.
//
// A burn's hold has a cashier waiting: Urgent sends it at once in a batch
// of its own, ahead of any backlog (a store back from an outage may have
// thousands queued). Only a transaction naming no original may jump the
// queue, and the window stops short of it until the hub has answered it, so
// nothing that refers to it can overtake it and nothing goes twice. Unacked,
// it is sent again after AckTimeout like everything else.
//
// MQTT message handlers never block: they decode and hand the message to the
// uplink goroutine over a buffered channel, dropping it (and counting) when
// the channel is full; the outbox makes a dropped ack harmless. A config
// goes through a one-slot mailbox that keeps the newest.
//
// Member token sightings (PublishSighting) are the one thing sent outside
// the outbox: best effort, QoS 0, only while connected, and dropped
// otherwise. They are evidence for the hub's fraud flags, not
// transactions, and a scan never waits for one.
//
// An enrolled till holds its MAC key (Options.MACKey, from enrollment): it
// seals every batch, query and sighting it sends (protocol.Seal) and
// accepts an ack or a balance reply only when it is sealed with the same
// key. One without a MAC, or with a wrong one, is ignored, logged at WARN
// (at most once a minute) and counted (MACRefused): an external broker may
// let anyone publish on the till's ack topic, and a forged ack would make
// the till delete a transaction the hub never had. Without a key (a till
// that has not enrolled, or enrolled at a hub of protocol version 2) it
// sends protocol.UnsealedVersion messages and takes answers as they come.
//
// The store's config is one retained message for every till of the store,
// so the hub signs it with the coalition's member token key instead
// (protocol.SignConfig). An enrolled till holds that key's public half from
// its enrollment (Options.ConfigKeys): it takes a config only when it is
// signed, for this store's config topic, by one of those keys or by a key
// the newest config verified so far carries (so a key the hub announces in
// a signed config carries over). Any other — unsigned, signed by another
// key, for another topic, or altered — is ignored before it reaches the
// mailbox, logged at WARN (at most once a minute) and counted
// (ConfigRefused), and the till keeps the config it has: otherwise anybody
// who can publish at the broker could hand the till member token keys of
// their own, or earn rules it would quote by offline. A till without keys
// (not enrolled) has nothing to check a config against and takes it as it
// comes.
//
// With Options.Status the uplink publishes the terminal's status
// (protocol.TerminalStatus), retained, on its status topic: when it
// connects, when something in it changes (at most once a second: a
// change within a second of the last status goes out with the next one)
// and every StatusEvery. Every connection attempt takes a new session
// number from Options.NextSession (the outbox's durable counter), and
// sets, before it connects, a retained last will: the same status with
// online false and that session, which the broker publishes when the
// connection dies. Before a clean disconnect (Run's context ends) it
// publishes that offline status itself, since the broker then drops the
// will. The hub ignores a status older, by session, than the newest it
// has seen, so a late will of a replaced connection cannot mark the till
// offline. The clock offset it reports is estimated from balance
// replies: the hub's as_of against the middle of the query's round trip
// (protocol.ClockOffset); none until the first reply. Statuses are QoS 0
// (a hub's broker that predates the status topic drops them instead of
// disconnecting the till), the will and the last offline status QoS 1.
//
// Over TLS (a tls://, ssl:// or mqtts:// broker with Options.TLS) paho
// verifies the hub's certificate during the connection attempt. A failure
// there is no network weather: LastError and the log say what to fix
// (TLSHint: a CA the till does not trust, a name the certificate lacks),
// logged at ERROR, while the till keeps working offline and retrying.
package uplink

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// Outbox is what the uplink needs of the durable queue (agent/outbox).
type Outbox interface {
	// Pending returns up to limit queued transactions with Seq above after, oldest first.
	Pending(after uint64, limit int) ([]protocol.Transaction, error)
	// Acked takes the hub's answers: the transactions they answer leave
	// the queue (Pending and Queued no longer return them; agent/outbox
	// deletes them with its next commit). It returns the acks that removed
	// one (done) and the held acks for transactions still queued (held).
	Acked(acks []protocol.Ack, at time.Time) (done, held []protocol.Ack, err error)
	// Stats returns the queue depth and the oldest queued creation time.
	Stats() (int64, time.Time, error)
	// WaitingOn returns the id of a queued transaction that must reach the
	// hub before t (its original, or the capture of the hold it names), or "".
	WaitingOn(t *protocol.Transaction) (string, error)
	// Queued reports whether transaction id is still queued (not yet acked).
	Queued(id string) (bool, error)
}

// Options configures an Uplink. Broker, Store, Terminal and Outbox are required.
type Options struct {
	// Broker is the MQTT broker URL, e.g. tcp://127.0.0.1:1883, or
	// ssl://hub.example.com:8883 for TLS (with TLS set).
	Broker string
	// TLS verifies the hub's certificate on an ssl:// broker; nil for tcp://.
	TLS *tls.Config
	// Store and Terminal identify this till; they name its topics.
	Store, Terminal string
	// Partner is the brand the store trades as; when set, a config naming
	// another partner is ignored (and logged).
	Partner string
	// ClientID defaults to "tillsync-agent:{store}:{terminal}" (':' is not
	// allowed in ids, so no two terminals can share it).
	ClientID string
	// Username and Password, when the broker wants them.
	Username, Password string
	// MACKey is the terminal's MAC key from enrollment (protocol.MACKeyLen
	// bytes), or nil: see the package doc.
	MACKey []byte
	// ConfigKeys are the keys a store config must be signed with
	// (protocol.VerifyConfig): the coalition's member token keys from the
	// till's enrollment, its trust anchor. nil: configs are taken unsigned
	// (see the package doc).
	ConfigKeys []ed25519.PublicKey
	// TrustedConfig is the verified config the till kept from an earlier
	// run, or nil: with ConfigKeys, its member token keys are trusted too,
	// until a newer verified config replaces it.
	TrustedConfig *protocol.Config
	// Outbox is the durable queue to drain.
	Outbox Outbox
	// Window bounds the transactions published and not yet acked; default
	// 1000. The hub's grant, when it gives one, bounds them further (see
	// the package doc).
	Window int
	// BatchMax bounds the transactions in one published batch; default 100.
	BatchMax int
	// AckTimeout: unacked transactions are re-sent after this long without
	// an answer to the oldest of them (backing off after a re-send: see
	// the package doc); default 10s.
	AckTimeout time.Duration
	// ConnectTimeout bounds one connection attempt; default 5s.
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered wait between attempts; defaults 250ms and 15s.
	BackoffMin, BackoffMax time.Duration
	// OnAck is called from the uplink goroutine for each ack that removed a
	// transaction from the outbox, after that removal committed. Must not block.
	OnAck func(protocol.Ack)
	// OnHeld is called from the uplink goroutine for each held ack of a
	// transaction still queued: the hub recorded nothing and the transaction
	// will be sent again. Must not block.
	OnHeld func(protocol.Ack)
	// OnConfig is called from the uplink goroutine (never paho's) with each
	// valid config for this store (and Partner) the hub publishes — with
	// ConfigKeys, each whose signature verified —, including
	// the retained one sent on every (re)connect. Configs that arrive faster
	// than they are taken are collapsed to the newest by PublishedAt. It may
	// write to disk; it must not wait on the uplink.
	OnConfig func(protocol.Config)
	// Status, when set, returns the agent's part of the terminal's status
	// (AgentVersion, ScannerConnected, LastScan, OfflinePoints,
	// OfflineBurns), and the uplink publishes it with the rest filled in:
	// see the package doc. Called from the uplink goroutine; must not block.
	Status func() protocol.TerminalStatus
	// NextSession returns the next number of the till's durable session
	// counter (the outbox's NextSession); required with Status.
	NextSession func() (uint64, error)
	// StatusEvery is how often the status is published when nothing
	// changes; default 1 minute.
	StatusEvery time.Duration
	// OnState is called when the connection comes up or goes down, with the error that took it down.
	OnState func(connected bool, err error)
	// Logger defaults to discarding; Clock to the real one.
	Logger *slog.Logger
	Clock  clock.Clock
}

// Uplink syncs one terminal's outbox to the hub.
type Uplink struct {
	o Options

	kick      chan struct{}
	urgent    chan protocol.Transaction // holds to send ahead of the backlog
	acks      chan ackBatch
	sightings chan []byte // encoded Sightings for the current connection
	connected atomic.Bool
	dropped   atomic.Int64
	// macRefused counts acks and replies refused for their MAC;
	// macLogged is when one was last logged (unix ns).
	macRefused, macLogged atomic.Int64
	// configRefused counts configs refused for their signature;
	// configLogged is when one was last logged (unix ns).
	configRefused, configLogged atomic.Int64
	lastErr                     atomic.Pointer[string] // why the hub is not reachable; nil while connected
	lat                         ackTimes               // publish-to-ack latency (latency.go)

	statusKick  chan struct{}         // the agent's part of the status changed
	clockOffset atomic.Pointer[int64] // the till's clock minus the hub's, ms; nil: no estimate yet
	sessionNo   uint64                // the current connection's session number; uplink goroutine only

	qmu     sync.Mutex
	client  mqtt.Client // current connection, nil when down; for queries
	queries map[string]chan protocol.BalanceReply
	qseq    atomic.Uint64

	cmu        sync.Mutex
	cfg        *protocol.Config // newest config not yet handed to OnConfig
	cfgReady   chan struct{}    // signalled when cfg is set
	cfgRefused atomic.Bool      // the broker refused the config subscription once already
	// trusted is the newest config verified (or TrustedConfig), nil when
	// none; cfgKeys are the keys a config is verified with: ConfigKeys and
	// trusted's. Both only with ConfigKeys, replaced, never modified.
	trusted *protocol.Config
	cfgKeys []ed25519.PublicKey

	topicTx, topicAck, topicQuery, topicReply, topicConfig, topicScan, topicStatus string
}

// statusMinGap is the least time between two statuses of a connection.
const statusMinGap = time.Second

// ErrOffline is returned by Query when there is no connection to the broker.
var ErrOffline = errors.New("uplink: not connected to the hub")

// New checks opts and returns an Uplink; call Run to start it.
func New(opts Options) (*Uplink, error) {
	if opts.Broker == "" {
		return nil, errors.New("uplink: no broker address")
	}
	if opts.Outbox == nil {
		return nil, errors.New("uplink: no outbox")
	}
	var err error
	u := &Uplink{
		kick: make(chan struct{}, 1), urgent: make(chan protocol.Transaction, 16), acks: make(chan ackBatch, 1024), sightings: make(chan []byte, 64),
		queries: map[string]chan protocol.BalanceReply{}, cfgReady: make(chan struct{}, 1), statusKick: make(chan struct{}, 1),
	}
	if u.topicTx, err = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelTx); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u.topicAck, _ = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelAck)
	u.topicQuery, _ = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelQuery)
	u.topicReply, _ = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelReply)
	u.topicConfig, _ = protocol.ConfigTopic(opts.Store)
	u.topicScan, _ = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelScan)
	u.topicStatus, _ = protocol.TerminalTopic(opts.Store, opts.Terminal, protocol.ChannelStatus)
	if opts.Status != nil && opts.NextSession == nil {
		return nil, errors.New("uplink: a status needs a session counter (NextSession)")
	}
	if opts.StatusEvery <= 0 {
		opts.StatusEvery = time.Minute
	}
	if opts.Partner != "" && !protocol.ValidID(opts.Partner) {
		return nil, fmt.Errorf("uplink: partner %q is not a valid id", opts.Partner)
	}
	if opts.MACKey != nil && len(opts.MACKey) != protocol.MACKeyLen {
		return nil, fmt.Errorf("uplink: the MAC key is %d bytes, want %d", len(opts.MACKey), protocol.MACKeyLen)
	}
	if opts.ClientID == "" {
		opts.ClientID = protocol.AgentClientID(opts.Store, opts.Terminal)
	}
	if opts.Window <= 0 {
		opts.Window = 1000
	}
	if opts.BatchMax <= 0 {
		opts.BatchMax = 100
	}
	opts.BatchMax = min(opts.BatchMax, protocol.MaxBatchTxs)
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 250 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(15*time.Second, opts.BackoffMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Clock = clock.Or(opts.Clock)
	u.o = opts
	if len(opts.ConfigKeys) > 0 {
		u.trust(opts.TrustedConfig)
	} else {
		u.o.ConfigKeys = nil
	}
	return u, nil
}

// trust makes cfg, verified, the config whose keys are trusted beside
// ConfigKeys. Called with cmu held, or before Run.
func (u *Uplink) trust(cfg *protocol.Config) {
	keys := slices.Clone(u.o.ConfigKeys)
	if cfg != nil {
		more, _ := cfg.TokenKeys() // valid: decoded, or kept, by DecodeConfig
		keys = append(keys, more...)
	}
	u.trusted, u.cfgKeys = cfg, keys
}

// Connected reports whether the uplink has a live connection to the broker.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// LastError says why the last attempt to reach the hub failed, or why the
// connection dropped, with TLSHint's advice when there is some; "" while
// connected and before the first attempt.
func (u *Uplink) LastError() string {
	if p := u.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

func (u *Uplink) setLastError(err error) {
	if err == nil {
		u.lastErr.Store(nil)
		return
	}
	msg := err.Error()
	if hint := cmp.Or(TLSHint(err), AuthHint(err)); hint != "" {
		msg += " (" + hint + ")"
	}
	u.lastErr.Store(&msg)
}

// Kick tells the uplink the outbox has new entries. It never blocks.
// Urgent asks for tx, just appended to the outbox, to go to the hub at once,
// ahead of any backlog: a burn's hold, with a cashier waiting. Only a
// transaction that names no original may jump the queue (nothing may reach
// the hub before what it refers to). It never blocks; when the lane is full
// tx goes in its turn.
func (u *Uplink) Urgent(tx protocol.Transaction) {
	if tx.Original != "" {
		u.Kick()
		return
	}
	select {
	case u.urgent <- tx:
	default:
		u.Kick()
	}
}

// StatusChanged tells the uplink that the agent's part of the status
// changed (the scanner, the offline exposure). It never blocks.
func (u *Uplink) StatusChanged() {
	select {
	case u.statusKick <- struct{}{}:
	default:
	}
}

// ClockOffset returns the till's clock minus the hub's as last estimated,
// and false before the first estimate.
func (u *Uplink) ClockOffset() (time.Duration, bool) {
	if p := u.clockOffset.Load(); p != nil {
		return time.Duration(*p) * time.Millisecond, true
	}
	return 0, false
}

func (u *Uplink) Kick() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Dropped counts acks dropped because the uplink goroutine was behind.
func (u *Uplink) Dropped() int64 { return u.dropped.Load() }

// MACRefused counts the acks and balance replies refused because they did
// not carry this terminal's MAC (only with a MACKey).
func (u *Uplink) MACRefused() int64 { return u.macRefused.Load() }

// ConfigRefused counts the store configs refused because they were not
// signed by a key this till trusts (only with ConfigKeys).
func (u *Uplink) ConfigRefused() int64 { return u.configRefused.Load() }

// encode encodes a message for topic: sealed, in protocol.Version, with a
// MAC key; as protocol.UnsealedVersion without one. setVersion sets the
// message's version before it is encoded.
func (u *Uplink) encode(topic string, v any, setVersion func(int)) ([]byte, error) {
	if u.o.MACKey == nil {
		setVersion(protocol.UnsealedVersion)
		return protocol.Encode(v)
	}
	setVersion(protocol.Version)
	body, err := protocol.Encode(v)
	if err != nil {
		return nil, err
	}
	return protocol.Seal(u.o.MACKey, topic, body)
}

// authentic checks the MAC of an answer from the hub (mac: its decoded
// "mac" member): always true without a MAC key; with one, false for an
// answer without this terminal's MAC, which is counted and logged.
func (u *Uplink) authentic(what, topic string, payload []byte, mac string) bool {
	if u.o.MACKey == nil {
		return true
	}
	err := protocol.VerifyMAC(u.o.MACKey, topic, payload, mac)
	if err == nil {
		return true
	}
	n := u.macRefused.Add(1)
	now := u.o.Clock.Now().UnixNano()
	if last := u.macLogged.Load(); now-last >= int64(time.Minute) && u.macLogged.CompareAndSwap(last, now) {
		u.o.Logger.Warn("ignoring "+what+" not sealed with this terminal's MAC key: forged, or from a hub that does not know the key (enrolled again elsewhere?)",
			"topic", topic, "err", err, "refused", n)
	}
	return false
}

// ErrSightingDropped is returned by PublishSighting when the sighting was
// not handed to the connection: the uplink is behind with earlier ones.
var ErrSightingDropped = errors.New("uplink: sighting dropped: earlier ones still waiting")

// PublishSighting hands a member token sighting to the current connection,
// to be published QoS 0 on this terminal's scan topic. It never blocks: it
// returns ErrOffline while there is no connection and ErrSightingDropped
// when sightings are queued faster than they go out, and the sighting is
// lost either way (see the package doc). Store, Terminal and Version are
// filled in.
func (u *Uplink) PublishSighting(s protocol.Sighting) error {
	s.Version, s.Store, s.Terminal, s.MAC = protocol.Version, u.o.Store, u.o.Terminal, ""
	if err := s.Validate(); err != nil {
		return fmt.Errorf("uplink: sighting: %w", err)
	}
	payload, err := u.encode(u.topicScan, &s, func(v int) { s.Version = v })
	if err != nil {
		return fmt.Errorf("uplink: sighting: %w", err)
	}
	if !u.connected.Load() {
		return ErrOffline
	}
	select {
	case u.sightings <- payload:
		return nil
	default:
		return ErrSightingDropped
	}
}

// Run connects, syncs and reconnects until ctx is done. It returns nil then.
func (u *Uplink) Run(ctx context.Context) error {
	attempt := 0
	for ctx.Err() == nil {
		c, lost, err := u.connect(ctx)
		if err != nil {
			attempt++
			wait := u.backoff(attempt)
			u.setLastError(err)
			lvl := slog.LevelDebug
			if attempt == 1 || attempt%20 == 0 {
				lvl = slog.LevelWarn
			}
			msg := "hub unreachable, working offline"
			// Retrying will not fix these: someone must act.
			if hint := TLSHint(err); hint != "" {
				msg = "hub refused at TLS, working offline: " + hint
			} else if hint := AuthHint(err); hint != "" {
				msg = "hub refused the till's credentials, working offline: " + hint
			}
			if msg != "hub unreachable, working offline" && lvl == slog.LevelWarn {
				lvl = slog.LevelError
			}
			u.o.Logger.Log(ctx, lvl, msg, "broker", u.o.Broker, "attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		attempt = 0
		u.setLastError(nil)
		u.setState(true, nil, c)
		u.o.Logger.Info("connected to hub", "broker", u.o.Broker)
		err = u.session(ctx, c, lost)
		if ctx.Err() == nil {
			u.setLastError(fmt.Errorf("connection lost: %w", errOr(err, "closed")))
		}
		u.setState(false, err, nil)
		if ctx.Err() != nil {
			u.publishOffline(c)
		}
		c.Disconnect(250)
		u.dropSightings() // offline sightings are dropped, not sent at the next connect
		if ctx.Err() == nil {
			u.o.Logger.Warn("connection to hub lost", "broker", u.o.Broker, "err", err)
			// A short jittered pause so a broker restart is not met by every till at once.
			select {
			case <-ctx.Done():
			case <-time.After(u.backoff(1)):
			}
		}
	}
	return nil
}

func (u *Uplink) setState(up bool, err error, c mqtt.Client) {
	u.qmu.Lock()
	u.client = c
	u.qmu.Unlock()
	u.connected.Store(up)
	if u.o.OnState != nil {
		u.o.OnState(up, err)
	}
}

// backoff returns the wait before attempt n: exponential from BackoffMin,
// capped at BackoffMax, with full jitter in its upper half.
func (u *Uplink) backoff(n int) time.Duration {
	d := u.o.BackoffMin
	for i := 1; i < n && d < u.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, u.o.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// connect makes a new client and connection, subscribed to this terminal's
// ack and reply topics and to its store's config topic. lost is closed when
// that connection drops.
func (u *Uplink) connect(ctx context.Context) (mqtt.Client, <-chan error, error) {
	lost := make(chan error, 1)
	var will []byte
	u.sessionNo = 0 // no status on this connection until a session is had
	if u.o.Status != nil {
		// Without a session number (the outbox cannot commit) the till
		// still syncs, which is what matters; it just says nothing of itself.
		n, err := u.o.NextSession()
		if err == nil {
			u.sessionNo = n
			will, err = u.statusPayload(false, u.o.Clock.Now())
		}
		if err != nil {
			u.sessionNo, will = 0, nil
			u.o.Logger.Warn("connecting without a status: the session counter or the outbox cannot be read", "err", err)
		}
	}
	opts := mqtt.NewClientOptions().
		AddBroker(u.o.Broker).
		SetClientID(u.o.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1 only: no second full timeout trying 3.1
		SetUsername(u.o.Username).
		SetPassword(u.o.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetConnectTimeout(u.o.ConnectTimeout).
		SetKeepAlive(15 * time.Second).
		SetPingTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {}).
		SetTLSConfig(u.o.TLS).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if will != nil {
		// Retained: a hub (re)subscribing later learns the till is gone.
		opts.SetBinaryWill(u.topicStatus, will, 1, true)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !waitToken(ctx, tok, u.o.ConnectTimeout+time.Second) {
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("connect to %s: timed out", u.o.Broker)
	}
	if err := tok.Error(); err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", u.o.Broker, err)
	}
	// A new client per connection with a clean session: subscribing right
	// after CONNACK is the OnConnect of this connection.
	sub := c.SubscribeMultiple(map[string]byte{u.topicAck: 1, u.topicReply: 0, u.topicConfig: 1}, u.onMessage)
	if !waitToken(ctx, sub, u.o.ConnectTimeout) || sub.Error() != nil {
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("subscribe on %s: %v", u.o.Broker, errOr(sub.Error(), "timed out"))
	}
	// A broker whose ACL predates the config topic refuses it (0x80) and
	// grants the rest: the till works on, pricing earns without the hub's rules.
	if st, ok := sub.(*mqtt.SubscribeToken); ok && st.Result()[u.topicConfig] == 0x80 {
		lvl := slog.LevelDebug
		if !u.cfgRefused.Swap(true) {
			lvl = slog.LevelWarn
		}
		u.o.Logger.Log(ctx, lvl, "the broker refused the store's config topic; earn rules from the hub will not arrive (check the broker's ACL)", "topic", u.topicConfig)
	}
	return c, lost, nil
}

// onMessage runs on paho's goroutine: decode, hand off, never block.
func (u *Uplink) onMessage(_ mqtt.Client, m mqtt.Message) {
	switch m.Topic() {
	case u.topicAck:
		ab, err := protocol.DecodeAckBatch(m.Payload())
		if err != nil {
			u.o.Logger.Warn("ignoring bad ack batch", "err", err)
			return
		}
		if !u.authentic("an ack batch", m.Topic(), m.Payload(), ab.MAC) {
			return
		}
		select {
		case u.acks <- ackBatch{acks: ab.Acks, window: ab.Window}:
		default:
			u.dropped.Add(1) // the hub answers again when the transactions are re-sent
		}
	case u.topicConfig:
		u.onConfig(m.Payload())
	case u.topicReply:
		r, err := protocol.DecodeBalanceReply(m.Payload())
		if err != nil {
			u.o.Logger.Warn("ignoring bad balance reply", "err", err)
			return
		}
		if !u.authentic("a balance reply", m.Topic(), m.Payload(), r.MAC) {
			return
		}
		u.qmu.Lock()
		ch := u.queries[r.RequestID]
		delete(u.queries, r.RequestID)
		u.qmu.Unlock()
		if ch != nil {
			ch <- *r // buffered 1, and removed from the map: never blocks
		}
	}
}

// onConfig runs on paho's goroutine: decode, check its signature (with
// ConfigKeys) and that it is ours, leave it in the mailbox (keeping the
// newest) and signal the uplink goroutine. The signature is checked here,
// before the mailbox, so that a forgery claiming a later time cannot push
// a genuine config out of it.
func (u *Uplink) onConfig(payload []byte) {
	if len(payload) == 0 {
		return // a cleared retained message: nothing published, keep what we have
	}
	cfg, err := protocol.DecodeConfig(payload)
	if err != nil {
		u.o.Logger.Warn("ignoring bad config from the hub", "err", err)
		return
	}
	if u.o.ConfigKeys != nil {
		u.cmu.Lock()
		keys := u.cfgKeys
		u.cmu.Unlock()
		if err := protocol.VerifyConfig(keys, u.topicConfig, payload, cfg.Sig); err != nil {
			u.refuseConfig(cfg, err)
			return
		}
	}
	if cfg.Store != u.o.Store || (u.o.Partner != "" && cfg.Partner != u.o.Partner) {
		u.o.Logger.Warn("ignoring a config for another store or partner", "config_store", cfg.Store, "config_partner", cfg.Partner, "partner", u.o.Partner)
		return
	}
	u.cmu.Lock()
	if u.cfg == nil || !cfg.PublishedAt.Before(u.cfg.PublishedAt) {
		u.cfg = cfg
	}
	if u.o.ConfigKeys != nil && (u.trusted == nil || cfg.PublishedAt.After(u.trusted.PublishedAt)) {
		u.trust(cfg)
	}
	u.cmu.Unlock()
	select {
	case u.cfgReady <- struct{}{}:
	default:
	}
}

// refuseConfig counts a config whose signature did not verify and logs it,
// at most once a minute: whoever can publish one can publish many.
func (u *Uplink) refuseConfig(cfg *protocol.Config, err error) {
	n := u.configRefused.Add(1)
	now := u.o.Clock.Now().UnixNano()
	if last := u.configLogged.Load(); now-last >= int64(time.Minute) && u.configLogged.CompareAndSwap(last, now) {
		u.o.Logger.Warn("ignoring a store config not signed by a coalition key this till trusts, keeping the one it has: forged, or from a hub that does not sign configs yet (upgrade the hub)",
			"topic", u.topicConfig, "err", err, "key_id", protocol.ConfigSigKeyID(cfg.Sig), "published_at", cfg.PublishedAt, "refused", n)
	}
}

// takeConfig empties the config mailbox.
func (u *Uplink) takeConfig() *protocol.Config {
	u.cmu.Lock()
	defer u.cmu.Unlock()
	cfg := u.cfg
	u.cfg = nil
	return cfg
}

// aheadTx is a transaction sent through the urgent lane and when it last went.
type aheadTx struct {
	tx protocol.Transaction
	at time.Time
}

// maxResendFactor bounds the re-send timer's backoff: AckTimeout times this.
const maxResendFactor = 4

// ackBatch is an ack batch handed from paho's goroutine to the session.
type ackBatch struct {
	acks   []protocol.Ack
	window int // the hub's grant; 0: none
}

// sentBatch remembers when a published batch left, by its last Seq.
type sentBatch struct {
	last uint64
	at   time.Time
}

// session drains the outbox over one connection until it drops or ctx ends.
func (u *Uplink) session(ctx context.Context, c mqtt.Client, lost <-chan error) error {
	var (
		cursor   uint64      // highest Seq published on this connection
		inflight int         // transactions published and not yet acked
		sent     []sentBatch // batches published, oldest first, pruned as acks arrive
		// ahead are the transactions sent through the urgent lane, not yet
		// acked, and when they last went out. The window stops short of
		// them until they are acked, so nothing that refers to one can
		// overtake it, and nothing goes twice.
		ahead = map[string]*aheadTx{}
		// The re-send timer, as TCP's: it runs from the later of the
		// oldest batch's send and the last time the front of the queue
		// moved (front: the oldest queued Seq then; moved: when), and it
		// doubles after each re-send, up to maxResendFactor × AckTimeout,
		// until the front moves again. See the package doc.
		front uint64
		moved time.Time
		rto   = u.o.AckTimeout
		// win bounds inflight: one batch until the hub answers, then the
		// hub's grant (a hub that grants none: Window). See the package doc.
		win = min(u.o.Window, u.o.BatchMax)
	)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	now := u.o.Clock.Now
	var st statusState
	for {
		if err := u.refreshStatus(c, &st); err != nil {
			return err
		}
		// Fill the window.
		for inflight < win {
			txs, err := u.o.Outbox.Pending(cursor, min(u.o.BatchMax, win-inflight))
			if err != nil {
				return err
			}
			txs, err = u.causal(txs)
			if err != nil {
				return err
			}
			if len(txs) == 0 {
				break
			}
			if i := slices.IndexFunc(txs, func(t protocol.Transaction) bool { return ahead[t.ID] != nil }); i >= 0 {
				txs = txs[:i]
			}
			if len(txs) == 0 {
				break
			}
			inflight += len(txs)
			if err := u.publish(c, txs, inflight); err != nil {
				return err
			}
			cursor = txs[len(txs)-1].Seq
			sent = append(sent, sentBatch{last: cursor, at: now()})
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			return errOr(err, "connection closed")
		case <-u.kick:
		case <-u.statusKick:
			st.changed = true
		case tx := <-u.urgent:
			// Not if the window has sent it already, or the hub answered it.
			if tx.Seq <= cursor || ahead[tx.ID] != nil {
				continue
			}
			if q, err := u.o.Outbox.Queued(tx.ID); err != nil {
				return err
			} else if !q {
				continue
			}
			inflight++
			ahead[tx.ID] = &aheadTx{tx: tx, at: now()}
			if err := u.publish(c, []protocol.Transaction{tx}, inflight); err != nil {
				return err
			}
		case ab := <-u.acks:
			// Take whatever else has arrived, to delete in one commit; the
			// newest grant stands.
			acks := ab.acks
			win = u.window(ab.window)
			for more := true; more && len(acks) < 4*protocol.MaxBatchTxs; {
				select {
				case ab := <-u.acks:
					acks = append(acks, ab.acks...)
					win = u.window(ab.window)
				default:
					more = false
				}
			}
			done, held, err := u.o.Outbox.Acked(acks, now())
			if err != nil {
				return err
			}
			// Held transactions stay in flight: the re-send after AckTimeout
			// sends them again.
			inflight = max(0, inflight-len(done))
			u.lat.acked(done, now())
			for _, a := range done {
				delete(ahead, a.ID)
			}
			for _, a := range held {
				// Answered, if only "held": it goes again in its turn, and
				// the window must not stop short of it for ever.
				if ahead[a.ID] != nil {
					delete(ahead, a.ID)
					inflight = max(0, inflight-1)
				}
			}
			if u.o.OnAck != nil {
				for _, a := range done {
					u.o.OnAck(a)
				}
			}
			if u.o.OnHeld != nil {
				for _, a := range held {
					u.o.OnHeld(a)
				}
			}
		case <-u.cfgReady:
			if cfg := u.takeConfig(); cfg != nil && u.o.OnConfig != nil {
				u.o.OnConfig(*cfg)
			}
		case p := <-u.sightings:
			// Not waited on: QoS 0, and nothing depends on its arrival.
			c.Publish(u.topicScan, 0, false, p)
		case <-tick.C:
			for _, a := range ahead {
				if now().Sub(a.at) > u.o.AckTimeout {
					a.at = now()
					if err := u.publish(c, []protocol.Transaction{a.tx}, inflight); err != nil {
						return err
					}
				}
			}
			if len(sent) == 0 {
				continue
			}
			// The oldest queued transaction decides: if it went out more than
			// the re-send timeout ago, and the hub has answered nothing
			// before it since, send everything again from there. The hub
			// answers duplicates with the original result, so a re-send is
			// always safe.
			oldest, err := u.o.Outbox.Pending(0, 1)
			if err != nil {
				return err
			}
			if len(oldest) == 0 {
				sent, inflight = sent[:0], 0
				continue
			}
			if oldest[0].Seq != front {
				front, moved, rto = oldest[0].Seq, now(), u.o.AckTimeout
			}
			for len(sent) > 0 && sent[0].last < oldest[0].Seq {
				sent = sent[1:]
			}
			if len(sent) == 0 || oldest[0].Seq > cursor {
				continue
			}
			since := sent[0].at
			if moved.After(since) {
				since = moved
			}
			if now().Sub(since) > rto {
				u.o.Logger.Warn("no ack from hub in time, re-sending", "tx", oldest[0].ID, "inflight", inflight, "after", rto.String())
				cursor, inflight, sent = 0, 0, sent[:0]
				inflight = len(ahead)
				rto = min(2*rto, maxResendFactor*u.o.AckTimeout)
			}
		}
	}
}

// window is the window under the hub's grant: the grant, within Window;
// Window when the hub grants none (a hub of an older version).
func (u *Uplink) window(grant int) int {
	if grant <= 0 {
		return u.o.Window
	}
	return min(grant, u.o.Window)
}

// dropSightings empties the sightings queue.
func (u *Uplink) dropSightings() {
	for {
		select {
		case <-u.sightings:
		default:
			return
		}
	}
}

// causal cuts txs before the first transaction that must wait for another
// still waiting for the hub's ack and not earlier in this same batch: the
// earn or burn a reverse names, the burn or hold a void names, the hold a
// capture completes, and the capture of a hold a reverse names (the POS
// knows a two-phase burn by its hold's id). The hub applies a batch in
// order, but batches may reach it out of order (a lost batch re-sent later,
// an external broker delivering concurrently), and nothing may arrive before
// what it refers to. The cut-off part goes out once that is acked.
func (u *Uplink) causal(txs []protocol.Transaction) ([]protocol.Transaction, error) {
	for i := range txs {
		t := &txs[i]
		if t.Original == "" {
			continue
		}
		id, err := u.o.Outbox.WaitingOn(t)
		if err != nil {
			return nil, err
		}
		if id == "" {
			continue
		}
		inBatch := false
		for _, p := range txs[:i] {
			if p.ID == id {
				inBatch = true
				break
			}
		}
		if !inBatch {
			return txs[:i], nil
		}
	}
	return txs, nil
}

// publish sends txs as one batch; inflight counts them and everything
// published before them that the hub has not acked.
func (u *Uplink) publish(c mqtt.Client, txs []protocol.Transaction, inflight int) error {
	queued, oldest, err := u.o.Outbox.Stats()
	if err != nil {
		return err
	}
	backlog := max(0, queued-int64(inflight)) // queued and not yet sent
	if backlog == 0 {
		oldest = time.Time{} // nothing waits behind this batch
	}
	b := protocol.Batch{
		Store: u.o.Store, Terminal: u.o.Terminal,
		Backlog: backlog, OldestUnsynced: oldest, SentAt: u.o.Clock.Now(), Txs: txs,
	}
	payload, err := u.encode(u.topicTx, &b, func(v int) { b.Version = v })
	if err != nil {
		return fmt.Errorf("encode batch: %w", err)
	}
	// The token is not waited on: the hub's ack, not the PUBACK, says what
	// arrived, and a re-send covers a publish that silently went nowhere.
	c.Publish(u.topicTx, 1, false, payload)
	u.lat.published(txs, b.SentAt)
	return nil
}

// Query asks the hub for a member's balance over the current connection.
func (u *Uplink) Query(ctx context.Context, member string) (protocol.BalanceReply, error) {
	id := strconv.FormatUint(u.qseq.Add(1), 36) + "-" + strconv.FormatUint(rand.Uint64(), 36)
	q := protocol.BalanceQuery{RequestID: id, Member: member}
	payload, err := u.encode(u.topicQuery, &q, func(v int) { q.Version = v })
	if err != nil {
		return protocol.BalanceReply{}, err
	}
	ch := make(chan protocol.BalanceReply, 1)
	u.qmu.Lock()
	c := u.client
	if c != nil {
		u.queries[id] = ch
	}
	u.qmu.Unlock()
	if c == nil {
		return protocol.BalanceReply{}, ErrOffline
	}
	defer func() {
		u.qmu.Lock()
		delete(u.queries, id)
		u.qmu.Unlock()
	}()
	sent := u.o.Clock.Now()
	c.Publish(u.topicQuery, 0, false, payload)
	select {
	case r := <-ch:
		u.noteClock(sent, u.o.Clock.Now(), r.AsOf)
		return r, nil
	case <-ctx.Done():
		return protocol.BalanceReply{}, fmt.Errorf("uplink: balance query: %w", ctx.Err())
	}
}

func waitToken(ctx context.Context, t mqtt.Token, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// statusState is what a connection's session remembers of the statuses
// it published.
type statusState struct {
	at      time.Time // when the last one went; zero before the first
	checked time.Time // when a status was last made to compare
	last    []byte    // its content, without the times (statusKey)
	changed bool      // the agent said something changed since
}

// refreshStatus publishes the status over c when it is due: the first of
// the connection, a changed one at least statusMinGap after the last, or
// any after StatusEvery. Not due yet, a change waits for a later call
// (the session's ticker calls it twice a second).
func (u *Uplink) refreshStatus(c mqtt.Client, st *statusState) error {
	if u.o.Status == nil || u.sessionNo == 0 {
		return nil
	}
	now := u.o.Clock.Now()
	if !st.at.IsZero() && now.Sub(st.at) < statusMinGap {
		return nil
	}
	// A busy loop (acks arriving all the time) need not read the outbox
	// for every turn: a change is looked for at most every quarter second.
	if !st.changed && now.Sub(st.checked) < statusMinGap/4 {
		return nil
	}
	st.checked = now
	s, err := u.status(true, now)
	if err != nil {
		return err
	}
	key := statusKey(s)
	if !st.at.IsZero() && !st.changed && string(key) == string(st.last) && now.Sub(st.at) < u.o.StatusEvery {
		return nil
	}
	payload, err := u.encode(u.topicStatus, &s, func(v int) { s.Version = v })
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	// Not waited on: a lost status is replaced by the next, or by the will.
	c.Publish(u.topicStatus, 0, true, payload)
	st.at, st.last, st.changed = now, key, false
	return nil
}

// statusKey is a status without what changes by the second alone (its
// time, the oldest transaction's age), to tell a change from a refresh.
func statusKey(s protocol.TerminalStatus) []byte {
	s.SentAt, s.OldestUnsyncedSeconds = time.Time{}, 0
	b, _ := protocol.Encode(&s) // plain struct: cannot fail
	return b
}

// status returns the terminal's status as of now for the current session.
func (u *Uplink) status(online bool, now time.Time) (protocol.TerminalStatus, error) {
	s := u.o.Status()
	s.Store, s.Terminal, s.Session, s.Online, s.SentAt, s.MAC = u.o.Store, u.o.Terminal, u.sessionNo, online, now, ""
	n, oldest, err := u.o.Outbox.Stats()
	if err != nil {
		return s, err
	}
	s.Backlog, s.OldestUnsynced, s.OldestUnsyncedSeconds = n, time.Time{}, 0
	if n > 0 && !oldest.IsZero() {
		s.OldestUnsynced = oldest
		s.OldestUnsyncedSeconds = max(0, int64(now.Sub(oldest)/time.Second))
	}
	s.ClockOffsetMS = nil
	if p := u.clockOffset.Load(); p != nil {
		ms := *p
		s.ClockOffsetMS = &ms
	}
	return s, nil
}

// statusPayload encodes the status as of now, sealed with a MAC key.
func (u *Uplink) statusPayload(online bool, now time.Time) ([]byte, error) {
	s, err := u.status(online, now)
	if err != nil {
		return nil, err
	}
	return u.encode(u.topicStatus, &s, func(v int) { s.Version = v })
}

// publishOffline says, before a clean disconnect, what the will would
// have: the broker discards the will of a client that disconnects itself.
func (u *Uplink) publishOffline(c mqtt.Client) {
	if u.o.Status == nil || u.sessionNo == 0 {
		return
	}
	payload, err := u.statusPayload(false, u.o.Clock.Now())
	if err != nil {
		u.o.Logger.Warn("no offline status sent", "err", err)
		return
	}
	// Bounded: a service's stop must stay short.
	c.Publish(u.topicStatus, 1, true, payload).WaitTimeout(500 * time.Millisecond)
}

// noteClock takes a clock offset estimate from a balance query sent at
// sent and answered at received (the till's clock) with the hub's as_of.
// A round trip over a second says too little; a change under 250ms is
// noise, not worth a status.
func (u *Uplink) noteClock(sent, received, asOf time.Time) {
	if asOf.IsZero() || received.Sub(sent) > time.Second {
		return
	}
	ms := protocol.ClockOffset(sent, received, asOf).Milliseconds()
	if p := u.clockOffset.Load(); p != nil && max(ms-*p, *p-ms) < 250 {
		return
	}
	u.clockOffset.Store(&ms)
	u.StatusChanged()
}
