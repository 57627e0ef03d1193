package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/internal/testkit/clitest"
	"github.com/tillsync/tillsync/protocol"
)

// spoofStores is how many enrolled stores attack each other.
const spoofStores = 20

// wait bounds one step of an attack (a SUBACK, a disconnect).
const wait = 5 * time.Second

// spoofer is one enrolled store of the spoofing suite: its till's
// credentials, its live connection, and what it legitimately sent and got.
type spoofer struct {
	store, terminal string
	partner         string // each store trades as a partner of its own
	apiToken        string // that partner's API token
	id              string // MQTT client id
	user            string // MQTT username
	password        string
	macKey          []byte
	till            *ledgertest.Till
	conn            mqtt.Client
	batch           []byte // its first batch, as sent
	txID            string // the transaction in it
	ack             []byte // the hub's ack of it, as received
	tokenID, secret string // its used enrollment token

	mu   sync.Mutex
	acks map[string][]protocol.Ack // by transaction id, every ack received
	raw  map[string][]byte         // the first ack batch naming each id
}

// gotAck records an ack batch the till received.
func (s *spoofer) gotAck(payload []byte) {
	ab, err := protocol.DecodeAckBatch(payload)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range ab.Acks {
		s.acks[a.ID] = append(s.acks[a.ID], a)
		if s.raw[a.ID] == nil {
			s.raw[a.ID] = payload
		}
	}
}

// waitAck waits for the n-th ack of transaction id.
func (s *spoofer) waitAck(id string, n int) (protocol.Ack, bool) {
	var a protocol.Ack
	ok := testkit.WaitUntil(waitLong, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.acks[id]) < n {
			return false
		}
		a = s.acks[id][n-1]
		return true
	})
	return a, ok
}

// spoofTally counts attempts and refusals per kind of attack.
type spoofTally struct {
	mu    sync.Mutex
	tried map[string]int
	ok    map[string]int
	order []string
}

func (s *spoofTally) add(kind string, refused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tried == nil {
		s.tried, s.ok = map[string]int{}, map[string]int{}
	}
	if _, seen := s.tried[kind]; !seen {
		s.order = append(s.order, kind)
	}
	s.tried[kind]++
	if refused {
		s.ok[kind]++
	}
}

func (s *spoofTally) totals() (tried, refused int) {
	for k, n := range s.tried {
		tried += n
		refused += s.ok[k]
	}
	return tried, refused
}

// spoofWorld is the broker the spoofing suite attacks through, with the
// hub behind it.
type spoofWorld struct {
	e    *env
	h    *hubRun
	url  string
	ca   []byte
	logs *testkit.Buffer // the hub's log
	// mosquitto is the Mosquitto process (its log at every level) set up by
	// broker-config; nil for the embedded broker.
	mosquitto *clitest.Proc
	// reload makes the broker take the ledger's accounts as they are now
	// (Mosquitto: broker-config again, then SIGHUP); nil for the embedded
	// broker, which asks the ledger itself.
	reload func()
}

// embeddedWorld is a hub with its embedded broker over TLS, enrollment required.
func embeddedWorld(t *testing.T) *spoofWorld {
	w := &spoofWorld{logs: new(testkit.Buffer)}
	w.e = newEnv(t, "embedded-tls")
	w.e.httpAddr, w.e.requireEnrollment = testkit.FreePort(t), true
	w.e.log = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", "hub")
	w.h = startHubOnce(t, w.e)
	w.url, w.ca = w.e.brokerURL(), w.e.pki.CACertPEM()
	return w
}

// mosquittoOutput is Mosquitto's log so far; "" for the embedded broker.
func (w *spoofWorld) mosquittoOutput() string {
	if w.mosquitto == nil {
		return ""
	}
	return w.mosquitto.Output()
}

// mosquittoLines counts the lines of Mosquitto's log holding what.
func (w *spoofWorld) mosquittoLines(what string) int {
	return strings.Count(w.mosquitto.Output(), what)
}

