//go:build unix

package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"path/filepath"
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

// Store configs at an enrolled till: it takes only those the hub signed
// with the coalition's key (from its enrollment), whoever can publish on
// the broker.

// signConfig encodes cfg and signs it with key for topicStore's config
// topic, as the hub does for cfg.Store.
func signConfig(t *testing.T, key ed25519.PrivateKey, topicStore string, cfg protocol.Config) []byte {
	t.Helper()
	topic, _ := protocol.ConfigTopic(topicStore)
	body, err := protocol.Encode(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := protocol.SignConfig(key, topic, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publishRetained publishes payload retained on the store's config topic.
func publishRetained(t *testing.T, c mqtt.Client, payload []byte) {
	t.Helper()
	topic, _ := protocol.ConfigTopic(store)
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("publish config: %v", tok.Error())
	}
}

// permissive connects a client that may publish anywhere: anybody at a
// broker whose access rules are wrong.
func permissive(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("stranger").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// strip removes the signature member SignConfig added.
func strip(p []byte) []byte {
	return append(bytes.Clone(p[:bytes.LastIndex(p, []byte(`,"sig":`))]), '}')
}

// TestForgedConfigsRefused: an enrolled till takes the hub's signed config
// and refuses, whoever publishes them retained, configs signed by another
// key (carrying the stranger's member token key and richer rules), altered
// after signing, stripped of their signature, or signed for another
// store's topic: it counts them, warns once a minute, and goes on pricing
// with the real rules and verifying member tokens with the coalition's
// key — also after a restart with a forgery retained at the broker — until
// the hub's next signed config.
func TestForgedConfigsRefused(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	dir := t.TempDir()
	enrolled(t, dir)
	pub := tokenNow.Add(-time.Hour)
	publishRetained(t, hub.c, signConfig(t, coalitionKey, store, keysConfig(pub)))

	var logs logBuffer
	clk := clock.NewFake(tokenNow)
	sc, set := withScanner(t, clk)
	opts := func(o *agent.Options) { set(o); o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }
	p := startTill(t, dir, b.URL, opts)
	testkit.WaitFor(t, waitLong, "the hub's config and the scanner", func() bool {
		h := p.health(t)
		return h.RulesVersion == 2 && h.ConfigPublishedAt.Equal(pub) && h.Scanner.Connected && h.HubConnected
	})
	// 30.00 EUR under version 2 in the Christmas campaign: 60 + 50.
	pricesReal := func(what string) {
		t.Helper()
		res, raw := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 3000, Currency: "EUR"})
		if res.Points != 110 || res.Quote == nil || res.RulesVersion != 2 {
			t.Fatalf("%s: earn answered %s; want 110 points by the hub's version 2", what, raw)
		}
	}
	pricesReal("with the hub's config")

	later := pub.Add(time.Hour)
	rich := keysConfig(later)
	rich.MemberTokenKeys = []string{protocol.EncodeTokenKey(strangerKey.Public().(ed25519.PublicKey))}
	rich.Rules[1].Points = 10
	tampered := bytes.Replace(signConfig(t, coalitionKey, store, keysConfig(later)),
		[]byte(`"version":2,"effective_from":"2026-12-01T00:00:00Z","currency":"EUR","points":1,`),
		[]byte(`"version":2,"effective_from":"2026-12-01T00:00:00Z","currency":"EUR","points":9,`), 1)
	if bytes.Equal(tampered, signConfig(t, coalitionKey, store, keysConfig(later))) {
		t.Fatal("the tampering changed nothing")
	}
	forged := []struct {
		what    string
		payload []byte
	}{
		{"signed by a stranger's key, with its member token key", signConfig(t, strangerKey, store, rich)},
		{"the hub's, its rules altered after signing", tampered},
		{"the hub's, its signature stripped", strip(signConfig(t, coalitionKey, store, keysConfig(later)))},
		{"the stranger's, unsigned", func() []byte { b, _ := protocol.Encode(&rich); return b }()},
		{"signed by the hub for another store's topic", signConfig(t, coalitionKey, "s2", keysConfig(later))},
	}
	in := permissive(t, b.URL)
	for _, f := range forged {
		publishRetained(t, in, f.payload)
	}
	testkit.WaitFor(t, waitLong, "the forged configs to be refused", func() bool { return p.health(t).ConfigRefused == int64(len(forged)) })
	if h := p.health(t); h.RulesVersion != 2 || !h.ConfigPublishedAt.Equal(pub) || h.MemberTokenKeys != 1 {
		t.Fatalf("after the forgeries: health %+v; want the hub's config of %v", h, pub)
	}
	pricesReal("after the forgeries")
	checkRefused(t, sc.scan(t, p, token(t, strangerKey, "M1001", tokenNow.Add(time.Minute))), protocol.CodeTokenForged, "not issued by the coalition")
	if ev := sc.scan(t, p, token(t, coalitionKey, "M1001", tokenNow.Add(time.Minute))); ev.Member != "M1001" || ev.Error != nil {
		t.Fatalf("a coalition token after the forgeries: %+v", ev)
	}
	if n := logs.count("ignoring a store config not signed"); n != 1 {
		t.Fatalf("%d warnings for %d forged configs within a minute, want 1", n, len(forged))
	}

	// Restarted, the till gets the last forgery, retained, on connecting:
	// it keeps the verified config it stored.
	p.stop(t)
	sc.last = 0
	p = startTill(t, dir, b.URL, opts)
	testkit.WaitFor(t, waitLong, "the retained forgery to be refused", func() bool {
		h := p.health(t)
		return h.HubConnected && h.ConfigRefused == 1 && h.Scanner.Connected
	})
	if h := p.health(t); h.RulesVersion != 2 || !h.ConfigPublishedAt.Equal(pub) || h.MemberTokenKeys != 1 {
		t.Fatalf("after a restart: health %+v; want the hub's config of %v", h, pub)
	}
	pricesReal("after a restart")
	checkRefused(t, sc.scan(t, p, token(t, strangerKey, "M1002", tokenNow.Add(time.Minute))), protocol.CodeTokenForged, "not issued by the coalition")

	// The hub's next config replaces the forgery at the broker and is taken.
	newer := keysConfig(later.Add(time.Hour))
	newer.Rules = append(newer.Rules, protocol.RuleSet{Partner: partner, Version: 3, EffectiveFrom: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Currency: "EUR", Points: 3, Per: 100})
	publishRetained(t, hub.c, signConfig(t, coalitionKey, store, newer))
	testkit.WaitFor(t, waitLong, "the hub's newer config", func() bool { return p.health(t).RulesVersion == 3 })
	if h := p.health(t); h.ConfigRefused != 1 {
		t.Fatalf("config_refused %d after the hub's config, want 1", h.ConfigRefused)
	}
	res, raw := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 3000, Currency: "EUR"})
	if res.Points != 90 || res.RulesVersion != 3 {
		t.Fatalf("earn by the hub's version 3: %s; want 90 points", raw)
	}
	p.waitDrained(t)
}

