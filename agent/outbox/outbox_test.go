package outbox_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/protocol"
)

// t0 is the fixed creation time of the transactions the tests build.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

var members = []string{"m1", "m2", "m3", "m4", "m5"}

// newTx builds a valid transaction (apart from Seq, which Append assigns)
// for store s1, terminal t1, partner p1.
func newTx(id string, kind protocol.Kind, member string, points int64) *protocol.Transaction {
	tx := &protocol.Transaction{
		ID:        id,
		Store:     "s1",
		Terminal:  "t1",
		Partner:   "p1",
		Member:    member,
		Kind:      kind,
		Currency:  "EUR",
		Points:    points,
		CreatedAt: t0,
	}
	switch kind {
	case protocol.KindEarn, protocol.KindReverse:
		tx.Amount = points*100 + 1 // an earn needs a purchase amount
	case protocol.KindVoid:
		tx.Currency, tx.Points = "", 0
	}
	return tx
}

func reverseOf(id, original, member string, points int64) *protocol.Transaction {
	tx := newTx(id, protocol.KindReverse, member, points)
	tx.Original, tx.Amount, tx.Currency = original, 0, "" // by points
	return tx
}

func voidOf(id, original, member string) *protocol.Transaction {
	tx := newTx(id, protocol.KindVoid, member, 0)
	tx.Original = original
	return tx
}

// box is an outbox under test that can be closed and reopened on the same
// file; the current one is closed when the test ends.
type box struct {
	t    testing.TB
	path string
	*outbox.Outbox
}

func openBox(t testing.TB) *box {
	t.Helper()
	b := &box{t: t, path: filepath.Join(t.TempDir(), "data", "outbox.db")}
	b.open()
	t.Cleanup(func() {
		if b.Outbox != nil {
			b.Outbox.Close()
		}
	})
	return b
}

func (b *box) open() {
	b.t.Helper()
	o, err := outbox.Open(b.path, outbox.Options{Timeout: time.Second})
	if err != nil {
		b.t.Fatalf("Open: %v", err)
	}
	b.Outbox = o
}

// reopen closes the file and opens it again: whatever survives this was on disk.
func (b *box) reopen() {
	b.t.Helper()
	if err := b.Outbox.Close(); err != nil {
		b.t.Fatalf("Close: %v", err)
	}
	b.Outbox = nil
	b.open()
}

func (b *box) mustAppend(tx *protocol.Transaction) {
	b.t.Helper()
	if err := b.Append(tx, "", nil, false); err != nil {
		b.t.Fatalf("Append %s: %v", tx.ID, err)
	}
}

// queued returns the ids in the queue, in Seq order.
func (b *box) queued() []string {
	b.t.Helper()
	txs, err := b.Pending(0, math.MaxInt)
	if err != nil {
		b.t.Fatalf("Pending: %v", err)
	}
	ids := make([]string, len(txs))
	for i, tx := range txs {
		ids[i] = tx.ID
	}
	return ids
}

func (b *box) count() int64 {
	b.t.Helper()
	n, _, err := b.Stats()
	if err != nil {
		b.t.Fatalf("Stats: %v", err)
	}
	return n
}

func (b *box) local(id string) (outbox.Local, bool) {
	b.t.Helper()
	l, ok, err := b.Local(id)
	if err != nil {
		b.t.Fatalf("Local %s: %v", id, err)
	}
	return l, ok
}

func (b *box) pendingBurns() []string {
	b.t.Helper()
	ids, err := b.PendingBurns()
	if err != nil {
		b.t.Fatalf("PendingBurns: %v", err)
	}
	return ids
}

func (b *box) idem(key string) (outbox.IdemRecord, bool) {
	b.t.Helper()
	rec, ok, err := b.Idem(key)
	if err != nil {
		b.t.Fatalf("Idem %s: %v", key, err)
	}
	return rec, ok
}

// queuedEntry is the model's view of one queued transaction.
type queuedEntry struct {
	id        string
	seq       uint64
	createdAt time.Time
}

// model is what the outbox must hold, kept by the random test alongside it.
type model struct {
	queue     []queuedEntry    // in Seq order
	lastSeq   uint64           // highest Seq ever assigned
	points    map[string]int64 // local earn or burn id -> points
	kind      map[string]protocol.Kind
	reversed  map[string]int64    // local earn or burn id -> points reversed so far
	member    map[string]string   // local id -> member
	pending   map[string]struct{} // burn ids awaiting a verdict
	balances  map[string]int64    // member -> last balance acked
	everAcked []string            // ids acked and gone, for duplicate acks
}

func (m *model) remove(id string) bool {
	for i, e := range m.queue {
		if e.id == id {
			m.queue = slices.Delete(m.queue, i, i+1)
			return true
		}
	}
	return false
}

func (m *model) isQueued(id string) bool {
	return slices.ContainsFunc(m.queue, func(e queuedEntry) bool { return e.id == id })
}

// TestDurabilityRandom runs seeded random sequences of appends, reverses,
// burn verdicts, acks (for queued, gone and unknown ids) and close/reopen,
// and checks the outbox against a model after every reopen and at the end.
func TestDurabilityRandom(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 20250314} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			runRandom(t, seed, 300)
		})
	}
}

