package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// blockLimit is how long one Handle call may take before the fuzz target
// calls it blocked; Handle does no I/O, so anything near this is a hang.
const blockLimit = 5 * time.Second

func fuzzLedger(f *testing.F) *ledger.BoltStore {
	st, err := ledger.OpenBolt(filepath.Join(f.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	registerTestStores(f, st)
	return st
}

// within runs fn and fails t if it does not return within blockLimit.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(blockLimit):
		t.Fatalf("%s blocked for %s", what, blockLimit)
	}
}

func txSeeds(f *testing.F) {
	batchJSON, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", "batch.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("tillsync/v1/stores/store-042/terminals/till.3/tx", batchJSON)
	f.Add("tillsync/v1/stores/store-042/terminals/till.4/tx", batchJSON)
	f.Add("tillsync/v1/stores/store-042/terminals/till.3/ack", batchJSON)

	tl := ledgertest.NewTill("s1", "t1", "p1")
	good := tl.Batch(f, tl.Earn("e1", "m1", 10), tl.Burn("b1", "m1", 4), tl.Reverse("r1", "m1", 2, "e1"), tl.Void("v1", "m1", "b1"))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", encode(f, good))
	mixed := *good
	mixed.Txs = append([]protocol.Transaction(nil), good.Txs...)
	mixed.Txs[1].ID = "a b"
	mixed.Txs[2].Currency = "eur"
	mixed.Txs[3].Store = "s2"
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", encode(f, &mixed))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", []byte(`{"version":1,"store":"s1","terminal":"t1","txs":[{"id":""},{"id":"x"},{"id":"x"}]}`))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", []byte(`{"version":1,"store":"s1","terminal":"t1","txs":[]}`))
	f.Add("tillsync/v1/stores/+/terminals/#", []byte(`{}`))
	f.Add("", []byte(""))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", []byte("null"))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", []byte(`{"version":1,"store":"s1","terminal":"t1","txs":[{}]}}`))
}

// FuzzHandleTx: whatever arrives on whatever topic, HandleTx never panics or
// blocks; a message is either refused before the queue or, once committed,
// answered with one ack batch the agent can decode on its own terminal's ack
// topic, one ack per transaction with a usable id.
func FuzzHandleTx(f *testing.F) {
	txSeeds(f)
	st := fuzzLedger(f)
	fake := clock.NewFake(ledgertest.T0)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fuzzlimit.Check(t)
		rec := &recorder{}
		in := ingest.New(ingest.Options{Store: st, Publish: rec.publish, QueueSize: 1, Clock: fake})
		// Twice: the second finds the queue full if the first was taken.
		within(t, "HandleTx", func() {
			in.HandleTx(topic, payload)
			in.HandleTx(topic, payload)
		})

		store, terminal, ch, terr := protocol.ParseTerminalTopic(topic)
		b, berr := protocol.ParseBatch(payload)
		// No terminal of the fuzz ledger has enrolled, so none has a MAC
		// key: a batch carrying a MAC cannot verify and is refused as a
		// forgery.
		accepted := terr == nil && ch == protocol.ChannelTx && berr == nil && b.Store == store && b.Terminal == terminal && b.MAC == ""
		stats := in.Stats()
		if !accepted {
			if stats.Refused != 2 || stats.QueueDepth != 0 || stats.Dropped != 0 {
				t.Fatalf("a refused message left stats %+v", stats)
			}
			within(t, "Run with nothing queued", func() { drain(t, in) })
			if n := rec.count(); n != 0 {
				t.Fatalf("a refused message produced %d publishes", n)
			}
			return
		}
		var usable []string
		for _, tx := range b.Txs {
			if protocol.ValidID(tx.ID) {
				usable = append(usable, tx.ID)
			}
		}
		if want := int64(2 * (len(b.Txs) - len(usable))); stats.Refused != want || stats.QueueDepth != 1 || stats.Dropped != 1 {
			t.Fatalf("stats %+v, want refused %d (id-less transactions, twice), one queued, one dropped", stats, want)
		}

		// Run with a cancelled context commits what is queued and returns.
		within(t, "Run draining the queue", func() { drain(t, in) })
		msgs := rec.all()
		if len(msgs) != 1 {
			t.Fatalf("%d publishes for one accepted batch, want 1", len(msgs))
		}
		if want, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelAck); msgs[0].Topic != want || msgs[0].QoS != 0 {
			t.Fatalf("acks on %q qos %d, want %q qos 0", msgs[0].Topic, msgs[0].QoS, want)
		}
		acks := decodeAcks(t, msgs[0])
		if len(acks) != len(usable) {
			t.Fatalf("%d acks for %d transactions with a usable id", len(acks), len(usable))
		}
		want := make(map[string]int)
		for _, id := range usable {
			want[id]++
		}
		for _, a := range acks {
			if want[a.ID] == 0 {
				t.Fatalf("ack for %q, which the batch did not carry (or not that often)", a.ID)
			}
			want[a.ID]--
		}
		if s := in.Stats(); s.Batches != 1 || s.Applied+s.Duplicates+s.Rejected+s.Held != int64(len(usable)) {
			t.Fatalf("stats %+v after one batch of %d answerable transactions", s, len(usable))
		}
	})
}

