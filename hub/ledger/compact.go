package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A bbolt file never shrinks: pages freed by deletes and by the copy-on-write
// of every commit are reused, but the file keeps its largest size. Compact
// writes the live data into a new, densely packed file with bbolt's own
// bolt.Compact and puts it in the ledger's place once it has been read back
// and checked.

// The files Compact makes beside the ledger at path.
const (
	// CompactSuffix names the new file while it is written and checked:
	// path+CompactSuffix. One left by an interrupted compaction is removed
	// by the next.
	CompactSuffix = ".compact"
	// BeforeCompactSuffix names the original ledger that
	// CompactOptions.KeepOriginal keeps: path+BeforeCompactSuffix.
	BeforeCompactSuffix = ".before-compact"
)

// DefaultCompactTxSize is CompactOptions.TxMaxSize's default: the bytes of
// keys and values copied per write transaction of the new file, which
// bounds Compact's memory.
const DefaultCompactTxSize = 32 << 20

// ErrCompactMismatch is returned (wrapped) by Compact when the compacted
// copy, read back, does not hold exactly the ledger's buckets, keys and
// values, or fails Verify where the ledger passes. The ledger is left as
// it was and the copy removed.
var ErrCompactMismatch = errors.New("the compacted copy does not match the ledger")

// ErrVerifyFailed is returned (wrapped) by Compact when the ledger itself
// does not pass Verify. It is left as it was, for an operator to look at
// (tillsync-hub verify --data-dir): a compaction rewrites every page, and
// a ledger with a problem stays the evidence of it.
var ErrVerifyFailed = errors.New("the ledger does not pass verify")

// CompactOptions configures Compact.
type CompactOptions struct {
	// KeepOriginal keeps the ledger as it was under path+BeforeCompactSuffix
	// (a hard link, or a copy where the file system has none). Compact
	// refuses to start while that file exists. Default: the original is
	// gone once the compacted file took its place.
	KeepOriginal bool
	// Timeout is how long Compact waits for the file lock before returning
	// an error wrapping ErrLocked. Zero means 1s; it is never infinite.
	Timeout time.Duration
	// TxMaxSize is passed to bolt.Compact: the bytes of keys and values
	// per write transaction of the new file. Zero means
	// DefaultCompactTxSize.
	TxMaxSize int64
	// Progress, when not nil, is called as each phase begins and then
	// every ProgressInterval while it runs, with the work done so far. It
	// is called from Compact's goroutines but never twice at once, and
	// must return quickly.
	Progress func(CompactProgress)
	// ProgressInterval is how often Progress is called within a phase.
	// Zero means 1s.
	ProgressInterval time.Duration

	// afterCopy, in tests, changes the copy before it is checked.
	afterCopy func(tmp string) error
}

// CompactPhase is a step of Compact; they run in the order listed.
type CompactPhase string

// The phases of Compact.
const (
	// PhaseScan reads the ledger: its buckets, keys, live data and a
	// checksum of each bucket. Done counts live bytes read; Total is 0.
	PhaseScan CompactPhase = "scan"
	// PhaseCopy runs bolt.Compact into path+CompactSuffix. Done is the new
	// file's size so far, Total about the size it will have. bolt.Compact
	// reports nothing itself: Done grows as its transactions commit and
	// the file is extended (in steps of up to 16 MiB).
	PhaseCopy CompactPhase = "copy"
	// PhaseSync flushes the new file and its directory to disk.
	PhaseSync CompactPhase = "sync"
	// PhaseCheck reads the new file back and compares it with the scan.
	// Done counts live bytes read, Total is the ledger's live bytes.
	PhaseCheck CompactPhase = "check"
	// PhaseVerify runs Verify on the new file; it reports no progress.
	PhaseVerify CompactPhase = "verify"
	// PhaseReplace renames the new file over the ledger.
	PhaseReplace CompactPhase = "replace"
)

// CompactProgress is what Compact reports while it runs.
type CompactProgress struct {
	// Phase is the step under way.
	Phase CompactPhase
	// Done and Total are in bytes, as each phase documents; Total is 0
	// when it is not known.
	Done, Total int64
}

