package broker_test

import (
	"crypto/ed25519"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// authFixture is an embedded broker that authenticates against a real
// bbolt ledger, with terminal s1/t1 enrolled and s1/t2 registered only.
type authFixture struct {
	e     *broker.Embedded
	url   string
	store *ledger.BoltStore
	creds ledger.TerminalCredentials
	logs  *testkit.Buffer
	clock *clock.Fake
}

func newAuthFixture(t *testing.T, require bool) *authFixture {
	t.Helper()
	s, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ledgertest.Register(t, s, ledgertest.NewTill("s1", "t1", "p1"))
	for _, term := range []string{"t1", "t2"} {
		if err := s.AddTerminal("s1", term, ledgertest.T0); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.IssueEnrollmentToken("s1", "t1", 0, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	creds, err := s.Enroll(tok.ID, tok.Secret, pub, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &authFixture{url: "tcp://" + l.Addr().String(), store: s, creds: creds, logs: new(testkit.Buffer), clock: clock.NewFake(ledgertest.T0)}
	f.e, err = broker.StartEmbedded(broker.EmbeddedOptions{Listener: l, Auth: s, RequireEnrollment: require,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { f.e.Close() }) })
	return f
}

// connect connects a real paho client; it returns the client (connected)
// or the CONNECT's error.
func (f *authFixture) connect(t *testing.T, id, user, pass string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(f.url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(false).
		SetProtocolVersion(4) // as the agent: one CONNECT, no second try with MQTT 3.1
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect %s: no CONNACK", id)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// TestEmbeddedAuthenticatesTerminals: with enrollment not required, an
// enrolled terminal connects only with its own credentials and as itself,
// nobody connects as it without them, and a terminal that has not enrolled
// may still connect anonymously.
func TestEmbeddedAuthenticatesTerminals(t *testing.T) {
	f := newAuthFixture(t, false)
	t1, t2 := protocol.AgentClientID("s1", "t1"), protocol.AgentClientID("s1", "t2")
	u1 := f.creds.Username // protocol.AgentUsername: no ':', for Mosquitto's password file
	pass := f.creds.Password

	refused := []struct{ name, id, user, pass string }{
		{"a wrong password", t1, t1, pass + "x"},
		{"no password", t1, t1, ""},
		{"the enrolled terminal's id without credentials", t1, "", ""},
		{"its password under another terminal's name", t2, t2, pass},
		{"its credentials under another client id", t2, t1, pass},
		{"its credentials under a client id that is no terminal's", unique("someone-"), t1, pass},
		{"a username that is not a terminal's", "someone", "someone", pass},
		{"its username under another terminal's client id", t2, u1, pass},
		{"its username as the client id", u1, u1, pass},
		{"its username with a wrong password", t1, u1, pass + "x"},
	}
	for i, c := range refused {
		if _, err := f.connect(t, c.id, c.user, c.pass); err == nil {
			t.Errorf("connected with %s", c.name)
		}
		if n := f.e.Refused(); n != int64(i+1) {
			t.Errorf("after %s: Refused() = %d, want %d", c.name, n, i+1)
		}
	}
	if _, err := f.connect(t, t1, u1, pass); err != nil {
		t.Fatalf("the enrolled terminal with its credentials: %v", err)
	}
	if _, err := f.connect(t, t1, t1, pass); err != nil {
		t.Fatalf("the enrolled terminal with its client id as username (as enrolled before protocol Version 3): %v", err)
	}
	if _, err := f.connect(t, t2, "", ""); err != nil {
		t.Fatalf("a terminal that has not enrolled, anonymously (enrollment not required): %v", err)
	}
	if strings.Contains(f.logs.String(), pass) {
		t.Fatal("the log holds the password")
	}
}

// TestEmbeddedRequireEnrollment: nobody connects without valid credentials.
func TestEmbeddedRequireEnrollment(t *testing.T) {
	f := newAuthFixture(t, true)
	for _, id := range []string{protocol.AgentClientID("s1", "t2"), "someone"} {
		if _, err := f.connect(t, id, "", ""); err == nil {
			t.Errorf("%s connected without credentials", id)
		}
	}
	t1 := protocol.AgentClientID("s1", "t1")
	if _, err := f.connect(t, t1, t1, f.creds.Password); err != nil {
		t.Fatalf("the enrolled terminal: %v", err)
	}
	if !strings.Contains(f.logs.String(), "enroll the terminal") {
		t.Errorf("the refusal does not say what to do:\n%s", f.logs)
	}
}

// TestEmbeddedRevokedTerminal: revoking a connected terminal and
// disconnecting it drops it at once; it gets back in neither with its
// credentials nor without any, even with enrollment not required.
func TestEmbeddedRevokedTerminal(t *testing.T) {
	f := newAuthFixture(t, false)
	t1 := protocol.AgentClientID("s1", "t1")
	c, err := f.connect(t, t1, t1, f.creds.Password)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeTerminal("s1", "t1", ledgertest.T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.e.Disconnect(t1)
	testkit.WaitFor(t, 5*time.Second, "the revoked terminal to be disconnected", func() bool { return !c.IsConnectionOpen() })
	if _, err := f.connect(t, t1, t1, f.creds.Password); err == nil {
		t.Error("the revoked terminal reconnected with its credentials")
	}
	if _, err := f.connect(t, t1, "", ""); err == nil {
		t.Error("the revoked terminal reconnected without credentials")
	}
	if !strings.Contains(f.logs.String(), "terminal revoked") {
		t.Errorf("the refusal does not say the terminal is revoked:\n%s", f.logs)
	}
}

// TestEmbeddedRefusalLogPaced: a till retrying with a wrong password is
// refused every time, counted every time, and logged once a minute, the
// line saying how many refusals it did not log.
func TestEmbeddedRefusalLogPaced(t *testing.T) {
	f := newAuthFixture(t, false)
	t1 := protocol.AgentClientID("s1", "t1")
	lines := func() int { return strings.Count(f.logs.String(), "MQTT connection refused") }
	for range 5 {
		if _, err := f.connect(t, t1, t1, "guess-hunter2"); err == nil {
			t.Fatal("connected with a wrong password")
		}
	}
	if strings.Contains(f.logs.String(), "bad username or password") {
		t.Errorf("mochi's own line for each refusal is logged too:\n%s", f.logs)
	}
	if n := lines(); n != 1 {
		t.Fatalf("%d log lines for 5 refusals within a minute, want 1:\n%s", n, f.logs)
	}
	// Another client id is logged on its own.
	if _, err := f.connect(t, "someone", "someone", "x"); err == nil {
		t.Fatal("connected with a made-up username")
	}
	f.clock.Advance(time.Minute)
	if _, err := f.connect(t, t1, t1, "guess-hunter2"); err == nil {
		t.Fatal("connected with a wrong password")
	}
	if n, refused := lines(), f.e.Refused(); n != 3 || refused != 7 {
		t.Fatalf("%d log lines, %d refused; want 3 lines, 7 refused:\n%s", n, refused, f.logs)
	}
	if !strings.Contains(f.logs.String(), "not_logged=4") {
		t.Errorf("the line after a quiet minute does not count the refusals not logged:\n%s", f.logs)
	}
	if strings.Contains(f.logs.String(), "hunter2") {
		t.Error("the log holds the password tried")
	}
}

// TestEmbeddedDenialsLoggedAndCounted: an enrolled terminal publishing on
// another terminal's topic or subscribing beyond its own is refused each
// time, every refusal counted, and logged (topic and client, paced per
// client and direction) where an operator looks.
func TestEmbeddedDenialsLoggedAndCounted(t *testing.T) {
	f := newAuthFixture(t, true)
	t1 := protocol.AgentClientID("s1", "t1")
	c, err := f.connect(t, t1, t1, f.creds.Password)
	if err != nil {
		t.Fatal(err)
	}
	victim, _ := protocol.TerminalTopic("s2", "t1", protocol.ChannelTx)
	for range 3 { // QoS 0: dropped without a disconnect
		if tok := c.Publish(victim, 0, false, []byte("{}")); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	for _, filter := range []string{"#", "tillsync/v1/#", "tillsync/v1/stores/s2/terminals/t1/ack"} {
		tok := c.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) {})
		if !tok.WaitTimeout(wait) || tok.(*mqtt.SubscribeToken).Result()[filter] != 0x80 {
			t.Fatalf("subscribe %s: %v", filter, tok.(*mqtt.SubscribeToken).Result())
		}
	}
	testkit.WaitFor(t, wait, "6 denials counted", func() bool { return f.e.Denied() == 6 })
	logs := f.logs.String()
	if n := strings.Count(logs, "MQTT publish refused"); n != 1 || !strings.Contains(logs, "topic="+victim) {
		t.Errorf("%d publish refusal lines (want 1, naming %s):\n%s", n, victim, logs)
	}
	if n := strings.Count(logs, "MQTT subscription refused"); n != 1 || !strings.Contains(logs, "topic=#") {
		t.Errorf("%d subscription refusal lines (want 1, naming #):\n%s", n, logs)
	}
	if strings.Contains(logs, f.creds.Password) {
		t.Error("the log holds the terminal's password")
	}
}
