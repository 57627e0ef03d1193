package agent_test

// These tests run the agent whole — POS API over HTTP, real bbolt outbox,
// real MQTT broker — with a paho client standing in for the hub: it answers
// each transaction as the test says and publishes the store's config.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

const (
	store, terminal, partner = "s1", "t1", "p1"
	waitLong                 = 10 * time.Second
)

// fakeHub is the hub's side of one terminal's topics.
type fakeHub struct {
	t    *testing.T
	c    mqtt.Client
	work chan []protocol.Transaction
	stop chan struct{} // closed when the test ends: no more work is taken
	done chan struct{}

	mu      sync.Mutex
	got     []protocol.Transaction   // every transaction received, repeats included
	batches [][]protocol.Transaction // as they came
	answer  func(protocol.Transaction) (protocol.Ack, bool)
}

// applied is the default answer: every transaction applied, balance 100.
func applied(tx protocol.Transaction) (protocol.Ack, bool) {
	return protocol.Ack{ID: tx.ID, Status: protocol.StatusApplied, Member: tx.Member, Balance: 100, Points: tx.Points}, true
}

func startHub(t *testing.T, url string) *fakeHub {
	t.Helper()
	h := &fakeHub{t: t, work: make(chan []protocol.Transaction, 1000), stop: make(chan struct{}), done: make(chan struct{}), answer: applied}
	h.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("fake-hub").SetAutoReconnect(false))
	if tok := h.c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("hub connect: %v", tok.Error())
	}
	txTopic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelTx)
	tok := h.c.Subscribe(txTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		b, err := protocol.DecodeBatch(m.Payload())
		if err != nil {
			t.Errorf("the agent sent a bad batch: %v", err)
			return
		}
		select { // never blocks in these tests; answering happens off paho's goroutine
		case h.work <- b.Txs:
		case <-h.stop: // the test is over; paho may still deliver what was in flight
		}
	})
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("hub subscribe: %v", tok.Error())
	}
	go h.loop()
	t.Cleanup(func() { close(h.stop); <-h.done; h.c.Disconnect(0) })
	return h
}

func (h *fakeHub) loop() {
	defer close(h.done)
	ackTopic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelAck)
	for {
		var txs []protocol.Transaction
		select {
		case txs = <-h.work:
		case <-h.stop:
			return
		}
		ab := protocol.AckBatch{Version: protocol.Version}
		h.mu.Lock()
		h.got = append(h.got, txs...)
		h.batches = append(h.batches, txs)
		for _, tx := range txs {
			if a, ok := h.answer(tx); ok {
				ab.Acks = append(ab.Acks, a)
			}
		}
		h.mu.Unlock()
		if len(ab.Acks) > 0 {
			payload, _ := protocol.Encode(&ab)
			h.c.Publish(ackTopic, 1, false, payload)
		}
	}
}

func (h *fakeHub) setAnswer(f func(protocol.Transaction) (protocol.Ack, bool)) {
	h.mu.Lock()
	h.answer = f
	h.mu.Unlock()
}

// received returns the transactions received, first arrival of each id only.
func (h *fakeHub) received() []protocol.Transaction {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []protocol.Transaction
	seen := map[string]bool{}
	for _, tx := range h.got {
		if !seen[tx.ID] {
			seen[tx.ID] = true
			out = append(out, tx)
		}
	}
	return out
}

func (h *fakeHub) times(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, tx := range h.got {
		if tx.ID == id {
			n++
		}
	}
	return n
}

func (h *fakeHub) find(id string) (protocol.Transaction, bool) {
	for _, tx := range h.received() {
		if tx.ID == id {
			return tx, true
		}
	}
	return protocol.Transaction{}, false
}

// publishConfig publishes cfg retained on the store's config topic, as the hub does.
func (h *fakeHub) publishConfig(cfg protocol.Config) {
	h.t.Helper()
	payload, err := protocol.Encode(&cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	topic, _ := protocol.ConfigTopic(store)
	if tok := h.c.Publish(topic, 1, true, payload); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		h.t.Fatalf("publish config: %v", tok.Error())
	}
}

// till is a running agent.
type till struct {
	a      *agent.Agent
	pos    string
	opts   agent.Options
	cancel context.CancelFunc
	done   chan error
}

