package hub_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

const wait = 10 * time.Second

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// seed: p1 with rules and store s1 (tills t1, t2); p2 without rules and
// store s2. Points expire after 12 months.
func seed() *ledger.Seed {
	return &ledger.Seed{
		Coalition: ledger.Coalition{Name: "Test", Currency: "EUR", PointValue: "0.01", ExpiryMonths: 12},
		Partners: []ledger.SeedPartner{
			{ID: "p1", Rules: &protocol.RuleSet{Currency: "EUR", Points: 1, Per: 100, Categories: map[string]protocol.Multiplier{"rx": "0"}},
				Stores: []ledger.SeedStore{{ID: "s1", Terminals: []string{"t1", "t2"}}}},
			{ID: "p2", Stores: []ledger.SeedStore{{ID: "s2", Terminals: []string{"t1"}}}},
		},
	}
}

type running struct {
	hub     *hub.Hub
	mqttURL string
	httpURL string
	// token is the operator API token the hub wrote into its data dir.
	token    string
	clock    *clock.Fake
	stop     func()
	finished chan error
}

// start opens a hub with o on free loopback ports and runs it until the
// test ends.
func start(t *testing.T, o hub.Options) *running {
	t.Helper()
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	c, _ := o.Clock.(*clock.Fake)
	if c == nil {
		c = clock.NewFake(ledgertest.T0)
		o.Clock = c
	}
	o.MQTTListener, o.HTTPListener = ml, hl
	h, err := hub.Open(o)
	if err != nil {
		ml.Close()
		hl.Close()
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{hub: h, mqttURL: "tcp://" + ml.Addr().String(), httpURL: "http://" + hl.Addr().String(), clock: c, stop: cancel, finished: make(chan error, 1)}
	if o.OperatorTokenFile == "" {
		o.OperatorTokenFile = filepath.Join(o.DataDir, hub.OperatorTokenFile)
	}
	r.token = readToken(t, o.OperatorTokenFile)
	go func() { r.finished <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.finished:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	select {
	case <-h.Ready():
	case err := <-r.finished:
		t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(wait):
		t.Fatal("hub not ready")
	}
	return r
}

// till connects a plain paho client as store's terminal and subscribes to
// the store's config topic; configs arrive on the channel.
func till(t *testing.T, url, store, terminal string) <-chan mqtt.Message {
	t.Helper()
	topic, err := protocol.ConfigTopic(store)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan mqtt.Message, 10)
	subacks := make(chan byte, 1)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(protocol.AgentClientID(store, terminal)).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(false).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {}).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Subscribe in OnConnect, as an agent does; never block here.
			tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
			go func() {
				tok.WaitTimeout(wait)
				if st, ok := tok.(*mqtt.SubscribeToken); ok && tok.Error() == nil {
					subacks <- st.Result()[topic]
				} else {
					subacks <- 0xff
				}
			}()
		})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	select {
	case code := <-subacks:
		if code != 1 {
			t.Fatalf("subscribe to %s as %s: SUBACK %#x, want 1 (does the broker let an agent read its store's config?)",
				topic, protocol.AgentClientID(store, terminal), code)
		}
	case <-time.After(wait):
		t.Fatal("no SUBACK")
	}
	return got
}

// next returns the next config on ch, decoded and validated, and checks
// that it is signed for its topic by a key it carries.
func next(t *testing.T, ch <-chan mqtt.Message) (*protocol.Config, bool) {
	t.Helper()
	select {
	case m := <-ch:
		cfg, err := protocol.DecodeConfig(m.Payload())
		if err != nil {
			t.Fatalf("config on %s does not decode: %v\n%s", m.Topic(), err, m.Payload())
		}
		keys, _ := cfg.TokenKeys()
		if err := protocol.VerifyConfig(keys, m.Topic(), m.Payload(), cfg.Sig); err != nil {
			t.Fatalf("config on %s: %v\n%s", m.Topic(), err, m.Payload())
		}
		return cfg, m.Retained()
	case <-time.After(wait):
		t.Fatal("no config arrived")
	}
	return nil, false
}

// readToken reads an API token file.
func readToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// send makes an API request with token as its bearer token.
func send(t *testing.T, c *http.Client, token, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// post POSTs body to the running hub's API path with its operator token.
func (r *running) post(t *testing.T, path, body string) {
	t.Helper()
	url := r.httpURL + path
	res := send(t, http.DefaultClient, r.token, "POST", url, body)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", url, res.StatusCode, b)
	}
}

