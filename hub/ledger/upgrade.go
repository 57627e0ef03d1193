package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Upgrading a schema-2 file to schema 3.
//
// Schema 2 kept a member's lots (bucket "lots"), statement index
// ("member_journal") and balance (the member/ keys of "balances") in three
// buckets; schema 3 keeps them side by side in bucketMembers (members.go).
// Nothing else changed. A writable open of a schema-2 file upgrades it in
// place before it returns:
//
//  0. A read-only pass gives every key to be moved its new key. A key it
//     cannot place (a damaged file) refuses the upgrade while the file is
//     still schema 2, naming the key: the previous version can still open
//     it and report it, and nothing of it is lost to a half-done upgrade
//     that could not finish.
//  1. One commit creates bucketMembers, sets the schema to 3 and records
//     upgradeKey. From then on an older build refuses the file (its schema
//     is not theirs), and so does a read-only open of this one until the
//     upgrade is done: half of the members' data is not yet where it reads.
//  2. Commits of upgradeChunk keys each move keys from the old buckets to
//     bucketMembers: a chunk is put under its new keys and deleted from
//     where it was in the same commit, so whenever a commit lands every key
//     is in exactly one place. A crash or a kill in between loses nothing,
//     and the next writable open carries on from where the last commit
//     left off.
//  3. When the old buckets are empty, one commit deletes them and
//     upgradeKey.
//
// The journal, the transactions' records and everything else stay as they
// are, so the hash chain and Verify's replay are untouched.

var (
	// The buckets of schema 2 that schema 3 folds into bucketMembers.
	bucketLotsV2        = []byte("lots")           // member, 0x00, 8-byte earned-at, lot id → lotValue
	bucketMemberIndexV2 = []byte("member_journal") // member, 0x00, 8-byte seq → empty

	// upgradeKey (in meta) is the schema a file is being upgraded from,
	// while it is.
	upgradeKey = []byte("upgrading_from")
)

// schemaV2 is the one older schema this build upgrades.
const schemaV2 = "2"

// upgradeChunk is how many keys one commit of the upgrade moves: enough
// that a ledger of ten million transactions (twenty million such keys)
// takes a few hundred commits, few enough that a commit's dirty pages stay
// well within memory.
var upgradeChunk = 50_000

// ErrOldSchema is returned (wrapped, test with errors.Is) by a read-only
// open, and by Compact, of a ledger file that a writable open has yet to
// upgrade.
var ErrOldSchema = errors.New("the ledger file is of an older schema")

type oldSchemaError struct{ from string }

func (e *oldSchemaError) Error() string {
	return fmt.Sprintf("the ledger file has schema %s (or is part way through its upgrade to %s), which only a writable open upgrades; start the hub on its data dir once (tillsync-hub serve upgrades it in place, with progress in its log), then try again", e.from, schemaVersion)
}

func (e *oldSchemaError) Is(target error) bool { return target == ErrOldSchema }

// checkSchema is a read-only open's check: the file is a ledger of this
// build's schema, whole.
func checkSchema(tx *bolt.Tx) error {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return fmt.Errorf("not a ledger of schema %q", schemaVersion)
	}
	v := string(m.Get(schemaKey))
	switch {
	case v == schemaV2:
		return &oldSchemaError{from: v}
	case v == schemaVersion && m.Get(upgradeKey) != nil:
		return &oldSchemaError{from: string(m.Get(upgradeKey))}
	case v != schemaVersion:
		return fmt.Errorf("not a ledger of schema %q", schemaVersion)
	}
	return nil
}

// upgradeStop, when set (by tests), ends the upgrade with an error after
// that many commits of step 2, as a crash would.
var upgradeStop int

// upgradeSources are the keys the upgrade moves: each bucket's keys with
// the prefix, and how each gets its new key.
var upgradeSources = []struct {
	bucket, prefix []byte
	rekey          func(b, k []byte) ([]byte, error)
}{
	{bucketLotsV2, nil, rekeyLot},
	{bucketMemberIndexV2, nil, rekeyIndexEntry},
	{bucketBalances, []byte(memberPrefix), rekeyBalance},
}

// checkUpgradable is step 0: it gives every key to be moved its new key,
// and returns how many there are, or the first it cannot place.
func checkUpgradable(tx *bolt.Tx) (int, error) {
	n := 0
	var nk []byte
	for _, src := range upgradeSources {
		b := tx.Bucket(src.bucket)
		if b == nil {
			continue
		}
		c := b.Cursor()
		for k, v := c.Seek(src.prefix); k != nil && bytes.HasPrefix(k, src.prefix); k, v = c.Next() {
			if v == nil && b.Bucket(k) != nil {
				return n, fmt.Errorf("%s: key %q is a nested bucket; a schema-2 ledger has none there", src.bucket, k)
			}
			var err error
			if nk, err = src.rekey(nk[:0], k); err != nil {
				return n, fmt.Errorf("%s: %w", src.bucket, err)
			}
			n++
		}
	}
	return n, nil
}

