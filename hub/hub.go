// Package hub is tillsync-hub: it holds the coalition's authoritative
// ledger, applies each transaction from the tills exactly once, acks it after
// the commit, and serves the operators' HTTP API. It wires the broker
// (hub/broker: embedded mochi by default, or an external broker), the ingest
// loop with its group commit (hub/ingest), the ledger (hub/ledger) and the
// HTTP API (hub/httpapi) with the operators' web dashboard beside it at
// /dashboard/ (hub/dashboard), which it feeds the broker's client list, the
// ingest's rejections and lags, and a ring of per-second samples of the
// ingest rate and ack latency (samples.go). With alert rules
// (Options.Alerts) it runs hub/alerts' evaluator on the dashboard's view of
// the stores and the ingest's rejections (alerts.go), and its webhook
// sender.
//
// It also keeps the tills' side of the coalition current: every registered
// store's protocol.Config (currency, point value, the partner's earn rules)
// is published retained on the store's config topic when the hub starts and
// again whenever the API changes the coalition, so a till quotes offline
// exactly what the hub will book. Each is signed with the member token key
// below (protocol.SignConfig): one retained message serves every till of a
// store, so a per-terminal MAC cannot authenticate it. And it runs the ledger's upkeep: lapsing
// holds past their time and expiring points.
//
// Member tokens (signed rotating QR codes, protocol.MintMemberToken) are
// signed with the coalition's Ed25519 key, kept in the data dir
// (MemberTokenKeyFile, made at the first start, never logged). The hub
// mints them over its HTTP API for member apps, publishes the public key in
// every store's config so that tills verify tokens offline, and records the
// tills' sightings of tokens, flagging one accepted at two stores.
//
// The HTTP API wants a bearer token with a role on every request but an
// enrollment and the liveness check (hub/httpapi). At its first start the
// hub makes an operator token and writes it, owner-only, to
// Options.OperatorTokenFile (operator.token in the data dir), where the
// admin commands find it; it logs the file and the token's id, never the
// token.
//
// Transport: the embedded broker serves MQTT over TLS with the certificate
// the caller gives (Options.MQTTTLS, from hub/pki: the hub's own CA, or
// the operator's files), and plain MQTT only on a listener given for it
// (Options.MQTTPlainListener); the HTTP API can be served over TLS too
// (Options.HTTPSListener). Which addresses may be plain is the command's
// rule (loopback unless the operator insists), not this package's: tests
// run the hub on plain loopback listeners.
package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// LedgerFile is the ledger's file name inside the data dir.
const LedgerFile = "ledger.db"