func runRandom(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := openBox(t)
	m := &model{
		points:   map[string]int64{},
		kind:     map[string]protocol.Kind{},
		reversed: map[string]int64{},
		member:   map[string]string{},
		pending:  map[string]struct{}{},
		balances: map[string]int64{},
	}
	next := 0
	newID := func() string { next++; return fmt.Sprintf("tx-%06d", next) }
	at := func(op int) time.Time { return t0.Add(time.Duration(op) * time.Second) }
	reopens := 0

	// appended checks the Seq Append assigned and records tx in the model.
	appended := func(op int, tx *protocol.Transaction) {
		t.Helper()
		if tx.Seq != m.lastSeq+1 {
			t.Fatalf("op %d: %s got seq %d, want %d (strictly increasing, never reused)", op, tx.ID, tx.Seq, m.lastSeq+1)
		}
		m.lastSeq = tx.Seq
		m.queue = append(m.queue, queuedEntry{id: tx.ID, seq: tx.Seq, createdAt: tx.CreatedAt})
		m.member[tx.ID] = tx.Member
	}

	for op := range ops {
		switch r := rng.IntN(100); {
		case r < 35: // earn
			tx := newTx(newID(), protocol.KindEarn, members[rng.IntN(len(members))], 1+rng.Int64N(50))
			tx.CreatedAt = at(op)
			b.mustAppend(tx)
			appended(op, tx)
			m.points[tx.ID], m.kind[tx.ID] = tx.Points, tx.Kind

		case r < 55: // burn, half of them awaiting a verdict under an idempotency key
			tx := newTx(newID(), protocol.KindBurn, members[rng.IntN(len(members))], 1+rng.Int64N(50))
			tx.CreatedAt = at(op)
			key, pend := "", rng.IntN(2) == 0
			var rec *outbox.IdemRecord
			if pend {
				key = "idem-" + tx.ID
				rec = &outbox.IdemRecord{Hash: "h-" + tx.ID, TxID: tx.ID, Pending: true}
			}
			if err := b.Append(tx, key, rec, pend); err != nil {
				t.Fatalf("op %d: Append burn %s: %v", op, tx.ID, err)
			}
			appended(op, tx)
			m.points[tx.ID], m.kind[tx.ID] = tx.Points, tx.Kind
			if pend {
				m.pending[tx.ID] = struct{}{}
			}

		case r < 63: // reverse part of a local earn or burn; sometimes more than is left
			if len(m.points) == 0 {
				continue
			}
			orig := slices.Sorted(maps.Keys(m.points))[rng.IntN(len(m.points))]
			left := m.points[orig] - m.reversed[orig]
			over := rng.IntN(4) == 0
			pts := left + 1 + rng.Int64N(5)
			if !over {
				if left == 0 {
					continue
				}
				pts = 1 + rng.Int64N(left)
			}
			tx := reverseOf(newID(), orig, m.member[orig], pts)
			tx.CreatedAt = at(op)
			err := b.Append(tx, "", nil, false)
			if over {
				if got := protocol.CodeOf(err); got != protocol.CodeOverReversed {
					t.Fatalf("op %d: reverse %d of %s with %d left: code %q (err %v), want %q", op, pts, orig, left, got, err, protocol.CodeOverReversed)
				}
				continue
			}
			if err != nil {
				t.Fatalf("op %d: reverse %d of %s with %d left: %v", op, pts, orig, left, err)
			}
			appended(op, tx)
			m.reversed[orig] += pts

		case r < 68: // verdict on a pending burn: declined (void appended, nothing left to reverse) or approved
			if len(m.pending) == 0 {
				continue
			}
			burn := slices.Sorted(maps.Keys(m.pending))[rng.IntN(len(m.pending))]
			var void *protocol.Transaction
			if rng.IntN(2) == 0 {
				void = voidOf(newID(), burn, m.member[burn])
				void.CreatedAt = at(op)
			}
			approved := void == nil
			ok, err := b.DecideBurn(burn, []byte(`{"ok":true}`), approved, void)
			if err != nil || !ok {
				t.Fatalf("op %d: DecideBurn %s = %v, %v; want true, nil", op, burn, ok, err)
			}
			delete(m.pending, burn)
			if !approved {
				m.reversed[burn] = m.points[burn]
			}
			if void != nil {
				appended(op, void)
			}

		case r < 90: // ack a random subset, plus duplicate and unknown acks
			var acks, want []protocol.Ack
			for _, e := range m.queue {
				if rng.IntN(3) == 0 {
					a := protocol.Ack{ID: e.id, Status: protocol.StatusApplied, Member: m.member[e.id], Balance: rng.Int64N(1000)}
					acks = append(acks, a)
				}
			}
			for range rng.IntN(3) {
				acks = append(acks, protocol.Ack{ID: fmt.Sprintf("unknown-%d", rng.IntN(1000)), Status: protocol.StatusApplied, Member: "m1", Balance: -1})
			}
			if len(m.everAcked) > 0 && rng.IntN(2) == 0 {
				id := m.everAcked[rng.IntN(len(m.everAcked))]
				acks = append(acks, protocol.Ack{ID: id, Status: protocol.StatusDuplicate, Member: m.member[id], Balance: -2})
			}
			rng.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })
			if n := len(acks); n > 0 && rng.IntN(4) == 0 {
				acks = append(acks, acks[rng.IntN(n)]) // the same ack twice in one batch
			}
			for _, a := range acks {
				if m.remove(a.ID) {
					want = append(want, a)
					m.everAcked = append(m.everAcked, a.ID)
					m.balances[a.Member] = a.Balance
				}
			}
			got, _, err := b.Acked(acks, at(op))
			if err != nil {
				t.Fatalf("op %d: Acked: %v", op, err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("op %d: Acked returned %v, want %v", op, got, want)
			}

		default: // restart
			b.reopen()
			reopens++
			verify(t, b, m, fmt.Sprintf("after reopen at op %d", op))
		}
		if n := b.count(); n != int64(len(m.queue)) {
			t.Fatalf("op %d: Stats count %d, model %d", op, n, len(m.queue))
		}
	}
	verify(t, b, m, "at the end")
	b.reopen()
	verify(t, b, m, "after the final reopen")
	if reopens == 0 {
		t.Fatalf("seed %d never reopened; pick another seed", seed)
	}

	// Ack everything; the counter must still not go back after a reopen.
	var acks []protocol.Ack
	for _, e := range m.queue {
		acks = append(acks, protocol.Ack{ID: e.id, Status: protocol.StatusApplied})
	}
	if _, _, err := b.Acked(acks, t0); err != nil {
		t.Fatalf("Acked all: %v", err)
	}
	m.queue = nil
	b.reopen()
	verify(t, b, m, "after acking everything")
	tx := newTx(newID(), protocol.KindEarn, "m1", 1)
	b.mustAppend(tx)
	appended(ops, tx)
	verify(t, b, m, "after an append to the empty queue")
	t.Logf("seed %d: %d ops, %d reopens, %d seqs assigned", seed, ops, reopens, m.lastSeq)
}