// CompactReport is what Compact did.
type CompactReport struct {
	// Path is the ledger file compacted.
	Path string
	// Before is the ledger as it was; After is the compacted file in its
	// place. Their buckets, keys and values are the same: Compact checked it.
	Before, After FileStats
	// Kept is where the original was kept (CompactOptions.KeepOriginal),
	// or "".
	Kept string
}

// FileStats describes a ledger file: its size against the data it holds.
type FileStats struct {
	// FileBytes is the file's size on disk.
	FileBytes int64 `json:"file_bytes"`
	// LiveBytes is the data the file holds: the sum, over every bucket
	// (nested ones included), of the lengths of its keys and values. A
	// nested bucket counts its name as a key; the header bbolt keeps as its
	// value is not data and is not counted. No file holding the ledger can
	// be smaller.
	LiveBytes int64 `json:"live_bytes"`
	// InuseBytes is what bbolt's pages hold of that data
	// (bolt.BucketStats: LeafInuse and BranchInuse of every bucket, and
	// the page of a top-level bucket small enough to be stored inline):
	// LiveBytes plus bbolt's 16-byte header per key and per page, and the
	// branch pages. A freshly compacted file is about this, rounded up to
	// whole pages, plus its meta, root and freelist pages and the room
	// bbolt grows a file by (see Compact).
	InuseBytes int64 `json:"inuse_bytes"`
	// PageSize is the file's page size.
	PageSize int `json:"page_size"`
	// Keys is the number of keys in all buckets, nested buckets' names
	// included.
	Keys int64 `json:"keys"`
	// Buckets lists every bucket in the file's order, a nested one after
	// its parent.
	Buckets []BucketSize `json:"buckets"`
}

// BucketSize is one bucket of FileStats.
type BucketSize struct {
	// Name is the bucket's name; a nested bucket's is its parent's, "/",
	// and its own.
	Name string `json:"name"`
	// Keys counts its keys, nested buckets' names included (not their keys).
	Keys int64 `json:"keys"`
	// LiveBytes is the sum of the lengths of its keys and values.
	LiveBytes int64 `json:"live_bytes"`
}