// upgrade carries out steps 2 and 3 on a file whose step 1 is done. total
// is what step 0 counted in this open, or -1 when the upgrade resumes one an
// earlier open began: then the keys left are checked and counted here.
func upgrade(db *bolt.DB, log *slog.Logger, total int) error {
	if total < 0 {
		err := db.View(func(tx *bolt.Tx) (err error) {
			total, err = checkUpgradable(tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("upgrade to schema %s: %w", schemaVersion, err)
		}
	}
	start := time.Now()
	log.Info("upgrading the ledger file to schema "+schemaVersion+": members' lots, balances and statement index move side by side; the hub starts when it is done",
		"keys", total)
	moved, commits := 0, 0
	last := start
	for _, m := range upgradeSources {
		for {
			if upgradeStop > 0 && commits == upgradeStop {
				return fmt.Errorf("upgrade to schema %s: stopped after %d commits (upgradeStop)", schemaVersion, commits)
			}
			var n int
			err := db.Update(func(tx *bolt.Tx) (err error) {
				n, err = moveChunk(tx, m.bucket, m.prefix, m.rekey)
				return err
			})
			if err != nil {
				return fmt.Errorf("upgrade to schema %s: %s: %w", schemaVersion, m.bucket, err)
			}
			if n == 0 {
				break
			}
			moved += n
			commits++
			if time.Since(last) >= 5*time.Second {
				last = time.Now()
				log.Info("upgrading the ledger file", "moved", moved, "of", total, "elapsed", time.Since(start).Round(time.Second).String())
			}
		}
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLotsV2, bucketMemberIndexV2} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return fmt.Errorf("delete bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Delete(upgradeKey)
	})
	if err != nil {
		return fmt.Errorf("upgrade to schema %s: %w", schemaVersion, err)
	}
	log.Info("ledger file upgraded to schema "+schemaVersion, "moved", moved, "commits", commits+1, "elapsed", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// moveChunk moves up to upgradeChunk keys of bucket (those with prefix)
// into bucketMembers under their new keys, and returns how many it moved.
func moveChunk(tx *bolt.Tx, bucket, prefix []byte, rekey func(b, k []byte) ([]byte, error)) (int, error) {
	src := tx.Bucket(bucket)
	if src == nil {
		return 0, nil
	}
	type kv struct{ k, v []byte }
	var chunk []kv
	// Read first, then write: a cursor must not walk over its own writes.
	c := src.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(chunk) < upgradeChunk; k, v = c.Next() {
		if v == nil && src.Bucket(k) != nil {
			return 0, fmt.Errorf("key %q is a nested bucket; a schema-2 ledger has none there", k)
		}
		chunk = append(chunk, kv{bytes.Clone(k), bytes.Clone(v)})
	}
	dst := tx.Bucket(bucketMembers)
	var nk []byte
	for _, e := range chunk {
		var err error
		if nk, err = rekey(nk[:0], e.k); err != nil {
			return 0, err
		}
		if old := dst.Get(nk); old != nil && !bytes.Equal(old, e.v) {
			return 0, fmt.Errorf("key %x: its new key %x already holds another value", e.k, nk)
		}
		if err := dst.Put(nk, e.v); err != nil {
			return 0, err
		}
		if err := src.Delete(e.k); err != nil {
			return 0, err
		}
	}
	return len(chunk), nil
}

// splitV2 splits a schema-2 key member, 0x00, rest.
func splitV2(k []byte, what string) (member, rest []byte, err error) {
	i := bytes.IndexByte(k, 0)
	if i <= 0 {
		return nil, nil, fmt.Errorf("%s key %x is not member, 0x00, ...", what, k)
	}
	return k[:i], k[i+1:], nil
}

// rekeyLot: member, 0x00, earned-at, id → member, 0x00, kindLot, earned-at, id.
func rekeyLot(b, k []byte) ([]byte, error) {
	member, rest, err := splitV2(k, "lot")
	if err != nil {
		return nil, err
	}
	if len(rest) <= 8 {
		return nil, fmt.Errorf("lot key %x has no lot id", k)
	}
	return append(memberKey(b, string(member), kindLot), rest...), nil
}

// rekeyIndexEntry: member, 0x00, seq → member, 0x00, kindEntry, ^seq.
func rekeyIndexEntry(b, k []byte) ([]byte, error) {
	member, rest, err := splitV2(k, "statement index")
	if err != nil {
		return nil, err
	}
	if len(rest) != 8 {
		return nil, fmt.Errorf("statement index key %x does not end in an 8-byte sequence number", k)
	}
	return memberIndexKey(b, string(member), binary.BigEndian.Uint64(rest)), nil
}

// rekeyBalance: member/{id} → member, 0x00, kindBalance.
func rekeyBalance(b, k []byte) ([]byte, error) {
	member := k[len(memberPrefix):]
	if len(member) == 0 || bytes.IndexByte(member, 0) >= 0 {
		return nil, fmt.Errorf("balance key %q names no member", k)
	}
	return balanceKey(b, string(member)), nil
}