// startTill runs an agent for s1/t1/p1 on dir against broker, with short
// timeouts; set fills in more options. It is stopped when the test ends.
func startTill(t *testing.T, dir, broker string, set func(*agent.Options)) *till {
	t.Helper()
	o := agent.Options{DataDir: dir, Broker: broker, Store: store, Terminal: terminal, Partner: partner,
		AckTimeout: 300 * time.Millisecond, BackoffMax: 100 * time.Millisecond, BurnTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	if set != nil {
		set(&o)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.POSListener = l
	a, err := agent.New(o)
	if err != nil {
		l.Close()
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &till{a: a, pos: "http://" + l.Addr().String(), opts: o, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- a.Run(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *till) stop(t *testing.T) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("agent Run: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("agent did not stop")
	}
}

// post sends a POS API request and decodes a 200 into res; it returns the
// status, the raw body and the error code of a non-200.
func (p *till) post(t *testing.T, path, key string, req, res any) (int, []byte, protocol.Code) {
	t.Helper()
	body, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPost, p.pos+path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code protocol.Code } `json:"error"`
		}
		json.Unmarshal(raw, &e)
		return resp.StatusCode, raw, e.Error.Code
	}
	if err := json.Unmarshal(raw, res); err != nil {
		t.Fatalf("POST %s: %s: %v", path, raw, err)
	}
	return resp.StatusCode, raw, ""
}

func (p *till) earn(t *testing.T, req posapi.EarnRequest) (posapi.Result, []byte) {
	t.Helper()
	var res posapi.Result
	st, raw, code := p.post(t, "/v1/earn", "", req, &res)
	if st != http.StatusOK || res.Status != "accepted" {
		t.Fatalf("earn %+v: HTTP %d %s %s", req, st, code, raw)
	}
	return res, raw
}

func (p *till) health(t *testing.T) posapi.Health {
	t.Helper()
	resp, err := http.Get(p.pos + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h posapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func (p *till) queued(t *testing.T) []protocol.Transaction {
	t.Helper()
	txs, err := p.a.Outbox().Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return txs
}

func (p *till) waitDrained(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, waitLong, "the outbox to drain", func() bool {
		h := p.health(t)
		return h.HubConnected && h.Backlog == 0
	})
}

// waitDrainedAdvancing is waitDrained for a till on the test's clock,
// after the broker came back: the till may reconnect before the hub has
// subscribed and its batch go nowhere, so the clock moves on to let the
// ack timeout re-send it.
func (p *till) waitDrainedAdvancing(t *testing.T, clk *clock.Fake) {
	t.Helper()
	testkit.WaitFor(t, waitLong, "the outbox to drain", func() bool {
		clk.Advance(100 * time.Millisecond)
		h := p.health(t)
		return h.HubConnected && h.Backlog == 0
	})
}

var (
	jan1  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dec1  = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dec25 = time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC)
)

// rulesConfig is the partner's config: version 1 (1 point per EUR, rounded
// down) from January, version 2 from December 1 (nearest rounding, dairy ×2,
// tobacco ×0, SKU-4711 ×1.5, and until Christmas a campaign: ×2 and 50
// bonus points on purchases of 20 EUR or more).
func rulesConfig(pub time.Time) protocol.Config {
	return protocol.Config{
		Version: protocol.Version, Store: store, Partner: partner, Currency: "EUR", PointValue: "0.01",
		Rules: []protocol.RuleSet{
			{Partner: partner, Version: 1, EffectiveFrom: jan1, Currency: "EUR", Points: 1, Per: 100},
			{Partner: partner, Version: 2, EffectiveFrom: dec1, Currency: "EUR", Points: 1, Per: 100, Rounding: protocol.RoundNearest,
				Categories: map[string]protocol.Multiplier{"dairy": "2", "tobacco": "0"},
				SKUs:       map[string]protocol.Multiplier{"SKU-4711": "1.5"},
				Campaigns:  []protocol.Campaign{{ID: "xmas-2026", From: dec1, To: dec25, Multiplier: "2", Bonus: 50, MinAmount: 2000}},
				// The hub adds it; a till's quote never does.
				NewPartnerBonus: 100},
		},
		PublishedAt: pub,
	}
}

// TestEarnWithoutConfigUsesEarnRate: until the hub sends rules, the till
// prices with its --earn-rate, as before, and says no rules are in force.
func TestEarnWithoutConfigUsesEarnRate(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) { o.EarnRate = 2 })
	res, raw := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 1250, Currency: "EUR"})
	if res.Points != 25 || res.Quote != nil || bytes.Contains(raw, []byte("rules_version")) {
		t.Fatalf("earn of 12.50 at rate 2: %s; want 25 points and no quote", raw)
	}
	p.waitDrained(t)
	if tx, ok := hub.find(res.TxID); !ok || tx.Points != 25 || tx.RulesVersion != 0 {
		t.Fatalf("hub received %+v, %v; want 25 points, rules version 0", tx, ok)
	}
	// Without a config there is no default currency.
	var r posapi.Result
	if st, raw, code := p.post(t, "/v1/earn", "", posapi.EarnRequest{Member: "m1", Amount: 100}, &r); st != http.StatusBadRequest || code != protocol.CodeInvalidCurrency {
		t.Fatalf("earn without currency or config: HTTP %d %s", st, raw)
	}
	if h := p.health(t); h.RulesVersion != 0 || !h.ConfigPublishedAt.IsZero() {
		t.Fatalf("health rules_version %d, config_published_at %v; want none", h.RulesVersion, h.ConfigPublishedAt)
	}
}

