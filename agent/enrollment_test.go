package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// enrolled writes an enrollment for s1/t1/p1 into dir, with the
// coalition's member token key.
// coalitionKey is the coalition's member token (and config signing) key in
// the agent's tests.
var coalitionKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{11}, ed25519.SeedSize))

func enrolled(t *testing.T, dir string) (agent.Enrollment, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := agent.Enrollment{Store: store, Terminal: terminal, Partner: partner,
		Username: protocol.AgentClientID(store, terminal), Password: "a-password-of-the-till-0123456789",
		MemberTokenKeys: []string{protocol.EncodeTokenKey(coalitionKey.Public().(ed25519.PublicKey))}}
	if err := agent.SaveEnrollment(dir, e, priv, []byte("-----BEGIN CERTIFICATE-----\n")); err != nil {
		t.Fatal(err)
	}
	return e, priv
}

// TestSaveEnrollment: the key, the credentials and the CA are kept
// owner-only, in a data dir made owner-only even when it was not, and read
// back as written.
func TestSaveEnrollment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e, priv := enrolled(t, dir)
	got, found, err := agent.LoadEnrollment(dir)
	if err != nil || !found || got.Username != e.Username || got.Password != e.Password || len(got.MemberTokenKeys) != 1 {
		t.Fatalf("LoadEnrollment = %+v, %v, %v", got, found, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, agent.TerminalKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if k, ok := key.(ed25519.PrivateKey); err != nil || !ok || !k.Equal(priv) {
		t.Fatalf("terminal key: %T, %v", key, err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	for _, f := range []string{agent.EnrollmentFile, agent.TerminalKeyFile, agent.HubCAFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestEnrolledTill: a till in an enrolled data dir is the terminal it
// enrolled as (store, terminal and partner may be left out), holds the
// member token keys from enrollment before any config, and refuses to run
// as another terminal.
func TestEnrolledTill(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	dir := t.TempDir()
	enrolled(t, dir)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = agent.New(agent.Options{DataDir: dir, Broker: b.URL, Store: store, Terminal: "t2", Partner: partner, POSListener: l})
	if err == nil || !strings.Contains(err.Error(), "enrolled as s1/t1, not s1/t2") {
		t.Fatalf("another terminal in an enrolled data dir: %v", err)
	}

	p := startTill(t, dir, b.URL, func(o *agent.Options) { o.Store, o.Terminal, o.Partner = "", "", "" })
	if h := p.health(t); h.MemberTokenKeys != 1 {
		t.Errorf("member token keys before any config: %d, want 1 from the enrollment", h.MemberTokenKeys)
	}
	res, _ := p.earn(t, posapi.EarnRequest{Member: "m1", Amount: 1000, Currency: "EUR"})
	p.waitDrained(t)
	if tx, ok := hub.find(res.TxID); !ok || tx.Store != store || tx.Terminal != terminal || tx.Partner != partner {
		t.Fatalf("hub received %+v, %v; want it from s1/t1 of p1", tx, ok)
	}
}

// TestEnrollmentMACKey: the MAC key is kept with the enrollment and read
// back; a data dir whose key is not one is refused with one line.
func TestEnrollmentMACKey(t *testing.T) {
	dir := t.TempDir()
	e, priv := enrolled(t, dir)
	want := bytes.Repeat([]byte{9}, protocol.MACKeyLen)
	e.MACKey = base64.RawURLEncoding.EncodeToString(want)
	if err := agent.SaveEnrollment(dir, e, priv, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := agent.LoadEnrollment(dir)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := got.Key(); err != nil || !bytes.Equal(key, want) {
		t.Fatalf("Key() = %x, %v", key, err)
	}
	if key, err := (agent.Enrollment{}).Key(); key != nil || err != nil {
		t.Fatalf("no key: %x, %v", key, err)
	}
	e.MACKey = "c2hvcnQ"
	if err := agent.SaveEnrollment(dir, e, priv, nil); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := agent.New(agent.Options{DataDir: dir, Broker: "tcp://127.0.0.1:1", POSListener: l}); err == nil || !strings.Contains(err.Error(), "mac_key") {
		t.Fatalf("a data dir with a broken MAC key: %v", err)
	}
}
