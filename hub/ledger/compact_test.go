package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// grownLedger writes a ledger at path as months of trade would: 3,200
// transactions of four tills in 40 commits, then an expiry run that empties
// every lot (and so the expiry index), and closes it. It returns the
// members' balances and the transaction records. bbolt grows a small file
// by doubling it, so the size is chosen for the ledger to have grown past
// 4 MiB (an 8 MiB file) while its compacted copy, about 3.4 MB in use,
// fits in 4 MiB.
func grownLedger(t *testing.T, path string) (map[string]int64, []ledger.TxRecord) {
	t.Helper()
	s := openBolt(t, path)
	ledgertest.SetCoalition(t, s, func(c *ledger.Coalition) { c.ExpiryMonths = 1 })
	tills := []*ledgertest.Till{
		ledgertest.NewTill("s1", "t1", "p1"), ledgertest.NewTill("s1", "t2", "p1"),
		ledgertest.NewTill("s2", "t1", "p2"), ledgertest.NewTill("s3", "t1", "p2"),
	}
	ledgertest.Register(t, s, tills...)
	n := 0
	for commit := range 40 {
		var batches []*protocol.Batch
		for _, tl := range tills {
			var txs []protocol.Transaction
			for range 20 {
				n++
				m := fmt.Sprintf("m%03d", n%300)
				if n%5 == 0 {
					txs = append(txs, tl.Burn(fmt.Sprintf("b%05d", n), m, 3))
				} else {
					txs = append(txs, tl.Earn(fmt.Sprintf("e%05d", n), m, int64(10+n%7)))
				}
			}
			batches = append(batches, tl.Batch(t, txs...))
		}
		ledgertest.Apply(t, s, ledgertest.T0.Add(time.Duration(commit)*time.Minute), batches...)
	}
	if rep, err := s.Expire(ledgertest.T0.AddDate(1, 0, 0)); err != nil || rep.Lots == 0 {
		t.Fatalf("Expire = %+v, %v", rep, err)
	}
	ledgertest.CheckVerify(t, s)
	bals, err := s.MemberBalances()
	if err != nil {
		t.Fatal(err)
	}
	txs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != n {
		t.Fatalf("%d transaction records, want %d", len(txs), n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return bals, txs
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// noFile fails the test when path exists.
func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is there (stat: %v)", filepath.Base(path), err)
	}
}

// TestCompact: a grown ledger compacts into a smaller file that holds the
// same buckets and keys, verifies, has the same balances and records,
// and takes new transactions after it reopens.
func TestCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	bals, txs := grownLedger(t, path)
	before, err := ledger.StatFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if before.LiveBytes <= 0 || before.LiveBytes > before.InuseBytes || before.InuseBytes > before.FileBytes {
		t.Fatalf("StatFile = %+v: want 0 < live <= in use <= file", before)
	}

	var (
		mu     sync.Mutex
		phases []ledger.CompactPhase
	)
	rep, err := ledger.Compact(path, ledger.CompactOptions{
		TxMaxSize:        64 << 10, // several transactions in the copy
		ProgressInterval: time.Millisecond,
		Progress: func(p ledger.CompactProgress) {
			mu.Lock()
			defer mu.Unlock()
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	t.Logf("compacted: %d -> %d bytes, %d live, %d in use", rep.Before.FileBytes, rep.After.FileBytes, rep.Before.LiveBytes, rep.Before.InuseBytes)
	mu.Lock()
	want := []ledger.CompactPhase{ledger.PhaseScan, ledger.PhaseCopy, ledger.PhaseSync, ledger.PhaseCheck, ledger.PhaseVerify, ledger.PhaseReplace}
	if !slices.Equal(phases, want) {
		t.Errorf("progress phases %v, want %v", phases, want)
	}
	mu.Unlock()

	if rep.Path != path || rep.Kept != "" {
		t.Errorf("report: path %q, kept %q", rep.Path, rep.Kept)
	}
	if !reflect.DeepEqual(rep.Before, before) {
		t.Errorf("report's Before = %+v\nStatFile before = %+v", rep.Before, before)
	}
	after, err := ledger.StatFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.After, after) {
		t.Errorf("report's After = %+v\nStatFile after = %+v", rep.After, after)
	}
	// Expiry emptied the lot index: the file must have shrunk.
	if after.FileBytes >= before.FileBytes {
		t.Errorf("file: %d bytes after compaction, %d before", after.FileBytes, before.FileBytes)
	}
	if after.LiveBytes != before.LiveBytes || after.Keys != before.Keys || !slices.Equal(after.Buckets, before.Buckets) {
		t.Errorf("buckets after compaction:\n%+v\nbefore:\n%+v", after.Buckets, before.Buckets)
	}
	for _, b := range after.Buckets {
		if b.Name == "txs" && b.Keys != int64(len(txs)) {
			t.Errorf("bucket txs: %d keys, want %d", b.Keys, len(txs))
		}
	}
	noFile(t, path+ledger.CompactSuffix)
	noFile(t, path+ledger.BeforeCompactSuffix)

	s := openBolt(t, path)
	ledgertest.CheckVerify(t, s)
	if got, err := s.MemberBalances(); err != nil || !reflect.DeepEqual(got, bals) {
		t.Errorf("balances after compaction differ (%v)", err)
	}
	if got, err := s.Transactions(); err != nil || !reflect.DeepEqual(got, txs) {
		t.Errorf("transaction records after compaction differ (%v)", err)
	}
	// The compacted ledger goes on: new transactions, and the old ids are
	// still known.
	tl := ledgertest.NewTill("s1", "t9", "p1")
	acks := ledgertest.Apply(t, s, ledgertest.T0.AddDate(1, 0, 1), tl.Batch(t, tl.Earn("after-1", "m001", 7), tl.Earn("e00001", "m001", 7)))
	if a := acks[0][0]; a.Status != protocol.StatusApplied || a.Balance != bals["m001"]+7 {
		t.Errorf("new earn after compaction: %+v", a)
	}
	if a := acks[0][1]; a.Status != protocol.StatusRejected || a.Code != protocol.CodeStoreMismatch {
		t.Errorf("an old id from another terminal after compaction: %+v, want rejected %s", a, protocol.CodeStoreMismatch)
	}
	ledgertest.CheckVerify(t, s)
	if st, err := s.FileStats(); err != nil || st.Keys <= after.Keys {
		t.Errorf("FileStats of the open store = %+v, %v; want more keys than %d", st, err, after.Keys)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openBolt(t, path).Close() // and once more, after a clean close
}

// TestCompactKeepOriginal: the original stays beside the compacted ledger,
// whole; a second compaction that would keep another one refuses before
// it changes anything.
func TestCompactKeepOriginal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	_, _, _ = workload(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	orig := fileSum(t, path)
	rep, err := ledger.Compact(path, ledger.CompactOptions{KeepOriginal: true})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	keep := path + ledger.BeforeCompactSuffix
	if rep.Kept != keep {
		t.Errorf("Kept = %q, want %q", rep.Kept, keep)
	}
	if fileSum(t, keep) != orig {
		t.Error("the kept original is not the ledger as it was")
	}
	if fileSum(t, path) == orig {
		t.Error("the ledger is the same file as before: not compacted")
	}
	kept, err := ledger.OpenBolt(keep, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.CheckVerify(t, kept)
	kept.Close()

	now := fileSum(t, path)
	_, err = ledger.Compact(path, ledger.CompactOptions{KeepOriginal: true})
	if err == nil || !strings.Contains(err.Error(), keep) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Compact keeping the original: %v, want a refusal naming %s", err, keep)
	}
	if fileSum(t, path) != now || fileSum(t, keep) != orig {
		t.Error("a refused compaction changed the files")
	}
	noFile(t, path+ledger.CompactSuffix)
}

// TestCompactLocked: while a hub (or a reader) holds the ledger, Compact
// gives up with ErrLocked and leaves the file as it was.
func TestCompactLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	orig := fileSum(t, path)
	start := time.Now()
	_, err := ledger.Compact(path, ledger.CompactOptions{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("Compact of a held ledger: %v, want ErrLocked", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Compact took %s to give up", took)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if _, err := ledger.StatFile(path); !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("StatFile of a held ledger: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, path) != orig {
		t.Error("a refused compaction changed the ledger")
	}
	noFile(t, path+ledger.CompactSuffix)

	// A reader (verify --data-dir) holds it: a compaction would replace
	// the file under it.
	ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Compact(path, ledger.CompactOptions{Timeout: 100 * time.Millisecond}); !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("Compact of a ledger a reader holds: %v, want ErrLocked", err)
	}
	ro.Close()
	if fileSum(t, path) != orig {
		t.Error("a refused compaction changed the ledger")
	}
	// A hub cannot start while Compact holds the file: Compact opens it
	// exclusively. (Shown by the reverse: Compact runs once it is free.)
	if _, err := ledger.Compact(path, ledger.CompactOptions{}); err != nil {
		t.Errorf("Compact once released: %v", err)
	}
}

// TestCompactRefuses: no file, a file that is no ledger, a ledger that does
// not verify: each is refused, and nothing is made or changed.
func TestCompactRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := ledger.Compact(missing, ledger.CompactOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Compact of a missing file: %v, want ErrNotExist", err)
	}
	noFile(t, missing)
	noFile(t, missing+ledger.CompactSuffix)

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Compact(empty, ledger.CompactOptions{}); err == nil || !strings.Contains(err.Error(), "not a ledger") {
		t.Errorf("Compact of an empty file: %v, want not a ledger", err)
	}

	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("things"))
		if err == nil {
			err = b.Put([]byte("k"), []byte("v"))
		}
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	orig := fileSum(t, other)
	if _, err := ledger.Compact(other, ledger.CompactOptions{}); err == nil || !strings.Contains(err.Error(), "not a ledger") {
		t.Errorf("Compact of another bbolt file: %v, want not a ledger", err)
	}
	if fileSum(t, other) != orig {
		t.Error("Compact changed a file that is no ledger")
	}

	path := filepath.Join(dir, "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	s.Close()
	corrupt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(ledger.MembersBucket).Put(ledger.MemberBalanceKey("m1"), []byte{0, 0, 0, 0, 0, 0, 0, 71})
	})
	orig = fileSum(t, path)
	_, err = ledger.Compact(path, ledger.CompactOptions{})
	if !errors.Is(err, ledger.ErrVerifyFailed) || errors.Is(err, ledger.ErrCompactMismatch) || !strings.Contains(err.Error(), "member/m1: stored 71, replayed 70") {
		t.Errorf("Compact of a ledger that does not verify: %v, want ErrVerifyFailed naming the problem", err)
	}
	if fileSum(t, path) != orig {
		t.Error("Compact changed a ledger that does not verify")
	}
	noFile(t, path+ledger.CompactSuffix)
}