// TestEarnPricedByPushedRules: with the hub's config, each earn is priced
// by the rule version and campaigns in force at its creation (the till's
// clock), exactly as the hub will book it, and the POS sees the quote.
func TestEarnPricedByPushedRules(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	pub := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	hub.publishConfig(rulesConfig(pub))
	clk := clock.NewFake(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) { o.Clock = clk; o.EarnRate = 7 })
	testkit.WaitFor(t, waitLong, "the config to arrive", func() bool { return p.health(t).RulesVersion == 1 })
	if h := p.health(t); !h.ConfigPublishedAt.Equal(pub) {
		t.Fatalf("health config_published_at %v, want %v", h.ConfigPublishedAt, pub)
	}

	lines := func(ls ...protocol.Line) []protocol.Line { return ls }
	for i, c := range []struct {
		name      string
		at        time.Time
		req       posapi.EarnRequest
		want      posapi.Quote
		points    int64
		errCode   protocol.Code
		rulesNow  int64 // health's rules_version at that time
		wantNoCur bool  // the POS sent no currency: the config's applies
	}{
		{name: "version 1, currency from the config", at: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: 1299}, want: posapi.Quote{RulesVersion: 1, Base: 12}, points: 12, rulesNow: 1, wantNoCur: true},
		{name: "version 2 with lines in the campaign", at: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: 3000, Currency: "EUR", Lines: lines(
				protocol.Line{Category: "dairy", Amount: 1000}, protocol.Line{Category: "tobacco", Amount: 1000}, protocol.Line{SKU: "X1", Amount: 1000})},
			// (1000×2 + 1000×0 + 1000×1) × 2 / 100 = 60, + 50
			want: posapi.Quote{RulesVersion: 2, Base: 60, Bonus: 50, Campaigns: []string{"xmas-2026"}}, points: 110, rulesNow: 2},
		{name: "in the campaign window, under its minimum", at: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: 1999, Currency: "EUR"}, want: posapi.Quote{RulesVersion: 2, Base: 20}, points: 20, rulesNow: 2},
		{name: "the campaign's last instant", at: dec25.Add(-time.Millisecond),
			req: posapi.EarnRequest{Member: "m1", Amount: 2000, Currency: "EUR"}, want: posapi.Quote{RulesVersion: 2, Base: 40, Bonus: 50, Campaigns: []string{"xmas-2026"}}, points: 90, rulesNow: 2},
		{name: "after the campaign", at: dec25,
			req: posapi.EarnRequest{Member: "m1", Amount: 3000, Currency: "EUR"}, want: posapi.Quote{RulesVersion: 2, Base: 30}, points: 30, rulesNow: 2},
		{name: "a SKU multiplier wins over its category", at: time.Date(2026, 12, 26, 9, 0, 0, 0, time.UTC),
			// 1001 × 1.5 / 100 = 15.015, nearest: 15
			req:  posapi.EarnRequest{Member: "m1", Amount: 1001, Currency: "EUR", Lines: lines(protocol.Line{SKU: "SKU-4711", Category: "dairy", Amount: 1001})},
			want: posapi.Quote{RulesVersion: 2, Base: 15}, points: 15, rulesNow: 2},
		{name: "another currency", at: time.Date(2026, 12, 26, 9, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: 1000, Currency: "USD"}, errCode: protocol.CodeCurrencyMismatch, rulesNow: 2},
		{name: "lines that do not add up", at: time.Date(2026, 12, 26, 9, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: 1000, Currency: "EUR", Lines: lines(protocol.Line{Category: "dairy", Amount: 999})}, errCode: protocol.CodeInvalidLines, rulesNow: 2},
		{name: "worth more than a transaction may move", at: time.Date(2026, 12, 26, 9, 0, 0, 0, time.UTC),
			req: posapi.EarnRequest{Member: "m1", Amount: protocol.MaxAmount, Currency: "EUR", Lines: lines(protocol.Line{SKU: "SKU-4711", Amount: protocol.MaxAmount})}, errCode: protocol.CodeInvalidPoints, rulesNow: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk.Set(c.at)
			if h := p.health(t); h.RulesVersion != c.rulesNow {
				t.Errorf("health rules_version %d at %v, want %d", h.RulesVersion, c.at, c.rulesNow)
			}
			if c.errCode != "" {
				// Counted once earlier earns are through: one the hub has
				// received and the till not yet seen acked counts twice.
				p.waitDrained(t)
				before := len(p.queued(t)) + len(hub.received())
				var r posapi.Result
				st, raw, code := p.post(t, "/v1/earn", "", c.req, &r)
				if st != http.StatusBadRequest || code != c.errCode {
					t.Fatalf("HTTP %d %s, want 400 %s", st, raw, c.errCode)
				}
				if after := len(p.queued(t)) + len(hub.received()); after != before {
					t.Fatalf("a refused earn was stored or sent")
				}
				return
			}
			var res posapi.Result
			key := "earn-" + strconv.Itoa(i)
			st, raw, code := p.post(t, "/v1/earn", key, c.req, &res)
			if st != http.StatusOK || res.Status != "accepted" {
				t.Fatalf("earn: HTTP %d %s %s", st, code, raw)
			}
			// Repeated, the same answer, quote included, and nothing added.
			var again posapi.Result
			if st, raw2, _ := p.post(t, "/v1/earn", key, c.req, &again); st != http.StatusOK || !bytes.Equal(raw2, raw) {
				t.Fatalf("repeated earn answered %s, first %s", raw2, raw)
			}
			if res.Quote == nil || res.Points != c.points || res.RulesVersion != c.want.RulesVersion || res.Base != c.want.Base ||
				res.Bonus != c.want.Bonus || !slices.Equal(res.Campaigns, c.want.Campaigns) || !res.CreatedAt.Equal(c.at) {
				t.Fatalf("earn answered %s; want %d points, quote %+v, created at %v", raw, c.points, c.want, c.at)
			}
			for _, f := range []string{`"rules_version":`, `"base":`, `"bonus":`} {
				if !bytes.Contains(raw, []byte(f)) {
					t.Errorf("answer %s lacks %s", raw, f)
				}
			}
			testkit.WaitFor(t, waitLong, "the hub to receive the earn", func() bool { _, ok := hub.find(res.TxID); return ok })
			tx, _ := hub.find(res.TxID)
			if tx.Points != c.points || tx.RulesVersion != c.want.RulesVersion || !slices.Equal(tx.Lines, c.req.Lines) {
				t.Fatalf("hub received %+v; want %d points quoted with version %d and the lines", tx, c.points, c.want.RulesVersion)
			}
			if c.wantNoCur && tx.Currency != "EUR" {
				t.Fatalf("hub received currency %q, want the config's EUR", tx.Currency)
			}
			// The till's quote is what the contract's Price gives for it.
			rs := protocol.SelectRules(rulesConfig(pub).Rules, tx.CreatedAt)
			if q, err := rs.Price(&tx, false); err != nil || q.Points != tx.Points {
				t.Fatalf("protocol prices the received earn at %+v, %v; the till quoted %d", q, err, tx.Points)
			}
		})
	}
}

