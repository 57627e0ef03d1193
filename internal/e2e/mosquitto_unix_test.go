//go:build unix

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/internal/testkit/clitest"
	"github.com/tillsync/tillsync/protocol"
)

// mosquittoBinary finds Mosquitto, skipping the test without it.
func mosquittoBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Skip("mosquitto is not installed (neither on $PATH nor /usr/sbin/mosquitto): the test of the generated Mosquitto setup needs a real one")
	return ""
}

// letMosquittoRead gives the setup to Mosquitto's user when the test runs
// as root (Mosquitto then drops to that user before it reads the files),
// as the operator does once with chown -R mosquitto DIR.
func letMosquittoRead(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("mosquitto")
	if err != nil {
		t.Skipf("running as root without a mosquitto user to run Mosquitto as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mqttAttempt connects to url over TLS (verified against ca) with the
// credentials; the client is disconnected when the test ends.
func mqttAttempt(t *testing.T, url string, ca []byte, id, user, pass string) (mqtt.Client, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(3 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errTimeout
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

var errTimeout = &net.OpError{Op: "connect", Err: os.ErrDeadlineExceeded}

// TestMosquittoSetup runs the hub against a real Mosquitto set up by
// tillsync-hub broker-config mosquitto, over TLS with the hub's own
// certificate: enrolled terminals sync with the credentials the hub gave
// them (their hashes, computed at enrollment, are accepted by Mosquitto,
// and so is the hub's own); a terminal can neither publish on another's
// topics (the hub never sees it), nor read another's traffic by
// subscribing to # or to its ack topic; anonymous clients and wrong
// passwords are refused; after a revoke, a re-run and a SIGHUP, the
// revoked terminal is refused.
func TestMosquittoSetup(t *testing.T) {
	var logs testkit.Buffer
	debug := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bed := newMosquittoBed(t, false, func(first, hubDir string) {
		for _, want := range []string{"0 terminal(s)", "kill -HUP", "--broker-password-file " + filepath.Join(hubDir, hub.BrokerPasswordFile)} {
			if !strings.Contains(first, want) {
				t.Errorf("broker-config said, without %q:\n%s", want, first)
			}
		}
	})
	bin, m, out, addr, ca, hubPass, p, url := bed.bin, bed.m, bed.out, bed.addr, bed.ca, bed.hubPass, bed.e.pki, bed.url
	hubDir := bed.e.hubDir
	e := bed.e
	e.log = debug.With("side", "hub")
	h := startHubOnce(t, e)
	store := e.store("mq-")
	dir1, ans1 := enrollTerminal(t, e, h.h.Ledger(), store, "till-1")
	dir2, ans2 := enrollTerminal(t, e, h.h.Ledger(), store, "till-2")
	if ans1.CAPEM != string(p.CACertPEM()) {
		t.Fatal("enrollment did not hand out the hub's CA")
	}

	// Their accounts: broker-config asks the running hub, then Mosquitto reloads.
	reload := func(wantTerminals int) {
		t.Helper()
		out := bin.Run(t, "broker-config", "mosquitto", "--data-dir", hubDir, "--out", out, "--listen", addr, "--hub", "http://"+e.httpAddr).OK(t)
		if !strings.Contains(out, "the running hub") || !strings.Contains(out, strconv.Itoa(wantTerminals)+" terminal(s)") {
			t.Fatalf("broker-config with a running hub said:\n%s", out)
		}
		if err := m.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload(2)
	testkit.WaitFor(t, waitLong, "Mosquitto to take till-2's account", func() bool {
		_, err := mqttAttempt(t, url, ca, "probe", ans2.MQTTUsername, ans2.MQTTPassword)
		return err == nil
	})

	a1 := startTill(t, agent.Options{DataDir: dir1, Broker: url, Store: store, Terminal: "till-1", Logger: debug.With("side", "till-1")})
	a2 := startTill(t, agent.Options{DataDir: dir2, Broker: url, Store: store, Terminal: "till-2", Logger: debug.With("side", "till-2")})
	m1, m2 := store+"-m1", store+"-m2"
	a1.earn(t, m1, 1500)
	a2.earn(t, m2, 2500)
	a1.waitDrained(t)
	a2.waitDrained(t)
	if b1, _ := h.balance(t, m1); b1 != 15 {
		t.Fatalf("balance of %s: %d, want 15", m1, b1)
	}
	// Mosquitto's ACL takes the tills' last wills and statuses: the hub
	// sees both online by their own word.
	for _, term := range []string{"till-1", "till-2"} {
		testkit.WaitFor(t, waitLong, term+"'s status at the hub", func() bool {
			s := agentStatusAt(t, e, store, term)
			return s != nil && s.Online && s.MAC == "" && s.Version == protocol.Version
		})
	}
	a1.stop(t) // its account is the spy's now: one session per username

	// till-1's credentials, used by someone else: nothing of till-2's.
	spy, err := mqttAttempt(t, url, ca, "spy", ans1.MQTTUsername, ans1.MQTTPassword)
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for _, ch := range []protocol.Channel{protocol.ChannelAck, protocol.ChannelReply} {
		tp, _ := protocol.TerminalTopic(store, "till-1", ch)
		own[tp] = true
	}
	cfgTopic, _ := protocol.ConfigTopic(store)
	own[cfgTopic] = true
	var mu sync.Mutex
	var seen []string
	ack2, _ := protocol.TerminalTopic(store, "till-2", protocol.ChannelAck)
	tx2, _ := protocol.TerminalTopic(store, "till-2", protocol.ChannelTx)
	sub := spy.SubscribeMultiple(map[string]byte{"#": 1, ack2: 1, protocol.AllTerminals(protocol.ChannelTx): 1}, func(_ mqtt.Client, msg mqtt.Message) {
		mu.Lock()
		seen = append(seen, msg.Topic())
		mu.Unlock()
	})
	sub.WaitTimeout(5 * time.Second)
	forged := encodeBatch(t, store, "till-2", "forged-1", m2)
	for _, tp := range []string{tx2, ack2, cfgTopic, "tillsync/v1/stores/" + store + "/terminals/till-2/query"} {
		if tok := spy.Publish(tp, 1, false, forged); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Logf("publish on %s: %v", tp, tok.Error())
		}
	}
	a2.earn(t, m2, 1000)
	a2.waitDrained(t)
	// till-2's batch and its ack went by; give a stray delivery time to show.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	for _, tp := range seen {
		if !own[tp] {
			t.Errorf("till-1's credentials received a message on %s", tp)
		}
	}
	mu.Unlock()
	if st := h.h.Stats(); st.Refused != 0 || st.MACRefused != 0 {
		t.Errorf("the hub saw the forged messages (stats %+v); Mosquitto should have dropped them", st)
	}
	if hl := a2.health(t); hl.MACRefused != 0 {
		t.Errorf("till-2 got a forged ack through Mosquitto: %+v", hl)
	}
	if _, ok := h.record(t, "forged-1"); ok {
		t.Error("the forged transaction is in the ledger")
	}
	if b2, _ := h.balance(t, m2); b2 != 35 {
		t.Fatalf("balance of %s: %d, want 35", m2, b2)
	}

	// Nobody without an account gets in.
	for _, c := range []struct{ name, id, user, pass string }{
		{"an anonymous client", "anon", "", ""},
		{"an anonymous client with a terminal's client id", protocol.AgentClientID(store, "till-9"), "", ""},
		{"till-1's password under till-2's name", "x", ans2.MQTTUsername, ans1.MQTTPassword},
		{"the hub's name with a wrong password", "x", broker.HubUsername, hubPass + "x"},
		{"a terminal that never enrolled", "x", protocol.AgentUsername(store, "till-9"), ans1.MQTTPassword},
	} {
		if _, err := mqttAttempt(t, url, ca, c.id, c.user, c.pass); err == nil {
			t.Errorf("Mosquitto let in %s", c.name)
		}
	}

	// Revoked: after a re-run and a reload, till-2's account is gone.
	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/till-2/revoke", nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", st, code)
	}
	a2.stop(t)
	reload(1)
	testkit.WaitFor(t, waitLong, "Mosquitto to refuse the revoked terminal", func() bool {
		_, err := mqttAttempt(t, url, ca, "probe-2", ans2.MQTTUsername, ans2.MQTTPassword)
		return err != nil
	})
	if data, err := os.ReadFile(filepath.Join(out, broker.MosquittoPasswordsFile)); err != nil || bytes.Contains(data, []byte(ans2.MQTTUsername)) {
		t.Fatalf("the password file after the revoke: %v\n%s", err, data)
	}
	h.verify(t)
	for name, secret := range map[string]string{"the hub's broker password": hubPass, "till-1's password": ans1.MQTTPassword,
		"till-1's MAC key": ans1.MACKey, "till-2's password": ans2.MQTTPassword, "till-2's MAC key": ans2.MACKey} {
		if strings.Contains(logs.String(), secret) || strings.Contains(m.Output(), secret) {
			t.Errorf("a log (the hub's and tills' at DEBUG, or Mosquitto's) holds %s", name)
		}
	}
	if !strings.Contains(logs.String(), "hub running") || !strings.Contains(logs.String(), "connected to hub") {
		t.Error("the hub and the tills logged nothing to check")
	}
}

// encodeBatch is a valid batch of one earn from store/terminal.
func encodeBatch(t *testing.T, store, terminal, id, member string) []byte {
	t.Helper()
	b := protocol.Batch{Version: protocol.UnsealedVersion, Store: store, Terminal: terminal, SentAt: time.Now(), Txs: []protocol.Transaction{{
		ID: id, Store: store, Terminal: terminal, Partner: e2ePartner, Member: member, Kind: protocol.KindEarn,
		Amount: 100000, Currency: "EUR", Points: 1000, Seq: 1_000_000, CreatedAt: time.Now(),
	}}}
	payload, err := protocol.Encode(&b)
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// mosquittoBed is a real Mosquitto set up by tillsync-hub broker-config
// mosquitto (TLS with the hub's certificate, the hub's own account) on a
// free port, and the env of a hub to run behind it with that account.
type mosquittoBed struct {
	bin     clitest.Binary // tillsync-hub
	m       *clitest.Proc  // Mosquitto
	e       *env
	out     string // the Mosquitto setup's directory
	addr    string // Mosquitto's TLS listener
	url     string
	ca      []byte
	hubPass string
}

// newMosquittoBed writes the setup, starts Mosquitto with it (logging at
// every level when verbose) and hands broker-config's first output (and
// the hub's data dir) to check; it skips the test without a mosquitto binary.
func newMosquittoBed(t *testing.T, verbose bool, check func(first, hubDir string)) *mosquittoBed {
	t.Helper()
	mosq := mosquittoBinary(t)
	b := &mosquittoBed{bin: hubCommand(t)}
	// Not t.TempDir(): its parents are owner-only, and a Mosquitto started
	// as root reads the files as its own user.
	base, err := os.MkdirTemp("", "tillsync-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	hubDir := filepath.Join(base, "hub")
	b.out, b.addr = filepath.Join(base, "mosquitto"), testkit.FreePort(t)
	b.url = "tls://" + b.addr
	first := b.bin.Run(t, "broker-config", "mosquitto", "--data-dir", hubDir, "--out", b.out, "--listen", b.addr).OK(t)
	if check != nil {
		check(first, hubDir)
	}
	conf := filepath.Join(b.out, broker.MosquittoConfFile)
	if verbose {
		logEverything(t, conf)
	}
	letMosquittoRead(t, b.out)
	b.m = clitest.Binary{Name: "mosquitto", Path: mosq}.Start(t, "-c", conf)
	b.m.WaitFor(t, waitLong, "Mosquitto to listen", func() bool {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if b.ca, err = os.ReadFile(filepath.Join(b.out, broker.MosquittoCAFile)); err != nil {
		t.Fatal(err)
	}
	if b.hubPass, err = hub.ReadPasswordFile(filepath.Join(hubDir, hub.BrokerPasswordFile)); err != nil {
		t.Fatal(err)
	}
	// The hub, with the credentials broker-config set up, over TLS.
	p, err := pki.Load(filepath.Join(hubDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.ca)
	b.e = &env{t: t, external: b.url, hubDir: hubDir, clientID: randomID("tillsync-hub-e2e-"), httpAddr: testkit.FreePort(t), pki: p,
		brokerTLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, brokerUser: broker.HubUsername, brokerPass: b.hubPass}
	return b
}