// StatFile reads the FileStats of the ledger file at path, read-only
// (a shared lock, as verify takes). It reads the file's pages in use
// twice, for bbolt's page stats and for the keys and values. It returns
// an error wrapping ErrLocked when a hub holds the file: ask that hub's
// BoltStore.FileStats instead.
func StatFile(path string) (FileStats, error) {
	if _, err := os.Stat(path); err != nil {
		return FileStats{}, fmt.Errorf("ledger: stat %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return FileStats{}, &lockedError{path: path}
	}
	if err != nil {
		return FileStats{}, fmt.Errorf("ledger: stat %s: %w", path, err)
	}
	defer db.Close()
	st, _, err := statDB(db, path, false, nil)
	if err != nil {
		return FileStats{}, fmt.Errorf("ledger: stat %s: %w", path, err)
	}
	return st, nil
}

// FileStats reads the FileStats of the store's file, as StatFile does, in
// one read transaction: writers go on meanwhile.
func (s *BoltStore) FileStats() (FileStats, error) {
	st, _, err := statDB(s.db, s.path, false, nil)
	if err != nil {
		return FileStats{}, fmt.Errorf("ledger: stat %s: %w", s.path, err)
	}
	return st, nil
}

// Compact compacts the ledger file at path, which no hub may hold: it
// copies the live data with bolt.Compact into path+CompactSuffix
// (owner-only, and on Unix the ledger's owner and group), syncs that file
// and its directory, reads it back and checks
// that it holds the same buckets, keys, values and bucket sequences as the
// ledger (by count and SHA-256 per bucket) and passes Verify, then renames
// it over path. Only then is the original removed, or kept as
// path+BeforeCompactSuffix when opts.KeepOriginal says so. A path that is
// a symbolic link stays one: the file it names is compacted, beside itself.
//
// It holds the ledger's lock throughout, exclusively: a hub cannot start
// on the file meanwhile, nor can another compaction. When a hub (or
// anything else) holds the file it returns an error wrapping ErrLocked and
// changes nothing. A ledger that fails Verify is left alone
// (ErrVerifyFailed), and so is one whose copy does not check out
// (ErrCompactMismatch). Whatever fails, path is as it was, and the copy is
// removed.
//
// It needs free space for the copy: about FileStats.InuseBytes, plus the
// room bbolt grows a file by (on Unix, to the next power of two up to
// 16 MiB, by 16 MiB beyond; on Windows, to the size it maps). It takes as
// long as reading the ledger twice, writing the copy and reading that
// twice: minutes for a ledger of several GB.
func Compact(path string, opts CompactOptions) (CompactReport, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.TxMaxSize <= 0 {
		opts.TxMaxSize = DefaultCompactTxSize
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = time.Second
	}
	rep := CompactReport{Path: path}
	fail := func(err error) (CompactReport, error) {
		return CompactReport{}, fmt.Errorf("ledger: compact %s: %w", path, err)
	}
	// A ledger.db that links to the file elsewhere stays a link: the
	// file is compacted where it is.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if path, err = filepath.EvalSymlinks(path); err != nil {
			return fail(err)
		}
		rep.Path = path
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if fi.Size() == 0 {
		return fail(errors.New("the file is empty, not a ledger"))
	}
	tmp, keep := path+CompactSuffix, path+BeforeCompactSuffix
	if opts.KeepOriginal {
		if _, err := os.Lstat(keep); err == nil {
			return fail(fmt.Errorf("%s exists, from an earlier compaction: move it away before keeping another original", keep))
		}
	}

	// Exclusively: a shared lock would let a second compaction write the
	// same copy. No O_CREATE: a ledger removed meanwhile is not made anew.
	src, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		FreelistType: bolt.FreelistMapType,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return os.OpenFile(name, flag&^os.O_CREATE, perm)
		},
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return CompactReport{}, &lockedError{path: path}
	}
	if err != nil {
		return fail(err)
	}
	srcOpen := true
	closeSrc := func() error {
		if !srcOpen {
			return nil
		}
		srcOpen = false
		return src.Close()
	}
	defer closeSrc()

	prog := startProgress(opts.Progress, opts.ProgressInterval)
	defer prog.stop()

	// The ledger: its schema, then what it holds.
	err = src.View(checkSchema)
	if err != nil {
		return fail(err)
	}
	var scanned atomic.Int64
	prog.begin(PhaseScan, 0, scanned.Load)
	before, sums, err := statDB(src, path, true, &scanned)
	if err != nil {
		return fail(fmt.Errorf("read: %w", err))
	}
	rep.Before = before

	// A copy left by an interrupted compaction: nothing else writes it
	// while this one holds the ledger's lock.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("remove the copy an earlier compaction left: %w", err))
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
		}
	}()
	prog.begin(PhaseCopy, expectedSize(before), func() int64 {
		if fi, err := os.Stat(tmp); err == nil {
			return fi.Size()
		}
		return 0
	})
	// NoSync: a copy is worth nothing until it is synced once, below, and
	// checked.
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fail(fmt.Errorf("create the copy: %w", err))
	}
	if err := bolt.Compact(dst, src, opts.TxMaxSize); err != nil {
		dst.Close()
		return fail(fmt.Errorf("copy into %s: %w", tmp, err))
	}
	prog.begin(PhaseSync, 0, nil)
	err = dst.Sync()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fail(fmt.Errorf("sync %s: %w", tmp, err))
	}
	// Run by root for a hub that runs as its own user, the copy must
	// still be that user's.
	if err := sameOwner(tmp, fi); err != nil {
		return fail(fmt.Errorf("give %s the ledger's owner: %w", tmp, err))
	}
	if opts.afterCopy != nil {
		if err := opts.afterCopy(tmp); err != nil {
			return fail(err)
		}
	}

	// The copy, read back as the hub would open it.
	var checked atomic.Int64
	prog.begin(PhaseCheck, before.LiveBytes, checked.Load)
	after, unverified, err := checkCopy(tmp, opts.Timeout, sums, &checked, func() { prog.begin(PhaseVerify, 0, nil) })
	if err != nil {
		return fail(fmt.Errorf("%w; the ledger was left as it was", err))
	}
	if unverified != "" {
		// The copy holds what the ledger holds: is it the ledger itself?
		var r VerifyReport
		err := src.View(func(tx *bolt.Tx) error {
			reg, err := loadRegistry(tx)
			if err != nil {
				return err
			}
			return verify(tx, reg, &r, &stopper{ctx: context.Background()})
		})
		if err == nil && !r.OK() {
			return fail(fmt.Errorf("%w (%s); it was left as it was", ErrVerifyFailed, r.summary()))
		}
		return fail(fmt.Errorf("%w: the copy does not pass verify where the ledger does (%s); the ledger was left as it was", ErrCompactMismatch, unverified))
	}

	prog.begin(PhaseReplace, 0, nil)
	if !replaceOpen {
		// The ledger cannot be renamed over while it is open here.
		if err := closeSrc(); err != nil {
			return fail(err)
		}
	}
	if opts.KeepOriginal {
		if err := keepOriginal(path, keep); err != nil {
			return fail(fmt.Errorf("keep the original as %s: %w", keep, err))
		}
		rep.Kept = keep
	}
	if err := os.Rename(tmp, path); err != nil {
		if rep.Kept != "" {
			os.Remove(keep)
		}
		return fail(fmt.Errorf("replace it with %s: %w", tmp, err))
	}
	done = true
	// Closing releases the lock on the original, gone from the directory
	// unless kept.
	if err := closeSrc(); err != nil {
		return fail(fmt.Errorf("replaced, but closing the original failed: %w", err))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fail(fmt.Errorf("replaced, but syncing the directory failed: %w", err))
	}
	rep.After = after
	return rep, nil
}