// TestVerifiedConfigReplacesUnverified: a config an enrolled till kept
// before it verified configs — here a forgery claiming to be from 2099
// with a stranger's key — gives member token keys to nothing (tokens are
// verified with the enrollment's keys until a verified config arrives),
// and the hub's signed config replaces it although it claims an earlier
// time.
func TestVerifiedConfigReplacesUnverified(t *testing.T) {
	dir := t.TempDir()
	enrolled(t, dir)
	old := keysConfig(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	old.MemberTokenKeys = []string{protocol.EncodeTokenKey(strangerKey.Public().(ed25519.PublicKey))}
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.SaveConfig(&old, false); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	clk := clock.NewFake(tokenNow)
	sc, set := withScanner(t, clk)
	p := startTill(t, dir, b.URL, set)
	testkit.WaitFor(t, waitLong, "the scanner", func() bool { return p.health(t).Scanner.Connected })
	if h := p.health(t); h.MemberTokenKeys != 1 || !h.ConfigPublishedAt.Equal(old.PublishedAt) {
		t.Fatalf("with the kept config: health %+v; want the enrollment's key", h)
	}
	checkRefused(t, sc.scan(t, p, token(t, strangerKey, "M1001", tokenNow.Add(time.Minute))), protocol.CodeTokenForged, "not issued by the coalition")

	pub := tokenNow.Add(-time.Hour)
	publishRetained(t, hub.c, signConfig(t, coalitionKey, store, keysConfig(pub)))
	testkit.WaitFor(t, waitLong, "the hub's config", func() bool { return p.health(t).ConfigPublishedAt.Equal(pub) })
	if ev := sc.scan(t, p, token(t, coalitionKey, "M1001", tokenNow.Add(time.Minute))); ev.Member != "M1001" || ev.Error != nil {
		t.Fatalf("a coalition token with the hub's config: %+v", ev)
	}
	p.stop(t)
	ob, err = outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if cfg, verified, err := ob.Config(); err != nil || !verified || !cfg.PublishedAt.Equal(pub) {
		t.Fatalf("stored config %+v, verified %v, %v; want the hub's, verified", cfg, verified, err)
	}
}

// TestUnenrolledTillTakesConfigs: a till that has not enrolled has no key
// to check a config with, and takes the newest as it comes, signed or not.
func TestUnenrolledTillTakesConfigs(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	pub := tokenNow.Add(-time.Hour)
	publishRetained(t, hub.c, signConfig(t, strangerKey, store, keysConfig(pub)))
	p := startTill(t, t.TempDir(), b.URL, func(o *agent.Options) { o.Clock = clock.NewFake(tokenNow) })
	testkit.WaitFor(t, waitLong, "the signed config", func() bool { return p.health(t).ConfigPublishedAt.Equal(pub) })
	hub.publishConfig(rulesConfig(pub.Add(time.Minute)))
	testkit.WaitFor(t, waitLong, "the unsigned config", func() bool { return p.health(t).ConfigPublishedAt.Equal(pub.Add(time.Minute)) })
	if h := p.health(t); h.ConfigRefused != 0 {
		t.Fatalf("config_refused %d at a till that has not enrolled", h.ConfigRefused)
	}
}
