//go:build unix

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// mqttCase is one bad message an enrolled terminal publishes.
type mqttCase struct {
	input   string
	channel protocol.Channel
	payload []byte
	// mac refused: counted as not authenticated too.
	mac bool
	// code is the protocol code of the refusal, when it has one.
	code string
}

// mqtt publishes bad messages as an enrolled terminal (till-2, with its
// own credentials and MAC key, through the embedded broker): the hub
// refuses each before the ledger, counts it once (ingest refused; a wrong
// MAC also mac_refused), answers nothing, and the ledger is as before. A
// packet over the broker's limit never reaches the hub: the broker closes
// the connection.
func (tr *tour) mqtt() {
	t := tr.t
	_, ans := enrollTerminal(t, tr.e, tr.h.h.Ledger(), tourStore, tourMQTTTill)
	key, err := base64.RawURLEncoding.DecodeString(ans.MACKey)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	o := mqtt.NewClientOptions().AddBroker(tr.e.brokerURL()).SetClientID(protocol.AgentClientID(tourStore, tourMQTTTill)).
		SetUsername(ans.MQTTUsername).SetPassword(ans.MQTTPassword).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	if tc, err := agent.HubTLSConfig(tr.e.brokerURL(), hubCA(tr.e.brokerURL())); err != nil {
		t.Fatal(err)
	} else {
		o.SetTLSConfig(tc)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("till-2 cannot connect with its credentials: %v", tok.Error())
	}
	defer c.Disconnect(0)

	now := time.Now().UTC().Truncate(time.Second)
	tx := func(id, member string) protocol.Transaction {
		return protocol.Transaction{ID: id, Store: tourStore, Terminal: tourMQTTTill, Partner: e2ePartner, Member: member,
			Kind: protocol.KindEarn, Amount: 1000, Currency: "EUR", Points: 10, Seq: 1, CreatedAt: now}
	}
	sealed := func(ch protocol.Channel, v any) []byte {
		return sealWith(t, key, topicOf(t, tourStore, tourMQTTTill, ch), v)
	}
	batch := func(mut func(b *protocol.Batch)) []byte {
		b := batchOf(tourStore, tourMQTTTill, protocol.Version, tx("01J0TOUR000000000000000001", tourMember))
		b.SentAt = now
		mut(b)
		return sealed(protocol.ChannelTx, b)
	}
	many := make([]protocol.Transaction, protocol.MaxBatchTxs+1)
	for i := range many {
		many[i] = tx(fmt.Sprintf("01J0TOUR%018d", i), tourMember)
		many[i].Seq = uint64(i + 1)
	}
	wrongMAC := batch(func(*protocol.Batch) {})
	i := bytes.LastIndex(wrongMAC, []byte(`"mac":"`)) + len(`"mac":"`)
	wrongMAC[i] ^= 1
	oversize := batch(func(b *protocol.Batch) { b.Txs[0].Receipt = strings.Repeat("r", protocol.MaxBatchBytes) })
	query := func(member string) []byte {
		return sealed(protocol.ChannelQuery, protocol.BalanceQuery{Version: protocol.Version, RequestID: "q1", Member: member})
	}
	sighting := sealed(protocol.ChannelScan, protocol.Sighting{Version: protocol.Version, Store: tourStore, Terminal: tourMQTTTill, Token: "TS1.forged", At: now})

	cases := []mqttCase{
		{"`tx`: not JSON", protocol.ChannelTx, []byte("hello"), false, "malformed"},
		{"`tx`: a JSON array", protocol.ChannelTx, []byte("[]"), false, "malformed"},
		{"`tx`: a batch over 512 KiB", protocol.ChannelTx, oversize, false, "too_large"},
		{"`tx`: protocol version 99", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Version = 99 }), false, "unsupported"},
		{"`tx`: a batch without transactions", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Txs = nil }), false, "missing_field"},
		{"`tx`: a batch of 501 transactions", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Txs = many }), false, "too_many"},
		{"`tx`: backlog `-1`", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Backlog = -1 }), false, "invalid_amount"},
		{"`tx`: a batch naming store other-store", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Store = "other-store" }), false, ""},
		{"`tx`: a batch whose MAC is one bit off", protocol.ChannelTx, wrongMAC, true, ""},
		{"`tx`: a transaction whose id is `a/b`", protocol.ChannelTx, batch(func(b *protocol.Batch) { b.Txs[0].ID = "a/b" }), false, "invalid_id"},
		{"`query`: not JSON", protocol.ChannelQuery, []byte("{"), false, "malformed"},
		{"`query`: member `M#1`", protocol.ChannelQuery, query("M#1"), false, "invalid_id"},
		{"`scan`: a sighting of a token the coalition did not sign", protocol.ChannelScan, sighting, false, "token_malformed"},
	}
	for _, cs := range cases {
		topic := topicOf(t, tourStore, tourMQTTTill, cs.channel)
		var reason string
		tr.unchanged("MQTT "+cs.input, func() {
			before, logged := tr.h.h.Stats(), len(tr.hubLog.String())
			if tok := c.Publish(topic, 1, false, cs.payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("MQTT %s: publish: %v", cs.input, tok.Error())
			}
			// The hub counts a refusal, then logs it: wait for both.
			testkit.WaitFor(t, waitLong, "the hub to refuse "+cs.input, func() bool {
				return tr.h.h.Stats().Refused > before.Refused && strings.Contains(tr.hubLog.String()[logged:], `"msg":"message refused`)
			})
			after := tr.h.h.Stats()
			wantMAC := int64(0)
			if cs.mac {
				wantMAC = 1
			}
			if after.Refused != before.Refused+1 || after.MACRefused != before.MACRefused+wantMAC || after.Dropped != before.Dropped {
				t.Errorf("MQTT %s: refused %d -> %d, mac_refused %d -> %d, dropped %d -> %d; want one refusal", cs.input,
					before.Refused, after.Refused, before.MACRefused, after.MACRefused, before.Dropped, after.Dropped)
			}
			reason = refusalLogged(t, tr.hubLog.String()[logged:], cs.input)
		})
		if cs.code != "" && !strings.Contains(reason, cs.code+": ") {
			t.Errorf("MQTT %s: refused for %q, want code %s", cs.input, reason, cs.code)
		}
		tr.record(tourRow{Surface: "MQTT", Input: cs.input, Answer: answerMQTT(cs.mac), Code: cs.code, Message: reason})
	}

	// A packet over the broker's limit: the broker closes the connection
	// and the hub never sees it.
	tr.unchanged("MQTT a packet over the broker's limit", func() {
		before := tr.h.h.Stats()
		c.Publish(topicOf(t, tourStore, tourMQTTTill, protocol.ChannelTx), 1, false, bytes.Repeat([]byte("b"), broker.MaxPacketSize+1))
		select {
		case <-lost:
		case <-time.After(waitLong):
			t.Fatal("MQTT: the broker kept a connection that sent a packet over its limit")
		}
		if after := tr.h.h.Stats(); after.Refused != before.Refused || after.Batches != before.Batches {
			t.Errorf("MQTT: a packet over the broker's limit reached the hub: %+v -> %+v", before, after)
		}
	})
	tr.record(tourRow{Surface: "MQTT", Input: "`tx`: a packet over the broker's limit (528 KiB)", Answer: "the broker closes the connection; the hub sees nothing"})
}

func answerMQTT(mac bool) string {
	if mac {
		return "refused, unanswered; counted `refused` and `mac_refused`"
	}
	return "refused, unanswered; counted `refused`"
}

// refusalLogged finds the hub's log line of a refused message in log and
// returns what it says: the refusal and its reason.
func refusalLogged(t interface {
	Helper()
	Errorf(string, ...any)
}, log, what string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg string `json:"msg"`
			Err string `json:"err"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, "message refused") {
			continue
		}
		return rec.Msg + ": " + rec.Err
	}
	t.Errorf("MQTT %s: the hub logged no refusal", what)
	return ""
}