// checkCopy opens the copy at tmp as the hub would (read-only), compares
// what it holds with sums, the ledger's, and verifies it. verifying is
// called when the comparison is done and Verify begins. unverified is the
// first problem Verify found, when it found one.
func checkCopy(tmp string, timeout time.Duration, sums []bucketSum, checked *atomic.Int64, verifying func()) (_ FileStats, unverified string, _ error) {
	st, err := OpenBolt(tmp, BoltOptions{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return FileStats{}, "", fmt.Errorf("%w: it does not open as a ledger: %v", ErrCompactMismatch, err)
	}
	defer st.Close()
	stats, got, err := statDB(st.db, tmp, true, checked)
	if err != nil {
		return FileStats{}, "", fmt.Errorf("read back %s: %w", tmp, err)
	}
	if msg := compareSums(sums, got); msg != "" {
		return FileStats{}, "", fmt.Errorf("%w: %s", ErrCompactMismatch, msg)
	}
	verifying()
	r, err := st.Verify()
	if err != nil {
		return FileStats{}, "", fmt.Errorf("verify %s: %w", tmp, err)
	}
	if !r.OK() {
		return stats, r.summary(), nil
	}
	return stats, "", nil
}

// summary names a failed VerifyReport's first problem.
func (r VerifyReport) summary() string {
	switch {
	case r.ChainBreak != "":
		return r.ChainBreak
	case len(r.Unbalanced) > 0:
		return fmt.Sprintf("entry %d does not balance", r.Unbalanced[0])
	case len(r.Mismatches) > 0:
		return r.Mismatches[0]
	case len(r.Problems) > 0:
		return r.Problems[0]
	}
	return "no problem"
}

// bucketSum is what statDB saw of one bucket, to compare two files by.
type bucketSum struct {
	path  string // the names from the top, each length-prefixed
	name  string // for people
	keys  int64
	bytes int64
	seq   uint64
	sum   [sha256.Size]byte
}

// compareSums says how got differs from want, or "" when it does not.
func compareSums(want, got []bucketSum) string {
	for i := range max(len(want), len(got)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("bucket %s is missing", want[i].name)
		case i >= len(want):
			return fmt.Sprintf("it has bucket %s, which the ledger has not", got[i].name)
		case want[i].path != got[i].path:
			return fmt.Sprintf("it has bucket %s where the ledger has %s", got[i].name, want[i].name)
		case want[i].keys != got[i].keys:
			return fmt.Sprintf("bucket %s has %d keys, the ledger's %d", want[i].name, got[i].keys, want[i].keys)
		case want[i].seq != got[i].seq:
			return fmt.Sprintf("bucket %s has sequence %d, the ledger's %d", want[i].name, got[i].seq, want[i].seq)
		case want[i].bytes != got[i].bytes || want[i].sum != got[i].sum:
			return fmt.Sprintf("bucket %s holds other keys or values than the ledger's (same count, %d bytes against %d)", want[i].name, got[i].bytes, want[i].bytes)
		}
	}
	return ""
}