// verify checks the outbox against the model in full.
func verify(t *testing.T, b *box, m *model, when string) {
	t.Helper()
	txs, err := b.Pending(0, math.MaxInt)
	if err != nil {
		t.Fatalf("%s: Pending: %v", when, err)
	}
	if len(txs) != len(m.queue) {
		t.Fatalf("%s: %d queued, model has %d\n got %v\nwant %v", when, len(txs), len(m.queue), ids(txs), m.queue)
	}
	var prev uint64
	for i, tx := range txs {
		want := m.queue[i]
		if tx.ID != want.id || tx.Seq != want.seq || !tx.CreatedAt.Equal(want.createdAt) {
			t.Fatalf("%s: queue[%d] = %s seq %d at %v, want %s seq %d at %v", when, i, tx.ID, tx.Seq, tx.CreatedAt, want.id, want.seq, want.createdAt)
		}
		if tx.Seq <= prev {
			t.Fatalf("%s: queue[%d] seq %d after %d: not in Seq order", when, i, tx.Seq, prev)
		}
		prev = tx.Seq
		if err := tx.Validate(); err != nil {
			t.Fatalf("%s: queued %s is invalid: %v", when, tx.ID, err)
		}
	}

	n, oldest, err := b.Stats()
	if err != nil {
		t.Fatalf("%s: Stats: %v", when, err)
	}
	var wantOldest time.Time
	for _, e := range m.queue {
		if wantOldest.IsZero() || e.createdAt.Before(wantOldest) {
			wantOldest = e.createdAt
		}
	}
	if n != int64(len(m.queue)) || !oldest.Equal(wantOldest) {
		t.Fatalf("%s: Stats = %d, %v; want %d, %v", when, n, oldest, len(m.queue), wantOldest)
	}

	if got, want := b.pendingBurns(), slices.Sorted(maps.Keys(m.pending)); !slices.Equal(got, want) {
		t.Fatalf("%s: PendingBurns = %v, want %v", when, got, want)
	}
	for id, pts := range m.points {
		l, ok := b.local(id)
		if !ok || l.Kind != m.kind[id] || l.Points != pts || l.Reversed != m.reversed[id] || l.Member != m.member[id] {
			t.Fatalf("%s: Local(%s) = %+v, %v; want %s of %d for %s, %d reversed", when, id, l, ok, m.kind[id], pts, m.member[id], m.reversed[id])
		}
	}
	for member, want := range m.balances {
		bal, ok, err := b.CachedBalance(member)
		if err != nil || !ok || bal.Points != want {
			t.Fatalf("%s: CachedBalance(%s) = %+v, %v, %v; want %d", when, member, bal, ok, err, want)
		}
	}
	if err := b.Check(); err != nil {
		t.Fatalf("%s: Check: %v", when, err)
	}
}

func ids(txs []protocol.Transaction) []string {
	out := make([]string, len(txs))
	for i, tx := range txs {
		out[i] = tx.ID
	}
	return out
}

