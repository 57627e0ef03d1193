package uplink

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

var (
	anchorKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{21}, ed25519.SeedSize)) // the coalition's, from enrollment
	rotatedKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{22}, ed25519.SeedSize)) // its successor
	strangerKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{23}, ed25519.SeedSize))
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// signedConfig is testConfig for s1/p1 at pub carrying keys, signed by
// priv for topic's store.
func signedConfig(t *testing.T, priv ed25519.PrivateKey, store string, pub time.Time, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	c := testConfig("s1", "p1", pub)
	for _, k := range keys {
		c.MemberTokenKeys = append(c.MemberTokenKeys, protocol.EncodeTokenKey(pubOf(k)))
	}
	topic, _ := protocol.ConfigTopic(store)
	p, err := protocol.SignConfig(priv, topic, encodeT(t, &c))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// taken returns the PublishedAt of the config in the mailbox (zero when
// it is empty), emptying it.
func taken(u *Uplink) time.Time {
	if c := u.takeConfig(); c != nil {
		return c.PublishedAt
	}
	return time.Time{}
}

// TestConfigSignature: with ConfigKeys, only a config signed for this
// store's topic by a trusted key reaches the mailbox; every other is
// counted and logged once a minute. A key a verified config carries is
// trusted from then on, and so is one the till kept from an earlier run;
// an older verified config does not take the trust back.
func TestConfigSignature(t *testing.T) {
	var logs testkit.Buffer
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	u, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s1", Terminal: "t1", Partner: "p1", Outbox: nopOutbox{},
		ConfigKeys: []ed25519.PublicKey{pubOf(anchorKey)}, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	pub := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	u.onConfig(signedConfig(t, anchorKey, "s1", pub, anchorKey))
	if got := taken(u); !got.Equal(pub) {
		t.Fatalf("a config signed by the enrollment's key: mailbox %v", got)
	}

	later := pub.Add(time.Hour)
	unsigned := testConfig("s1", "p1", later)
	tampered := bytes.Replace(signedConfig(t, anchorKey, "s1", later, anchorKey), []byte(`"points":1,`), []byte(`"points":9,`), 1)
	stripped := signedConfig(t, anchorKey, "s1", later, anchorKey)
	stripped = append(stripped[:bytes.LastIndex(stripped, []byte(`,"sig":`))], '}')
	forged := [][]byte{
		signedConfig(t, strangerKey, "s1", later, strangerKey), // the one logged
		encodeT(t, &unsigned),
		signedConfig(t, rotatedKey, "s1", later, rotatedKey), // not announced yet
		signedConfig(t, anchorKey, "s2", later, anchorKey),   // s2's topic
		tampered,
		stripped,
	}
	for _, p := range forged {
		u.onConfig(p)
	}
	if n := u.ConfigRefused(); n != int64(len(forged)) {
		t.Fatalf("ConfigRefused %d, want %d", n, len(forged))
	}
	if got := taken(u); !got.IsZero() {
		t.Fatalf("a forged config reached the mailbox (published %v)", got)
	}
	if n := strings.Count(logs.String(), "ignoring a store config not signed"); n != 1 {
		t.Fatalf("%d warnings for %d forged configs within a minute, want 1:\n%s", n, len(forged), logs.String())
	}
	if !strings.Contains(logs.String(), "key_id="+protocol.TokenKeyID(pubOf(strangerKey))) {
		t.Errorf("the warning does not name the key:\n%s", logs.String())
	}
	clk.Advance(time.Minute)
	u.onConfig(forged[0])
	if n := strings.Count(logs.String(), "ignoring a store config not signed"); n != 2 {
		t.Fatalf("%d warnings a minute later, want 2", n)
	}

	// The hub announces its next key in a config signed by the current one;
	// a config signed by the next key is taken from then on.
	u.onConfig(signedConfig(t, anchorKey, "s1", later, rotatedKey, anchorKey))
	if got := taken(u); !got.Equal(later) {
		t.Fatalf("the config announcing a new key: mailbox %v", got)
	}
	u.onConfig(signedConfig(t, rotatedKey, "s1", later.Add(time.Hour), rotatedKey))
	if got := taken(u); !got.Equal(later.Add(time.Hour)) {
		t.Fatalf("a config signed by the announced key: mailbox %v", got)
	}
	// An older genuine config (replayed) is verified with the keys it was
	// signed with, but the trust stays with the newest.
	u.onConfig(signedConfig(t, anchorKey, "s1", pub, anchorKey))
	taken(u)
	u.onConfig(signedConfig(t, rotatedKey, "s1", later.Add(2*time.Hour)))
	if got := taken(u); !got.Equal(later.Add(2 * time.Hour)) {
		t.Fatalf("after a replayed older config, the announced key is no longer trusted (mailbox %v)", got)
	}
	// The enrollment's key stays trusted.
	u.onConfig(signedConfig(t, anchorKey, "s1", later.Add(3*time.Hour)))
	if got := taken(u); !got.Equal(later.Add(3 * time.Hour)) {
		t.Fatalf("the enrollment's key: mailbox %v", got)
	}

	// Restarted with the verified config it kept, the till trusts its keys.
	kept, err := protocol.DecodeConfig(signedConfig(t, anchorKey, "s1", later, rotatedKey, anchorKey))
	if err != nil {
		t.Fatal(err)
	}
	u2, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s1", Terminal: "t1", Outbox: nopOutbox{},
		ConfigKeys: []ed25519.PublicKey{pubOf(anchorKey)}, TrustedConfig: kept})
	if err != nil {
		t.Fatal(err)
	}
	u2.onConfig(signedConfig(t, rotatedKey, "s1", later.Add(time.Hour)))
	if got := taken(u2); !got.Equal(later.Add(time.Hour)) || u2.ConfigRefused() != 0 {
		t.Fatalf("after a restart, a config signed by the key the kept config announced: mailbox %v, refused %d", got, u2.ConfigRefused())
	}
}

// TestConfigUnverifiedWithoutKeys: a till without keys (not enrolled) takes
// configs as they come, signed or not, and counts nothing.
func TestConfigUnverifiedWithoutKeys(t *testing.T) {
	u, err := New(Options{Broker: "tcp://127.0.0.1:1", Store: "s1", Terminal: "t1", Outbox: nopOutbox{}, ConfigKeys: []ed25519.PublicKey{}})
	if err != nil {
		t.Fatal(err)
	}
	pub := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	c := testConfig("s1", "p1", pub)
	u.onConfig(encodeT(t, &c))
	if got := taken(u); !got.Equal(pub) {
		t.Fatalf("an unsigned config: mailbox %v", got)
	}
	u.onConfig(signedConfig(t, strangerKey, "s1", pub.Add(time.Hour)))
	if got := taken(u); !got.Equal(pub.Add(time.Hour)) || u.ConfigRefused() != 0 {
		t.Fatalf("a signed config: mailbox %v, refused %d", got, u.ConfigRefused())
	}
}
