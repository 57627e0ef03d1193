package ledger_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

func openBolt(t testing.TB, path string) *ledger.BoltStore {
	t.Helper()
	s, err := ledger.OpenBolt(path, ledger.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBoltConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	})
}

// workload applies a small mix to s: m1 ends with 70, m2 with 5.
func workload(t *testing.T, s ledger.Store) (a *ledgertest.Till, e1 protocol.Transaction, b2 protocol.Transaction) {
	a = ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Register(t, s, a)
	e1, b2 = a.Earn("e1", "m1", 100), a.Burn("b2", "m2", 50)
	ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, e1, a.Burn("b1", "m1", 30), a.Earn("e2", "m2", 5), b2, a.Void("v1", "m1", "b9")))
	return a, e1, b2
}

func TestBoltDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	a, e1, b2 := workload(t, s)
	wantTxs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	wantStmt, err := s.Statement("m1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	bals, err := s.MemberBalances()
	if err != nil {
		t.Fatal(err)
	}
	if bals["m1"] != 70 || bals["m2"] != 5 || len(bals) != 2 {
		t.Errorf("after reopen MemberBalances = %v", bals)
	}
	gotTxs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotTxs, wantTxs) {
		t.Errorf("after reopen Transactions = %+v, want %+v", gotTxs, wantTxs)
	}
	gotStmt, err := s.Statement("m1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotStmt) != len(wantStmt) || len(gotStmt) != 2 || gotStmt[0].TxID != "b1" || gotStmt[1].TxID != "e1" {
		t.Errorf("after reopen Statement = %+v", gotStmt)
	}
	terms, err := s.Terminals()
	if err != nil || len(terms) != 1 || terms[0].LastSeq != 5 || terms[0].Applied != 4 || !terms[0].LastSeen.Equal(ledgertest.T0) {
		t.Errorf("after reopen Terminals = %+v, %v", terms, err)
	}
	// Dedup survives: retries get the first answers; the voided burn stays barred.
	acks := ledgertest.Apply(t, s, ledgertest.T0.Add(time.Hour), a.Batch(t, e1, b2, a.Burn("b9", "m1", 1), a.Burn("b3", "m1", 1)))
	want := []protocol.Ack{
		{ID: "e1", Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusApplied, Member: "m1", Balance: 100, Points: 100},
		{ID: "b2", Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusRejected, Code: protocol.CodeInsufficientPoints, Member: "m2", Balance: 5},
		{ID: "b9", Status: protocol.StatusRejected, Code: protocol.CodeVoided, Member: "m1", Balance: 70},
		{ID: "b3", Status: protocol.StatusApplied, Member: "m1", Balance: 69, Points: 1},
	}
	if !slices.Equal(acks[0], want) {
		t.Errorf("after reopen acks = %+v\nwant %+v", acks[0], want)
	}
	rep, err := s.Verify()
	if err != nil || !rep.OK() || rep.Entries != 4 {
		t.Errorf("after reopen Verify = %+v, %v", rep, err)
	}
}

func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	start := time.Now()
	s2, err := ledger.OpenBolt(path, ledger.BoltOptions{})
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt of the same file succeeded")
	}
	if !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("second OpenBolt: %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "in use by another process") || !strings.Contains(msg, "same data dir") {
		t.Errorf("error message %q does not say plainly what is wrong", msg)
	}
	if took > 3*time.Second {
		t.Errorf("second OpenBolt took %s to give up", took)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openBolt(t, path) // released on Close
}

