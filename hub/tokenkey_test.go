package hub_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

func TestLoadMemberTokenKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, hub.MemberTokenKeyFile)
	key, created, err := hub.LoadMemberTokenKey(path)
	if err != nil || !created || len(key) != ed25519.PrivateKeySize {
		t.Fatalf("first load: %d-byte key, created %v, %v", len(key), created, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("the key file is not a PEM private key:\n%s", data)
	}
	again, created, err := hub.LoadMemberTokenKey(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("second load: created %v, same key %v, %v", created, again.Equal(key), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the data dir holds %d files, want only the key", len(entries))
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	seedB64 := base64.StdEncoding.EncodeToString(key.Seed())
	for name, content := range map[string][]byte{
		"empty":             nil,
		"raw base64 seed":   []byte(seedB64),
		"another PEM type":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: data}),
		"an ECDSA key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"a broken PKCS #8":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")}),
		"huge":              bytes.Repeat([]byte("A"), 1<<20),
		"truncated the key": data[:len(data)/2],
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "member-token.key")
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			k, created, err := hub.LoadMemberTokenKey(p)
			if err == nil || k != nil || created {
				t.Fatalf("loaded %v (created %v) from a bad file", k, created)
			}
			if !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), seedB64) || strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error %q: want one line naming the file, never the key", err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
				t.Error("a bad key file was overwritten")
			}
		})
	}
	if _, _, err := hub.LoadMemberTokenKey(filepath.Join(dir, "missing-dir", "k")); err == nil {
		t.Error("created a key in a directory that does not exist")
	}
}

// TestMemberTokensAtTheHub: the hub makes its key at the first start and
// keeps it; the key is in every store's config; tokens minted over the API
// verify with it; sightings from two stores' tills flag a token.
func TestMemberTokensAtTheHub(t *testing.T) {
	dir := t.TempDir()
	var logs testkit.Buffer
	r := start(t, hub.Options{DataDir: dir, Seed: seed(), Logger: testLogger(&logs), HoldSweepEvery: 20 * time.Millisecond})
	keys := r.hub.MemberTokenKeys()
	if len(keys) != 1 {
		t.Fatalf("MemberTokenKeys: %v", keys)
	}
	pub := keys[0]
	if !strings.Contains(logs.String(), "member token key created") || !strings.Contains(logs.String(), protocol.TokenKeyID(pub)) {
		t.Errorf("the log does not say a key was made:\n%s", logs.String())
	}
	key, _, err := hub.LoadMemberTokenKey(filepath.Join(dir, hub.MemberTokenKeyFile))
	if err != nil || !key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("the key file does not hold the hub's key: %v", err)
	}
	if strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(key.Seed())) || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(key)) {
		t.Fatal("the private key is in the log")
	}

	// The key travels in the store's config.
	testkit.WaitFor(t, wait, "the configs to be published", func() bool { return strings.Contains(logs.String(), "store configs published") })
	cfg, _ := next(t, till(t, r.mqttURL, "s1", "t1"))
	if len(cfg.MemberTokenKeys) != 1 || cfg.MemberTokenKeys[0] != protocol.EncodeTokenKey(pub) {
		t.Fatalf("config's member token keys: %v, want [%s]", cfg.MemberTokenKeys, protocol.EncodeTokenKey(pub))
	}

	// Minted over the API, verified with the published key.
	res := send(t, http.DefaultClient, r.token, "POST", r.httpURL+"/v1/members/M1001/token?ttl=3m", "")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var mt httpapi.MemberToken
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &mt) != nil {
		t.Fatalf("POST token: %d %s", res.StatusCode, body)
	}
	got, err := protocol.VerifyMemberToken(mt.Token, keys, r.clock.Now(), 0)
	if err != nil || got.Member != "M1001" || !got.ExpiresAt.Equal(r.clock.Now().Add(3*time.Minute)) {
		t.Fatalf("minted token verifies as %+v, %v", got, err)
	}

	// Sightings: s1/t1 then s1/t2 (no flag), then s2/t1 (flagged).
	for i, tt := range [][2]string{{"s1", "t1"}, {"s1", "t2"}, {"s2", "t1"}} {
		publishSighting(t, r.mqttURL, tt[0], tt[1], mt.Token)
		n := i + 1
		testkit.WaitFor(t, wait, "the sighting to be recorded", func() bool { return r.hub.Stats().Sightings == int64(n) })
	}
	flags, err := r.hub.Ledger().TokenFlags()
	if err != nil || len(flags) != 1 || flags[0].Nonce != got.Nonce || flags[0].First.Store != "s1" || flags[0].Elsewhere == nil || flags[0].Elsewhere.Store != "s2" {
		t.Fatalf("token flags: %+v, %v", flags, err)
	}
	if !strings.Contains(logs.String(), "member token accepted at two stores") {
		t.Error("no warning about the token seen at two stores")
	}
	// Sightings are pruned an hour after the token expired; the flag stays.
	r.clock.Set(got.ExpiresAt.Add(ledger.TokenRetention + time.Second))
	testkit.WaitFor(t, wait, "the sightings to be pruned", func() bool { return strings.Contains(logs.String(), "member token sightings pruned") })
	rec, flagged, err := r.hub.Ledger().SeeToken(ledger.TokenSighting{Nonce: got.Nonce, Member: "M1001", ExpiresAt: got.ExpiresAt, Store: "s9", Terminal: "t1", At: ledgertest.T0}, r.clock.Now())
	if err != nil || flagged || rec.First.Store != "s9" || rec.Sightings != 1 {
		t.Errorf("a sighting after pruning: %+v, flagged %v, %v; want a first sighting", rec, flagged, err)
	}
	if fs, _ := r.hub.Ledger().TokenFlags(); len(fs) != 1 {
		t.Errorf("flags after pruning: %+v", fs)
	}
}