// TestAmountsInTheCoalitionsCurrency: once the hub's config says the
// coalition's currency, a burn or a return whose amount is in another is
// refused currency_mismatch, as an earn is, and nothing is stored or sent:
// the hub would book a return's share of its sale as if the currencies
// were one. In the coalition's currency both go through.
func TestAmountsInTheCoalitionsCurrency(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.publishConfig(rulesConfig(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)))
	clk := clock.NewFake(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) { o.Clock = clk })
	testkit.WaitFor(t, waitLong, "the config to arrive", func() bool { return p.health(t).RulesVersion == 1 })
	sale, _ := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 5000, Currency: "EUR"})
	p.waitDrained(t)

	for _, c := range []struct {
		name, path string
		req        any
	}{
		{"a burn paying 5.00 USD", "/v1/burn", posapi.BurnRequest{Member: "m1", Points: 5, Amount: 500, Currency: "USD"}},
		{"a return of 25.00 USD of a 50.00 EUR sale", "/v1/reverse", posapi.ReverseRequest{Original: sale.TxID, Amount: 2500, Currency: "USD"}},
		{"a return of 5.00 GBP of a sale at another till", "/v1/reverse", posapi.ReverseRequest{Original: "01J0OTHERTILL0000000000000", Member: "m1", Points: 10, Amount: 500, Currency: "GBP"}},
	} {
		before := len(hub.received())
		var r posapi.Result
		st, raw, code := p.post(t, c.path, "", c.req, &r)
		if st != http.StatusBadRequest || code != protocol.CodeCurrencyMismatch || !bytes.Contains(raw, []byte("EUR")) {
			t.Errorf("%s: HTTP %d %s, want 400 currency_mismatch naming EUR", c.name, st, raw)
		}
		if n := len(p.queued(t)); n != 0 || len(hub.received()) != before {
			t.Errorf("%s: refused, yet %d queued and %d sent", c.name, n, len(hub.received())-before)
		}
	}

	// In EUR: the return's share, and a burn.
	var r posapi.Result
	if st, raw, code := p.post(t, "/v1/reverse", "", posapi.ReverseRequest{Original: sale.TxID, Amount: 2500, Currency: "EUR"}, &r); st != http.StatusOK || r.Points != 25 {
		t.Fatalf("a return of 25.00 EUR: HTTP %d %s %s, want 25 points", st, code, raw)
	}
	if st, raw, code := p.post(t, "/v1/burn", "", posapi.BurnRequest{Member: "m1", Points: 5, Amount: 500, Currency: "EUR"}, &r); st != http.StatusOK || r.Status != "approved" {
		t.Fatalf("a burn paying 5.00 EUR: HTTP %d %s %s", st, code, raw)
	}
	p.waitDrained(t) // the burn's capture, before the hub stops
}