// corrupt edits the ledger file at path, which must be closed, with raw bbolt.
func corrupt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBoltVerifyFindsCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	if rep, err := s.Verify(); err != nil || !rep.OK() {
		t.Fatalf("Verify before corruption = %+v, %v", rep, err)
	}
	s.Close()

	corrupt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(ledger.MembersBucket)
		if err := b.Put(ledger.MemberBalanceKey("m1"), binary.BigEndian.AppendUint64(nil, 999)); err != nil {
			return err
		}
		if err := b.Delete(ledger.MemberBalanceKey("m2")); err != nil {
			return err
		}
		// Entry 1 (e1): make its postings disagree.
		j := tx.Bucket([]byte("journal"))
		key := binary.BigEndian.AppendUint64(nil, 1)
		var e ledger.Entry
		if err := json.Unmarshal(j.Get(key), &e); err != nil {
			return err
		}
		e.Postings[1].Delta = -99
		v, _ := json.Marshal(e)
		return j.Put(key, v)
	})

	s = openBolt(t, path)
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("Verify passed a corrupted ledger")
	}
	if !slices.Equal(rep.Unbalanced, []uint64{1}) {
		t.Errorf("Unbalanced = %v, want [1]", rep.Unbalanced)
	}
	wantLines := []string{
		"member/m1: stored 999, replayed 70",
		"partner/p1/issued: stored -105, replayed -104",
		"member/m2: stored (none), replayed 5",
	}
	for _, w := range wantLines {
		if !slices.Contains(rep.Mismatches, w) {
			t.Errorf("Mismatches %q lack %q", rep.Mismatches, w)
		}
	}
	if len(rep.Mismatches) != len(wantLines) {
		t.Errorf("Mismatches = %q, want %q", rep.Mismatches, wantLines)
	}
}

// TestBoltApplyAllOrNothing: when Apply fails, nothing of it is committed,
// not even the transactions before the one that failed.
func TestBoltApplyAllOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	s.Close()
	corrupt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("txs")).Put([]byte("bad"), []byte("{not json"))
	})
	s = openBolt(t, path)
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Register(t, s, a)
	_, err := s.Apply([]*protocol.Batch{a.Batch(t, a.Earn("e1", "m1", 100)), a.Batch(t, a.Earn("bad", "m1", 1))}, ledgertest.T0)
	if err == nil || !strings.HasPrefix(err.Error(), "ledger: apply: ") {
		t.Fatalf("Apply over a corrupt record: %v, want a ledger: apply: error", err)
	}
	if _, known, err := s.Balance("m1"); err != nil || known {
		t.Errorf("Balance after a failed Apply: known %v, %v", known, err)
	}
	if terms, err := s.Terminals(); err != nil || len(terms) != 0 {
		t.Errorf("Terminals after a failed Apply: %+v, %v", terms, err)
	}
	if st, err := s.Statement("m1", 10); err != nil || len(st) != 0 {
		t.Errorf("Statement after a failed Apply: %+v, %v", st, err)
	}
	// The store still works for what does not touch the damage.
	acks := ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, a.Earn("e2", "m1", 5)))
	if acks[0][0].Status != protocol.StatusApplied || acks[0][0].Balance != 5 {
		t.Errorf("Apply after a failed Apply: %+v", acks[0][0])
	}
}

// TestBoltWarnsOnReusedID: an id sent again with different content gets the
// first answer, and an operator gets a warning.
func TestBoltWarnsOnReusedID(t *testing.T) {
	var logs bytes.Buffer
	s, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Register(t, s, a)
	e1 := a.Earn("e1", "m1", 100)
	again := e1
	again.Points = 5000
	acks := ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, e1, e1, again))
	if acks[0][2].Status != protocol.StatusDuplicate || acks[0][2].Balance != 100 {
		t.Errorf("reused id: %+v", acks[0][2])
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("want one warning (for the changed retry, not the identical one), got:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "tx=e1") {
		t.Errorf("warning does not name the transaction: %s", logs.String())
	}
}