func TestPendingPaging(t *testing.T) {
	b := openBox(t)
	for i := 1; i <= 10; i++ {
		b.mustAppend(newTx(fmt.Sprintf("tx-%02d", i), protocol.KindEarn, "m1", int64(i)))
	}
	// Leave holes at seqs 3, 4 and 7.
	if _, _, err := b.Acked([]protocol.Ack{{ID: "tx-03"}, {ID: "tx-04"}, {ID: "tx-07"}}, t0); err != nil {
		t.Fatal(err)
	}
	b.reopen()

	tests := []struct {
		after uint64
		limit int
		want  []uint64 // seqs
	}{
		{0, 3, []uint64{1, 2, 5}},
		{0, 100, []uint64{1, 2, 5, 6, 8, 9, 10}},
		{2, 3, []uint64{5, 6, 8}},
		{3, 1, []uint64{5}}, // after a seq that is gone
		{4, 2, []uint64{5, 6}},
		{8, 100, []uint64{9, 10}},
		{9, 1, []uint64{10}},
		{10, 5, nil},
		{1000, 5, nil},
		{0, 0, nil},
		{0, -1, nil},
		{math.MaxUint64, 10, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("after=%d,limit=%d", tt.after, tt.limit), func(t *testing.T) {
			txs, err := b.Pending(tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, tx := range txs {
				got = append(got, tx.Seq)
				if want := fmt.Sprintf("tx-%02d", tx.Seq); tx.ID != want {
					t.Errorf("seq %d holds %s, want %s", tx.Seq, tx.ID, want)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Pending(%d, %d) seqs = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
		})
	}

	// Walking page by page, as the sync loop does, sees everything once.
	for _, size := range []int{1, 2, 3, 7, 8} {
		var walked []string
		var after uint64
		for {
			page, err := b.Pending(after, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, ids(page)...)
			after = page[len(page)-1].Seq
		}
		if all := b.queued(); !slices.Equal(walked, all) {
			t.Errorf("pages of %d walked %v, want %v", size, walked, all)
		}
	}
}

func TestIdempotency(t *testing.T) {
	b := openBox(t)
	first := &outbox.IdemRecord{Hash: "sha256-aaa", TxID: "tx-1", Response: json.RawMessage(`{"id":"tx-1","points":10}`)}
	if err := b.Append(newTx("tx-1", protocol.KindEarn, "m1", 10), "key-1", first, false); err != nil {
		t.Fatalf("first Append: %v", err)
	}

	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprint("reopen=", reopen), func(t *testing.T) {
			if reopen {
				b.reopen()
			}
			second := newTx("tx-2", protocol.KindEarn, "m2", 99)
			err := b.Append(second, "key-1", &outbox.IdemRecord{Hash: "sha256-bbb", TxID: "tx-2"}, false)
			if !errors.Is(err, outbox.ErrIdemExists) {
				t.Fatalf("second Append: err %v, want ErrIdemExists", err)
			}
			var ie *outbox.IdemExistsError
			if !errors.As(err, &ie) {
				t.Fatalf("second Append: err %T %v is not an *IdemExistsError", err, err)
			}
			if ie.Record.Hash != first.Hash || ie.Record.TxID != first.TxID || ie.Record.Pending || !bytes.Equal(ie.Record.Response, first.Response) {
				t.Errorf("IdemExistsError.Record = %+v, want %+v", ie.Record, *first)
			}
			if second.Seq != 0 {
				t.Errorf("refused transaction was given seq %d", second.Seq)
			}
			if got := b.queued(); !slices.Equal(got, []string{"tx-1"}) {
				t.Errorf("queued %v, want only tx-1", got)
			}
			if n := b.count(); n != 1 {
				t.Errorf("Stats count %d, want 1", n)
			}
			if _, ok := b.local("tx-2"); ok {
				t.Errorf("refused tx-2 has a local record")
			}
			if rec, ok := b.idem("key-1"); !ok || rec.Hash != first.Hash {
				t.Errorf("Idem(key-1) = %+v, %v; want the first record", rec, ok)
			}
		})
	}

	// A key whose append failed is not taken.
	bad := newTx("tx-3", protocol.KindEarn, "", 5)
	if err := b.Append(bad, "key-3", &outbox.IdemRecord{Hash: "h3", TxID: "tx-3"}, false); err == nil {
		t.Fatal("Append with empty member succeeded")
	}
	if _, ok := b.idem("key-3"); ok {
		t.Error("key of a refused append was stored")
	}
	if err := b.Append(newTx("tx-4", protocol.KindEarn, "m1", 5), "key-3", &outbox.IdemRecord{Hash: "h4", TxID: "tx-4"}, false); err != nil {
		t.Errorf("Append reusing the key of a refused append: %v", err)
	}
}

func TestReverse(t *testing.T) {
	b := openBox(t)
	b.mustAppend(newTx("earn-1", protocol.KindEarn, "m1", 10))
	b.mustAppend(newTx("burn-1", protocol.KindBurn, "m2", 7))

	steps := []struct {
		name     string
		tx       *protocol.Transaction
		wantCode protocol.Code // "" when accepted
		reopen   bool          // close and reopen before this step
	}{
		{"first part", reverseOf("rev-1", "earn-1", "m1", 4), "", false},
		{"the rest, after a restart", reverseOf("rev-2", "earn-1", "m1", 6), "", true},
		{"one more than the earn", reverseOf("rev-3", "earn-1", "m1", 1), protocol.CodeOverReversed, false},
		{"still over after a restart", reverseOf("rev-3b", "earn-1", "m1", 1), protocol.CodeOverReversed, true},
		{"a reverse", reverseOf("rev-4", "rev-1", "m1", 1), protocol.CodeOriginalMismatch, false},
		{"a burn of another member", reverseOf("rev-4b", "burn-1", "m1", 1), protocol.CodeOriginalMismatch, false},
		{"part of a burn", reverseOf("rev-5", "burn-1", "m2", 7), "", false},
		{"burn over", reverseOf("rev-6", "burn-1", "m2", 1), protocol.CodeOverReversed, false},
		{"unknown original is left to the hub", reverseOf("rev-7", "elsewhere-1", "m3", 1000), "", false},
		{"unknown original again", reverseOf("rev-8", "elsewhere-1", "m3", 1000), "", false},
	}
	wantQueued := []string{"earn-1", "burn-1"}
	for _, s := range steps {
		if s.reopen {
			b.reopen()
		}
		err := b.Append(s.tx, "", nil, false)
		if got := protocol.CodeOf(err); got != s.wantCode {
			t.Fatalf("%s: Append %s: code %q (err %v), want %q", s.name, s.tx.ID, got, err, s.wantCode)
		}
		if err == nil {
			wantQueued = append(wantQueued, s.tx.ID)
		} else if _, ok := b.local(s.tx.ID); ok {
			t.Errorf("%s: refused %s has a local record", s.name, s.tx.ID)
		}
		if got := b.queued(); !slices.Equal(got, wantQueued) {
			t.Fatalf("%s: queued %v, want %v", s.name, got, wantQueued)
		}
		if n := b.count(); n != int64(len(wantQueued)) {
			t.Fatalf("%s: Stats count %d, want %d", s.name, n, len(wantQueued))
		}
	}

	b.reopen()
	for id, want := range map[string]int64{"earn-1": 10, "burn-1": 7} {
		if l, ok := b.local(id); !ok || l.Reversed != want {
			t.Errorf("Local(%s) = %+v, %v; want %d reversed", id, l, ok, want)
		}
	}
	// The original leaving the queue (acked) does not reset what was reversed.
	if _, _, err := b.Acked([]protocol.Ack{{ID: "earn-1", Member: "m1", Balance: 0}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(reverseOf("rev-9", "earn-1", "m1", 1), "", nil, false); protocol.CodeOf(err) != protocol.CodeOverReversed {
		t.Errorf("reverse after the original was acked: err %v, want %s", err, protocol.CodeOverReversed)
	}
}

func TestDecideBurn(t *testing.T) {
	resp := json.RawMessage(`{"status":"declined","code":"timeout"}`)
	tests := []struct {
		name     string
		idemKey  string
		approved bool
		void     bool // a void is appended
	}{
		{"declined with void and key", "key-b", false, true},
		{"approved with key", "key-b", true, false},
		{"declined with void without key", "", false, true},
		{"approved without key", "", true, false},
		{"declined without void", "key-b", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBox(t)
			b.mustAppend(newTx("earn-1", protocol.KindEarn, "m1", 100))
			burn := newTx("burn-1", protocol.KindBurn, "m1", 30)
			var rec *outbox.IdemRecord
			if tt.idemKey != "" {
				rec = &outbox.IdemRecord{Hash: "h-burn", TxID: "burn-1", Pending: true}
			}
			if err := b.Append(burn, tt.idemKey, rec, true); err != nil {
				t.Fatalf("Append burn: %v", err)
			}
			if got := b.pendingBurns(); !slices.Equal(got, []string{"burn-1"}) {
				t.Fatalf("PendingBurns = %v, want [burn-1]", got)
			}
			b.reopen() // a burn whose POS request was never answered is still known after a restart
			if got := b.pendingBurns(); !slices.Equal(got, []string{"burn-1"}) {
				t.Fatalf("PendingBurns after reopen = %v, want [burn-1]", got)
			}
			if tt.idemKey != "" {
				if r, ok := b.idem(tt.idemKey); !ok || !r.Pending || r.Response != nil {
					t.Fatalf("Idem before verdict = %+v, %v; want pending with no response", r, ok)
				}
			}

			var void *protocol.Transaction
			wantQueued := []string{"earn-1", "burn-1"}
			if tt.void {
				void = voidOf("void-1", "burn-1", "m1")
				wantQueued = append(wantQueued, "void-1")
			}
			ok, err := b.DecideBurn("burn-1", resp, tt.approved, void)
			if err != nil || !ok {
				t.Fatalf("DecideBurn = %v, %v; want true, nil", ok, err)
			}
			if void != nil && void.Seq != 3 {
				t.Errorf("void got seq %d, want 3", void.Seq)
			}

			check := func(when string) {
				t.Helper()
				txs, err := b.Pending(0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(txs); !slices.Equal(got, wantQueued) {
					t.Fatalf("%s: queued %v, want %v", when, got, wantQueued)
				}
				for i, tx := range txs {
					if tx.Seq != uint64(i+1) {
						t.Errorf("%s: %s has seq %d, want %d", when, tx.ID, tx.Seq, i+1)
					}
				}
				if n := b.count(); n != int64(len(wantQueued)) {
					t.Errorf("%s: Stats count %d, want %d", when, n, len(wantQueued))
				}
				if got := b.pendingBurns(); len(got) != 0 {
					t.Errorf("%s: PendingBurns = %v, want none", when, got)
				}
				if tt.idemKey != "" {
					r, ok := b.idem(tt.idemKey)
					if !ok || r.Pending || r.TxID != "burn-1" || r.Hash != "h-burn" || !bytes.Equal(r.Response, resp) {
						t.Errorf("%s: Idem = %+v, %v; want decided burn-1 with the response", when, r, ok)
					}
				}
				// A declined burn took nothing, so nothing is left to reverse.
				wantReversed := int64(0)
				if !tt.approved {
					wantReversed = 30
				}
				if l, ok := b.local("burn-1"); !ok || l.Kind != protocol.KindBurn || l.Points != 30 || l.Reversed != wantReversed {
					t.Errorf("%s: Local(burn-1) = %+v, %v; want burn of 30, %d reversed", when, l, ok, wantReversed)
				}
				if err := b.Check(); err != nil {
					t.Errorf("%s: %v", when, err)
				}
			}
			check("after verdict")

			// A second verdict changes nothing.
			ok, err = b.DecideBurn("burn-1", []byte(`{"status":"accepted"}`), !tt.approved, voidOf("void-2", "burn-1", "m1"))
			if err != nil || ok {
				t.Fatalf("second DecideBurn = %v, %v; want false, nil", ok, err)
			}
			check("after a second verdict")
			b.reopen()
			check("after reopen")
			if ok, err := b.DecideBurn("burn-1", nil, false, voidOf("void-3", "burn-1", "m1")); err != nil || ok {
				t.Fatalf("DecideBurn after reopen = %v, %v; want false, nil", ok, err)
			}
			if ok, err := b.DecideBurn("never-was", nil, false, voidOf("void-4", "never-was", "m1")); err != nil || ok {
				t.Fatalf("DecideBurn of an unknown burn = %v, %v; want false, nil", ok, err)
			}
			check("after verdicts on decided and unknown burns")

			// Reversing the burn: refused when declined, allowed when approved.
			wantCode := protocol.CodeOverReversed
			if tt.approved {
				wantCode = ""
			}
			if err := b.Append(reverseOf("rev-1", "burn-1", "m1", 30), "", nil, false); protocol.CodeOf(err) != wantCode {
				t.Errorf("reverse of the decided burn: err %v, want code %q", err, wantCode)
			}
		})
	}
}

func TestDecideBurnInvalidVoidChangesNothing(t *testing.T) {
	b := openBox(t)
	if err := b.Append(newTx("burn-1", protocol.KindBurn, "m1", 5), "key", &outbox.IdemRecord{TxID: "burn-1", Pending: true}, true); err != nil {
		t.Fatal(err)
	}
	bad := voidOf("void-1", "burn-1", "") // no member
	if ok, err := b.DecideBurn("burn-1", []byte(`{}`), false, bad); err == nil || ok {
		t.Fatalf("DecideBurn with an invalid void = %v, %v; want false and an error", ok, err)
	}
	if got := b.pendingBurns(); !slices.Equal(got, []string{"burn-1"}) {
		t.Errorf("PendingBurns = %v; a failed verdict must leave the burn pending", got)
	}
	if r, _ := b.idem("key"); !r.Pending {
		t.Errorf("Idem = %+v; a failed verdict must leave it pending", r)
	}
	if got := b.queued(); !slices.Equal(got, []string{"burn-1"}) {
		t.Errorf("queued %v, want [burn-1]", got)
	}
	if l, _ := b.local("burn-1"); l.Reversed != 0 {
		t.Errorf("Local(burn-1) = %+v; a failed verdict must not close it", l)
	}
}

func TestAcked(t *testing.T) {
	b := openBox(t)
	for _, tx := range []*protocol.Transaction{
		newTx("tx-1", protocol.KindEarn, "m1", 10),
		newTx("tx-2", protocol.KindEarn, "m2", 20),
		newTx("tx-3", protocol.KindBurn, "m1", 5),
		newTx("tx-4", protocol.KindEarn, "m3", 1),
	} {
		b.mustAppend(tx)
	}
	at := t0.Add(time.Hour)
	acks := []protocol.Ack{
		{ID: "tx-1", Status: protocol.StatusApplied, Member: "m1", Balance: 110},
		{ID: "nobody", Status: protocol.StatusApplied, Member: "m4", Balance: 7},
		{ID: "tx-2", Status: protocol.StatusApplied, Member: "m2", Balance: 220},
		{ID: "tx-1", Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusApplied, Member: "m1", Balance: 999},
		{ID: "tx-3", Status: protocol.StatusRejected, Code: protocol.CodeInsufficientPoints, Member: "m1", Balance: 105},
		{ID: "tx-4", Status: protocol.StatusApplied, Member: "bad/member", Balance: 3},
	}
	got, _, err := b.Acked(acks, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := []protocol.Ack{acks[0], acks[2], acks[4], acks[5]}; !slices.Equal(got, want) {
		t.Errorf("Acked returned %v, want %v", got, want)
	}
	if q := b.queued(); len(q) != 0 {
		t.Errorf("queued %v after acking everything", q)
	}

	wantBal := map[string]int64{"m1": 105, "m2": 220} // m1: the later ack in the batch wins
	checkBalances := func(when string) {
		t.Helper()
		for _, member := range []string{"m1", "m2", "m3", "m4", "bad/member"} {
			bal, ok, err := b.CachedBalance(member)
			if err != nil {
				t.Fatal(err)
			}
			want, wantOK := wantBal[member]
			if ok != wantOK || bal.Points != want || (ok && !bal.AsOf.Equal(at)) {
				t.Errorf("%s: CachedBalance(%s) = %+v, %v; want %d as of %v, %v", when, member, bal, ok, want, at, wantOK)
			}
		}
	}
	checkBalances("after acks")
	b.reopen()
	checkBalances("after reopen")

	// A late duplicate ack is skipped and does not overwrite the balance.
	got, _, err = b.Acked([]protocol.Ack{{ID: "tx-2", Status: protocol.StatusDuplicate, Member: "m2", Balance: 1}}, at.Add(time.Hour))
	if err != nil || len(got) != 0 {
		t.Fatalf("duplicate Acked = %v, %v; want nothing", got, err)
	}
	checkBalances("after a duplicate ack")
	if got, _, err := b.Acked(nil, at); err != nil || len(got) != 0 {
		t.Errorf("Acked(nil) = %v, %v", got, err)
	}
	if n := b.count(); n != 0 {
		t.Errorf("Stats count %d, want 0", n)
	}
}

func TestOpenLocked(t *testing.T) {
	b := openBox(t)
	second, err := outbox.Open(b.path, outbox.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, outbox.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open of a held file: err %v, want ErrLocked", err)
	}
	// Once the first lets go, the file opens.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Outbox = nil
	o, err := outbox.Open(b.path, outbox.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b.Outbox = o
}

func TestAppendRefusesInvalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*protocol.Transaction)
		want   protocol.Code
	}{
		{"empty member", func(tx *protocol.Transaction) { tx.Member = "" }, protocol.CodeMissingField},
		{"member with slash", func(tx *protocol.Transaction) { tx.Member = "m/1" }, protocol.CodeInvalidID},
		{"empty id", func(tx *protocol.Transaction) { tx.ID = "" }, protocol.CodeMissingField},
		{"wildcard store", func(tx *protocol.Transaction) { tx.Store = "s+" }, protocol.CodeInvalidID},
		{"earn without amount", func(tx *protocol.Transaction) { tx.Amount = 0 }, protocol.CodeInvalidAmount},
		{"negative points", func(tx *protocol.Transaction) { tx.Points = -1 }, protocol.CodeInvalidPoints},
		{"bad currency", func(tx *protocol.Transaction) { tx.Currency = "eur" }, protocol.CodeInvalidCurrency},
		{"no created_at", func(tx *protocol.Transaction) { tx.CreatedAt = time.Time{} }, protocol.CodeMissingField},
		{"created in 1970", func(tx *protocol.Transaction) { tx.CreatedAt = time.Unix(0, 0) }, protocol.CodeInvalidTime},
		{"no kind", func(tx *protocol.Transaction) { tx.Kind = "" }, protocol.CodeMissingField},
		{"unknown kind", func(tx *protocol.Transaction) { tx.Kind = "gift" }, protocol.CodeInvalidKind},
		{"earn naming an original", func(tx *protocol.Transaction) { tx.Original = "tx-0" }, protocol.CodeInvalidID},
	}
	b := openBox(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := newTx("tx-bad", protocol.KindEarn, "m1", 10)
			tt.mutate(tx)
			err := b.Append(tx, "", nil, false)
			if got := protocol.CodeOf(err); got != tt.want {
				t.Fatalf("Append: code %q (err %v), want %q", got, err, tt.want)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Append: err %T is not a *protocol.Error", err)
			}
			if q := b.queued(); len(q) != 0 {
				t.Errorf("queued %v after a refused append", q)
			}
			if n := b.count(); n != 0 {
				t.Errorf("Stats count %d after a refused append", n)
			}
			if _, ok := b.local(tx.ID); ok && tx.ID != "" {
				t.Errorf("refused %s has a local record", tx.ID)
			}
		})
	}
	// Refused appends used no sequence numbers.
	tx := newTx("tx-good", protocol.KindEarn, "m1", 10)
	b.mustAppend(tx)
	if tx.Seq != 1 {
		t.Errorf("first accepted append got seq %d, want 1", tx.Seq)
	}
}