// TestConfigSurvivesRestartOffline: the config is kept in the outbox; a till
// restarted while the hub is unreachable still prices with it, and only a
// newer config replaces it.
func TestConfigSurvivesRestartOffline(t *testing.T) {
	dir := t.TempDir()
	b := testkit.StartBroker(t)
	addr := b.Addr
	hub := startHub(t, b.URL)
	pub := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	hub.publishConfig(rulesConfig(pub))
	clk := clock.NewFake(time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC))
	p := startTill(t, dir, b.URL, func(o *agent.Options) { o.Clock = clk })
	testkit.WaitFor(t, waitLong, "the config to arrive", func() bool { return p.health(t).RulesVersion == 2 })
	p.stop(t)
	b.Close()

	// Offline: the hub cannot be reached, the rules are still there.
	p = startTill(t, dir, b.URL, func(o *agent.Options) { o.Clock = clk })
	h := p.health(t)
	if h.HubConnected || h.RulesVersion != 2 || !h.ConfigPublishedAt.Equal(pub) {
		t.Fatalf("offline after a restart: health %+v; want rules version 2 published at %v", h, pub)
	}
	res, raw := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 3000})
	if res.Points != 110 || res.Quote == nil || res.RulesVersion != 2 {
		t.Fatalf("offline earn answered %s; want 110 points by version 2", raw)
	}

	// The broker comes back with an older retained config (a hub restored
	// from a backup): the till keeps the newer one it has.
	var b2 *testkit.Broker
	testkit.WaitFor(t, waitLong, "the broker to restart on its address", func() bool {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		b2 = testkit.StartBrokerAt(t, addr)
		return true
	})
	hub2 := startHub(t, b2.URL)
	old := rulesConfig(pub.Add(-time.Hour))
	old.Rules = old.Rules[:1]
	hub2.publishConfig(old)
	p.waitDrainedAdvancing(t, clk)
	if tx, ok := hub2.find(res.TxID); !ok || tx.Points != 110 || tx.RulesVersion != 2 {
		t.Fatalf("hub received the offline earn as %+v, %v", tx, ok)
	}
	// Whether or not the old one has been looked at yet, a newer one wins.
	newer := rulesConfig(pub.Add(time.Hour))
	newer.Rules = append(newer.Rules, protocol.RuleSet{Partner: partner, Version: 3, EffectiveFrom: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Currency: "EUR", Points: 3, Per: 100})
	hub2.publishConfig(newer)
	testkit.WaitFor(t, waitLong, "the newer config", func() bool { return p.health(t).RulesVersion == 3 })
	if h := p.health(t); !h.ConfigPublishedAt.Equal(pub.Add(time.Hour)) {
		t.Fatalf("config_published_at %v, want %v", h.ConfigPublishedAt, pub.Add(time.Hour))
	}
	p.stop(t)
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if cfg, _, err := ob.Config(); err != nil || cfg == nil || !cfg.PublishedAt.Equal(pub.Add(time.Hour)) {
		t.Fatalf("stored config %+v, %v; want the newest", cfg, err)
	}
}