func TestBoltClosed(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	s.Close()
	a := ledgertest.NewTill("s1", "t1", "p1")
	if _, err := s.Apply([]*protocol.Batch{a.Batch(t, a.Earn("e1", "m1", 1))}, ledgertest.T0); err == nil {
		t.Error("Apply on a closed store succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestJournalPagesFull: the journal only ever grows at its end, so its
// leaf pages are filled before they split (bbolt's default leaves every
// page it splits half empty, for inserts in the middle that the journal
// never has): the file holds the journal in half the pages, and a commit
// writes half the journal pages it did.
func TestJournalPagesFull(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Register(t, s, a)
	for b := range 10 {
		txs := make([]protocol.Transaction, protocol.MaxBatchTxs)
		for i := range txs {
			n := b*protocol.MaxBatchTxs + i
			txs[i] = a.Earn(fmt.Sprintf("e%d", n), fmt.Sprintf("m%d", n%97), 10)
		}
		ledgertest.Apply(t, s, ledgertest.T0, a.Batch(t, txs...))
	}
	fill, err := ledger.JournalFill(s)
	if err != nil {
		t.Fatal(err)
	}
	if fill < 0.85 {
		t.Fatalf("the journal's leaf pages are %.0f%% full, want 85%% or more", 100*fill)
	}
	t.Logf("journal pages %.0f%% full", 100*fill)
}

// BenchmarkApply: one Apply (one durable commit) of a batch of 100 earns for
// distinct members from one store.
func BenchmarkApply(b *testing.B) {
	benchmarkApply(b, 1)
}

// BenchmarkApplyGroup: one Apply of 10 such batches, as ingest's group commit
// does under load.
func BenchmarkApplyGroup(b *testing.B) {
	benchmarkApply(b, 10)
}

func benchmarkApply(b *testing.B, batchesPerApply int) {
	s := openBolt(b, filepath.Join(b.TempDir(), "ledger.db"))
	tills := make([]*ledgertest.Till, batchesPerApply)
	for i := range tills {
		tills[i] = ledgertest.NewTill("s1", "t"+strconv.Itoa(i), "p1")
	}
	ledgertest.Register(b, s, tills...)
	now := ledgertest.T0
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batches := make([]*protocol.Batch, batchesPerApply)
		for i, tl := range tills {
			txs := make([]protocol.Transaction, 100)
			for j := range txs {
				n++
				id := strconv.Itoa(n)
				txs[j] = tl.Earn("e"+id, "m"+id, 10)
			}
			batches[i] = &protocol.Batch{Version: protocol.Version, Store: tl.Store, Terminal: tl.Terminal, SentAt: now, Txs: txs}
		}
		now = now.Add(time.Millisecond)
		if _, err := s.Apply(batches, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkApplyReturning: one Apply of 20 batches of 100 earns, each
// from one of 256 tills, by members drawn from 10,000 (so they come back,
// and their balances, lots and statements are spread over the file as a
// coalition's are), with ids that sort by time as the tills' ULIDs do.
// This is the ledger's own ceiling under tillsync-sim bench's ingest
// (docs/performance.md); BenchmarkApplyGroup, where every earn is a new
// member appended at the end, is its best case.
func BenchmarkApplyReturning(b *testing.B) {
	benchmarkReturning(b, 20, 100, 10_000, 0)
}

// BenchmarkApplyManyMembers: the same commits by members drawn from a
// million, as a national coalition's are: nearly every earn is by a member
// no other earn of the commit touches, so each costs the leaves its member's
// keys are in.
func BenchmarkApplyManyMembers(b *testing.B) {
	benchmarkReturning(b, 20, 100, 1_000_000, 0)
}

// BenchmarkApplyHubCommits: the commits the hub makes under tillsync-sim
// bench's ingest (scenario 2), 256 batches of 100 earns from 256 tills by
// members drawn from 10,000, with the machine to the ledger alone: the most
// that scenario can show on it, whatever the broker and the tills cost.
// Four commits before the clock starts give every member a balance and the
// file its size, as the hub's ledger has them once the scenario's warm-up
// is over: the first commit alone, creating the members, takes seconds.
func BenchmarkApplyHubCommits(b *testing.B) {
	benchmarkReturning(b, 256, 100, 10_000, 4)
}

// BenchmarkApplySingles: one Apply of 84 batches of one earn each, from 84
// tills: a commit of live traffic at about 5,000 transactions a second.
func BenchmarkApplySingles(b *testing.B) {
	benchmarkReturning(b, 84, 1, 10_000, 0)
}

// benchmarkReturning times commits of batches batches of size earns by
// members drawn from members, after warm commits that are not timed.
func benchmarkReturning(b *testing.B, batches, size, members, warm int) {
	s := openBolt(b, filepath.Join(b.TempDir(), "ledger.db"))
	tills := make([]*ledgertest.Till, 256)
	for i := range tills {
		tills[i] = ledgertest.NewTill("s"+strconv.Itoa(i), "t1", "p1")
	}
	ledgertest.Register(b, s, tills...)
	rng := rand.New(rand.NewPCG(3, 4))
	now := ledgertest.T0
	n, k := 0, 0
	commit := func() {
		group := make([]*protocol.Batch, batches)
		for i := range group {
			tl := tills[k%len(tills)]
			k++
			txs := make([]protocol.Transaction, size)
			for j := range txs {
				n++
				txs[j] = tl.Earn(fmt.Sprintf("%012d", n), fmt.Sprintf("m%07d", rng.IntN(members)), 10)
			}
			group[i] = &protocol.Batch{Version: protocol.Version, Store: tl.Store, Terminal: tl.Terminal, SentAt: now, Txs: txs}
		}
		now = now.Add(time.Millisecond)
		if _, err := s.Apply(group, now); err != nil {
			b.Fatal(err)
		}
	}
	for range warm {
		commit()
	}
	n0, written := n, ledger.PagesWritten(s)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		commit()
	}
	b.ReportMetric(float64(n-n0)/b.Elapsed().Seconds(), "tx/s")
	b.ReportMetric(float64(ledger.PagesWritten(s)-written)/float64(n-n0), "page-B/tx")
}

// BenchmarkApplyMixed: one Apply of 10 batches of 100 transactions each on
// a ledger with returning members: earns priced from their amount, holds
// and their captures, returns of earlier sales. Each member has a few lots,
// so burns walk lots and returns look up their sale; the cost per
// transaction is that of the real mix, not of fresh members.
func BenchmarkApplyMixed(b *testing.B) {
	s := openBolt(b, filepath.Join(b.TempDir(), "ledger.db"))
	const members = 5000
	tills := make([]*ledgertest.Till, 10)
	for i := range tills {
		tills[i] = ledgertest.NewTill("s1", "t"+strconv.Itoa(i), "p1")
	}
	ledgertest.Register(b, s, tills...)
	now := ledgertest.T0
	n := 0
	id := func(p string) string { n++; return p + strconv.Itoa(n) }
	var sales []protocol.Transaction
	// Every member starts with three sales (lots).
	for round := range 3 {
		for i := 0; i < members; i += 100 {
			tl := tills[(i/100)%len(tills)]
			txs := make([]protocol.Transaction, 0, 100)
			for j := range 100 {
				tx := tl.EarnAmount(id("e"), "m"+strconv.Itoa(i+j), int64(1000+round*500))
				txs = append(txs, tx)
				sales = append(sales, tx)
			}
			now = now.Add(time.Millisecond)
			for j := range txs {
				txs[j].CreatedAt = now
			}
			if _, err := s.Apply([]*protocol.Batch{tl.Batch(b, txs...)}, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	txsDone, refused := 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batches := make([]*protocol.Batch, len(tills))
		for i, tl := range tills {
			txs := make([]protocol.Transaction, 0, 100)
			for len(txs) < 100 {
				m := "m" + strconv.Itoa(rng.IntN(members))
				switch p := rng.IntN(10); {
				case p < 6:
					tx := tl.EarnAmount(id("e"), m, 500+rng.Int64N(5000))
					txs = append(txs, tx)
					sales = append(sales, tx)
				case p < 9:
					h := tl.Hold(id("h"), m, 1)
					txs = append(txs, h, tl.Capture(id("c"), m, 1, h.ID))
				default:
					o := sales[rng.IntN(len(sales))]
					txs = append(txs, tl.Return(id("r"), o.Member, 1, o.ID))
				}
			}
			for j := range txs {
				txs[j].CreatedAt = now
			}
			batches[i] = &protocol.Batch{Version: protocol.Version, Store: tl.Store, Terminal: tl.Terminal, SentAt: now, Txs: txs}
			txsDone += len(txs)
		}
		now = now.Add(time.Millisecond)
		acks, err := s.Apply(batches, now)
		if err != nil {
			b.Fatal(err)
		}
		for _, list := range acks {
			for _, a := range list {
				if a.Status != protocol.StatusApplied {
					refused++
				}
			}
		}
	}
	// Refusals are cheaper than applies: the mix must be mostly applied to
	// measure the real path.
	if refused*20 > txsDone {
		b.Fatalf("%d of %d transactions not applied", refused, txsDone)
	}
	b.ReportMetric(float64(txsDone)/b.Elapsed().Seconds(), "tx/s")
}