// A till connecting after the hub started gets its store's config at once
// (retained), and a new one after a campaign is added over the API.
func TestConfigReachesTill(t *testing.T) {
	var logs testkit.Buffer
	r := start(t, hub.Options{Seed: seed(), Logger: testLogger(&logs)})
	// Connect once the config is out, so that it arrives as a retained message.
	testkit.WaitFor(t, wait, "the configs to be published", func() bool { return strings.Contains(logs.String(), "store configs published") })
	ch := till(t, r.mqttURL, "s1", "t1")
	cfg, retained := next(t, ch)
	if !retained {
		t.Error("the config a till gets on subscribing is not retained")
	}
	if protocol.ConfigSigKeyID(cfg.Sig) != protocol.TokenKeyID(r.hub.MemberTokenKeys()[0]) {
		t.Errorf("config signed by %q, want the hub's member token key %s", protocol.ConfigSigKeyID(cfg.Sig), protocol.TokenKeyID(r.hub.MemberTokenKeys()[0]))
	}
	if cfg.Version != protocol.UnsealedVersion || cfg.Store != "s1" || cfg.Partner != "p1" || cfg.Currency != "EUR" || cfg.PointValue != "0.01" ||
		!cfg.PublishedAt.Equal(ledgertest.T0) || len(cfg.Rules) != 1 || cfg.Rules[0].Version != 1 || cfg.Rules[0].Categories["rx"] != "0" {
		t.Fatalf("config %+v", cfg)
	}

	r.clock.Advance(time.Minute)
	r.post(t, "/v1/partners/p1/campaigns", `{"id":"xmas","from":"2026-12-10T00:00:00Z","to":"2026-12-24T00:00:00Z","multiplier":"2"}`)
	cfg, _ = next(t, ch)
	// Version 1 is no longer in force: the config starts at the campaign's.
	if len(cfg.Rules) != 1 || cfg.Rules[0].Version != 2 || len(cfg.Rules[0].Campaigns) != 1 || cfg.Rules[0].Campaigns[0].ID != "xmas" ||
		!cfg.PublishedAt.Equal(ledgertest.T0.Add(time.Minute)) {
		t.Fatalf("config after the campaign: %+v", cfg)
	}

	// A version scheduled for later travels with the one in force.
	later := ledgertest.T0.Add(24 * time.Hour)
	r.post(t, "/v1/partners/p1/rules", `{"points":2,"per":100,"effective_from":"`+later.Format(time.RFC3339)+`"}`)
	cfg, _ = next(t, ch)
	if len(cfg.Rules) != 2 || cfg.Rules[0].Version != 2 || cfg.Rules[1].Version != 3 || !cfg.Rules[1].EffectiveFrom.Equal(later) {
		t.Fatalf("config with a scheduled version: %+v", cfg)
	}

	// Another till of the store, connecting now, gets the newest config.
	cfg, retained = next(t, till(t, r.mqttURL, "s1", "t2"))
	if !retained || len(cfg.Rules) != 2 {
		t.Fatalf("second till: retained %v, %+v", retained, cfg)
	}

	// A change that does not touch s1's config (a store of p2, which has
	// no rules) publishes nothing for s1; p2 getting rules publishes s2's
	// config, and s1's stays as it was.
	s2 := till(t, r.mqttURL, "s2", "t1")
	r.post(t, "/v1/partners/p2/rules", `{"points":1,"per":50}`)
	cfg, _ = next(t, s2)
	if cfg.Store != "s2" || cfg.Partner != "p2" || cfg.Rules[0].Per != 50 {
		t.Fatalf("s2's config: %+v", cfg)
	}
	select {
	case m := <-ch:
		t.Fatalf("s1 got a config although its own did not change: %s", m.Payload())
	case <-time.After(300 * time.Millisecond):
	}
}