// TestMemberTokenKeyKept: a restarted hub signs with the key it made.
func TestMemberTokenKeyKept(t *testing.T) {
	dir := t.TempDir()
	first := start(t, hub.Options{DataDir: dir})
	pub := first.hub.MemberTokenKeys()[0]
	first.stop()
	<-first.finished
	first.finished <- nil // the cleanup waits for it
	var logs testkit.Buffer
	second := start(t, hub.Options{DataDir: dir, Logger: testLogger(&logs)})
	if !second.hub.MemberTokenKeys()[0].Equal(pub) || strings.Contains(logs.String(), "member token key created") {
		t.Fatalf("the restarted hub has another key (log:\n%s)", logs.String())
	}
	// A key file elsewhere, named by the options.
	other := filepath.Join(t.TempDir(), "coalition.key")
	third := start(t, hub.Options{MemberTokenKeyFile: other})
	if third.hub.MemberTokenKeys()[0].Equal(pub) {
		t.Fatal("a new key file holds the old key")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadMemberTokenKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, hub.MemberTokenKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := hub.Open(hub.Options{DataDir: dir, BrokerURL: "tcp://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), hub.MemberTokenKeyFile) {
		t.Fatalf("Open with a bad key file: %v", err)
	}
	if h != nil {
		t.Fatal("returned a hub")
	}
	// The ledger was closed again: another open gets it.
	st, err := ledger.OpenBolt(filepath.Join(dir, hub.LedgerFile), ledger.BoltOptions{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("the ledger is still held: %v", err)
	}
	st.Close()
}

// publishSighting reports, as store/terminal's agent does, that the till
// accepted token.
func publishSighting(t *testing.T, url, store, terminal, token string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(protocol.AgentClientID(store, terminal)).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	topic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelScan)
	payload, _ := protocol.Encode(&protocol.Sighting{Version: protocol.Version, Store: store, Terminal: terminal, Token: token, At: ledgertest.T0})
	if tok := c.Publish(topic, 0, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}