// logBuffer collects log lines, safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestHeldAckKeepsTransaction: while the hub holds a store's transactions
// (the store is not registered yet) they stay in the outbox and are sent
// again; health counts the held answers, the log warns once per code.
func TestHeldAckKeepsTransaction(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.setAnswer(func(tx protocol.Transaction) (protocol.Ack, bool) {
		return protocol.Ack{ID: tx.ID, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: tx.Member}, true
	})
	var logs logBuffer
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	e1, _ := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 1000, Currency: "EUR"})
	e2, _ := p.earn(t, posapi.EarnRequest{Member: "m2", Amount: 2000, Currency: "EUR"})
	testkit.WaitFor(t, waitLong, "both earns to be sent and held three times", func() bool {
		return hub.times(e1.TxID) >= 3 && hub.times(e2.TxID) >= 3 && p.health(t).HubHeld >= 6
	})
	h := p.health(t)
	if h.Backlog != 2 || h.HubRejections != 0 || h.LastHubHeld == nil || h.LastHubHeld.Code != protocol.CodeUnknownStore ||
		(h.LastHubHeld.TxID != e1.TxID && h.LastHubHeld.TxID != e2.TxID) || h.LastHubHeld.At.IsZero() {
		t.Fatalf("health while held: %+v (last %+v)", h, h.LastHubHeld)
	}
	const warned = "level=WARN msg=\"hub holds a transaction"
	if n := logs.count(warned); n != 1 {
		t.Errorf("%d WARN lines for held answers of one code, want 1:\n%s", n, logs.b.String())
	}

	// The store is registered: the next re-send is applied.
	hub.setAnswer(applied)
	p.waitDrained(t)
	if got := p.a.Outbox(); got == nil {
		t.Fatal("no outbox")
	}
	if bal, ok, _ := p.a.Outbox().CachedBalance("m2"); !ok || bal.Points != 100 {
		t.Errorf("cached balance of m2 %+v, %v; want the applied answer's", bal, ok)
	}
}

