package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A member's data, side by side.
//
// Schema 3 keeps everything an earn writes about its member — the new lot,
// the balance, the statement's index entry — in one bucket (bucketMembers),
// under keys that start with the member's id, and orders them so that the
// three writes land next to each other:
//
//	member, 0x00, kindLot, 8-byte earned-at, lot id  → lotValue     oldest first
//	member, 0x00, kindBalance                        → 8-byte balance
//	member, 0x00, kindEntry, 8-byte ^seq             → empty        newest first
//
// A new lot is (nearly always) the member's newest, the last of the lot
// keys; the balance follows it; and the entry's key, its sequence number
// complemented, is the first of the entry keys. An earn therefore dirties
// one leaf of the B+tree, where schema 2 (lots, balances and member_journal
// in three buckets) dirtied three, one in each tree, and bbolt rewrites
// every dirty leaf whole at the commit: that, not the transactions' own
// size, was the ledger's cost per earn (docs/performance.md, scenario 2).
// Ids never contain 0x00 (protocol.ValidID), so one member's keys are
// contiguous and never mix with another's.
//
// Partner accounts (partner/{p}/...) stay in bucketBalances: they are few,
// and every commit touches them anyway.

// The kinds of a member's keys, in their order within the member.
const (
	kindLot     byte = 1
	kindBalance byte = 2
	kindEntry   byte = 3
)

// memberKey is member, 0x00, kind: the prefix of the member's keys of that
// kind (the balance's whole key).
func memberKey(b []byte, member string, kind byte) []byte {
	b = append(b, member...)
	return append(b, 0, kind)
}

// balanceKey is the key of the member's balance.
func balanceKey(b []byte, member string) []byte { return memberKey(b, member, kindBalance) }

// memberIndexKey is the key of the member's statement entry seq: the
// complement of seq, so that the newest entry comes first.
func memberIndexKey(b []byte, member string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(memberKey(b, member, kindEntry), ^seq)
}

// splitMemberKey splits a key of bucketMembers into its member, kind and the
// rest; ok is false for a key of no known shape.
func splitMemberKey(k []byte) (member []byte, kind byte, rest []byte, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i <= 0 || i+1 >= len(k) {
		return nil, 0, nil, false
	}
	kind, rest = k[i+1], k[i+2:]
	switch kind {
	case kindLot:
		ok = len(rest) > 8
	case kindBalance:
		ok = len(rest) == 0
	case kindEntry:
		ok = len(rest) == 8
	}
	return k[:i], kind, rest, ok
}

// entrySeq is the sequence number of the statement entry whose key's rest
// (after member, 0x00, kindEntry) is rest.
func entrySeq(rest []byte) uint64 { return ^binary.BigEndian.Uint64(rest) }

// eachMemberBalance calls fn with every member's id and stored balance, in
// the order of their ids. It skips from member to member (two seeks each)
// rather than reading every lot and entry between their balances.
func eachMemberBalance(b *bolt.Bucket, fn func(member, v []byte) error) error {
	c := b.Cursor()
	var key []byte
	for k, _ := c.First(); k != nil; {
		i := bytes.IndexByte(k, 0)
		if i <= 0 {
			return fmt.Errorf("corrupt member key %x", k)
		}
		member := bytes.Clone(k[:i])
		key = append(append(append(key[:0], member...), 0), kindBalance)
		if bk, v := c.Seek(key); bytes.Equal(bk, key) {
			if err := fn(member, v); err != nil {
				return err
			}
		}
		// The first key after this member's: member, 0x01.
		key = append(append(key[:0], member...), 1)
		k, _ = c.Seek(key)
	}
	return nil
}