// TestSpoofing: 20 enrolled stores, each attacking all the others:
// publishing on their topics, forging their store and terminal in its own
// payloads, connecting as them, subscribing to # and to their ack, reply
// and config topics, ids with wildcards, replaying transactions and acks,
// revoked credentials, used, expired and unknown enrollment tokens, and
// partner API tokens reaching for another partner's data. It runs over the
// embedded broker (MQTT over TLS, enrollment required), and over a real
// Mosquitto set up by tillsync-hub broker-config mosquitto. Every attempt
// is refused (or, for a replay of a till's own batch, answered as the
// duplicate it is) and counted: the hub's counters (and Mosquitto's log)
// move by exactly the attempts; each attacker is named in the hub's log;
// the victims stay connected; and the ledger is as the legitimate traffic
// left it.
func TestSpoofing(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { runSpoofing(t, embeddedWorld(t)) })
	t.Run("mosquitto", func(t *testing.T) { runSpoofing(t, mosquittoWorld(t)) })
}

func runSpoofing(t *testing.T, w *spoofWorld) {
	e, h, logs := w.e, w.h, w.logs
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	st := h.h.Ledger()
	ca := w.ca
	embedded := w.mosquitto == nil
	// 20 stores, each with one enrolled till that sends one earn.
	ss := make([]*spoofer, spoofStores)
	ids := make([]string, spoofStores)
	for i := range ids { // e.store registers them all again with the env's partner each time
		ids[i] = e.store(fmt.Sprintf("sp%02d-", i))
	}
	for i := range ss {
		store := ids[i]
		partner := fmt.Sprintf("brand-%02d", i)
		s := &spoofer{store: store, terminal: "till-1", partner: partner, till: ledgertest.NewTill(store, "till-1", partner),
			acks: map[string][]protocol.Ack{}, raw: map[string][]byte{}}
		now := time.Now()
		if err := st.PutPartner(ledger.Partner{ID: partner}, now); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddRules(protocol.RuleSet{Partner: partner, Points: 1, Per: 100, Rounding: protocol.RoundDown, EffectiveFrom: now.Add(-24 * time.Hour)}, now); err != nil {
			t.Fatal(err)
		}
		if err := st.PutStore(ledger.StoreInfo{ID: store, Partner: partner}, now); err != nil {
			t.Fatal(err)
		}
		if err := st.AddTerminal(store, s.terminal, now); err != nil {
			t.Fatal(err)
		}
		tk, secret, err := st.CreateAPIToken(ledger.APIToken{Name: partner + " back office", Role: ledger.RolePartner, Partner: partner}, now)
		if err != nil {
			t.Fatal(err)
		}
		s.apiToken = protocol.FormatAPIToken(tk.ID, secret)
		tok, err := st.IssueEnrollmentToken(store, s.terminal, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(nil)
		creds, err := st.Enroll(tok.ID, tok.Secret, pub, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s.id, s.user, s.password, s.macKey = protocol.AgentClientID(store, s.terminal), creds.Username, creds.Password, creds.MACKey
		s.tokenID, s.secret = tok.ID, base64.RawURLEncoding.EncodeToString(tok.Secret)
		ss[i] = s
	}
	if w.reload != nil {
		w.reload()
	}
	var connTime time.Duration
	var connN int
	connect := func(id, user, pass string) (mqtt.Client, error) {
		t0 := time.Now()
		defer func() { connTime += time.Since(t0); connN++ }()
		// MQTT 3.1.1 only: without a version paho tries again with 3.1
		// after a refusal, which would be a second attempt.
		o := mqtt.NewClientOptions().AddBroker(w.url).SetClientID(id).SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
		tc, err := agent.HubTLSConfig(w.url, ca)
		if err != nil {
			t.Fatal(err)
		}
		o.SetTLSConfig(tc)
		c := mqtt.NewClient(o)
		tk := c.Connect()
		if !tk.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("connect %s: timed out", id)
		}
		if tk.Error() != nil {
			return nil, tk.Error()
		}
		return c, nil
	}
	// (Re)connect a store's till with its own credentials, subscribed to
	// its acks. A till has one connection: an attacker attacks with it.
	reconnect := func(s *spoofer) {
		if s.conn != nil {
			s.conn.Disconnect(0)
		}
		c, err := connect(s.id, s.user, s.password)
		if err != nil {
			t.Fatalf("%s with its own credentials: %v", s.id, err)
		}
		s.conn = c
		ackTopic, _ := protocol.TerminalTopic(s.store, s.terminal, protocol.ChannelAck)
		if tk := c.Subscribe(ackTopic, 1, func(_ mqtt.Client, m mqtt.Message) { s.gotAck(m.Payload()) }); !tk.WaitTimeout(wait) || tk.Error() != nil {
			t.Fatalf("%s subscribes to its acks: %v", s.id, tk.Error())
		}
	}
	t.Cleanup(func() {
		for _, s := range ss {
			if s.conn != nil {
				s.conn.Disconnect(0)
			}
		}
	})
	for _, s := range ss {
		reconnect(s)
		s.txID = randomID("sp-tx-")
		b := s.till.Batch(t, s.till.Earn(s.txID, s.store+"-m", 10))
		b.SentAt = time.Now()
		s.batch = s.seal(t, s, b)
		s.publish(t, protocol.ChannelTx, s.batch)
	}
	for _, s := range ss {
		if a, ok := s.waitAck(s.txID, 1); !ok || a.Status != protocol.StatusApplied {
			t.Fatalf("%s: ack of its earn %+v (received: %v)", s.id, a, ok)
		}
		s.ack = s.raw[s.txID]
	}
	phase("20 tills enrolled, connected, one earn each")
	before := spoofLedger(t, h, ss)
	base := spoofCounters(t, e, h)

	var tally spoofTally
	var want struct{ refused, denied, ingestRefused, ingestRejected, enrollRefused, apiRefused, mosquittoDenied int64 }
	topic := func(s *spoofer, ch protocol.Channel) string {
		tp, _ := protocol.TerminalTopic(s.store, s.terminal, ch)
		return tp
	}
	// A denied publish at QoS 1 costs the attacker its connection (MQTT
	// 3.1.1 has no negative PUBACK); it reconnects for the next attempt.
	// Mosquitto acks it and drops it, logging it (at debug): each such
	// attempt is matched with its line of Mosquitto's log at the end.
	type deniedPub struct{ kind, user, topic string }
	var mosquittoPubs []deniedPub
	publishDenied := func(kind string, a *spoofer, topic string, payload []byte) {
		if !embedded {
			a.publishOn(t, a.conn, topic, payload)
			mosquittoPubs = append(mosquittoPubs, deniedPub{kind, a.user, topic})
			want.mosquittoDenied++
			return
		}
		a.conn.Publish(topic, 1, false, payload)
		gone := testkit.WaitUntil(wait, func() bool { return !a.conn.IsConnectionOpen() })
		tally.add(kind, gone)
		want.denied++
		reconnect(a)
	}
	// Mosquitto grants an MQTT 3.1.1 subscription its ACL denies and
	// delivers nothing on it: there, a subscription is refused when it
	// has received nothing by the end of the run, every till's acks and
	// configs having gone by meanwhile.
	type quietSub struct {
		kind string
		got  *atomic.Int64
	}
	var quiet []quietSub
	subscribeDenied := func(kind string, a *spoofer, filter string) {
		got := new(atomic.Int64)
		cfg, _ := protocol.ConfigTopic(a.store)
		own := map[string]bool{topic(a, protocol.ChannelAck): true, topic(a, protocol.ChannelReply): true, cfg: true}
		tk := a.conn.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
			if !own[m.Topic()] { // a wildcard also matches its own topics
				got.Add(1)
			}
		})
		if !embedded {
			if !tk.WaitTimeout(wait) || tk.Error() != nil {
				tally.add(kind, false)
				return
			}
			quiet = append(quiet, quietSub{kind, got})
			return
		}
		refused := tk.WaitTimeout(wait) && tk.(*mqtt.SubscribeToken).Result()[filter] == 0x80
		tally.add(kind, refused)
		want.denied++
	}
	connectRefused := func(kind, id, user, pass string) {
		c, err := connect(id, user, pass)
		if c != nil {
			c.Disconnect(0)
		}
		// A client id with a control character is a protocol error to
		// Mosquitto: it closes the connection without an answer.
		ok := err != nil && (strings.Contains(err.Error(), "not Authorized") || strings.Contains(err.Error(), "bad user name or password") ||
			(!embedded && strings.ContainsFunc(id, unicode.IsControl) && strings.Contains(err.Error(), "EOF")))
		if !ok {
			t.Logf("%s: %q as %q: %v", kind, id, user, err)
		}
		tally.add(kind, ok)
		if embedded {
			want.refused++
		}
	}

	for _, a := range ss {
		for _, v := range ss {
			if v == a {
				continue
			}
			// Publishing on the victim's topics: its transactions, queries,
			// member token sightings, and acks from the hub.
			forged := v.till.Batch(t, v.till.Earn(randomID("sp-forged-"), v.store+"-m", 1000))
			forgedBytes := a.seal(t, a, forged)
			publishDenied("publish on another terminal's tx topic", a, topic(v, protocol.ChannelTx), forgedBytes)
			publishDenied("replay another terminal's ack on its ack topic", a, topic(v, protocol.ChannelAck), v.ack)
			// Forging the victim in its own payloads, on its own topic:
			// the hub refuses what names another terminal than the topic.
			a.publishOn(t, a.conn, topic(a, protocol.ChannelTx), forgedBytes)
			tally.add("payload naming another store (batch and transactions)", true)
			want.ingestRefused++
			// A batch of its own with one transaction in the victim's
			// name: that transaction is rejected, and said so in an ack.
			mixedID := randomID("sp-mixed-")
			mixed := a.till.Batch(t, a.till.Earn(mixedID, v.store+"-m", 1000))
			mixed.Txs[0].Store = v.store
			mixedBytes := a.seal(t, a, mixed)
			a.publishOn(t, a.conn, topic(a, protocol.ChannelTx), mixedBytes)
			ack, ok := a.waitAck(mixedID, 1)
			tally.add("payload naming another store (one transaction)", ok && ack.Status == protocol.StatusRejected)
			want.ingestRejected++
			a.publishOn(t, a.conn, topic(a, protocol.ChannelTx), v.batch)
			tally.add("replay another terminal's batch on its own topic", true)
			want.ingestRefused++
			// Connecting as the victim. Mosquitto names every client by
			// its username: the attacker's own credentials under the
			// victim's client id connect as the attacker, nobody else.
			if embedded {
				connectRefused("connect with another terminal's client id", v.id, a.user, a.password)
			} else {
				c, err := connect(v.id, a.user, a.password)
				if c != nil {
					c.Disconnect(0)
				}
				tally.add("its credentials under another's client id: connects as itself", err == nil && v.conn.IsConnectionOpen())
				reconnect(a) // its own session was the one taken over
			}
			connectRefused("connect with another terminal's client id", v.id, v.user, a.password)
			connectRefused("connect with another terminal's client id", v.id, "", "")
		}
		// Its own ack topic is the hub's to publish on.
		publishDenied("replay another terminal's ack on its ack topic", a, topic(a, protocol.ChannelAck), a.ack)
		// Ids with wildcards, slashes or control characters.
		for _, id := range []string{
			protocol.AgentClientID(a.store+"+", "till-1"), "tillsync-agent:#:till-1", "tillsync-agent:" + a.store + "/x:till-1",
			"tillsync-agent:" + a.store + ":till\x01", "+", "#",
		} {
			connectRefused("ids with wildcards or control characters", id, id, a.password)
		}
	}

	phase(fmt.Sprintf("publishing, forging, connecting as others (%d connects, %s)", connN, connTime))
	// Reading others' traffic. The hub publishes every store's config
	// (retained); every till subscribes to every other's ack, reply and
	// config topics and to wildcards; then every till sends its own batch
	// again, a replay answered as the duplicate it is, changing nothing,
	// whose ack crosses the broker. None of it may reach another till.
	var coalition json.RawMessage
	hubGet(t, e, "/v1/coalition", &coalition)
	if resp := hubRequest(t, e, "PUT", "/v1/coalition", bytes.NewReader(coalition)); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/coalition (the same settings): HTTP %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	for _, a := range ss {
		cfg, _ := protocol.ConfigTopic(a.store)
		own := new(atomic.Int64)
		if tk := a.conn.Subscribe(cfg, 1, func(mqtt.Client, mqtt.Message) { own.Add(1) }); !tk.WaitTimeout(wait) || tk.Error() != nil {
			t.Fatalf("%s subscribes to its config: %v", a.id, tk.Error())
		}
		testkit.WaitFor(t, waitLong, a.id+" to get its store's config", func() bool { return own.Load() > 0 })
	}
	for _, a := range ss {
		for _, v := range ss {
			if v == a {
				continue
			}
			subscribeDenied("subscribe to another terminal's topics", a, topic(v, protocol.ChannelAck))
			subscribeDenied("subscribe to another terminal's topics", a, topic(v, protocol.ChannelReply))
			cfg, _ := protocol.ConfigTopic(v.store)
			subscribeDenied("subscribe to another terminal's topics", a, cfg)
		}
		for _, f := range []string{"#", "tillsync/#", "tillsync/v1/stores/+/terminals/+/ack", "$SYS/#"} {
			subscribeDenied("subscribe to wildcards", a, f)
		}
	}
	for _, a := range ss {
		a.publishOn(t, a.conn, topic(a, protocol.ChannelTx), a.batch)
	}
	for _, a := range ss {
		ack, ok := a.waitAck(a.txID, 2)
		tally.add("replay its own batch", ok && ack.Status == protocol.StatusDuplicate)
	}

	phase("subscribing to others' topics")
	// Enrollment tokens: used, unknown and expired; ids with wildcards in
	// the HTTP API's paths.
	enroll := func(token string) protocol.Code {
		pub, _, _ := ed25519.GenerateKey(nil)
		st, code := hubPost(t, e, "/v1/enroll", map[string]string{"token": token, "public_key": base64.StdEncoding.EncodeToString(pub)}, nil)
		if st < 400 {
			return ""
		}
		return code
	}
	fp := e.pki.CAFingerprint()
	for _, s := range ss {
		sec, _ := base64.RawURLEncoding.DecodeString(s.secret)
		tally.add("reused enrollment token", enroll(protocol.FormatEnrollmentToken(s.tokenID, sec, fp)) == protocol.CodeEnrollmentUsed)
		want.enrollRefused++
		other := make([]byte, len(sec))
		tally.add("unknown enrollment token", enroll(protocol.FormatEnrollmentToken(s.tokenID+"x", other, fp)) == protocol.CodeEnrollmentUnknown)
		want.enrollRefused++
	}
	for _, s := range ss[:5] {
		if err := st.AddTerminal(s.store, "till-9", time.Now()); err != nil {
			t.Fatal(err)
		}
		tok, err := st.IssueEnrollmentToken(s.store, "till-9", time.Minute, time.Now().Add(-2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		tally.add("expired enrollment token", enroll(protocol.FormatEnrollmentToken(tok.ID, tok.Secret, fp)) == protocol.CodeEnrollmentExpired)
		want.enrollRefused++
	}
	for _, path := range []string{"sp+x/terminals/till-1", "sp%23x/terminals/till-1", "sp00/terminals/till%2B1", "sp00/terminals/till%01"} {
		code, _ := hubPost(t, e, "/v1/stores/"+path+"/enrollment-token", nil, nil)
		tally.add("ids with wildcards or control characters", code == http.StatusBadRequest || code == http.StatusNotFound)
	}

	// Partner tokens reaching for another partner's data: its rules, its
	// members, its stores' enrollment and revocation; and what a partner
	// may list shows only its own.
	asPartner := func(s *spoofer, method, path string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+e.httpAddr+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+s.apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	forbidden := func(kind string, s *spoofer, method, path string) {
		code, body := asPartner(s, method, path)
		tally.add(kind, code == http.StatusForbidden && strings.Contains(string(body), string(protocol.CodeForbidden)))
		want.apiRefused++
	}
	for _, a := range ss {
		for _, v := range ss {
			if v == a {
				continue
			}
			forbidden("partner token: another partner's rules", a, "GET", "/v1/partners/"+v.partner+"/rules")
			forbidden("partner token: another partner's members", a, "GET", "/v1/members/"+v.store+"-m/balance")
			forbidden("partner token: another partner's members", a, "GET", "/v1/members/"+v.store+"-m/statement")
			forbidden("partner token: enroll or revoke another partner's till", a, "POST", "/v1/stores/"+v.store+"/terminals/till-1/enrollment-token")
			forbidden("partner token: enroll or revoke another partner's till", a, "POST", "/v1/stores/"+v.store+"/terminals/till-1/revoke")
		}
		for _, path := range []string{"/v1/stores", "/v1/partners", "/v1/enrollments", "/v1/settlement?from=2000-01-01&to=2099-12-31"} {
			code, body := asPartner(a, "GET", path)
			others := 0
			for _, v := range ss {
				if v != a && (strings.Contains(string(body), v.store) || strings.Contains(string(body), v.partner)) {
					others++
				}
			}
			ok := code == http.StatusOK && others == 0 && (strings.Contains(string(body), a.partner) || strings.Contains(string(body), a.store))
			tally.add("partner token: lists show only its own", ok)
		}
	}

	phase("enrollment and partner tokens")
	// Revoked: two stores' tills are dropped at once by the embedded
	// broker; through Mosquitto, whatever the revoked till still sends is
	// refused by the hub until the broker is given the accounts again.
	// Then they get back in neither with their credentials nor without.
	for _, s := range ss[:2] {
		if code, _ := hubPost(t, e, "/v1/stores/"+s.store+"/terminals/"+s.terminal+"/revoke", nil, nil); code != http.StatusOK {
			t.Fatalf("revoke %s: HTTP %d", s.id, code)
		}
		if embedded {
			testkit.WaitFor(t, wait, s.id+" to be dropped", func() bool { return !s.conn.IsConnectionOpen() })
		} else {
			late := s.till.Batch(t, s.till.Earn(randomID("sp-revoked-"), s.store+"-m", 1000))
			s.publishOn(t, s.conn, topic(s, protocol.ChannelTx), s.seal(t, s, late))
			tally.add("revoked credentials", true) // counted by the hub: checked below
			want.ingestRefused++
		}
	}
	if w.reload != nil {
		w.reload()
	}
	for _, s := range ss[:2] {
		connectRefused("revoked credentials", s.id, s.user, s.password)
		connectRefused("revoked credentials", s.id, "", "")
	}

	phase("revoked credentials")
	if !embedded {
		// "Denied PUBLISH from CLIENT (d0, q1, r0, m2, 'TOPIC', ... (N bytes))"
		var denied map[[2]string]int
		testkit.WaitUntil(waitLong, func() bool {
			denied = map[[2]string]int{}
			n := 0
			for _, l := range strings.Split(w.mosquitto.Output(), "\n") {
				_, rest, ok := strings.Cut(l, "Denied PUBLISH from ")
				client, rest, ok2 := strings.Cut(rest, " (")
				_, rest, ok3 := strings.Cut(rest, "'")
				tp, _, ok4 := strings.Cut(rest, "'")
				if ok && ok2 && ok3 && ok4 {
					denied[[2]string{client, tp}]++
					n++
				}
			}
			return n >= len(mosquittoPubs)
		})
		for _, p := range mosquittoPubs {
			k := [2]string{p.user, p.topic}
			tally.add(p.kind, denied[k] > 0)
			denied[k]--
		}
	}
	for _, q := range quiet {
		tally.add(q.kind, q.got.Load() == 0)
	}

	// The hub's counters moved by exactly the attempts.
	var got spoofCount
	if !testkit.WaitUntil(waitLong, func() bool {
		got = spoofCounters(t, e, h).sub(base)
		return got.IngestRefused >= want.ingestRefused && got.IngestRejected >= want.ingestRejected && got.MQTTDenied >= want.denied &&
			got.MQTTRefused >= want.refused && got.APIRefused >= want.apiRefused
	}) {
		t.Errorf("the hub counted %+v; want at least %+v", got, want)
	}
	// A revoke's drop is counted as a refusal too (the broker re-checks
	// the session): two more.
	wantCount := spoofCount{MQTTRefused: want.refused, MQTTDenied: want.denied, IngestRefused: want.ingestRefused,
		IngestRejected: want.ingestRejected, EnrollmentsRefused: want.enrollRefused, APIRefused: want.apiRefused}
	if got.MQTTRefused != wantCount.MQTTRefused && got.MQTTRefused != wantCount.MQTTRefused+2 {
		t.Errorf("mqtt_refused moved by %d, want %d", got.MQTTRefused, wantCount.MQTTRefused)
	}
	if got.MQTTDenied != wantCount.MQTTDenied || got.IngestRefused != wantCount.IngestRefused || got.IngestRejected != wantCount.IngestRejected ||
		got.EnrollmentsRefused != wantCount.EnrollmentsRefused || got.APIRefused != wantCount.APIRefused {
		t.Errorf("counters moved by %+v, want %+v", got, wantCount)
	}
	if got.Applied != 0 {
		t.Errorf("%d transactions applied during the attacks", got.Applied)
	}
	if !embedded {
		if n := int64(w.mosquittoLines("Denied PUBLISH from ")); n != want.mosquittoDenied {
			t.Errorf("Mosquitto logged %d denied publishes for %d attempts", n, want.mosquittoDenied)
		}
	}

	// Every attack is refused, and the ledger is as the legitimate traffic left it.
	tried, refused := tally.totals()
	var table strings.Builder
	fmt.Fprintf(&table, "%-62s %8s %8s\n", "attack", "tried", "stopped")
	for _, k := range tally.order {
		fmt.Fprintf(&table, "%-62s %8d %8d\n", k, tally.tried[k], tally.ok[k])
		if tally.ok[k] != tally.tried[k] {
			t.Errorf("%s: %d of %d refused", k, tally.ok[k], tally.tried[k])
		}
	}
	fmt.Fprintf(&table, "%-62s %8d %8d\n", "total", tried, refused)
	t.Logf("%d stores attacking each other:\n%s", spoofStores, table.String())
	if after := spoofLedger(t, h, ss); after != before {
		t.Errorf("the ledger changed under attack:\nbefore %s\nafter  %s", before, after)
	}
	h.verify(t)
	for _, s := range ss[2:] {
		if !s.conn.IsConnectionOpen() {
			t.Errorf("%s lost its connection to the attacks", s.id)
		}
	}
	out := logs.String()
	lines := []string{"MQTT publish refused", "MQTT subscription refused", "batch names another terminal"}
	if !embedded {
		lines = lines[2:]
	}
	for _, s := range ss {
		for _, line := range lines {
			if !logNames(out, line, s.store) {
				t.Errorf("the hub's log has no %q naming %s", line, s.store)
			}
		}
		if !embedded && !logNames(w.mosquitto.Output(), "Denied PUBLISH from", s.user) {
			t.Errorf("Mosquitto's log has no denied publish of %s", s.user)
		}
		for _, l := range []string{out, w.mosquittoOutput()} {
			if strings.Contains(l, s.password) || strings.Contains(l, s.secret) || strings.Contains(l, base64.RawURLEncoding.EncodeToString(s.macKey)) {
				t.Errorf("a log (the hub's, or Mosquitto's) holds %s's password, enrollment token or MAC key", s.id)
			}
		}
	}
}

// logNames reports whether some line of out says what and names store.
func logNames(out, what, store string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, what) && strings.Contains(l, store) {
			return true
		}
	}
	return false
}

