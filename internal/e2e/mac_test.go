package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// enrollTerminal registers and enrolls store/terminal at the env's hub and
// writes the till's data dir, as tillsync-agent enroll does.
func enrollTerminal(t *testing.T, e *env, st ledger.Store, store, terminal string) (string, httpapi.EnrollAnswer) {
	t.Helper()
	if err := st.AddTerminal(store, terminal, time.Now()); err != nil {
		t.Fatal(err)
	}
	var tok httpapi.EnrollmentTokenAnswer
	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/"+terminal+"/enrollment-token", nil, &tok); st != http.StatusCreated {
		t.Fatalf("enrollment token: HTTP %d %s", st, code)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	var ans httpapi.EnrollAnswer
	if st, code := hubPost(t, e, "/v1/enroll", map[string]string{"token": tok.Token, "public_key": base64.StdEncoding.EncodeToString(pub)}, &ans); st != http.StatusCreated {
		t.Fatalf("enroll: HTTP %d %s", st, code)
	}
	dir := t.TempDir()
	enr := agent.Enrollment{Store: ans.Store, Terminal: ans.Terminal, Partner: ans.Partner, Username: ans.MQTTUsername,
		Password: ans.MQTTPassword, MemberTokenKeys: ans.MemberTokenKeys, MACKey: ans.MACKey}
	if err := agent.SaveEnrollment(dir, enr, priv, []byte(ans.CAPEM)); err != nil {
		t.Fatal(err)
	}
	return dir, ans
}

// intruder is an MQTT client of a permissive broker: anonymous, it may
// publish and subscribe anywhere, as anyone reaching a broker without ACLs
// can.
type intruder struct {
	c   mqtt.Client
	mu  sync.Mutex
	got map[string][][]byte // by topic
}

func newIntruder(t *testing.T, url string) *intruder {
	t.Helper()
	in := &intruder{got: map[string][][]byte{}}
	in.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(randomID("intruder-")).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(3 * time.Second))
	if tok := in.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("the intruder cannot connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { in.c.Disconnect(0) })
	return in
}

func (in *intruder) listen(t *testing.T, topic string) {
	t.Helper()
	tok := in.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		in.mu.Lock()
		in.got[m.Topic()] = append(in.got[m.Topic()], bytes.Clone(m.Payload()))
		in.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
}

func (in *intruder) captured(topic string) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got[topic])
}

func (in *intruder) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := in.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