// TestBurnApprovedHoldThenCapture: an approved burn is a hold the hub
// applied and a capture of it, queued with the verdict; the POS knows it by
// the hold's id, and a reverse naming that id goes to the hub as is, after
// the capture.
func TestBurnApprovedHoldThenCapture(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.setAnswer(func(tx protocol.Transaction) (protocol.Ack, bool) {
		a, _ := applied(tx)
		a.Balance = 70
		return a, true
	})
	p := startTill(t, t.TempDir(), b.URL, nil)
	testkit.WaitFor(t, waitLong, "the hub connection", func() bool { return p.health(t).HubConnected })
	req := posapi.BurnRequest{Member: "m1", Points: 30, Amount: 300, Currency: "EUR", Receipt: "R-1"}
	var res posapi.Result
	if st, raw, _ := p.post(t, "/v1/burn", "burn-key", req, &res); st != http.StatusOK || res.Status != "approved" ||
		res.Kind != string(protocol.KindBurn) || res.Balance == nil || *res.Balance != 70 || res.Points != 30 || res.Quote != nil {
		t.Fatalf("burn: HTTP %d %s", st, raw)
	}
	p.waitDrained(t)
	got := hub.received()
	if len(got) != 2 {
		t.Fatalf("hub received %+v; want a hold and a capture", got)
	}
	hold, capture := got[0], got[1]
	if hold.ID != res.TxID || hold.Kind != protocol.KindHold || hold.Points != 30 || hold.Amount != 300 || hold.Receipt != "R-1" {
		t.Errorf("first the hold the POS was told about; got %+v", hold)
	}
	if capture.Kind != protocol.KindCapture || capture.Original != hold.ID || capture.ID == hold.ID || capture.Member != "m1" ||
		capture.Points != 30 || capture.Amount != 300 || capture.Currency != "EUR" || capture.Receipt != "R-1" || capture.Seq <= hold.Seq {
		t.Errorf("then its capture; got %+v", capture)
	}

	// The same request again gets the same answer and adds nothing.
	var again posapi.Result
	if st, raw, _ := p.post(t, "/v1/burn", "burn-key", req, &again); st != http.StatusOK || again.TxID != res.TxID || again.Status != "approved" {
		t.Fatalf("repeated burn: HTTP %d %s", st, raw)
	}
	// Nothing unsynced: the hold and capture are acked.
	if e, bu, err := p.a.Outbox().PendingPoints("m1", 1000); err != nil || e != 0 || bu != 0 {
		t.Fatalf("PendingPoints = %d, %d, %v", e, bu, err)
	}

	var rev posapi.Result
	if st, raw, _ := p.post(t, "/v1/reverse", "", posapi.ReverseRequest{Original: res.TxID, Points: 10}, &rev); st != http.StatusOK || rev.Status != "accepted" {
		t.Fatalf("reverse of the burn: HTTP %d %s", st, raw)
	}
	p.waitDrained(t)
	if tx, ok := hub.find(rev.TxID); !ok || tx.Kind != protocol.KindReverse || tx.Original != res.TxID || tx.Points != 10 {
		t.Fatalf("hub received the reverse as %+v, %v; want it naming the hold %s", tx, ok, res.TxID)
	}
	// The rest of the burn can be given back, no more.
	var r posapi.Result
	if st, _, code := p.post(t, "/v1/reverse", "", posapi.ReverseRequest{Original: res.TxID, Points: 21}, &r); st != http.StatusBadRequest || code != protocol.CodeOverReversed {
		t.Fatalf("reverse past the burn: HTTP %d %s", st, code)
	}
}