// TestCompactCheck: a copy that lost a key, holds another value, lost a
// bucket's sequence or does not open is never put in the ledger's place.
func TestCompactCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"lost key", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket([]byte("txs")).Cursor().Last()
			return tx.Bucket([]byte("txs")).Delete(k)
		}, "bucket txs has 4 keys, the ledger's 5"},
		{"other value", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("txs"))
			k, v := b.Cursor().First()
			return b.Put(k, bytes.Replace(v, []byte(`"m1"`), []byte(`"m7"`), 1))
		}, "bucket txs holds other keys or values"},
		{"sequence", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("journal")).SetSequence(99)
		}, "bucket journal has sequence 99"},
		{"extra bucket", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("zzz"))
			return err
		}, "it has bucket zzz"},
		{"not a ledger", func(tx *bolt.Tx) error {
			return tx.DeleteBucket([]byte("meta"))
		}, "does not open as a ledger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ledger.db")
			s := openBolt(t, path)
			workload(t, s)
			s.Close()
			orig := fileSum(t, path)
			var opts ledger.CompactOptions
			ledger.SetAfterCopy(&opts, func(tmp string) error {
				corrupt(t, tmp, tc.damage)
				return nil
			})
			_, err := ledger.Compact(path, opts)
			if !errors.Is(err, ledger.ErrCompactMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compact with a damaged copy: %v, want ErrCompactMismatch saying %q", err, tc.want)
			}
			if fileSum(t, path) != orig {
				t.Error("the ledger changed")
			}
			noFile(t, path+ledger.CompactSuffix)
			noFile(t, path+ledger.BeforeCompactSuffix)
		})
	}
}

// TestStatFile: the stats of a closed file are those of the open store, and
// count what the ledger holds.
func TestStatFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openBolt(t, path)
	workload(t, s)
	open, err := s.FileStats()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	closed, err := ledger.StatFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(open, closed) {
		t.Errorf("FileStats of the open store = %+v\nStatFile of the closed file = %+v", open, closed)
	}
	var keys, live int64
	counts := map[string]int64{}
	for _, b := range closed.Buckets {
		keys += b.Keys
		live += b.LiveBytes
		counts[b.Name] = b.Keys
	}
	if keys != closed.Keys || live != closed.LiveBytes {
		t.Errorf("buckets add up to %d keys, %d bytes; totals %d, %d", keys, live, closed.Keys, closed.LiveBytes)
	}
	// workload: five transactions, three of them applied.
	if counts["txs"] != 5 || counts["journal"] != 3 || counts["meta"] < 1 {
		t.Errorf("key counts %v", counts)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != closed.FileBytes || closed.PageSize <= 0 {
		t.Errorf("FileBytes %d, page size %d; the file has %d (%v)", closed.FileBytes, closed.PageSize, fi.Size(), err)
	}
	if _, err := ledger.StatFile(path + ".nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("StatFile of a missing file: %v", err)
	}
}
