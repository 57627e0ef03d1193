package ledger

// Member token sightings: which till accepted which member token (a signed,
// rotating QR code, protocol.MintMemberToken), so that a token accepted at
// two stores — a screenshot passed on, a code read over a shoulder — is
// flagged for an operator. They live beside the journal, not in it: a
// sighting moves no points, and a till reports it best effort.
//
// A sighting is kept until TokenRetention after its token's expiry (then
// PruneTokens deletes it); a flag is kept for good, as the evidence an
// operator acts on.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tillsync/tillsync/protocol"
	bolt "go.etcd.io/bbolt"
)

// TokenRetention is how long after its token's expiry a sighting is kept.
// A till accepts a token until its expiry plus the till's leeway, by a
// clock that may be off; an hour covers both with room to spare.
const TokenRetention = time.Hour

// TokenSighting is one till's report that it accepted a member token, with
// what the hub read from the token itself.
type TokenSighting struct {
	// Nonce names the token (protocol.MemberToken.Nonce).
	Nonce string
	// Member is the member the token stands for.
	Member string
	// ExpiresAt is the token's expiry.
	ExpiresAt time.Time
	// Store is the store of the till that accepted it.
	Store string
	// Terminal is the till within Store.
	Terminal string
	// At is when the till accepted it, by the till's clock.
	At time.Time
}

// TokenSeen is one sighting of a token.
type TokenSeen struct {
	// Store is the store of the till that accepted the token.
	Store string `json:"store"`
	// Terminal is the till within Store.
	Terminal string `json:"terminal"`
	// At is when the till accepted it, by the till's clock.
	At time.Time `json:"at"`
	// SeenAt is when the hub recorded the sighting, by the hub's clock.
	SeenAt time.Time `json:"seen_at"`
}

// TokenRecord is what the hub knows of one member token.
type TokenRecord struct {
	// Nonce names the token.
	Nonce string `json:"nonce"`
	// Member is the member the token stands for.
	Member string `json:"member"`
	// ExpiresAt is the token's expiry.
	ExpiresAt time.Time `json:"expires_at"`
	// First is the first sighting the hub recorded.
	First TokenSeen `json:"first"`
	// Sightings counts every sighting recorded, First included (another
	// till of the same store, or the same till after a restart, adds one).
	Sightings int `json:"sightings"`
	// Elsewhere is the first sighting at another store than First's: the
	// token was accepted at two stores, and the record is flagged. Nil
	// while every sighting is at First's store.
	Elsewhere *TokenSeen `json:"elsewhere,omitempty"`
	// FlaggedAt is when the hub flagged the token (Elsewhere's SeenAt).
	FlaggedAt time.Time `json:"flagged_at,omitzero"`
}

// validSighting checks a sighting's fields on their own.
func validSighting(s TokenSighting) error {
	for _, f := range [...]struct{ name, v string }{{"nonce", s.Nonce}, {"member", s.Member}, {"store", s.Store}, {"terminal", s.Terminal}} {
		if !protocol.ValidID(f.v) {
			return protocol.Errorf(protocol.CodeInvalidID, f.name, "must be 1-%d characters of A-Z a-z 0-9 . _ -", protocol.MaxIDLen)
		}
	}
	if s.ExpiresAt.IsZero() || s.At.IsZero() {
		return protocol.Errorf(protocol.CodeMissingField, "expires_at", "a sighting needs the token's expiry and the time it was accepted")
	}
	if s.ExpiresAt.Year() < 2000 || s.ExpiresAt.Year() >= 2100 {
		return protocol.Errorf(protocol.CodeInvalidTime, "expires_at", "must be between 2000 and 2100")
	}
	return nil
}

// pruneKey is the token_expiry index key: when the sighting may go
// (8-byte big-endian Unix nanoseconds), then the nonce.
func pruneKey(expires time.Time, nonce string) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(expires.Add(TokenRetention).UnixNano()))
	return append(k, nonce...)
}

// SeeToken records a sighting. The first sighting of a nonce creates its
// record; a later one counts, and the first from another store than the
// first sighting's flags the token (flagged is true for that sighting
// only, so the caller can warn once). A sighting naming another member
// than the record is refused (CodeConflict): nonces are random, so that
// means a key was misused, and the record is left alone.
func (s *BoltStore) SeeToken(sg TokenSighting, now time.Time) (rec TokenRecord, flagged bool, err error) {
	if err := validSighting(sg); err != nil {
		return TokenRecord{}, false, err
	}
	seen := TokenSeen{Store: sg.Store, Terminal: sg.Terminal, At: sg.At.UTC(), SeenAt: now.UTC()}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokenSightings)
		if v := b.Get([]byte(sg.Nonce)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("sighting %s: %w", sg.Nonce, err)
			}
			if rec.Member != sg.Member {
				return protocol.Errorf(protocol.CodeConflict, "member", "token %s was first seen for another member", sg.Nonce)
			}
			rec.Sightings++
			if rec.Elsewhere == nil && sg.Store != rec.First.Store {
				rec.Elsewhere, rec.FlaggedAt, flagged = &seen, seen.SeenAt, true
			}
		} else {
			rec = TokenRecord{Nonce: sg.Nonce, Member: sg.Member, ExpiresAt: sg.ExpiresAt.UTC(), First: seen, Sightings: 1}
			if err := tx.Bucket(bucketTokenExpiry).Put(pruneKey(rec.ExpiresAt, rec.Nonce), nil); err != nil {
				return err
			}
		}
		enc, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(sg.Nonce), enc); err != nil {
			return err
		}
		if rec.Elsewhere != nil {
			return tx.Bucket(bucketTokenFlags).Put([]byte(sg.Nonce), enc)
		}
		return nil
	})
	if err != nil {
		if protocol.CodeOf(err) != protocol.CodeInternal {
			return TokenRecord{}, false, err
		}
		return TokenRecord{}, false, fmt.Errorf("ledger: token sighting %s: %w", sg.Nonce, err)
	}
	return rec, flagged, nil
}

// TokenFlags lists the tokens accepted at two stores, oldest flag first.
func (s *BoltStore) TokenFlags() ([]TokenRecord, error) {
	out := []TokenRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokenFlags)
		if b == nil {
			return nil // a read-only ledger from before member tokens
		}
		return b.ForEach(func(k, v []byte) error {
			var r TokenRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("token flag %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: token flags: %w", err)
	}
	slices.SortFunc(out, func(a, b TokenRecord) int {
		return cmp.Or(a.FlaggedAt.Compare(b.FlaggedAt), strings.Compare(a.Nonce, b.Nonce))
	})
	return out, nil
}

// PruneTokens deletes the sightings whose token expired TokenRetention or
// more before now, and returns how many. Flags stay. With nothing to
// delete it writes nothing.
func (s *BoltStore) PruneTokens(now time.Time) (int, error) {
	limit := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	due := func(tx *bolt.Tx) [][]byte {
		var keys [][]byte
		c := tx.Bucket(bucketTokenExpiry).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		return keys
	}
	var n int
	if err := s.db.View(func(tx *bolt.Tx) error { n = len(due(tx)); return nil }); err != nil || n == 0 {
		if err != nil {
			return 0, fmt.Errorf("ledger: prune token sightings: %w", err)
		}
		return 0, nil
	}
	n = 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		idx, sightings := tx.Bucket(bucketTokenExpiry), tx.Bucket(bucketTokenSightings)
		for _, k := range due(tx) {
			if err := sightings.Delete(k[8:]); err != nil {
				return err
			}
			if err := idx.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: prune token sightings: %w", err)
	}
	return n, nil
}
