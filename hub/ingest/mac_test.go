package ingest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// enroll enrolls a registered store's terminal in st and returns its MAC key.
func enroll(t testing.TB, st ledger.Store, store, terminal string) []byte {
	t.Helper()
	if err := st.AddTerminal(store, terminal, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	tok, err := st.IssueEnrollmentToken(store, terminal, 0, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	creds, err := st.Enroll(tok.ID, tok.Secret, pub, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	return creds.MACKey
}

// sealed encodes v and seals it with key for topic.
func sealed(t testing.TB, key []byte, topic string, v any) []byte {
	t.Helper()
	p, err := protocol.Seal(key, topic, encode(t, v))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// v3 marks a batch as an enrolled till sends it: version 3, sealed.
func v3(b *protocol.Batch) *protocol.Batch {
	b.Version = protocol.Version
	return b
}

// checkSealedAcks decodes an ack batch published on topic, checks it is
// sealed with key in version, and returns its acks.
func checkSealedAcks(t *testing.T, p published, key []byte, version int) []protocol.Ack {
	t.Helper()
	ab, err := protocol.DecodeAckBatch(p.Payload)
	if err != nil {
		t.Fatalf("ack batch: %v", err)
	}
	if err := protocol.VerifyMAC(key, p.Topic, p.Payload, ab.MAC); err != nil {
		t.Fatalf("ack batch on %s: %v\n%s", p.Topic, err, p.Payload)
	}
	if ab.Version != version {
		t.Fatalf("ack batch of version %d, want %d", ab.Version, version)
	}
	return ab.Acks
}

// TestMACRequired: with a broker that does not say who published (an
// external one), an enrolled terminal's batches, queries and sightings go
// through only with its MAC, and its acks and replies are sealed; a
// message without a MAC, or with a wrong one, is refused, counted, never
// answered, and leaves the ledger as it was. A terminal that never
// enrolled still syncs (and gets unsealed answers in its version); a
// revoked one does not.
func TestMACRequired(t *testing.T) {
	f := newFixture(t, ingest.Options{RequireMAC: true, TokenKeys: []ed25519.PublicKey{coalitionKey.Public().(ed25519.PublicKey)}}, nil)
	key := enroll(t, f.store, "s1", "t1")
	f.run(t)
	till := ledgertest.NewTill("s1", "t1", "p1")
	txTopic, ackTopic := topic(t, "s1", "t1", protocol.ChannelTx), topic(t, "s1", "t1", protocol.ChannelAck)

	e1 := till.Earn("e1", "m1", 100)
	f.in.HandleTx(txTopic, sealed(t, key, txTopic, v3(till.Batch(t, e1))))
	testkit.WaitFor(t, wait, "the ack", func() bool { return f.rec.count() == 1 })
	if got := checkSealedAcks(t, f.rec.all()[0], key, protocol.Version); !reflect.DeepEqual(got, []protocol.Ack{applied("e1", "m1", 100, 100)}) {
		t.Fatalf("acks %+v", got)
	}
	before := takeSnapshot(t, f.store, "m1", "m2")

	other := bytes.Clone(key)
	other[0] ^= 1
	t2Topic := topic(t, "s1", "t2", protocol.ChannelTx)
	forged := []struct {
		name    string
		topic   string
		payload []byte
	}{
		{"no MAC", txTopic, encode(t, till.Batch(t, till.Earn("f1", "m2", 500)))},
		{"a MAC under another key", txTopic, sealed(t, other, txTopic, v3(till.Batch(t, till.Earn("f2", "m2", 500))))},
		{"a MAC for another terminal's topic", txTopic, sealed(t, key, t2Topic, v3(till.Batch(t, till.Earn("f3", "m2", 500))))},
		{"a MAC copied from a genuine batch", txTopic, func() []byte {
			genuine := sealed(t, key, txTopic, v3(till.Batch(t, till.Earn("f4", "m2", 1))))
			b := v3(till.Batch(t, till.Earn("f4", "m2", 900)))
			d, _ := protocol.DecodeBatch(genuine)
			b.MAC = d.MAC
			return encode(t, b)
		}()},
		{"a sealed batch with a changed amount", txTopic, bytes.Replace(sealed(t, key, txTopic, v3(till.Batch(t, till.Earn("f5", "m2", 5)))), []byte(`"points":5`), []byte(`"points":9`), 1)},
		{"a sealed batch with its MAC cut off", txTopic, func() []byte {
			p := sealed(t, key, txTopic, v3(till.Batch(t, till.Earn("f6", "m2", 5))))
			return append(p[:len(p)-len(`,"mac":"`)-43-2], '}')
		}()},
	}
	for _, c := range forged {
		f.in.HandleTx(c.topic, c.payload)
	}
	q := func(k []byte, id string) []byte {
		qt := topic(t, "s1", "t1", protocol.ChannelQuery)
		m := &protocol.BalanceQuery{Version: protocol.Version, RequestID: id, Member: "m1"}
		if k == nil {
			return encode(t, m)
		}
		return sealed(t, k, qt, m)
	}
	f.in.HandleQuery(topic(t, "s1", "t1", protocol.ChannelQuery), q(nil, "q-unsealed"))
	f.in.HandleQuery(topic(t, "s1", "t1", protocol.ChannelQuery), q(other, "q-forged"))
	tok, err := protocol.MintMemberToken(coalitionKey, "m1", ledgertest.T0.Add(2*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.in.HandleScan(topic(t, "s1", "t1", protocol.ChannelScan), sighting(t, "s1", "t1", tok))
	wantRefused := int64(len(forged) + 3)
	if st := f.in.Stats(); st.MACRefused != wantRefused || st.Refused != wantRefused {
		t.Fatalf("stats %+v, want %d refused for their MAC", st, wantRefused)
	}

	// The genuine query is answered, sealed; nothing else was.
	f.in.HandleQuery(topic(t, "s1", "t1", protocol.ChannelQuery), q(key, "q-genuine"))
	testkit.WaitFor(t, wait, "the reply", func() bool { return f.rec.count() == 2 })
	m := f.rec.all()[1]
	r, err := protocol.DecodeBalanceReply(m.Payload)
	if err != nil || r.RequestID != "q-genuine" || protocol.VerifyMAC(key, m.Topic, m.Payload, r.MAC) != nil {
		t.Fatalf("reply %s: %v", m.Payload, err)
	}
	if after := takeSnapshot(t, f.store, "m1", "m2"); !reflect.DeepEqual(before, after) {
		t.Fatalf("the refused messages changed the ledger:\nbefore %+v\nafter  %+v", before, after)
	}

	// A replay by the key's holder — a new id under e1's number — is
	// rejected seq_reused and counted.
	f.in.HandleTx(txTopic, sealed(t, key, txTopic, v3(till.Batch(t, func() protocol.Transaction {
		tx := till.Earn("r1", "m1", 100)
		tx.Seq = e1.Seq
		return tx
	}()))))
	testkit.WaitFor(t, wait, "the ack of the replay", func() bool { return f.rec.count() == 3 })
	if got := checkSealedAcks(t, f.rec.all()[2], key, protocol.Version); len(got) != 1 || got[0].Code != protocol.CodeSeqReused || got[0].Status != protocol.StatusRejected {
		t.Fatalf("acks of the replay %+v", got)
	}
	if st := f.in.Stats(); st.Replays != 1 {
		t.Fatalf("stats %+v, want 1 replay refused", st)
	}

	// A terminal that never enrolled syncs without a MAC, and is answered
	// in the version it spoke, unsealed.
	t2 := ledgertest.NewTill("s1", "t2", "p1")
	b := t2.Batch(t, t2.Earn("u1", "m3", 7))
	b.Version = protocol.UnsealedVersion
	f.in.HandleTx(t2Topic, encode(t, b))
	testkit.WaitFor(t, wait, "the unenrolled terminal's ack", func() bool { return f.rec.count() == 4 })
	if p := f.rec.all()[3]; p.Topic != topic(t, "s1", "t2", protocol.ChannelAck) || bytes.Contains(p.Payload, []byte(`"mac"`)) || !bytes.HasPrefix(p.Payload, []byte(`{"version":2,`)) {
		t.Fatalf("answer to the unenrolled terminal: %s %s", p.Topic, p.Payload)
	}

	// Revoked: refused, sealed or not.
	if err := f.store.RevokeTerminal("s1", "t1", ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	f.in.HandleTx(txTopic, sealed(t, key, txTopic, v3(till.Batch(t, till.Earn("x1", "m1", 1)))))
	f.in.HandleTx(txTopic, encode(t, till.Batch(t, till.Earn("x2", "m1", 1))))
	if st := f.in.Stats(); st.MACRefused != wantRefused+2 {
		t.Fatalf("stats %+v after a revoked terminal's batches", st)
	}
	time.Sleep(50 * time.Millisecond) // nothing is coming; give it a chance to
	if n := f.rec.count(); n != 4 || f.rec.all()[n-1].Topic == ackTopic {
		t.Fatalf("%d messages published after the refusals", n)
	}
}

// TestMACEmbedded: with the embedded broker, which authenticated the
// publisher, an enrolled till's batch without a MAC (a till of protocol
// version 2) is taken, and answered in its version — sealed, which it
// ignores; a wrong MAC is refused all the same.
func TestMACEmbedded(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	key := enroll(t, f.store, "s1", "t1")
	f.run(t)
	till := ledgertest.NewTill("s1", "t1", "p1")
	txTopic := topic(t, "s1", "t1", protocol.ChannelTx)
	b := till.Batch(t, till.Earn("e1", "m1", 100))
	b.Version = protocol.UnsealedVersion
	f.in.HandleTx(txTopic, encode(t, b))
	testkit.WaitFor(t, wait, "the ack", func() bool { return f.rec.count() == 1 })
	checkSealedAcks(t, f.rec.all()[0], key, protocol.UnsealedVersion)

	other := bytes.Clone(key)
	other[31] ^= 0x80
	f.in.HandleTx(txTopic, sealed(t, other, txTopic, v3(till.Batch(t, till.Earn("f1", "m1", 100)))))
	if st := f.in.Stats(); st.MACRefused != 1 {
		t.Fatalf("stats %+v, want the wrong MAC refused", st)
	}
	if ids := txIDs(t, f.store); !reflect.DeepEqual(ids, []string{"e1"}) {
		t.Fatalf("ledger holds %v", ids)
	}
}

// memStore answers every transaction applied at once, without a disk:
// what is left of an ingest benchmark over it is the ingest's own cost.
type memStore struct {
	ledger.Store
}

func (memStore) Apply(batches []*protocol.Batch, _ time.Time) ([][]protocol.Ack, error) {
	out := make([][]protocol.Ack, len(batches))
	for i, b := range batches {
		out[i] = make([]protocol.Ack, len(b.Txs))
		for j, tx := range b.Txs {
			out[i][j] = protocol.Ack{ID: tx.ID, Status: protocol.StatusApplied, Member: tx.Member, Balance: tx.Points, Points: tx.Points}
		}
	}
	return out, nil
}

// BenchmarkIngest measures the hub's path from a received batch to its
// published ack, with and without MACs (checking the batch's, sealing the
// ack), for single-transaction batches (a till in step with the hub) and
// full ones (a backlog). Over "memory" the ledger answers without a disk,
// so the numbers are the ingest's own cost; over "bolt" it is the real
// ledger, fsync included, which is what a transaction costs in the end.
func BenchmarkIngest(b *testing.B) {
	for _, ledgerKind := range []string{"memory", "bolt"} {
		for _, size := range []int{1, 100} {
			for _, mac := range []bool{false, true} {
				b.Run(fmt.Sprintf("ledger=%s/batch=%d/mac=%v", ledgerKind, size, mac), func(b *testing.B) {
					benchmarkIngest(b, ledgerKind == "memory", size, mac)
				})
			}
		}
	}
}

func benchmarkIngest(b *testing.B, memory bool, size int, mac bool) {
	st, err := ledger.OpenBolt(filepath.Join(b.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	registerTestStores(b, st)
	key := enroll(b, st, "s1", "t1")
	var store ledger.Store = st
	if memory {
		store = memStore{st}
	}
	acked := make(chan struct{}, 1)
	in := ingest.New(ingest.Options{
		Store: store, RequireMAC: mac, Clock: clock.NewFake(ledgertest.T0),
		Publish: func(topic string, _ byte, payload []byte) error {
			ab, err := protocol.DecodeAckBatch(payload)
			if err == nil && mac {
				err = protocol.VerifyMAC(key, topic, payload, ab.MAC)
			}
			if err != nil {
				b.Error(err)
			}
			acked <- struct{}{}
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.Run(ctx) }()
	defer func() { cancel(); <-done }()

	till := ledgertest.NewTill("s1", "t1", "p1")
	txTopic := topic(b, "s1", "t1", protocol.ChannelTx)
	// The payloads are made beforehand: a till's encoding and sealing is
	// the till's cost, not the hub's.
	const distinct = 512
	payloads := make([][]byte, distinct)
	for i := range payloads {
		txs := make([]protocol.Transaction, size)
		for j := range txs {
			txs[j] = till.Earn("e"+strconv.Itoa(i)+"-"+strconv.Itoa(j), "m"+strconv.Itoa(j%50), 10)
		}
		batch := till.Batch(b, txs...)
		if mac {
			payloads[i] = sealed(b, key, txTopic, v3(batch))
		} else {
			payloads[i] = encode(b, batch)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		// Wait for the ack before the next batch wears the same ids again,
		// as a till in step with the hub would.
		in.HandleTx(txTopic, payloads[n%distinct])
		n++
		select {
		case <-acked:
		case <-time.After(wait):
			b.Fatalf("no ack; stats %+v", in.Stats())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*size), "ns/tx")
}

// TestRequireEnrollmentExternal: with an external broker and enrollment
// required, a terminal that has not enrolled is refused, sealed or not.
func TestRequireEnrollmentExternal(t *testing.T) {
	f := newFixture(t, ingest.Options{RequireMAC: true, RequireEnrollment: true}, nil)
	key := enroll(t, f.store, "s1", "t1")
	f.run(t)
	t2 := ledgertest.NewTill("s1", "t2", "p1")
	t2Topic := topic(t, "s1", "t2", protocol.ChannelTx)
	f.in.HandleTx(t2Topic, encode(t, t2.Batch(t, t2.Earn("u1", "m1", 7))))
	f.in.HandleTx(t2Topic, sealed(t, key, t2Topic, v3(t2.Batch(t, t2.Earn("u2", "m1", 7)))))
	if st := f.in.Stats(); st.MACRefused != 2 {
		t.Fatalf("stats %+v, want both refused", st)
	}
	t1 := ledgertest.NewTill("s1", "t1", "p1")
	t1Topic := topic(t, "s1", "t1", protocol.ChannelTx)
	f.in.HandleTx(t1Topic, sealed(t, key, t1Topic, v3(t1.Batch(t, t1.Earn("e1", "m1", 7)))))
	testkit.WaitFor(t, wait, "the enrolled terminal's ack", func() bool { return f.rec.count() == 1 })
	if ids := txIDs(t, f.store); !reflect.DeepEqual(ids, []string{"e1"}) {
		t.Fatalf("ledger holds %v", ids)
	}
}
