package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// brokers lists the brokers the end-to-end tests run against: always the
// hub's embedded one, and the external one TILLSYNC_TEST_MQTT names.
func brokers() []string {
	b := []string{"embedded"}
	if u := testkit.ExternalBroker(); u != "" {
		b = append(b, u)
	}
	return b
}

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("TILLSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func randomID(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// hubProc is a running hub.
type hubProc struct {
	h      *hub.Hub
	cancel context.CancelFunc
	done   chan error
	env    *env
}

// env is the world of one end-to-end test: where the hub keeps its data, how
// the agent reaches the broker, and the hub's MQTT address when embedded.
type env struct {
	t        *testing.T
	external string // external broker URL, or ""
	hubDir   string
	mqttAddr string // embedded broker's address, fixed across restarts
	httpAddr string // the hub's HTTP API address, when a test sets it; fixed across restarts
	clientID string
	// stores are registered with the coalition at every hub start; store
	// registers one with the running hub too.
	stores  []string
	running ledger.Store
	// pki, when set (useTLS), makes the embedded broker serve MQTT over TLS
	// with the hub's own certificate (brokerURL is then tls://).
	pki *pki.PKI
	// requireEnrollment makes the hub refuse clients without credentials.
	requireEnrollment bool
	// log, when set, is the hub's logger instead of logger(t).
	log *slog.Logger
	// brokerTLS, brokerUser and brokerPass are the hub's TLS configuration
	// and credentials at the external broker, when it wants them.
	brokerTLS              *tls.Config
	brokerUser, brokerPass string
	// alerts, when set, are the hub's alert rules.
	alerts *alerts.Config
}

// The coalition every e2e hub runs: one partner whose rules earn what the
// agent's default earn rate quotes (1 point per 1.00 EUR, rounded down).
const e2ePartner = "pharmacy"

// register sets up the coalition and registers the env's stores.
func (e *env) register(st ledger.Store) {
	t := e.t
	t.Helper()
	now := time.Now()
	if err := st.SetCoalition(ledger.Coalition{Name: "e2e", Currency: "EUR", PointValue: "0.01"}); err != nil {
		t.Fatalf("set coalition: %v", err)
	}
	if err := st.PutPartner(ledger.Partner{ID: e2ePartner}, now); err != nil {
		t.Fatalf("put partner: %v", err)
	}
	if rules, err := st.Rules(e2ePartner); err != nil {
		t.Fatal(err)
	} else if len(rules) == 0 {
		if _, err := st.AddRules(protocol.RuleSet{Partner: e2ePartner, Points: 1, Per: 100, Rounding: protocol.RoundDown, EffectiveFrom: now.Add(-24 * time.Hour)}, now); err != nil {
			t.Fatalf("add rules: %v", err)
		}
	}
	for _, s := range e.stores {
		if err := st.PutStore(ledger.StoreInfo{ID: s, Partner: e2ePartner}, now); err != nil {
			t.Fatalf("register store %s: %v", s, err)
		}
	}
}

// store returns a new store id registered with the coalition (now, if a
// hub runs, and at every hub start).
func (e *env) store(prefix string) string {
	s := randomID(prefix)
	e.stores = append(e.stores, s)
	if e.running != nil {
		e.register(e.running)
	}
	return s
}

func newEnv(t *testing.T, broker string) *env {
	e := &env{t: t, hubDir: filepath.Join(t.TempDir(), "hub"), clientID: randomID("tillsync-hub-e2e-")}
	switch broker {
	case "embedded", "embedded-tls":
		e.mqttAddr = testkit.FreePort(t)
		if broker == "embedded-tls" || os.Getenv(EnvTLS) != "" {
			e.useTLS()
		}
	default:
		e.external = broker
	}
	return e
}

// EnvTLS, when set (TILLSYNC_E2E_TLS=1 go test ./internal/e2e), runs every
// end-to-end test on the embedded broker over TLS with the hub's own CA,
// as tillsync-hub serve does; unset, only the TLS tests do.
const EnvTLS = "TILLSYNC_E2E_TLS"

// hubCAs maps the tls:// broker URL of an env's hub to its CA certificate,
// so that startTill gives a till the CA of the hub it connects to without
// every test passing it along.
var hubCAs sync.Map

// useTLS makes the env's embedded broker serve MQTT over TLS with a CA of
// its own, made in the hub's data dir as serve makes it.
func (e *env) useTLS() {
	p, err := pki.LoadOrCreate(filepath.Join(e.hubDir, "pki"), pki.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.pki = p
	url := e.brokerURL()
	hubCAs.Store(url, p.CACertPEM())
	e.t.Cleanup(func() { hubCAs.Delete(url) })
}

// hubCA is the CA of the env hub at broker, nil when it is not one over TLS.
func hubCA(broker string) []byte {
	ca, _ := hubCAs.Load(broker)
	b, _ := ca.([]byte)
	return b
}

func (e *env) brokerURL() string {
	if e.external != "" {
		return e.external
	}
	if e.pki != nil {
		return "tls://" + e.mqttAddr
	}
	return "tcp://" + e.mqttAddr
}

func (e *env) startHub() *hubProc {
	t := e.t
	t.Helper()
	o := hub.Options{DataDir: e.hubDir, Logger: logger(t).With("side", "hub"), BrokerURL: e.external, BrokerClientID: e.clientID,
		BrokerTLS: e.brokerTLS, BrokerUsername: e.brokerUser, BrokerPassword: e.brokerPass}
	if e.external != "" && e.pki != nil {
		// As serve does: enrollment hands out the CA the broker's certificate is from.
		o.CAPEM, o.CAFingerprint = e.pki.CACertPEM(), e.pki.CAFingerprint()
	}
	if e.log != nil {
		o.Logger = e.log
	}
	o.Alerts = e.alerts
	if e.external == "" {
		// The port was ours a moment ago (or the previous hub's): wait for it.
		var l net.Listener
		testkit.WaitFor(t, 10*time.Second, "the hub's MQTT port to be free", func() bool {
			var err error
			l, err = net.Listen("tcp", e.mqttAddr)
			return err == nil
		})
		o.MQTTListener = l
		if e.pki != nil {
			// As serve does at every start: load the hub's CA from its data
			// dir, which must be the one the tills already trust.
			p, err := pki.LoadOrCreate(filepath.Join(e.hubDir, "pki"), pki.Options{})
			if err != nil || p.CAFingerprint() != e.pki.CAFingerprint() {
				t.Fatalf("the hub's CA at restart: %v (fingerprint %s, was %s)", err, p.CAFingerprint(), e.pki.CAFingerprint())
			}
			o.MQTTTLS = p.ServerTLSConfig()
			o.CAPEM, o.CAFingerprint = p.CACertPEM(), p.CAFingerprint()
		}
		o.RequireEnrollment = e.requireEnrollment
	}
	if e.httpAddr != "" {
		testkit.WaitFor(t, 10*time.Second, "the hub's HTTP port to be free", func() bool {
			var err error
			o.HTTPListener, err = net.Listen("tcp", e.httpAddr)
			return err == nil
		})
	}
	h, err := hub.Open(o)
	if err != nil {
		t.Fatalf("open hub: %v", err)
	}
	e.register(h.Ledger())
	e.running = h.Ledger()
	ctx, cancel := context.WithCancel(context.Background())
	p := &hubProc{h: h, cancel: cancel, done: make(chan error, 1), env: e}
	go func() { p.done <- h.Run(ctx) }()
	select {
	case <-h.Ready():
	case err := <-p.done:
		t.Fatalf("hub stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("hub not ready within 10s")
	}
	return p
}

func (p *hubProc) stop(t *testing.T) {
	t.Helper()
	p.env.running = nil
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("hub run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hub did not stop within 10s")
	}
}

// agentProc is a running agent.
type agentProc struct {
	a      *agent.Agent
	pos    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startAgent runs an agent for the outage tests: short burn and ack
// timeouts, fast reconnects.
func startAgent(t *testing.T, dir, broker, store, terminal string) *agentProc {
	t.Helper()
	return startTill(t, agent.Options{
		DataDir: dir, Broker: broker, Store: store, Terminal: terminal,
		BurnTimeout: 2 * time.Second, AckTimeout: time.Second, BackoffMax: 300 * time.Millisecond,
	}).agentProc
}

// stop stops the agent and checks Run's result; later calls do nothing.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		p.cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("agent run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("agent did not stop within 10s")
		}
	})
}