// statDB reads db's FileStats in one read transaction; with sums it also
// returns a checksum of every bucket. read, when not nil, counts the live
// bytes read so far.
func statDB(db *bolt.DB, path string, sums bool, read *atomic.Int64) (FileStats, []bucketSum, error) {
	w := walker{sums: sums, read: read}
	var st FileStats
	err := db.View(func(tx *bolt.Tx) error {
		st.PageSize = tx.DB().Info().PageSize
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			bs := b.Stats()
			st.InuseBytes += int64(bs.LeafInuse + bs.BranchInuse)
			if b.Root() == 0 {
				// Inline: its page is a value of the root, which no
				// bucket's stats count. (A nested inline bucket's page is
				// in its parent's LeafInuse already.)
				st.InuseBytes += int64(bs.InlineBucketInuse)
			}
			return w.bucket(nil, name, b)
		})
	})
	if err != nil {
		return FileStats{}, nil, err
	}
	for _, b := range w.out {
		st.Keys += b.keys
		st.LiveBytes += b.bytes
		st.Buckets = append(st.Buckets, BucketSize{Name: b.name, Keys: b.keys, LiveBytes: b.bytes})
	}
	st.FileBytes = fileSize(path, 0)
	return st, w.out, nil
}

// walker reads buckets depth first, in key order.
type walker struct {
	sums bool
	read *atomic.Int64
	out  []bucketSum
	buf  []byte
}

func (w *walker) bucket(parent []string, name []byte, b *bolt.Bucket) error {
	names := append(parent[:len(parent):len(parent)], string(name))
	var path []byte
	for _, n := range names {
		path = binary.AppendUvarint(path, uint64(len(n)))
		path = append(path, n...)
	}
	i := len(w.out)
	w.out = append(w.out, bucketSum{path: string(path), name: strings.Join(names, "/"), seq: b.Sequence()})
	var h hash.Hash
	if w.sums {
		h = sha256.New()
	}
	var keys, size int64
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		keys++
		size += int64(len(k) + len(v))
		if w.read != nil {
			w.read.Add(int64(len(k) + len(v)))
		}
		nested := v == nil && b.Bucket(k) != nil
		if w.sums {
			w.buf = binary.AppendUvarint(w.buf[:0], uint64(len(k)))
			w.buf = append(w.buf, k...)
			if nested {
				w.buf = append(w.buf, 0)
			} else {
				w.buf = append(w.buf, 1)
				w.buf = binary.AppendUvarint(w.buf, uint64(len(v)))
			}
			h.Write(w.buf)
			if !nested {
				h.Write(v)
			}
		}
		if nested {
			if err := w.bucket(names, k, b.Bucket(k)); err != nil {
				return err
			}
		}
	}
	w.out[i].keys, w.out[i].bytes = keys, size
	if w.sums {
		copy(w.out[i].sum[:], h.Sum(nil))
	}
	return nil
}

// expectedSize is about the size of a compacted file of st: its pages in
// use, filled, and the meta, root and freelist pages.
func expectedSize(st FileStats) int64 {
	return st.InuseBytes + 4*int64(st.PageSize)
}

func fileSize(path string, otherwise int64) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return otherwise
	}
	return fi.Size()
}

// keepOriginal gives the ledger at path a second name, keep: a hard link,
// or a synced copy where links are not supported.
func keepOriginal(path, keep string) error {
	if err := os.Link(path, keep); err == nil {
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		return err
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(keep, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(keep)
	}
	return err
}

// progress calls a CompactOptions.Progress function as phases begin and
// every interval while they run, one call at a time.
type progress struct {
	fn   func(CompactProgress)
	mu   sync.Mutex
	cur  CompactProgress
	done func() int64
	quit chan struct{}
	wg   sync.WaitGroup
}

func startProgress(fn func(CompactProgress), every time.Duration) *progress {
	if fn == nil {
		return nil
	}
	p := &progress{fn: fn, quit: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.mu.Lock()
				if p.done != nil {
					p.cur.Done = p.done()
					p.fn(p.cur)
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// begin reports that phase began; done, when not nil, says the work done
// in it so far, for the reports that follow.
func (p *progress) begin(phase CompactPhase, total int64, done func() int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur, p.done = CompactProgress{Phase: phase, Total: total}, done
	if done != nil {
		p.cur.Done = done()
	}
	p.fn(p.cur)
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
}
