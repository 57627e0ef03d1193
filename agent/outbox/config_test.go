package outbox_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// config is a valid config for store s1, partner p1, published at pub.
func config(pub time.Time, version int64) *protocol.Config {
	return &protocol.Config{
		Version: protocol.Version, Store: "s1", Partner: "p1", Currency: "EUR", PointValue: "0.01",
		Rules: []protocol.RuleSet{{
			Partner: "p1", Version: version, EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Currency: "EUR", Points: 1, Per: 100, Rounding: protocol.RoundNearest,
			Categories: map[string]protocol.Multiplier{"dairy": "2"},
			Campaigns: []protocol.Campaign{{ID: "xmas", From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
				To: time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC), Multiplier: "2", Bonus: 50}},
		}},
		PublishedAt: pub,
	}
}

func (b *box) config() *protocol.Config {
	b.t.Helper()
	cfg, _, err := b.Config()
	if err != nil {
		b.t.Fatalf("Config: %v", err)
	}
	return cfg
}

// TestConfigKeepsTheNewest: the hub's config survives a restart, and only
// the newest by PublishedAt is kept, whatever order configs arrive in.
func TestConfigKeepsTheNewest(t *testing.T) {
	b := openBox(t)
	if cfg := b.config(); cfg != nil {
		t.Fatalf("Config of a new outbox = %+v, want nil", cfg)
	}
	pub := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		cfg    *protocol.Config
		saved  bool
		reopen bool // close and reopen after this step
		want   *protocol.Config
	}{
		{"the first", config(pub, 1), true, true, config(pub, 1)},
		{"the same again (retained, on a reconnect)", config(pub, 1), false, false, config(pub, 1)},
		{"a newer one", config(pub.Add(time.Minute), 2), true, true, config(pub.Add(time.Minute), 2)},
		{"an older one, late", config(pub, 1), false, true, config(pub.Add(time.Minute), 2)},
		{"another published at the same time", config(pub.Add(time.Minute), 3), false, false, config(pub.Add(time.Minute), 2)},
		{"newer again", config(pub.Add(time.Hour), 4), true, true, config(pub.Add(time.Hour), 4)},
	}
	for _, s := range steps {
		saved, err := b.SaveConfig(s.cfg, false)
		if err != nil || saved != s.saved {
			t.Fatalf("%s: SaveConfig = %v, %v; want %v, nil", s.name, saved, err, s.saved)
		}
		if s.reopen {
			b.reopen()
		}
		if got := b.config(); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: Config = %+v, want %+v", s.name, got, s.want)
		}
	}

	// An invalid config is refused with its protocol code and changes nothing.
	bad := config(pub.Add(2*time.Hour), 5)
	bad.Rules[0].Partner = "p2"
	if saved, err := b.SaveConfig(bad, true); saved || protocol.CodeOf(err) != protocol.CodeInvalidRules {
		t.Fatalf("SaveConfig(invalid) = %v, %v; want false and code %s", saved, err, protocol.CodeInvalidRules)
	}
	b.reopen()
	if got, want := b.config(), config(pub.Add(time.Hour), 4); !reflect.DeepEqual(got, want) {
		t.Fatalf("after an invalid config: Config = %+v, want %+v", got, want)
	}
	// The config lives beside the queue and does not disturb it.
	if n := b.count(); n != 0 {
		t.Errorf("Stats count %d, want 0", n)
	}
	tx := newTx("tx-1", protocol.KindEarn, "m1", 1)
	b.mustAppend(tx)
	if tx.Seq != 1 {
		t.Errorf("first append after configs got seq %d, want 1", tx.Seq)
	}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
}

// TestConfigVerified: whether a config was verified is kept with it, and
// a verified config replaces an unverified one whatever their times (one
// kept before the till verified configs may be a forgery from far in the
// future), but not an older verified one; an unverified one, newer, still
// replaces a verified one (a till that no longer has keys to verify with).
func TestConfigVerified(t *testing.T) {
	b := openBox(t)
	pub := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []struct {
		name         string
		cfg          *protocol.Config
		verified     bool
		saved        bool
		want         *protocol.Config
		wantVerified bool
	}{
		{"unverified, from far ahead", config(future, 1), false, true, config(future, 1), false},
		{"verified, older", config(pub, 2), true, true, config(pub, 2), true},
		{"the same, unverified", config(pub, 2), false, false, config(pub, 2), true},
		{"verified, older still", config(pub.Add(-time.Minute), 3), true, false, config(pub, 2), true},
		{"verified, newer", config(pub.Add(time.Minute), 4), true, true, config(pub.Add(time.Minute), 4), true},
		{"unverified, newer", config(pub.Add(time.Hour), 5), false, true, config(pub.Add(time.Hour), 5), false},
	} {
		saved, err := b.SaveConfig(s.cfg, s.verified)
		if err != nil || saved != s.saved {
			t.Fatalf("%s: SaveConfig = %v, %v; want %v", s.name, saved, err, s.saved)
		}
		b.reopen()
		got, verified, err := b.Config()
		if err != nil || !reflect.DeepEqual(got, s.want) || verified != s.wantVerified {
			t.Fatalf("%s: Config = %+v, %v, %v; want %+v, %v", s.name, got, verified, err, s.want, s.wantVerified)
		}
	}
}