// drain runs in.Run with an already cancelled context.
func drain(t *testing.T, in *ingest.Ingest) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := in.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// FuzzHandleQuery: HandleQuery never panics or blocks, refuses what is not a
// query, and answers every query on the asking terminal's reply topic.
func FuzzHandleQuery(f *testing.F) {
	f.Add("tillsync/v1/stores/s1/terminals/t1/query", []byte(`{"version":1,"request_id":"r1","member":"m1"}`))
	f.Add("tillsync/v1/stores/s1/terminals/t1/query", []byte(`{"version":1,"request_id":"r1","member":"nobody"}`))
	f.Add("tillsync/v1/stores/s1/terminals/t1/tx", []byte(`{"version":1,"request_id":"r1","member":"m1"}`))
	f.Add("tillsync/v1/stores/s1/terminals/t1/query", []byte(`{"version":1,"request_id":"r/1","member":"m1"}`))
	f.Add("tillsync/v1/stores/s1/terminals/t1/query", []byte(`{"version":1,"request_id":"r1","member":"m1"}x`))
	f.Add("", []byte(nil))
	st := fuzzLedger(f)
	tl := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Apply(f, st, ledgertest.T0, tl.Batch(f, tl.Earn("e1", "m1", 10)))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fuzzlimit.Check(t)
		rec := &recorder{}
		in := ingest.New(ingest.Options{Store: st, Publish: rec.publish, Clock: clock.NewFake(ledgertest.T0)})
		within(t, "HandleQuery", func() { in.HandleQuery(topic, payload) })

		store, terminal, ch, terr := protocol.ParseTerminalTopic(topic)
		q, qerr := protocol.DecodeBalanceQuery(payload)
		// A MAC cannot verify: no terminal of the fuzz ledger has a key.
		accepted := terr == nil && ch == protocol.ChannelQuery && qerr == nil && q.MAC == ""
		if s := in.Stats(); accepted == (s.Refused != 0) {
			t.Fatalf("query accepted=%v, but stats %+v", accepted, s)
		}
		if !accepted {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			in.Run(ctx)
		}()
		defer func() { cancel(); <-done }()
		testkit.WaitFor(t, blockLimit, "the reply", func() bool { return rec.count() > 0 })
		m := rec.all()[0]
		if want, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelReply); m.Topic != want {
			t.Fatalf("reply on %q, want %q", m.Topic, want)
		}
		r, err := protocol.DecodeBalanceReply(m.Payload)
		if err != nil {
			t.Fatalf("undecodable reply: %v", err)
		}
		if r.RequestID != q.RequestID || r.Member != q.Member || r.Known != (q.Member == "m1") {
			t.Fatalf("reply %+v to query %+v", r, q)
		}
		// A reply speaks the version the query spoke, so the till reads it.
		if r.Version != q.Version {
			t.Fatalf("reply speaks version %d, want the query's %d", r.Version, q.Version)
		}
	})
}
