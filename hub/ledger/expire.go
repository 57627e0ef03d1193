package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// expiryChunk bounds the lots one expiry commit handles, so that a large
// run does not hold the writer (and the tills' acks) for long.
const expiryChunk = 2000

// Expire posts an expiry entry for every lot whose points expired by asOf:
// the lot's remaining points, less what active holds reserve (holds are
// served from the oldest lots first). The entry moves the points from the
// member to the issuing partner's expired account. A lot keeps its place in
// the expiry index while a hold still reserves part of it, so a later run
// expires the rest; an expired lot is empty, so running again posts nothing.
func (s *BoltStore) Expire(asOf time.Time) (ExpiryReport, error) {
	asOf = asOf.UTC()
	rep := ExpiryReport{AsOf: asOf}
	c := s.reg.Load().coalition
	if c.ExpiryMonths <= 0 {
		return rep, nil
	}
	// A lot earned at t expires at the start of the month ExpiryMonths+1
	// after t's month; by asOf, every lot earned before cutoff has.
	cutoff := time.Date(asOf.Year(), asOf.Month()-time.Month(c.ExpiryMonths), 1, 0, 0, 0, 0, time.UTC)
	members := map[string]bool{}
	var resume []byte
	for {
		n, next, err := s.expireChunk(asOf, cutoff, resume, &rep, members)
		if err != nil {
			return rep, fmt.Errorf("ledger: expire: %w", err)
		}
		if n == 0 {
			break
		}
		resume = next
	}
	rep.Members = len(members)
	if rep.Points > 0 {
		s.log.Info("points expired", "as_of", asOf, "lots", rep.Lots, "members", rep.Members, "points", rep.Points)
	}
	return rep, nil
}

// expireChunk handles up to expiryChunk index keys after resume and
// returns how many it looked at and the last one.
func (s *BoltStore) expireChunk(asOf, cutoff time.Time, resume []byte, rep *ExpiryReport, members map[string]bool) (int, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &s.ap
	defer a.end()
	var seen int
	var last []byte
	var chunkRep ExpiryReport
	chunkMembers := map[string]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := a.begin(tx, s.reg.Load(), asOf); err != nil {
			return err
		}
		seen, last, chunkRep = 0, nil, ExpiryReport{}
		clear(chunkMembers)
		type due struct {
			at       time.Time
			member   string
			id       string
			indexKey []byte
		}
		var lots []due
		cur := a.lotTimes.Cursor()
		var k []byte
		if resume == nil {
			k, _ = cur.First()
		} else if k, _ = cur.Seek(resume); bytes.Equal(k, resume) {
			k, _ = cur.Next()
		}
		limit := uint64(cutoff.UnixNano())
		for ; k != nil && len(lots) < expiryChunk; k, _ = cur.Next() {
			if len(k) < 9 || binary.BigEndian.Uint64(k) >= limit {
				break
			}
			rest := k[8:]
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				return fmt.Errorf("corrupt lot index key %x", k)
			}
			lots = append(lots, due{
				at: time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC(), member: string(rest[:i]),
				id: string(rest[i+1:]), indexKey: bytes.Clone(k),
			})
		}
		seen = len(lots)
		if seen == 0 {
			return nil
		}
		last = lots[seen-1].indexKey
		c := a.reg.coalition
		for _, l := range lots {
			held, err := a.heldOf(l.member)
			if err != nil {
				return err
			}
			// Older lots of the member (still holding points only because
			// holds reserve them) serve the holds first.
			prefix := memberKey(nil, l.member, kindLot)
			self := lotKey(nil, l.member, l.at, l.id)
			var older int64
			lc := a.members.Cursor()
			for k, v := lc.Seek(prefix); k != nil && bytes.Compare(k, self) < 0; k, v = lc.Next() {
				rem, _, _, ok := decodeLotValue(v)
				if !ok {
					return fmt.Errorf("corrupt lot %x", k)
				}
				older += rem
			}
			v := a.members.Get(self)
			if v == nil {
				return fmt.Errorf("lot index names lot %s of %s, which is missing", l.id, l.member)
			}
			rem, pts, partner, ok := decodeLotValue(v)
			if !ok {
				return fmt.Errorf("corrupt lot %s of %s", l.id, l.member)
			}
			reserved := min(max(held-older, 0), rem)
			x := rem - reserved
			if x <= 0 {
				continue
			}
			if err := a.putLot(l.member, l.at, l.id, partner, rem-x, pts); err != nil {
				return err
			}
			_, err = a.postEntry(entryHead{
				kind: "expire", member: l.member, partner: partner, lot: l.id, createdAt: c.ExpiresAt(l.at),
			}, -x, account{acctExpired, partner}, "")
			if err != nil {
				return err
			}
			chunkRep.Lots++
			chunkRep.Points += x
			chunkMembers[l.member] = true
		}
		return a.flush()
	})
	if err != nil {
		return 0, nil, err
	}
	rep.Lots += chunkRep.Lots
	rep.Points += chunkRep.Points
	for m := range chunkMembers {
		members[m] = true
	}
	return seen, last, nil
}

// ExpireHolds lapses every hold past its expiry.
func (s *BoltStore) ExpireHolds(now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &s.ap
	defer a.end()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := a.begin(tx, s.reg.Load(), now); err != nil {
			return err
		}
		n = 0
		due := map[string]int{}
		limit := uint64(a.now.UnixNano())
		err := a.holds.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(v) != 16 {
				return fmt.Errorf("corrupt hold %x", k)
			}
			if binary.BigEndian.Uint64(v) <= limit {
				due[string(k[:i])]++
			}
			return nil
		})
		if err != nil {
			return err
		}
		for m, c := range due {
			if _, err := a.heldOf(m); err != nil {
				return err
			}
			n += c
		}
		return a.flush()
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: expire holds: %w", err)
	}
	return n, nil
}
