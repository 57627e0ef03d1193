package ingest_test

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

var (
	coalitionKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	strangerKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
)

func sighting(t *testing.T, store, terminal, token string) []byte {
	t.Helper()
	return encode(t, &protocol.Sighting{Version: protocol.Version, Store: store, Terminal: terminal, Token: token, At: ledgertest.T0})
}

// TestTokenSightings: sightings of one token at two tills of a store are
// recorded; the same token at a second store is flagged, with one warning
// however often it is seen after.
func TestTokenSightings(t *testing.T) {
	var logs testkit.Buffer
	f := newFixture(t, ingest.Options{
		TokenKeys: []ed25519.PublicKey{coalitionKey.Public().(ed25519.PublicKey)},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	}, nil)
	f.run(t)
	tok, err := protocol.MintMemberToken(coalitionKey, "m1", ledgertest.T0.Add(2*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := protocol.ParseMemberToken(tok, []ed25519.PublicKey{coalitionKey.Public().(ed25519.PublicKey)})
	see := func(store, terminal string, want int64) {
		t.Helper()
		f.in.HandleScan(topic(t, store, terminal, protocol.ChannelScan), sighting(t, store, terminal, tok))
		testkit.WaitFor(t, wait, "the sighting to be recorded", func() bool { return f.in.Stats().Sightings == want })
	}
	see("s1", "t1", 1)
	see("s1", "t2", 2)
	if fs, _ := f.store.TokenFlags(); len(fs) != 0 || f.in.Stats().TokenFlags != 0 {
		t.Fatalf("a second till of the same store: flags %+v", fs)
	}
	see("s2", "t1", 3)
	see("s9", "t1", 4)
	fs, err := f.store.TokenFlags()
	if err != nil || len(fs) != 1 || fs[0].Nonce != mt.Nonce || fs[0].Member != "m1" || fs[0].First.Store != "s1" ||
		fs[0].Elsewhere == nil || fs[0].Elsewhere.Store != "s2" || fs[0].Sightings != 4 || !fs[0].ExpiresAt.Equal(mt.ExpiresAt) {
		t.Fatalf("flags %+v, %v; want the token flagged s1 then s2, 4 sightings", fs, err)
	}
	if st := f.in.Stats(); st.TokenFlags != 1 || st.Refused != 0 || st.Batches != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "member token accepted at two stores"); n != 1 {
		t.Errorf("%d warnings about the token, want 1:\n%s", n, logs.String())
	}
	if rep, err := f.store.Verify(); err != nil || !rep.OK() || rep.Entries != 0 {
		t.Errorf("sightings touched the journal: %+v, %v", rep, err)
	}
}

func TestTokenSightingsRefused(t *testing.T) {
	good, err := protocol.MintMemberToken(coalitionKey, "m1", ledgertest.T0.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := protocol.MintMemberToken(strangerKey, "m1", ledgertest.T0.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	scan := topic(t, "s1", "t1", protocol.ChannelScan)
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		keys        bool
	}{
		{"a token the coalition did not sign", scan, sighting(t, "s1", "t1", forged), true},
		{"no keys at the hub", scan, sighting(t, "s1", "t1", good), false},
		{"another terminal than the topic", scan, sighting(t, "s1", "t2", good), true},
		{"another store than the topic", scan, sighting(t, "s2", "t1", good), true},
		{"on the tx channel", topic(t, "s1", "t1", protocol.ChannelTx), sighting(t, "s1", "t1", good), true},
		{"not a token", scan, sighting(t, "s1", "t1", "TS1.abc"), true},
		{"trailing data", scan, append(sighting(t, "s1", "t1", good), '}'), true},
		{"a bad topic", "tillsync/v1/stores/s1/terminals/+/scan", sighting(t, "s1", "t1", good), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ingest.Options{}
			if tc.keys {
				o.TokenKeys = []ed25519.PublicKey{coalitionKey.Public().(ed25519.PublicKey)}
			}
			f := newFixture(t, o, nil)
			f.run(t)
			f.in.HandleScan(tc.topic, tc.payload)
			if st := f.in.Stats(); st.Refused != 1 || st.Dropped != 0 {
				t.Fatalf("stats %+v, want one refused", st)
			}
			// A good sighting behind it: once it is recorded, the refused
			// one had every chance to be.
			f.in.HandleScan(topic(t, "s9", "t9", protocol.ChannelScan), sighting(t, "s9", "t9", good))
			if tc.keys {
				testkit.WaitFor(t, wait, "the sentinel sighting", func() bool { return f.in.Stats().Sightings == 1 })
			}
			if fs, err := f.store.TokenFlags(); err != nil || len(fs) != 0 {
				t.Fatalf("flags %+v, %v", fs, err)
			}
		})
	}
}