func topicOf(t *testing.T, store, terminal string, ch protocol.Channel) string {
	t.Helper()
	s, err := protocol.TerminalTopic(store, terminal, ch)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sealWith(t *testing.T, key []byte, topic string, v any) []byte {
	t.Helper()
	body, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := protocol.Seal(key, topic, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func earnTx(store, terminal, id, member string, points int64, seq uint64) protocol.Transaction {
	return protocol.Transaction{ID: id, Store: store, Terminal: terminal, Partner: e2ePartner, Member: member, Kind: protocol.KindEarn,
		Amount: points * 100, Currency: "EUR", Points: points, Seq: seq, CreatedAt: time.Now().Add(-time.Minute)}
}

func batchOf(store, terminal string, version int, txs ...protocol.Transaction) *protocol.Batch {
	return &protocol.Batch{Version: version, Store: store, Terminal: terminal, SentAt: time.Now(), Txs: txs}
}

// TestMACOnPermissiveBroker: on brokers that let anyone publish and read
// anything — a broker with no access rules, and the Mosquitto that
// TILLSYNC_TEST_MQTT names — the MACs alone keep every store to itself.
// The hub refuses batches naming another store or terminal than their
// topic, batches of an enrolled terminal without a MAC or with a wrong
// one, a captured batch changed or replayed under a new id, and queries
// without a MAC; it rejects a reused terminal sequence number seq_reused;
// the till refuses forged acks and keeps its transaction until the hub's
// real ack. Through all of it the ledger holds exactly the tills' own
// transactions, and verifies.
func TestMACOnPermissiveBroker(t *testing.T) {
	urls := map[string]string{"no access rules": testkit.StartBroker(t).URL}
	if u := testkit.ExternalBroker(); u != "" {
		urls["TILLSYNC_TEST_MQTT"] = u
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) { macOnPermissiveBroker(t, url) })
	}
}

func macOnPermissiveBroker(t *testing.T, url string) {
	e := &env{t: t, external: url, hubDir: filepath.Join(t.TempDir(), "hub"), clientID: randomID("tillsync-hub-e2e-"), httpAddr: testkit.FreePort(t)}
	hp := e.startHub()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			hp.stop(t)
		}
	})
	store, other := e.store("mac-"), e.store("mac-other-")
	dir1, ans1 := enrollTerminal(t, e, hp.h.Ledger(), store, "till-1")
	enrollTerminal(t, e, hp.h.Ledger(), other, "till-1")
	key1, err := base64.RawURLEncoding.DecodeString(ans1.MACKey)
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := store+"-m1", other+"-m2"
	tx1, ack1 := topicOf(t, store, "till-1", protocol.ChannelTx), topicOf(t, store, "till-1", protocol.ChannelAck)

	in := newIntruder(t, url)
	in.listen(t, tx1) // nothing stops it on such a broker
	a1 := startTill(t, agent.Options{DataDir: dir1, Broker: url, Store: store, Terminal: "till-1"})
	first := a1.earn(t, m1, 1000)
	a1.waitDrained(t)
	testkit.WaitFor(t, waitLong, "the intruder to capture till-1's batch", func() bool { return len(in.captured(tx1)) > 0 })
	genuine := in.captured(tx1)[0]
	gb, err := protocol.DecodeBatch(genuine)
	if err != nil || gb.MAC == "" || gb.Version != protocol.Version {
		t.Fatalf("till-1 sent %s (%v); want a sealed batch of version %d", genuine, err, protocol.Version)
	}
	stats := func() (refused, mac, replays int64) {
		s := hp.h.Stats()
		return s.Refused, s.MACRefused, s.Replays
	}
	r0, mac0, _ := stats()

	wrongKey := bytes.Repeat([]byte{0xee}, protocol.MACKeyLen)
	forged := []struct {
		what    string
		topic   string
		payload []byte
		mac     bool // refused for its MAC (else for naming another terminal)
	}{
		{"another store's transaction on till-1's topic", tx1,
			mustEncode(t, batchOf(other, "till-1", protocol.UnsealedVersion, earnTx(other, "till-1", "forged-1", m2, 500, 1))), false},
		{"till-1's transaction on another store's topic", topicOf(t, other, "till-1", protocol.ChannelTx), genuine, false},
		{"a batch of till-1 without a MAC", tx1,
			mustEncode(t, batchOf(store, "till-1", protocol.UnsealedVersion, earnTx(store, "till-1", "forged-2", m1, 500, 90))), true},
		{"a batch of till-1 with a MAC under another key", tx1,
			sealWith(t, wrongKey, tx1, batchOf(store, "till-1", protocol.Version, earnTx(store, "till-1", "forged-3", m1, 500, 91))), true},
		{"till-1's captured batch with more points", tx1,
			bytes.Replace(genuine, []byte(`"points":10,`), []byte(`"points":99,`), 1), true},
		{"till-1's captured batch under a new id", tx1,
			bytes.Replace(genuine, []byte(first.TxID), []byte("forged-4"+first.TxID[8:]), 1), true},
		{"the other store's enrolled terminal, without a MAC", topicOf(t, other, "till-1", protocol.ChannelTx),
			mustEncode(t, batchOf(other, "till-1", protocol.UnsealedVersion, earnTx(other, "till-1", "forged-5", m2, 500, 1))), true},
		{"a balance query for till-1 without a MAC", topicOf(t, store, "till-1", protocol.ChannelQuery),
			mustEncode(t, &protocol.BalanceQuery{Version: protocol.UnsealedVersion, RequestID: "q1", Member: m1}), true},
	}
	var wantMAC, wantOther int64
	for _, f := range forged {
		if bytes.Equal(f.payload, genuine) && f.topic == tx1 {
			t.Fatalf("%s: the forgery did not change the batch", f.what)
		}
		in.publish(t, f.topic, f.payload)
		if f.mac {
			wantMAC++
		} else {
			wantOther++
		}
	}
	testkit.WaitFor(t, waitLong, fmt.Sprintf("the hub to refuse %d forgeries", len(forged)), func() bool {
		r, mac, _ := stats()
		return mac-mac0 >= wantMAC && r-r0 >= wantMAC+wantOther
	})
	if r, mac, _ := stats(); mac-mac0 != wantMAC || r-r0 != wantMAC+wantOther {
		t.Fatalf("refused %d (%d for their MAC), want %d (%d)", r-r0, mac-mac0, wantMAC+wantOther, wantMAC)
	}
	// Sent again as it was, the captured batch is only a duplicate.
	in.publish(t, tx1, genuine)

	// Reused sequence numbers: a terminal that never enrolled sends without
	// a MAC, and a new id under a number it used is rejected; so is one
	// sealed by the holder of till-1's key under till-1's number.
	tx9 := topicOf(t, store, "till-9", protocol.ChannelTx)
	in.publish(t, tx9, mustEncode(t, batchOf(store, "till-9", protocol.UnsealedVersion, earnTx(store, "till-9", "u9-1", m1, 5, 1))))
	testkit.WaitFor(t, waitLong, "till-9's earn", func() bool { _, ok := hpRecord(t, hp, "u9-1"); return ok })
	in.publish(t, tx9, mustEncode(t, batchOf(store, "till-9", protocol.UnsealedVersion, earnTx(store, "till-9", "u9-replay", m1, 500, 1))))
	in.publish(t, tx1, sealWith(t, key1, tx1, batchOf(store, "till-1", protocol.Version, earnTx(store, "till-1", "t1-replay", m1, 500, gb.Txs[0].Seq))))
	for _, id := range []string{"u9-replay", "t1-replay"} {
		testkit.WaitFor(t, waitLong, "the answer to "+id, func() bool { _, ok := hpRecord(t, hp, id); return ok })
		if r, _ := hpRecord(t, hp, id); r.Status != protocol.StatusRejected || r.Code != protocol.CodeSeqReused {
			t.Fatalf("%s: %+v, want rejected seq_reused", id, r)
		}
	}
	// The counters move after the commit that makes the records readable.
	testkit.WaitFor(t, waitLong, "replays_refused to count both", func() bool { _, _, replays := stats(); return replays >= 2 })
	if _, _, replays := stats(); replays != 2 {
		t.Fatalf("replays_refused %d, want 2", replays)
	}

	// Forged acks: with the hub away, till-1's earn stays queued whatever
	// acks the intruder sends it, and is booked once the hub is back.
	hp.stop(t)
	stopped = true
	second := a1.earn(t, m1, 700)
	fake := func(id string) *protocol.AckBatch {
		return &protocol.AckBatch{Version: protocol.Version, Acks: []protocol.Ack{{ID: id, Status: protocol.StatusApplied, Member: m1, Balance: 1_000_000}}}
	}
	for _, p := range [][]byte{
		mustEncode(t, fake(second.TxID)),
		sealWith(t, wrongKey, ack1, fake(second.TxID)),
		sealWith(t, key1, topicOf(t, store, "till-1", protocol.ChannelReply), fake(second.TxID)),
		func() []byte { // a genuine ack of another transaction, its id changed
			fake := sealWith(t, key1, ack1, fake(first.TxID))
			return bytes.Replace(fake, []byte(first.TxID), []byte(second.TxID), 1)
		}(),
	} {
		in.publish(t, ack1, p)
	}
	testkit.WaitFor(t, waitLong, "till-1 to refuse 4 forged acks", func() bool { return a1.health(t).MACRefused == 4 })
	if n := a1.queued(t); n != 1 {
		t.Fatalf("till-1's outbox holds %d after the forged acks, want its earn", n)
	}
	hp = e.startHub()
	stopped = false
	a1.waitDrained(t)

	// The ledger: till-1's two earns and till-9's, and the two replays
	// rejected; nothing else.
	recs, err := hp.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Store == store || r.Store == other {
			ids = append(ids, r.ID)
		}
	}
	want := []string{first.TxID, second.TxID, "t1-replay", "u9-1", "u9-replay"}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("the ledger holds %v, want %v", ids, want)
	}
	if b, _, _ := hp.h.Ledger().Balance(m1); b != 10+7+5 {
		t.Fatalf("balance of %s: %d, want 22", m1, b)
	}
	if _, known, _ := hp.h.Ledger().Balance(m2); known {
		t.Fatalf("%s, for whom only forgeries were sent, has a balance", m2)
	}
	rep, err := hp.h.Ledger().Verify()
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if strings.Contains(fmt.Sprint(a1.health(t)), ans1.MACKey) {
		t.Fatal("health shows the MAC key")
	}
}

func hpRecord(t *testing.T, hp *hubProc, id string) (ledger.TxRecord, bool) {
	t.Helper()
	recs, err := hp.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return ledger.TxRecord{}, false
}

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