func (p *agentProc) health(t *testing.T) posapi.Health {
	var h posapi.Health
	getJSON(t, p.pos+"/v1/health", &h)
	return h
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// post sends a POS API request; it returns the HTTP status and the decoded
// result (or the error body's code).
func post(t *testing.T, url string, body any, key string) (int, posapi.Result, protocol.Code) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("POST %s: decode: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error struct {
				Code protocol.Code `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &eb)
		return resp.StatusCode, posapi.Result{}, eb.Error.Code
	}
	var r posapi.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode, r, ""
}

// model is what the POS API told the till, kept by the test.
type model struct {
	prefix   string // member ids start with it, so runs sharing a broker stay apart
	mu       sync.Mutex
	accepted map[string]int64         // tx id -> signed effect on its member
	member   map[string]string        // tx id -> member
	kind     map[string]protocol.Kind // tx id -> kind
	left     map[string]int64         // earn/burn id -> points not yet reversed
	declined map[string]bool          // burn (hold) ids the POS was told were declined
	earns    []string                 // accepted earn ids, for reverses
	burns    []string                 // approved burn ids (their holds' ids), for reverses
	balance  map[string]int64         // member -> expected balance
}

func newModel(prefix string) *model {
	return &model{prefix: prefix, accepted: map[string]int64{}, member: map[string]string{}, kind: map[string]protocol.Kind{},
		left: map[string]int64{}, declined: map[string]bool{}, balance: map[string]int64{}}
}

func (m *model) record(r posapi.Result, effect int64, kind protocol.Kind) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accepted[r.TxID] = effect
	m.member[r.TxID] = r.Member
	m.kind[r.TxID] = kind
	m.balance[r.Member] += effect
	switch kind {
	case protocol.KindEarn:
		m.earns = append(m.earns, r.TxID)
		m.left[r.TxID] = r.Points
	case protocol.KindBurn:
		m.burns = append(m.burns, r.TxID)
		m.left[r.TxID] = r.Points
	}
}

// pickOriginal chooses an earn or approved burn with points left to reverse,
// and reserves points of it.
func (m *model) pickOriginal(rng *mrand.Rand) (id string, points int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pool := m.earns
	if rng.IntN(3) == 0 && len(m.burns) > 0 {
		pool = m.burns
	}
	for range 10 {
		if len(pool) == 0 {
			return "", 0, false
		}
		id = pool[rng.IntN(len(pool))]
		if l := m.left[id]; l > 0 {
			points = 1 + rng.Int64N(l)
			m.left[id] -= points
			return id, points, true
		}
	}
	return "", 0, false
}

// op runs one random POS request against the agent and records the answer.
func (m *model) op(t *testing.T, rng *mrand.Rand, pos string) {
	member := fmt.Sprintf("%sm%02d", m.prefix, rng.IntN(20))
	key := ""
	if rng.IntN(4) == 0 {
		key = randomID("k-")
	}
	switch n := rng.IntN(100); {
	case n < 65:
		body := posapi.EarnRequest{Member: member, Amount: 100 + rng.Int64N(20000), Currency: "EUR"}
		st, r, code := post(t, pos+"/v1/earn", body, key)
		if st != http.StatusOK || r.Status != "accepted" {
			t.Errorf("earn: %d %s %+v", st, code, r)
			return
		}
		m.record(r, r.Points, protocol.KindEarn)
		if key != "" {
			// The POS retries: the first answer again, nothing added (the
			// ledger check at the end would see a second earn).
			if _, again, _ := post(t, pos+"/v1/earn", body, key); again.TxID != r.TxID {
				t.Errorf("repeated earn with key %s: tx %s, first was %s", key, again.TxID, r.TxID)
			}
		}
	case n < 85:
		st, r, code := post(t, pos+"/v1/burn", posapi.BurnRequest{Member: member, Points: 1 + rng.Int64N(60)}, key)
		if st != http.StatusOK {
			t.Errorf("burn: %d %s", st, code)
			return
		}
		switch r.Status {
		case "approved":
			m.record(r, -r.Points, protocol.KindBurn)
		case "declined":
			if r.TxID != "" {
				m.mu.Lock()
				m.declined[r.TxID] = true
				m.mu.Unlock()
			}
		default:
			t.Errorf("burn: status %q", r.Status)
		}
	default:
		orig, pts, ok := m.pickOriginal(rng)
		if !ok {
			return
		}
		st, r, code := post(t, pos+"/v1/reverse", posapi.ReverseRequest{Original: orig, Points: pts}, key)
		if st != http.StatusOK || r.Status != "accepted" {
			t.Errorf("reverse %s of %d: %d %s", orig, pts, st, code)
			return
		}
		m.mu.Lock()
		effect := -pts
		if m.kind[orig] == protocol.KindBurn {
			effect = pts
		}
		m.mu.Unlock()
		m.record(r, effect, protocol.KindReverse)
	}
}