// seal encodes b and adds the MAC of signer (whose key it is) for s's tx
// topic, as an enrolled till sends it.
func (s *spoofer) seal(t *testing.T, signer *spoofer, b *protocol.Batch) []byte {
	t.Helper()
	b.Version = protocol.Version
	body, err := protocol.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := protocol.TerminalTopic(s.store, s.terminal, protocol.ChannelTx)
	sealed, err := protocol.Seal(signer.macKey, tp, body)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func (s *spoofer) publish(t *testing.T, ch protocol.Channel, payload []byte) {
	t.Helper()
	tp, _ := protocol.TerminalTopic(s.store, s.terminal, ch)
	s.publishOn(t, s.conn, tp, payload)
}

func (s *spoofer) publishOn(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	if tk := c.Publish(topic, 1, false, payload); !tk.WaitTimeout(wait) || tk.Error() != nil {
		t.Fatalf("%s publishes on %s: %v", s.id, topic, tk.Error())
	}
}

// spoofLedger is what the attacks must not change: every balance, the
// number of transactions and the journal's head.
func spoofLedger(t *testing.T, h *hubRun, ss []*spoofer) string {
	t.Helper()
	var parts []string
	for _, s := range ss {
		p, _ := h.balance(t, s.store+"-m")
		parts = append(parts, fmt.Sprintf("%s=%d", s.store, p))
	}
	sort.Strings(parts)
	recs, err := h.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h.h.Ledger().Verify()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d transactions, %d journal entries (head %s), balances %s", len(recs), rep.Entries, rep.ChainHead, strings.Join(parts, " "))
}

// spoofCount is the hub's refusal counters.
type spoofCount struct {
	MQTTRefused        int64 `json:"mqtt_refused"`
	MQTTDenied         int64 `json:"mqtt_denied"`
	EnrollmentsRefused int64 `json:"enrollments_refused"`
	APIRefused         int64 `json:"api_refused"`
	IngestRefused      int64
	IngestRejected     int64
	Applied            int64
}

func (c spoofCount) sub(b spoofCount) spoofCount {
	return spoofCount{c.MQTTRefused - b.MQTTRefused, c.MQTTDenied - b.MQTTDenied, c.EnrollmentsRefused - b.EnrollmentsRefused,
		c.APIRefused - b.APIRefused, c.IngestRefused - b.IngestRefused, c.IngestRejected - b.IngestRejected, c.Applied - b.Applied}
}

func spoofCounters(t *testing.T, e *env, h *hubRun) spoofCount {
	t.Helper()
	var c spoofCount
	resp := hubRequest(t, e, "GET", "/v1/health", nil)
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	st := h.h.Stats()
	c.IngestRefused, c.IngestRejected, c.Applied = st.Refused, st.Rejected, st.Applied
	return c
}