func TestConfigs(t *testing.T) {
	st, err := ledger.OpenBolt(t.TempDir()+"/ledger.db", ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := ledgertest.T0
	if cfgs, err := hub.Configs(st, now); err != nil || len(cfgs) != 0 {
		t.Fatalf("configs of an empty ledger: %v, %v", cfgs, err)
	}
	if _, err := st.LoadSeed(seed(), now); err != nil {
		t.Fatal(err)
	}
	// More versions than a config carries: it keeps the newest.
	for i := range protocol.MaxRuleVersions + 5 {
		if _, err := st.AddRules(protocol.RuleSet{Partner: "p1", Points: int64(i + 1), Per: 100, EffectiveFrom: now.Add(time.Duration(i+1) * time.Hour)}, now); err != nil {
			t.Fatal(err)
		}
	}
	cfgs, err := hub.Configs(st, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 1 || cfgs[0].Store != "s1" {
		t.Fatalf("configs %+v: want only s1's (p2 has no rules)", cfgs)
	}
	rs := cfgs[0].Rules
	if len(rs) != protocol.MaxRuleVersions || rs[len(rs)-1].Version != protocol.MaxRuleVersions+6 {
		t.Fatalf("%d versions, last %d", len(rs), rs[len(rs)-1].Version)
	}
	if err := cfgs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	// Later, versions no longer in force are left out.
	cfgs, _ = hub.Configs(st, now.Add(50*time.Hour))
	if rs := cfgs[0].Rules; len(rs) != 6 || rs[0].Version != 51 {
		t.Fatalf("at +50h: %d versions from %d", len(rs), rs[0].Version)
	}
}

// Open loads the seed; loading it again at the next start changes nothing.
func TestOpenLoadsSeed(t *testing.T) {
	dir := t.TempDir()
	var logs testkit.Buffer
	for i := range 2 {
		r := start(t, hub.Options{DataDir: dir, Seed: seed(), Logger: testLogger(&logs)})
		stores, err := r.hub.Ledger().Stores()
		if err != nil || len(stores) != 2 {
			t.Fatalf("start %d: stores %+v, %v", i, stores, err)
		}
		rs, _ := r.hub.Ledger().Rules("p1")
		if len(rs) != 1 {
			t.Fatalf("start %d: %d rule versions, want 1", i, len(rs))
		}
		r.stop()
		if err := <-r.finished; err != nil {
			t.Fatal(err)
		}
		r.finished <- nil // for the cleanup
	}
	if !strings.Contains(logs.String(), "seed loaded") {
		t.Errorf("the seed load is not logged:\n%s", logs.String())
	}
	// A seed the ledger refuses fails Open, and leaves the ledger usable.
	bad := seed()
	bad.Coalition.Currency = "euro"
	if _, err := hub.Open(hub.Options{DataDir: dir, MQTTListener: mustListen(t), Seed: bad}); protocol.CodeOf(err) != protocol.CodeInvalidCurrency {
		t.Fatalf("Open with a bad seed: %v, want invalid_currency", err)
	}
	h, err := hub.Open(hub.Options{DataDir: dir, MQTTListener: mustListen(t)})
	if err != nil {
		t.Fatalf("Open after a refused seed: %v", err)
	}
	h.Ledger().Close()
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Points past their expiry are expired when the hub starts, and the upkeep
// (hold sweeps included, here every 10ms) runs without errors.
func TestMaintenance(t *testing.T) {
	dir := t.TempDir()
	c := clock.NewFake(ledgertest.T0)
	h, err := hub.Open(hub.Options{DataDir: dir, MQTTListener: mustListen(t), Seed: seed(), Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	tl := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Apply(t, h.Ledger(), ledgertest.T0, tl.Batch(t, tl.Earn("e1", "m1", 40)))
	if err := h.Ledger().Close(); err != nil {
		t.Fatal(err)
	}
	// Earned in November 2026 with 12 months: expired from 2027-12-01.
	c.Set(time.Date(2027, 12, 1, 0, 0, 1, 0, time.UTC))
	var logs testkit.Buffer
	r := start(t, hub.Options{DataDir: dir, Clock: c, HoldSweepEvery: 10 * time.Millisecond, Logger: testLogger(&logs)})
	testkit.WaitFor(t, wait, "m1's points to expire", func() bool {
		v, _, err := r.hub.Ledger().Balance("m1")
		return err == nil && v == 0
	})
	testkit.WaitFor(t, wait, "the expiry to be logged", func() bool { return strings.Contains(logs.String(), "points expired") })
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("upkeep logged errors:\n%s", logs.String())
	}
}