// TestBurnDeclined: a burn the hub refuses takes nothing; one it does not
// answer in time, or holds without recording, is declined and its hold is
// voided — the void follows the hold to the hub, never overtakes it.
func TestBurnDeclined(t *testing.T) {
	for _, c := range []struct {
		name     string
		answer   func(protocol.Transaction) (protocol.Ack, bool) // for the hold, at first
		code     protocol.Code
		voided   bool
		balance  bool
		deadline time.Duration
	}{
		{"rejected", func(tx protocol.Transaction) (protocol.Ack, bool) {
			return protocol.Ack{ID: tx.ID, Status: protocol.StatusRejected, Code: protocol.CodeInsufficientPoints, Member: tx.Member, Balance: 12}, true
		}, protocol.CodeInsufficientPoints, false, true, 0},
		{"no answer in time", func(protocol.Transaction) (protocol.Ack, bool) { return protocol.Ack{}, false },
			protocol.CodeTimeout, true, false, 0},
		{"held", func(tx protocol.Transaction) (protocol.Ack, bool) {
			return protocol.Ack{ID: tx.ID, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: tx.Member}, true
		}, protocol.CodeUnknownStore, true, false, time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := testkit.StartBroker(t)
			hub := startHub(t, b.URL)
			hub.setAnswer(c.answer)
			p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) {
				o.BurnTimeout = 500 * time.Millisecond
				if c.deadline > 0 {
					o.BurnTimeout = c.deadline // a held answer must not wait for it
				}
			})
			testkit.WaitFor(t, waitLong, "the hub connection", func() bool { return p.health(t).HubConnected })
			start := time.Now()
			var res posapi.Result
			if st, raw, _ := p.post(t, "/v1/burn", "k", posapi.BurnRequest{Member: "m1", Points: 30}, &res); st != http.StatusOK ||
				res.Status != "declined" || res.Code != c.code || res.TxID == "" || (res.Balance != nil) != c.balance {
				t.Fatalf("burn: HTTP %d %s; want declined %s", st, raw, c.code)
			}
			if c.deadline > 0 && time.Since(start) > c.deadline/2 {
				t.Fatalf("a held burn waited %s for its deadline", time.Since(start))
			}
			if c.voided {
				q := p.queued(t)
				if len(q) != 2 || q[0].ID != res.TxID || q[0].Kind != protocol.KindHold || q[1].Kind != protocol.KindVoid || q[1].Original != res.TxID {
					t.Fatalf("outbox after the decline: %+v; want the hold and its void", q)
				}
				if _, bu, _ := p.a.Outbox().PendingPoints("m1", 1000); bu != 0 {
					t.Fatalf("a voided hold counts %d unsynced burned points", bu)
				}
				// The void never overtakes its hold: while the hub has not
				// answered the hold, the void goes out only behind it in the
				// same batch (which the hub applies in order).
				testkit.WaitFor(t, waitLong, "the hold to be sent again", func() bool { return hub.times(res.TxID) >= 2 })
				hub.mu.Lock()
				unanswered := slices.Clone(hub.batches) // all answered by c.answer: the hold is not taken
				hub.answer = applied                    // the hub takes the hold at last
				hub.mu.Unlock()
				for _, bt := range unanswered {
					i := slices.IndexFunc(bt, func(tx protocol.Transaction) bool { return tx.ID == q[1].ID })
					if i >= 0 && !slices.ContainsFunc(bt[:i], func(tx protocol.Transaction) bool { return tx.ID == res.TxID }) {
						t.Errorf("the void went out before its hold was taken, in a batch without the hold ahead of it: %+v", bt)
					}
				}
			}
			p.waitDrained(t)
			got := hub.received()
			wantKinds := []protocol.Kind{protocol.KindHold}
			if c.voided {
				wantKinds = append(wantKinds, protocol.KindVoid)
			}
			var kinds []protocol.Kind
			for _, tx := range got {
				kinds = append(kinds, tx.Kind)
			}
			if !slices.Equal(kinds, wantKinds) || got[0].ID != res.TxID || (c.voided && got[1].Original != res.TxID) {
				t.Fatalf("hub received %+v; want %v naming the hold", got, wantKinds)
			}
			if h := p.health(t); h.HubRejections != 0 {
				t.Errorf("a declined burn counted as a hub rejection: %+v", h)
			}
			// Nothing was redeemed, so nothing can be given back.
			var r posapi.Result
			if st, _, code := p.post(t, "/v1/reverse", "", posapi.ReverseRequest{Original: res.TxID}, &r); st != http.StatusBadRequest || code != protocol.CodeOverReversed {
				t.Fatalf("reverse of a declined burn: HTTP %d %s", st, code)
			}
		})
	}
}

// TestRestartVoidsPendingHold: a hold whose POS request never got an answer
// (the agent was killed while it waited) is declined and voided at start.
func TestRestartVoidsPendingHold(t *testing.T) {
	dir := t.TempDir()
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hold := protocol.Transaction{ID: "01JD2X7Q8R9S0T1V2W3X4Y5Z6E", Store: store, Terminal: terminal, Partner: partner, Member: "m1",
		Kind: protocol.KindHold, Points: 10, CreatedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	if err := ob.Append(&hold, "k", &outbox.IdemRecord{Hash: "h", TxID: hold.ID, Pending: true}, true); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	p := startTill(t, dir, "tcp://"+testkit.FreePort(t), nil) // no hub
	testkit.WaitFor(t, waitLong, "the hold to be voided", func() bool { return len(p.queued(t)) == 2 })
	q := p.queued(t)
	if q[0].ID != hold.ID || q[1].Kind != protocol.KindVoid || q[1].Original != hold.ID {
		t.Fatalf("outbox after restart: %+v; want the hold and its void", q)
	}
	if ids, _ := p.a.Outbox().PendingBurns(); len(ids) != 0 {
		t.Fatalf("still pending: %v", ids)
	}
	rec, _, _ := p.a.Outbox().Idem("k")
	var res posapi.Result
	if err := json.Unmarshal(rec.Response, &res); err != nil || rec.Pending || res.Status != "declined" || res.Code != protocol.CodeTimeout || res.TxID != hold.ID {
		t.Fatalf("stored answer %+v (%s), %v; want declined timeout", rec, rec.Response, err)
	}
}