// Options configures a Hub. DataDir is required, and either an MQTT
// listener for the embedded broker (MQTTListener, MQTTPlainListener or
// both) or BrokerURL (an external broker).
type Options struct {
	// DataDir holds the ledger; created owner-only if missing.
	DataDir string
	// MQTTListener is where the embedded broker serves MQTT clients.
	MQTTListener net.Listener
	// MQTTTLS, when set, makes the embedded broker serve MQTTListener over
	// TLS (hub/pki's ServerTLSConfig). tillsync-hub serve always sets it;
	// tests may leave it out and get plain MQTT.
	MQTTTLS *tls.Config
	// CAPEM and CAFingerprint are the hub's CA certificate and its SHA-256
	// (hex), handed to tills at enrollment; empty without a CA.
	CAPEM         []byte
	CAFingerprint string
	// RequireEnrollment makes the embedded broker refuse every client
	// without an enrolled terminal's credentials; with an external broker,
	// the hub refuses the messages of every terminal that has not enrolled.
	RequireEnrollment bool
	// MQTTPlainListener, when set, serves plain MQTT besides MQTTListener
	// (serve's --mqtt-plain-listen, loopback unless the operator insists).
	MQTTPlainListener net.Listener
	// MQTTAdvertise is the broker address tills are told at enrollment,
	// e.g. tls://hub.example.com:8883. Empty: the embedded broker's port on
	// the host name the till reached the HTTP API by (nothing with an
	// external broker).
	MQTTAdvertise string
	// BrokerURL names an external broker to use instead, e.g.
	// tcp://127.0.0.1:1883 or tls://broker.example.com:8883. The broker
	// does not tell the hub who published a message, so an enrolled
	// terminal's messages are taken only with its MAC (hub/ingest), and
	// with RequireEnrollment nobody else's are.
	BrokerURL string
	// BrokerTLS verifies a tls:// broker's certificate (nil: the system's roots).
	BrokerTLS *tls.Config
	// BrokerClientID is the hub's client id at an external broker; default "tillsync-hub".
	BrokerClientID string
	// BrokerUsername and BrokerPassword are the hub's credentials at an
	// external broker (broker.HubUsername and the password in
	// BrokerPasswordFile, as tillsync-hub broker-config sets them up). The
	// password is never logged.
	BrokerUsername, BrokerPassword string
	// HTTPListener serves the HTTP API, plain; nil for none.
	HTTPListener net.Listener
	// HTTPSListener serves the same API over TLS with HTTPSTLS (both or
	// neither); nil for none.
	HTTPSListener net.Listener
	HTTPSTLS      *tls.Config
	// Seed, when set, is loaded into the ledger by Open (ledger.Store.LoadSeed:
	// loading the same seed again changes nothing).
	Seed *ledger.Seed
	// HoldSweepEvery is how often holds past their time are lapsed; default 30s.
	HoldSweepEvery time.Duration
	// ExpiryEvery is how often points past their expiry are expired (also
	// once when Run starts); default 1h.
	ExpiryEvery time.Duration
	// MemberTokenKeyFile holds the coalition's member token signing key
	// (LoadMemberTokenKey: created when missing); default
	// DataDir/member-token.key. Back it up with the ledger: a hub with a
	// new key refuses none of its own tokens, but tills refuse the tokens
	// the old key signed, and enrolled tills the configs the new one signs
	// until they enroll again.
	MemberTokenKeyFile string
	// MemberTokenTTL is how long a token minted over the HTTP API lives
	// unless the request asks otherwise; default protocol.DefaultTokenTTL.
	MemberTokenTTL time.Duration
	// OperatorTokenFile is where Open writes the operator API token it
	// makes when the ledger has no valid operator token (the first start);
	// default DataDir/operator.token. The admin commands read it from
	// there.
	OperatorTokenFile string
	// NewOperatorToken makes Open issue a new operator token into
	// OperatorTokenFile even though one exists: for an operator who lost
	// theirs. The old ones stay valid until revoked.
	NewOperatorToken bool
	// MetricsMaxStores bounds the stores with series of their own in GET
	// /metrics; the others are summed up as store="(other)" (metrics.go).
	// Default DefaultMetricsMaxStores.
	MetricsMaxStores int
	// LedgerVerifyEvery is how often the dashboard's ledger health verifies
	// the ledger (a replay of the whole journal); default 15 minutes,
	// negative for only when asked on the dashboard.
	LedgerVerifyEvery time.Duration
	// Alerts, when set, are the alert rules the hub evaluates (hub/alerts):
	// firing alerts are shown on the dashboard, and every firing and
	// recovery is posted to the rules' webhooks.
	Alerts *alerts.Config
	// AfterCommit is called after each ledger commit of the ingest, before
	// its acks are published (ingest.Options.AfterCommit): a hook for
	// fault injection, nil in production.
	AfterCommit func()
	// BrokerOnly runs the embedded broker (TLS, authentication, each
	// terminal confined to its topics) with nothing behind it: the hub
	// subscribes to none of the tills' topics, so a batch is PUBACKed and
	// goes nowhere. It is the baseline of tillsync-sim bench, which
	// measures what the ledger path costs on top of the broker alone;
	// never set in production.
	BrokerOnly bool
	Logger     *slog.Logger
	Clock      clock.Clock
}

// Maintenance defaults.
const (
	DefaultHoldSweepEvery = 30 * time.Second
	DefaultExpiryEvery    = time.Hour
)