func TestAppendRefusesQueuedID(t *testing.T) {
	b := openBox(t)
	b.mustAppend(newTx("tx-1", protocol.KindEarn, "m1", 10))
	err := b.Append(newTx("tx-1", protocol.KindEarn, "m2", 99), "", nil, false)
	if err == nil {
		t.Fatal("second Append of a queued id succeeded")
	}
	txs, err := b.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 1 || txs[0].Member != "m1" || txs[0].Points != 10 {
		t.Errorf("queue = %+v, want only the first tx-1", txs)
	}
	if l, _ := b.local("tx-1"); l.Member != "m1" || l.Points != 10 {
		t.Errorf("Local(tx-1) = %+v, want the first", l)
	}
	if n := b.count(); n != 1 {
		t.Errorf("Stats count %d, want 1", n)
	}
}

func TestPendingPoints(t *testing.T) {
	b := openBox(t)
	for _, tx := range []*protocol.Transaction{
		newTx("tx-1", protocol.KindEarn, "m1", 10),
		newTx("tx-2", protocol.KindBurn, "m1", 3),
		newTx("tx-3", protocol.KindEarn, "m10", 1000), // not m1
		newTx("tx-4", protocol.KindEarn, "m1", 20),
		reverseOf("tx-5", "tx-1", "m1", 2), // neither earned nor burned
		newTx("tx-6", protocol.KindBurn, "m1", 7),
		voidOf("tx-7", "tx-6", "m1"), // tx-6 was declined: it will take nothing
	} {
		b.mustAppend(tx)
	}
	tests := []struct {
		member         string
		scan           int
		earned, burned int64
	}{
		{"m1", 100, 30, 3},
		{"m1", 2, 10, 3},
		{"m1", 0, 0, 0},
		{"m10", 100, 1000, 0},
		{"m2", 100, 0, 0},
	}
	for _, tt := range tests {
		e, bu, err := b.PendingPoints(tt.member, tt.scan)
		if err != nil || e != tt.earned || bu != tt.burned {
			t.Errorf("PendingPoints(%s, %d) = %d, %d, %v; want %d, %d", tt.member, tt.scan, e, bu, err, tt.earned, tt.burned)
		}
	}
}

