package e2e

import (
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestHubConfigSigned: the real hub's store configs are signed with its
// member token key and taken by its enrolled tills — on its own broker
// over TLS with enrollment required, and on brokers without access rules
// (and the Mosquitto TILLSYNC_TEST_MQTT names) — and a till that has not
// enrolled still takes them. Where anybody may publish, a stranger's
// config, published retained on the store's config topic, is refused by
// the enrolled till, which goes on earning by the hub's rules until the
// hub's next config.
func TestHubConfigSigned(t *testing.T) {
	t.Run("embedded, TLS", func(t *testing.T) {
		e := newEnv(t, "embedded-tls")
		e.httpAddr = testkit.FreePort(t)
		e.requireEnrollment = true
		hubConfigSigned(t, e, false)
	})
	urls := map[string]string{"no access rules": testkit.StartBroker(t).URL}
	if u := testkit.ExternalBroker(); u != "" {
		urls["TILLSYNC_TEST_MQTT"] = u
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			e := &env{t: t, external: url, hubDir: filepath.Join(t.TempDir(), "hub"), clientID: randomID("tillsync-hub-e2e-"), httpAddr: testkit.FreePort(t)}
			hubConfigSigned(t, e, true)
		})
	}
}

func hubConfigSigned(t *testing.T, e *env, permissive bool) {
	store := e.store("cfgsig-") // registered before the hub starts: its config goes out at once
	hp := startHubOnce(t, e)
	dir, _ := enrollTerminal(t, e, hp.h.Ledger(), store, "till-1")
	keys := hp.h.MemberTokenKeys()
	a := startTill(t, agent.Options{DataDir: dir, Broker: e.brokerURL(), Store: store, Terminal: "till-1"})
	testkit.WaitFor(t, waitLong, "the hub's config at the enrolled till", func() bool {
		h := a.health(t)
		return h.HubConnected && h.RulesVersion == 1
	})
	if h := a.health(t); h.ConfigRefused != 0 || h.MemberTokenKeys != 1 {
		t.Fatalf("enrolled till: health %+v; want the hub's config taken, its key", h)
	}
	earnsBy := func(version, points int64) {
		t.Helper()
		r := a.earn(t, store+"-m1", 1000)
		if r.Quote == nil || r.RulesVersion != version || r.Points != points {
			t.Fatalf("earn of 10.00 EUR: %+v; want %d points by version %d", r, points, version)
		}
	}
	earnsBy(1, 10)

	if permissive {
		// Unenrolled, a till takes the hub's config as it comes.
		other := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Terminal: "till-9"})
		testkit.WaitFor(t, waitLong, "the hub's config at a till that has not enrolled", func() bool { return other.health(t).RulesVersion == 1 })
		other.stop(t)

		// What went out: signed by the hub's key, for the store's topic,
		// as the version tills of version 2 read.
		topic, _ := protocol.ConfigTopic(store)
		in := newIntruder(t, e.brokerURL())
		in.listen(t, topic)
		testkit.WaitFor(t, waitLong, "the retained config", func() bool { return len(in.captured(topic)) > 0 })
		raw := in.captured(topic)[0]
		cfg, err := protocol.DecodeConfig(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := protocol.VerifyConfig(keys, topic, raw, cfg.Sig); err != nil || cfg.Version != protocol.UnsealedVersion {
			t.Fatalf("the hub's config (version %d): %v\n%s", cfg.Version, err, raw)
		}

		// A stranger's: its own member token key and ten times the points.
		_, stranger, _ := ed25519.GenerateKey(nil)
		forged := *cfg
		forged.Sig, forged.PublishedAt = "", cfg.PublishedAt.Add(time.Minute)
		forged.MemberTokenKeys = []string{protocol.EncodeTokenKey(stranger.Public().(ed25519.PublicKey))}
		forged.Rules = append([]protocol.RuleSet(nil), cfg.Rules...)
		forged.Rules[0].Points = 10
		body := mustEncode(t, &forged)
		signed, err := protocol.SignConfig(stranger, topic, body)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]byte{body, signed} {
			if tok := in.c.Publish(topic, 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
		testkit.WaitFor(t, waitLong, "the stranger's configs to be refused", func() bool { return a.health(t).ConfigRefused == 2 })
		if h := a.health(t); h.RulesVersion != 1 || !h.ConfigPublishedAt.Equal(cfg.PublishedAt) {
			t.Fatalf("after the stranger's configs: health %+v; want the hub's of %v", h, cfg.PublishedAt)
		}
		earnsBy(1, 10)
	}

	// The hub's next config (new rules over its API) is taken.
	if st, code := hubPost(t, e, "/v1/partners/"+e2ePartner+"/rules", map[string]any{"points": 2, "per": 100}, nil); st != http.StatusCreated {
		t.Fatalf("add rules: HTTP %d %s", st, code)
	}
	testkit.WaitFor(t, waitLong, "the hub's new config", func() bool { return a.health(t).RulesVersion == 2 })
	earnsBy(2, 20)
	a.waitDrained(t)
	if n := a.health(t).ConfigRefused; permissive && n != 2 || !permissive && n != 0 {
		t.Fatalf("config_refused %d at the end", n)
	}
}