// Hub is a running hub. Make it with Open, run it with Run.
type Hub struct {
	o      Options
	log    *slog.Logger
	ledger *ledger.BoltStore
	ingest atomic.Pointer[ingest.Ingest] // set by Run; Stats may be called from anywhere
	ready  chan struct{}
	// changed asks the config loop to re-publish; buffered 1 so that a burst
	// of changes costs one round and a change before the loop runs is kept.
	changed chan struct{}
	// tokenKey signs member tokens; tokenKeys are the public keys tills
	// accept, newest first, as Config.MemberTokenKeys carries them.
	tokenKey        ed25519.PrivateKey
	tokenKeys       []string
	tokenKeyCreated bool // by Open, this start
	// operatorTokenID is the operator token Open made; "" when none.
	operatorTokenID string
	// samples are the ingest's last minutes, second by second, for the
	// dashboard's charts.
	samples sampler
	// alerts evaluates Options.Alerts; nil without rules or before Run.
	alerts atomic.Pointer[alerts.Evaluator]
}

// Open checks the options and opens the ledger (failing fast on a locked or
// unusable data dir).
func Open(o Options) (*Hub, error) {
	if o.DataDir == "" {
		return nil, errors.New("hub: no data dir")
	}
	if embedded := o.MQTTListener != nil || o.MQTTPlainListener != nil; embedded == (o.BrokerURL != "") {
		return nil, errors.New("hub: need either an MQTT listener for the embedded broker or an external broker URL")
	}
	if (o.HTTPSListener == nil) != (o.HTTPSTLS == nil) {
		return nil, errors.New("hub: an HTTPS listener needs its TLS configuration, and the other way round")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub: data dir: %w", err)
	}
	if o.HoldSweepEvery <= 0 {
		o.HoldSweepEvery = DefaultHoldSweepEvery
	}
	if o.ExpiryEvery <= 0 {
		o.ExpiryEvery = DefaultExpiryEvery
	}
	st, err := ledger.OpenBolt(filepath.Join(o.DataDir, LedgerFile), ledger.BoltOptions{Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if o.MemberTokenKeyFile == "" {
		o.MemberTokenKeyFile = filepath.Join(o.DataDir, MemberTokenKeyFile)
	}
	key, created, err := LoadMemberTokenKey(o.MemberTokenKeyFile)
	if err != nil {
		st.Close()
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	if o.OperatorTokenFile == "" {
		o.OperatorTokenFile = filepath.Join(o.DataDir, OperatorTokenFile)
	}
	opToken, err := ensureOperatorToken(st, o.OperatorTokenFile, o.NewOperatorToken, o.Clock.Now())
	if err != nil {
		st.Close()
		return nil, err
	}
	if o.Seed != nil {
		rep, err := st.LoadSeed(o.Seed, o.Clock.Now())
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("hub: seed: %w", err)
		}
		o.Logger.Info("seed loaded", "partners", rep.Partners, "stores", rep.Stores, "terminals", rep.Terminals, "rules", rep.Rules)
	}
	return &Hub{
		o: o, log: o.Logger, ledger: st, ready: make(chan struct{}), changed: make(chan struct{}, 1),
		tokenKey: key, tokenKeys: []string{protocol.EncodeTokenKey(pub)}, tokenKeyCreated: created,
		operatorTokenID: opToken,
	}, nil
}

// logTokenKey says which member token key the hub signs with, once it runs
// (Open stays quiet, so a start that fails says only why): that a new one
// was made and wants a backup, or that the file is open to other users.
func (h *Hub) logTokenKey() {
	path, id := h.o.MemberTokenKeyFile, protocol.TokenKeyID(h.tokenKey.Public().(ed25519.PublicKey))
	if h.tokenKeyCreated {
		h.log.Info("member token key created; back it up with the ledger", "path", path, "key_id", id)
		return
	}
	if fi, err := os.Stat(path); err == nil && keyFileOpen(fi) {
		h.log.Warn("the member token key can be read by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String(), "key_id", id)
	}
}

// MemberTokenKeys returns the public keys the hub's tills accept member
// tokens from, newest first.
func (h *Hub) MemberTokenKeys() []ed25519.PublicKey {
	keys, _ := protocol.ParseTokenKeys(h.tokenKeys) // encoded by Open: cannot fail
	return keys
}

// Alerts returns the alerts firing now; none without alert rules.
func (h *Hub) Alerts() []alerts.Alert {
	if ev := h.alerts.Load(); ev != nil {
		return ev.Firing()
	}
	return []alerts.Alert{}
}

// Ready is closed once Run has the broker up and its subscriptions in place.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Ledger gives tests and tools read access to the ledger.
func (h *Hub) Ledger() ledger.Store { return h.ledger }

// Stats returns the ingest counters (zero before Run).
func (h *Hub) Stats() ingest.Stats {
	in := h.ingest.Load()
	if in == nil {
		return ingest.Stats{}
	}
	return in.Stats()
}

// Run serves until ctx is done, then stops taking messages, commits and acks
// what it already took, and closes the ledger.
func (h *Hub) Run(ctx context.Context) error {
	defer h.ledger.Close()
	var bus broker.Bus
	var err error
	if h.o.BrokerURL != "" {
		bus, err = broker.DialExternal(ctx, broker.ExternalOptions{URL: h.o.BrokerURL, TLS: h.o.BrokerTLS, ClientID: h.o.BrokerClientID,
			Username: h.o.BrokerUsername, Password: h.o.BrokerPassword, Logger: h.log})
	} else {
		bus, err = broker.StartEmbedded(broker.EmbeddedOptions{Listener: h.o.MQTTListener, TLS: h.o.MQTTTLS, PlainListener: h.o.MQTTPlainListener,
			Auth: h.ledger, RequireEnrollment: h.o.RequireEnrollment, Logger: h.log, Clock: h.o.Clock})
	}
	if err != nil {
		return err
	}
	external := h.o.BrokerURL != ""
	timed := newTimedStore(h.ledger, h.o.Clock) // metrics.go
	in := ingest.New(ingest.Options{
		Store:      timed,
		Publish:    func(topic string, qos byte, payload []byte) error { return bus.Publish(topic, qos, false, payload) },
		TokenKeys:  h.MemberTokenKeys(),
		RequireMAC: external, RequireEnrollment: external && h.o.RequireEnrollment,
		AckQoS:      ackQoS(external),
		AfterCommit: h.o.AfterCommit, Logger: h.log, Clock: h.o.Clock,
	})
	h.ingest.Store(in)
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	ingestDone := make(chan struct{})
	go func() {
		defer close(ingestDone)
		in.Run(ingestCtx)
	}()
	subscribe := func() error {
		if h.o.BrokerOnly {
			h.log.Warn("broker only: no transaction is taken (a benchmark's baseline)")
			return nil
		}
		if err := bus.Subscribe(protocol.AllTerminals(protocol.ChannelTx), 1, func(m broker.Message) { in.HandleTx(m.Topic, m.Payload) }); err != nil {
			return err
		}
		if err := bus.Subscribe(protocol.AllTerminals(protocol.ChannelQuery), 0, func(m broker.Message) { in.HandleQuery(m.Topic, m.Payload) }); err != nil {
			return err
		}
		if err := bus.Subscribe(protocol.AllTerminals(protocol.ChannelScan), 0, func(m broker.Message) { in.HandleScan(m.Topic, m.Payload) }); err != nil {
			return err
		}
		return bus.Subscribe(protocol.AllTerminals(protocol.ChannelStatus), 1, func(m broker.Message) {
			// A late will of a replaced connection took the retained place of
			// the till's newest status: put that back, off the broker's goroutine.
			if newest := in.HandleStatus(m.Topic, m.Payload); newest != nil {
				go bus.Publish(m.Topic, 0, true, newest)
			}
		})
	}
	var wg, upkeep sync.WaitGroup
	upkeepCtx, stopUpkeep := context.WithCancel(ctx)
	defer stopUpkeep()
	if err = subscribe(); err == nil {
		var where []string
		if h.o.BrokerURL != "" {
			where = append(where, h.o.BrokerURL)
		}
		if l := h.o.MQTTListener; l != nil {
			if h.o.MQTTTLS != nil {
				where = append(where, "tls://"+l.Addr().String()+" (embedded, TLS)")
			} else {
				where = append(where, "tcp://"+l.Addr().String()+" (embedded, plain)")
			}
		}
		if l := h.o.MQTTPlainListener; l != nil {
			where = append(where, "tcp://"+l.Addr().String()+" (embedded, plain)")
		}
		h.log.Info("hub running", "broker", strings.Join(where, ", "), "ledger", filepath.Join(h.o.DataDir, LedgerFile))
		h.logTokenKey()
		h.logOperatorToken()
		close(h.ready)
		upkeep.Go(func() { h.configLoop(upkeepCtx, bus) })
		upkeep.Go(func() { h.maintain(upkeepCtx) })
		upkeep.Go(func() { h.samples.run(upkeepCtx, in, h.o.Clock) })
		dash := h.newDashboard(bus, in)
		upkeep.Go(func() { dash.Run(upkeepCtx) })
		if cfg := h.o.Alerts; cfg != nil {
			snd := alerts.NewSender(alerts.SenderOptions{Webhooks: cfg.Webhooks, Logger: h.log})
			ev := alerts.New(alerts.Options{Config: cfg, Source: &alertSource{dash: dash, rejections: in.Rejections, started: h.o.Clock.Now(),
				exposure: func(store, terminal string) (alerts.Exposure, bool) {
					// What the till says in its status: the offline burns
					// the hub has not answered yet, against its cap.
					s, ok := in.Status(store, terminal)
					if !ok || s.OfflineCap == 0 {
						return alerts.Exposure{}, false
					}
					return alerts.Exposure{Points: s.OfflinePoints, Cap: s.OfflineCap}, true
				}}, Notify: snd.Send, Logger: h.log, Clock: h.o.Clock})
			h.alerts.Store(ev)
			h.log.Info("alert rules loaded", "rules", len(cfg.Rules), "webhooks", len(cfg.Webhooks), "every", cfg.Every)
			upkeep.Go(func() { snd.Run(upkeepCtx) })
			upkeep.Go(func() { ev.Run(upkeepCtx) })
		}
		errc := make(chan error, 2)
		metricsHandler, merr := h.metricsHandler(bus, in, timed, dash)
		if merr != nil {
			h.log.Error("metrics not served", "err", merr)
		}
		api := httpapi.Options{
			Store: h.ledger, Stats: func() any { return in.Stats() }, OnChange: h.configChanged,
			MemberTokenKey: h.tokenKey, MemberTokenTTL: h.o.MemberTokenTTL,
			CAPEM: h.o.CAPEM, CAFingerprint: h.o.CAFingerprint,
			OnCredentials: func(store, terminal string) {
				if e, ok := bus.(*broker.Embedded); ok {
					e.Disconnect(protocol.AgentClientID(store, terminal))
				}
			},
			MQTTRefused: mqttRefused(bus), MQTTDenied: mqttDenied(bus), MQTTAdvertise: h.o.MQTTAdvertise, Logger: h.log, Clock: h.o.Clock,
			Metrics: metricsHandler,
			AgentStatus: func(store, terminal string) (protocol.TerminalStatus, bool) {
				s, ok := in.Status(store, terminal)
				return s.TerminalStatus, ok
			},
		}
		switch {
		case h.o.MQTTListener != nil && h.o.MQTTTLS != nil:
			_, api.MQTTPort, _ = net.SplitHostPort(h.o.MQTTListener.Addr().String())
			api.MQTTScheme = "tls"
		case h.o.MQTTListener != nil:
			_, api.MQTTPort, _ = net.SplitHostPort(h.o.MQTTListener.Addr().String())
			api.MQTTScheme = "tcp"
		case h.o.MQTTPlainListener != nil:
			_, api.MQTTPort, _ = net.SplitHostPort(h.o.MQTTPlainListener.Addr().String())
			api.MQTTScheme = "tcp"
		}
		handler := httpHandler(httpapi.Handler(api), dash)
		if h.o.HTTPListener != nil {
			addr := "http://" + h.o.HTTPListener.Addr().String()
			h.log.Info("http api listening", "addr", addr, "dashboard", addr+dashboard.Prefix)
			wg.Go(func() { errc <- serveHTTP(upkeepCtx, h.o.HTTPListener, handler) })
		}
		if h.o.HTTPSListener != nil {
			addr := "https://" + h.o.HTTPSListener.Addr().String()
			h.log.Info("http api listening", "addr", addr, "dashboard", addr+dashboard.Prefix)
			// upkeepCtx: when one server fails, stopUpkeep stops the other.
			wg.Go(func() { errc <- serveHTTP(upkeepCtx, tls.NewListener(h.o.HTTPSListener, h.o.HTTPSTLS), handler) })
		}
		select {
		case <-ctx.Done():
		case err = <-errc:
		}
	}
	stopUpkeep()
	upkeep.Wait()
	// Commit and ack what the ingest already took while the broker still
	// carries the acks; anything arriving meanwhile stays unacked and is
	// re-sent by its agent.
	stopIngest()
	<-ingestDone
	bus.Close()
	wg.Wait()
	h.log.Info("hub stopped", "stats", fmt.Sprintf("%+v", in.Stats()))
	return err
}

// configChanged asks the config loop to re-publish; it never blocks.
func (h *Hub) configChanged() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// configRefreshEvery is how often every config is published again even
// though nothing changed: an external broker restarted without persistence
// forgets retained messages.
const configRefreshEvery = time.Hour

// configLoop publishes every store's config at start, then what changed
// after every change, until ctx is done.
func (h *Hub) configLoop(ctx context.Context, bus broker.Bus) {
	last := map[string]string{} // store → config as last published, without PublishedAt
	h.publishConfigs(bus, last)
	refresh := time.NewTicker(configRefreshEvery)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.changed:
		case <-refresh.C:
			clear(last)
		}
		h.publishConfigs(bus, last)
	}
}

// publishConfigs publishes, retained with QoS 1 and signed with the
// member token key, the config of every store whose config differs from
// what last says was published.
func (h *Hub) publishConfigs(bus broker.Bus, last map[string]string) {
	cfgs, err := Configs(h.ledger, h.o.Clock.Now())
	if err != nil {
		h.log.Error("store configs not published", "err", err)
		return
	}
	n := 0
	for _, c := range cfgs {
		c.MemberTokenKeys = h.tokenKeys
		key := c
		key.PublishedAt = time.Time{}
		k, err := json.Marshal(key)
		if err != nil || last[c.Store] == string(k) {
			continue
		}
		err = c.Validate()
		topic, terr := protocol.ConfigTopic(c.Store)
		if err == nil {
			err = terr
		}
		var payload []byte
		if err == nil {
			payload, err = protocol.Encode(c)
		}
		if err == nil {
			// Signed for its topic with the member token key: enrolled
			// tills take no config without it (protocol.SignConfig).
			payload, err = protocol.SignConfig(h.tokenKey, topic, payload)
		}
		if err == nil && len(payload) > protocol.MaxConfigBytes {
			err = fmt.Errorf("%d bytes, over the %d a till accepts; remove old campaigns or scheduled versions", len(payload), protocol.MaxConfigBytes)
		}
		if err == nil {
			err = bus.Publish(topic, 1, true, payload)
		}
		if err != nil {
			h.log.Error("store config not published", "store", c.Store, "partner", c.Partner, "err", err)
			continue
		}
		last[c.Store] = string(k)
		n++
	}
	if n > 0 {
		h.log.Info("store configs published", "stores", n)
	}
}

// Configs returns the config of every registered store as the hub
// publishes it at now: the coalition's currency and point value, and the
// store's partner's rule versions from the one in force at now onwards (at
// most protocol.MaxRuleVersions, the newest). Stores whose partner has no
// rules yet are left out, and all are while the coalition has no currency.
// The configs are not validated: the publisher checks each on its own,
// adds the coalition's member token keys (MemberTokenKeys is empty here)
// and signs it.
func Configs(st ledger.Store, now time.Time) ([]protocol.Config, error) {
	c, err := st.Coalition()
	if err != nil || c.Currency == "" {
		return nil, err
	}
	stores, err := st.Stores()
	if err != nil {
		return nil, err
	}
	rules := map[string][]protocol.RuleSet{}
	var out []protocol.Config
	for _, s := range stores {
		rs, ok := rules[s.Partner]
		if !ok {
			if rs, err = st.Rules(s.Partner); err != nil {
				return nil, fmt.Errorf("rules of %s: %w", s.Partner, err)
			}
			if cur := protocol.SelectRules(rs, now); cur != nil {
				i := slices.IndexFunc(rs, func(r protocol.RuleSet) bool { return r.Version == cur.Version })
				rs = rs[i:]
			}
			if len(rs) > protocol.MaxRuleVersions {
				rs = rs[len(rs)-protocol.MaxRuleVersions:]
			}
			rules[s.Partner] = rs
		}
		if len(rs) == 0 {
			continue
		}
		cfg := protocol.Config{
			// Unchanged since version 2, and read by every till of the store.
			Version: protocol.UnsealedVersion, Store: s.ID, Partner: s.Partner,
			Currency: c.Currency, PointValue: c.PointValue,
			Rules: rs, PublishedAt: now.UTC(),
		}
		out = append(out, cfg)
	}
	return out, nil
}

// maintain runs the ledger's upkeep until ctx is done: lapsing holds and
// pruning member token sightings every HoldSweepEvery, expiring points at
// start and every ExpiryEvery.
func (h *Hub) maintain(ctx context.Context) {
	h.expirePoints()
	holds := time.NewTicker(h.o.HoldSweepEvery)
	defer holds.Stop()
	expiry := time.NewTicker(h.o.ExpiryEvery)
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-holds.C:
			n, err := h.ledger.ExpireHolds(h.o.Clock.Now())
			if err != nil {
				h.log.Error("lapsing expired holds failed", "err", err)
			} else if n > 0 {
				h.log.Info("holds lapsed", "holds", n)
			}
			if n, err := h.ledger.PruneTokens(h.o.Clock.Now()); err != nil {
				h.log.Error("pruning member token sightings failed", "err", err)
			} else if n > 0 {
				h.log.Debug("member token sightings pruned", "sightings", n)
			}
		case <-expiry.C:
			h.expirePoints()
		}
	}
}

func (h *Hub) expirePoints() {
	rep, err := h.ledger.Expire(h.o.Clock.Now())
	if err != nil {
		h.log.Error("expiring points failed", "err", err)
		return
	}
	if rep.Lots > 0 || rep.Points > 0 {
		h.log.Info("points expired", "as_of", rep.AsOf, "lots", rep.Lots, "members", rep.Members, "points", rep.Points)
	}
}

// mqttDenied counts the publishes and subscriptions the embedded broker's
// ACL refused; nil for an external broker, which keeps its own.
func mqttDenied(bus broker.Bus) func() int64 {
	if e, ok := bus.(*broker.Embedded); ok {
		return e.Denied
	}
	return nil
}

// mqttRefused counts the embedded broker's refused connections; nil for an
// external broker.
func mqttRefused(bus broker.Bus) func() int64 {
	if e, ok := bus.(*broker.Embedded); ok {
		return e.Refused
	}
	return nil
}

// ackQoS is the QoS of acks: 0 through the embedded broker, 1 through an
// external one (see ingest.Options.AckQoS).
func ackQoS(external bool) byte {
	if external {
		return 1
	}
	return 0
}