func TestConcurrentAppendAndAck(t *testing.T) {
	b := openBox(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%03d", w, i)
				if err := b.Append(newTx(id, protocol.KindEarn, members[w%len(members)], 1), "", nil, false); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if _, _, err := b.Acked([]protocol.Ack{{ID: id}}, t0); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	txs, err := b.Pending(0, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	want := workers * (each / 2)
	if len(txs) != want {
		t.Fatalf("%d queued, want %d", len(txs), want)
	}
	if n := b.count(); n != int64(want) {
		t.Errorf("Stats count %d, want %d", n, want)
	}
	b.reopen()
	if n := b.count(); n != int64(want) {
		t.Errorf("Stats count after reopen %d, want %d", n, want)
	}
	tx := newTx("last", protocol.KindEarn, "m1", 1)
	b.mustAppend(tx)
	if tx.Seq != workers*each+1 {
		t.Errorf("next seq %d, want %d", tx.Seq, workers*each+1)
	}
}

// BenchmarkAppend commits one earn per op, with bbolt's real fsyncs.
func BenchmarkAppend(b *testing.B) {
	o, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	i := 0
	for b.Loop() {
		i++
		if err := o.Append(newTx(fmt.Sprintf("tx-%09d", i), protocol.KindEarn, members[i%len(members)], 10), "", nil, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReturnByAmount: a return by amount must carry its share of the
// original's points, on the running total, and can never return more than
// the original's amount; a points-based reverse counts against the same
// points.
func TestReturnByAmount(t *testing.T) {
	b := openBox(t)
	sale := newTx("earn-1", protocol.KindEarn, "m1", 50)
	sale.Amount = 5001
	b.mustAppend(sale)
	ret := func(id string, amount, points int64) *protocol.Transaction {
		tx := reverseOf(id, "earn-1", "m1", points)
		tx.Amount, tx.Currency = amount, "EUR"
		return tx
	}
	l, _ := b.local("earn-1")
	if p, err := l.ReturnPoints(1234); err != nil || p != 12 {
		t.Fatalf("ReturnPoints(1234) of 50 points for 5001 = %d, %v; want 12", p, err)
	}
	for _, s := range []struct {
		tx   *protocol.Transaction
		fail bool
	}{
		{ret("r1", 1234, 13), true}, // not its share
		{ret("r1", 1234, 12), false},
		{reverseOf("r2", "earn-1", "m1", 5), false},
		{ret("r3", 2000, 15), false}, // ⌊50×3234/5001⌋ = 32, less 17 reversed
		{ret("r4", 1768, 0), true},   // more than the 1767 left
		{ret("r5", 1767, 18), false}, // the rest: 50 − 32
		{reverseOf("r6", "earn-1", "m1", 1), true},
	} {
		err := b.Append(s.tx, "", nil, false)
		if (err != nil) != s.fail {
			t.Fatalf("Append %s (amount %d, points %d): %v, want failure %v", s.tx.ID, s.tx.Amount, s.tx.Points, err, s.fail)
		}
	}
	if l, _ := b.local("earn-1"); l.Reversed != 50 || l.Returned != 5001 {
		t.Errorf("Local(earn-1) = %+v, want 50 reversed, 5001 returned", l)
	}
}

// TestAckedKeepsBookedPoints: an earn's local points follow what the hub
// booked (a cross-brand bonus the till could not know of), so reverses
// are checked against it.
func TestAckedKeepsBookedPoints(t *testing.T) {
	b := openBox(t)
	b.mustAppend(newTx("earn-1", protocol.KindEarn, "m1", 10))
	b.mustAppend(newTx("earn-2", protocol.KindEarn, "m1", 10))
	acks := []protocol.Ack{
		{ID: "earn-1", Status: protocol.StatusApplied, Member: "m1", Balance: 110, Points: 110},
		{ID: "earn-2", Status: protocol.StatusApplied, Member: "m1", Balance: 120}, // no points: a version 1 hub
	}
	if _, _, err := b.Acked(acks, t0); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.local("earn-1"); l.Points != 110 {
		t.Errorf("earn-1 after its ack booked 110: %+v", l)
	}
	if l, _ := b.local("earn-2"); l.Points != 10 {
		t.Errorf("earn-2 after an ack without points: %+v", l)
	}
	b.mustAppend(reverseOf("r1", "earn-1", "m1", 110))
}

// CheckFile checks a closed outbox file read-only and counts its queue;
// it refuses a file an agent holds, and reports a damaged one.
func TestCheckFile(t *testing.T) {
	b := openBox(t)
	for i := range 300 {
		b.mustAppend(newTx(fmt.Sprintf("tx%03d", i), protocol.KindEarn, members[i%len(members)], 10))
	}
	if _, err := outbox.CheckFile(b.path); !errors.Is(err, outbox.ErrLocked) {
		t.Errorf("CheckFile of a file the agent holds: %v, want ErrLocked", err)
	}
	b.Outbox.Close()
	b.Outbox = nil
	n, err := outbox.CheckFile(b.path)
	if err != nil || n != 300 {
		t.Fatalf("CheckFile = %d, %v; want 300 queued, no problem", n, err)
	}

	// A page of the file zeroed, as a disk that lost a write would leave it.
	data, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := false
	for page := 4; (page+1)*4096 <= len(data) && !damaged; page++ {
		bad := slices.Clone(data)
		clear(bad[page*4096 : (page+1)*4096])
		p := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := outbox.CheckFile(p); err != nil {
			damaged = true
			t.Logf("page %d zeroed: %v", page, err)
		}
	}
	if !damaged {
		t.Error("CheckFile found no problem in any file with a page zeroed")
	}
}
