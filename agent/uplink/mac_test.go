package uplink

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

var testMACKey = bytes.Repeat([]byte{0x5a}, protocol.MACKeyLen)

// TestMACSealsAndRefuses: an uplink with a MAC key seals its batches and
// queries (version 3), and takes only acks and replies sealed with the
// key for its own topics: a forged ack — without a MAC, under another key,
// or sealed for another topic — deletes nothing, is counted, and logged
// once a minute.
func TestMACSealsAndRefuses(t *testing.T) {
	var logs testkit.Buffer
	ackTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelAck)
	replyTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelReply)
	queryTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelQuery)
	txTopic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelTx)
	var raw [][]byte
	queries := make(chan []byte, 4)
	f := newFixtureWith(t, time.Hour, func(f *fixture, o *Options) {
		o.MACKey = testMACKey
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		tok := f.peer.Subscribe(txTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
			f.mu.Lock()
			raw = append(raw, bytes.Clone(m.Payload()))
			f.mu.Unlock()
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		tok = f.peer.Subscribe(queryTopic, 0, func(_ mqtt.Client, m mqtt.Message) { queries <- bytes.Clone(m.Payload()) })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	})
	id := f.append(t, protocol.KindEarn, "")
	testkit.WaitFor(t, 5*time.Second, "the batch", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(raw) == 1 })
	f.mu.Lock()
	p := raw[0]
	f.mu.Unlock()
	b, err := protocol.DecodeBatch(p)
	if err != nil || b.Version != protocol.Version || protocol.VerifyMAC(testMACKey, txTopic, p, b.MAC) != nil {
		t.Fatalf("batch %s: %v", p, err)
	}

	acks := func(version int) []byte {
		return encodeT(t, &protocol.AckBatch{Version: version, Acks: []protocol.Ack{{ID: id, Status: protocol.StatusApplied, Member: "m1", Balance: 10}}})
	}
	other := bytes.Clone(testMACKey)
	other[5] ^= 1
	for _, forged := range [][]byte{
		acks(protocol.UnsealedVersion),
		sealT(t, other, ackTopic, acks(protocol.Version)),
		sealT(t, testMACKey, replyTopic, acks(protocol.Version)),
		sealT(t, testMACKey, txTopic, acks(protocol.Version)),
	} {
		f.peer.Publish(ackTopic, 1, false, forged)
	}
	testkit.WaitFor(t, 5*time.Second, "the forged acks to be refused", func() bool { return f.up.MACRefused() == 4 })
	if q, _ := f.ob.Queued(id); !q {
		t.Fatal("a forged ack deleted the transaction")
	}
	if n := strings.Count(logs.String(), "ignoring an ack batch not sealed"); n != 1 {
		t.Fatalf("%d warnings for 4 forged acks within a minute, want 1:\n%s", n, logs.String())
	}

	// A balance reply must be sealed too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answered := make(chan protocol.BalanceReply, 1)
	go func() {
		r, err := f.up.Query(ctx, "m1")
		if err == nil {
			answered <- r
		}
	}()
	qp := <-queries
	q, err := protocol.DecodeBalanceQuery(qp)
	if err != nil || q.Version != protocol.Version || protocol.VerifyMAC(testMACKey, queryTopic, qp, q.MAC) != nil {
		t.Fatalf("query %s: %v", qp, err)
	}
	reply := encodeT(t, &protocol.BalanceReply{Version: protocol.Version, RequestID: q.RequestID, Member: "m1", Known: true, Balance: 1_000_000})
	f.peer.Publish(replyTopic, 0, false, reply)
	testkit.WaitFor(t, 5*time.Second, "the forged reply to be refused", func() bool { return f.up.MACRefused() == 5 })
	reply = encodeT(t, &protocol.BalanceReply{Version: protocol.Version, RequestID: q.RequestID, Member: "m1", Known: true, Balance: 7})
	f.peer.Publish(replyTopic, 0, false, sealT(t, testMACKey, replyTopic, reply))
	select {
	case r := <-answered:
		if r.Balance != 7 {
			t.Fatalf("reply %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the genuine reply was not taken")
	}

	// The genuine ack deletes it.
	f.peer.Publish(ackTopic, 1, false, sealT(t, testMACKey, ackTopic, acks(protocol.Version)))
	testkit.WaitFor(t, 5*time.Second, "the sealed ack to empty the outbox", func() bool {
		n, _, _ := f.ob.Stats()
		return n == 0
	})
	if n := f.up.MACRefused(); n != 5 {
		t.Fatalf("MACRefused %d after the genuine ack", n)
	}
}

func TestNewRefusesShortMACKey(t *testing.T) {
	if _, err := New(Options{Broker: "tcp://x:1", Store: "s", Terminal: "t", Outbox: nopOutbox{}, MACKey: testMACKey[:16]}); err == nil {
		t.Fatal("a 16-byte MAC key accepted")
	}
}

func encodeT(t *testing.T, v any) []byte {
	t.Helper()
	b, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sealT(t *testing.T, key []byte, topic string, body []byte) []byte {
	t.Helper()
	p, err := protocol.Seal(key, topic, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
