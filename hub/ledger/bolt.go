package ledger

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tillsync/tillsync/protocol"
)

// The bbolt layout. All buckets are top level.
var (
	// bucketMeta holds schemaKey → schemaVersion.
	bucketMeta = []byte("meta")
	// bucketJournal: 8-byte big-endian seq → JSON Entry. Its bbolt sequence is the last seq.
	bucketJournal = []byte("journal")
	// bucketMembers: each member's lots, balance and statement index, side
	// by side (members.go).
	bucketMembers = []byte("members")
	// bucketBalances: partner account name → 8-byte big-endian int64 (a
	// member's balance is in bucketMembers).
	bucketBalances = []byte("balances")
	// bucketTxs: transaction id → JSON TxRecord, forever.
	bucketTxs = []byte("txs")
	// bucketVoids: id of a burn not yet seen → id of the void that bars it.
	bucketVoids = []byte("pending_voids")
	// bucketTerminals: "store/terminal" → JSON Terminal.
	bucketTerminals = []byte("terminals")
	// bucketCoalition holds coalitionKey → JSON Coalition.
	bucketCoalition = []byte("coalition")
	// bucketPartners: partner id → JSON Partner.
	bucketPartners = []byte("partners")
	// bucketStores: store id → JSON StoreInfo.
	bucketStores = []byte("stores")
	// bucketRules: partner, 0x00, 8-byte version → JSON protocol.RuleSet.
	bucketRules = []byte("rules")
	// bucketLotTimes: 8-byte earned-at, member, 0x00, lot id → empty: the
	// lots that still hold points, oldest first, for the expiry run.
	bucketLotTimes = []byte("lot_times")
	// bucketHolds: member, 0x00, hold id → 8-byte expiry (unix ns), 8-byte points.
	bucketHolds = []byte("holds")
	// bucketFlags: member → JSON Flag, while the member owes points.
	bucketFlags = []byte("flags")
	// bucketMemberPartners: member, 0x00, partner → empty: where a member has earned.
	bucketMemberPartners = []byte("member_partners")
	// bucketSettle: 4-byte day, partner, 0x00, restated period → three
	// 8-byte totals (issued, redeemed, expired): the settlement report's source.
	bucketSettle = []byte("settlement")
	// bucketPeriods: 4-byte from-day → JSON Period.
	bucketPeriods = []byte("periods")

	// bucketTokenSightings: token nonce → JSON TokenRecord, until
	// TokenRetention after the token's expiry.
	bucketTokenSightings = []byte("token_sightings")
	// bucketTokenExpiry: 8-byte prune-at (unix ns), nonce → empty: the
	// sightings in the order PruneTokens deletes them.
	bucketTokenExpiry = []byte("token_expiry")
	// bucketTokenFlags: token nonce → JSON TokenRecord of a token accepted at two stores, for good.
	bucketTokenFlags = []byte("token_flags")
	// bucketTerminalSeqs: "store/terminal", 0x00, 8-byte enrollment
	// generation, 8-byte terminal sequence number → the id of the
	// transaction that came with it first, forever (seq_reused).
	bucketTerminalSeqs = []byte("terminal_seqs")

	allBuckets = [][]byte{
		bucketMeta, bucketJournal, bucketMembers, bucketBalances, bucketTxs, bucketVoids, bucketTerminals,
		bucketCoalition, bucketPartners, bucketStores, bucketRules, bucketLotTimes, bucketHolds,
		bucketFlags, bucketMemberPartners, bucketSettle, bucketPeriods,
	}
	// addedBuckets came after schema 2 was released, and a writable open
	// adds them; every schema-3 file has them, since a writable open of this
	// build wrote it (their readers still treat a missing bucket as empty).
	addedBuckets = [][]byte{bucketTokenSightings, bucketTokenExpiry, bucketTokenFlags, bucketEnrollment, bucketEnrollTokens, bucketAPITokens, bucketTerminalSeqs}

	coalitionKey = []byte("settings")
	// chainKey (in meta) holds the hash of the last journal entry.
	chainKey  = []byte("chain_head")
	schemaKey = []byte("schema")
)

// schemaVersion is the layout above. A file written by a newer layout is
// refused; one of schema 2 is upgraded in place by a writable open
// (upgrade.go).
const schemaVersion = "3"

// BoltOptions configures OpenBolt.
type BoltOptions struct {
	// Timeout is how long OpenBolt waits for the file lock before returning
	// ErrLocked. Zero means 1s; it is never infinite.
	Timeout time.Duration
	// Logger receives warnings (e.g. a duplicate id with different content).
	// Nil discards them.
	Logger *slog.Logger
	// ReadOnly opens the file for reading only (shared lock), for verify
	// and reports while no hub holds it. Writes then fail.
	ReadOnly bool
}

// BoltStore is the ledger in one bbolt file. It holds the file's lock while open.
type BoltStore struct {
	db   *bolt.DB
	path string
	log  *slog.Logger

	// mu serialises Apply so that its reusable state (ap) has one user;
	// bbolt serialises writers anyway.
	mu sync.Mutex
	ap applier
	// reg is the coalition model, reloaded after every change to it.
	reg atomic.Pointer[registry]
	// apiUse is when each API token's use was last recorded (or is being
	// recorded), so that concurrent requests write it once.
	apiUseMu sync.Mutex
	apiUse   map[string]time.Time
	// auth is every enrolled terminal's TerminalAuth (enroll.go).
	auth authCache
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (creating if needed) the ledger file at path. It returns an
// error wrapping ErrLocked when another process holds the file.
func OpenBolt(path string, opts BoltOptions) (*BoltStore, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("ledger: open %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opts.Timeout,
		ReadOnly: opts.ReadOnly,
		// NoSync stays false: an ack promises the transaction is on disk.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &lockedError{path: path}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	prepare := db.Update
	if opts.ReadOnly {
		prepare = db.View
	}
	upgrading, toMove := false, -1
	err = prepare(func(tx *bolt.Tx) error {
		if opts.ReadOnly {
			if err := checkSchema(tx); err != nil {
				return err
			}
			for _, name := range allBuckets {
				if tx.Bucket(name) == nil {
					return fmt.Errorf("bucket %s is missing", name)
				}
			}
			return nil
		}
		for _, name := range slices.Concat(allBuckets, addedBuckets) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(schemaKey); {
		case v == nil:
			return meta.Put(schemaKey, []byte(schemaVersion))
		case string(v) == schemaV2:
			// Steps 0 and 1 of the upgrade (upgrade.go), with the new
			// bucket made above: a key step 0 cannot place fails this
			// transaction, and the file stays as it was.
			var err error
			if toMove, err = checkUpgradable(tx); err != nil {
				return fmt.Errorf("the ledger file has schema 2 and cannot be upgraded to %s, so it is left as it was: %w; the previous version of tillsync-hub can still open it (its verify --data-dir reports the damage)", schemaVersion, err)
			}
			upgrading = true
			if err := meta.Put(upgradeKey, []byte(schemaV2)); err != nil {
				return err
			}
			return meta.Put(schemaKey, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("the file has ledger schema %q and this build reads %q; it was written by another version of tillsync-hub", v, schemaVersion)
		}
		upgrading = meta.Get(upgradeKey) != nil
		return nil
	})
	if err == nil && upgrading {
		err = upgrade(db, log, toMove)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	s := &BoltStore{db: db, path: path, log: log}
	s.ap.init(log)
	if err := s.refresh(); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	if err := s.loadAuth(); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	log.Debug("ledger opened", "path", path)
	return s, nil
}

// Close closes the file and releases its lock. Calling it twice is harmless.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("ledger: close %s: %w", s.path, err)
	}
	return nil
}

// Balance returns a member's points; known is false for a member never seen.
func (s *BoltStore) Balance(member string) (points int64, known bool, err error) {
	if !protocol.ValidID(member) {
		return 0, false, idError("member", member)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMembers).Get(balanceKey(nil, member))
		if v == nil {
			return nil
		}
		var ok bool
		if points, ok = decodeBalance(v); !ok {
			return fmt.Errorf("corrupt balance of %s (%d bytes)", MemberAccount(member), len(v))
		}
		known = true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("ledger: balance %s: %w", member, err)
	}
	return points, known, nil
}

// Statement returns the member's journal entries, newest first, at most limit.
func (s *BoltStore) Statement(member string, limit int) ([]Entry, error) {
	if !protocol.ValidID(member) {
		return nil, idError("member", member)
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		journal := tx.Bucket(bucketJournal)
		c := tx.Bucket(bucketMembers).Cursor()
		prefix := memberKey(nil, member, kindEntry)
		var jk []byte
		// The member's entry keys hold the complement of the sequence number: newest first.
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("corrupt statement index key %x", k)
			}
			seq := entrySeq(k[len(prefix):])
			jk = seqKey(jk[:0], seq)
			v := journal.Get(jk)
			if v == nil {
				return fmt.Errorf("index names journal entry %d, which is missing", seq)
			}
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("journal entry %d: %w", seq, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: statement %s: %w", member, err)
	}
	return out, nil
}

// Terminals lists every terminal that ever sent a batch, ordered by store then terminal.
func (s *BoltStore) Terminals() ([]Terminal, error) {
	var out []Terminal
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTerminals).ForEach(func(k, v []byte) error {
			var t Terminal
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("terminal %s: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: terminals: %w", err)
	}
	// Keys are "store/terminal", and '-' and '.' sort before '/', so the
	// bucket's order is not store-then-terminal order.
	slices.SortFunc(out, func(a, b Terminal) int {
		return cmp.Or(strings.Compare(a.Store, b.Store), strings.Compare(a.Terminal, b.Terminal))
	})
	return out, nil
}

// MemberBalances returns every member's stored balance.
func (s *BoltStore) MemberBalances() (map[string]int64, error) {
	out := make(map[string]int64)
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachMemberBalance(tx.Bucket(bucketMembers), func(member []byte, v []byte) error {
			b, ok := decodeBalance(v)
			if !ok {
				return fmt.Errorf("corrupt balance of %s (%d bytes)", member, len(v))
			}
			out[string(member)] = b
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: member balances: %w", err)
	}
	return out, nil
}

// TransactionCount is how many transactions the ledger has answered
// (applied or rejected), without reading them.
func (s *BoltStore) TransactionCount() (int64, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTxs).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: count transactions: %w", err)
	}
	return int64(n), nil
}

// Transactions returns the records of all answered transactions, ordered by id.
func (s *BoltStore) Transactions() ([]TxRecord, error) {
	var out []TxRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTxs).ForEach(func(k, v []byte) error {
			var r TxRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: transactions: %w", err)
	}
	return out, nil
}
