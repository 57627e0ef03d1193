package ledger

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// Settlement.
//
// Every posting to a partner account is also added, in the same commit, to
// the settlement totals of its accounting day (Entry.Day), partner and
// restated period. A report sums the days of its range; Verify recomputes
// the totals from the journal. Values are computed on each line's points
// (never per transaction), rounded half away from zero to the minor unit.
//
// Closing [from, to) records the period's lines, the journal position and
// its chain hash. From then on an entry created on a day before to is
// booked on the day it arrives and marked as restating its period, so a
// closed period's report never changes and late transactions show up as
// restatement lines in the report of the period they arrived in.

// Settlement reports [from, to).
func (s *BoltStore) Settlement(from, to Day) (Settlement, error) {
	if err := checkRange(from, to); err != nil {
		return Settlement{}, err
	}
	var out Settlement
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = settlement(tx, s.reg.Load(), from, to)
		return err
	})
	if err != nil {
		return Settlement{}, wrapErr("settlement", err)
	}
	return out, nil
}

// The days a settlement range may name: those ParseDay accepts.
var (
	firstDay = DayOf(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	lastDay  = DayOf(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
)

func checkRange(from, to Day) error {
	if from < firstDay || to > lastDay {
		return protocol.Errorf(protocol.CodeInvalidTime, "from", "%s..%s: days must be from 2000-01-01 to 2100-01-01", from, to)
	}
	if from >= to {
		return protocol.Errorf(protocol.CodeInvalidTime, "to", "must be after from (%s); to is the day after the last day of the period", from)
	}
	return nil
}

// wrapErr leaves protocol errors (the caller's mistakes) as they are.
func wrapErr(op string, err error) error {
	if _, ok := err.(*protocol.Error); ok {
		return err
	}
	return fmt.Errorf("ledger: %s: %w", op, err)
}

// settlement computes the report from the totals bucket.
func settlement(tx *bolt.Tx, reg *registry, from, to Day) (Settlement, error) {
	c := reg.coalition
	if c.Currency == "" {
		return Settlement{}, protocol.Errorf(protocol.CodeConflict, "coalition", "set the coalition's currency and point value first")
	}
	out := Settlement{From: from, To: to, Currency: c.Currency, PointValue: c.PointValue}
	pointValue := reg.pointValue
	var closed *Period
	for i, p := range reg.periods {
		if p.From == from && p.To == to {
			out.Closed, closed = true, &reg.periods[i]
			// A closed period is valued as it was at its close, whatever
			// the point value is now.
			if v, err := protocol.ParsePointValue(p.PointValue, c.Currency); err == nil {
				out.PointValue, pointValue = p.PointValue, v
			}
		}
	}
	type lk struct{ partner, restates string }
	lines := map[lk]*SettlementLine{}
	// Every partner gets its line, even with nothing to settle — but a
	// closed period keeps the partners it was closed with.
	for id := range reg.partners {
		lines[lk{id, ""}] = &SettlementLine{Partner: id}
	}
	if closed != nil {
		clear(lines)
		for _, l := range closed.Lines {
			if l.Restates == "" {
				lines[lk{l.Partner, ""}] = &SettlementLine{Partner: l.Partner}
			}
		}
	}
	cur := tx.Bucket(bucketSettle).Cursor()
	start := binary.BigEndian.AppendUint32(nil, uint32(from))
	for k, v := cur.Seek(start); k != nil; k, v = cur.Next() {
		key, ok := parseSettleKey(k)
		if !ok || len(v) != 24 {
			return out, fmt.Errorf("corrupt settlement totals %x", k)
		}
		if key.day >= to {
			break
		}
		l := lines[lk{key.partner, key.restates}]
		if l == nil {
			l = &SettlementLine{Partner: key.partner, Restates: key.restates}
			lines[lk{key.partner, key.restates}] = l
		}
		l.Issued += int64(binary.BigEndian.Uint64(v))
		l.Redeemed += int64(binary.BigEndian.Uint64(v[8:]))
		l.Expired += int64(binary.BigEndian.Uint64(v[16:]))
	}
	out.Lines = make([]SettlementLine, 0, len(lines))
	out.Total.Partner = "TOTAL"
	for _, l := range lines {
		l.IssuedValue = pointsValue(l.Issued, pointValue)
		l.RedeemedValue = pointsValue(l.Redeemed, pointValue)
		l.Net = l.IssuedValue - l.RedeemedValue
		out.Lines = append(out.Lines, *l)
		out.Total.Add(*l)
	}
	slices.SortFunc(out.Lines, func(a, b SettlementLine) int {
		return cmp.Or(strings.Compare(a.Partner, b.Partner), strings.Compare(a.Restates, b.Restates))
	})
	return out, nil
}

// pointsValue is points × pointValue (millionths of a minor unit per point),
// rounded half away from zero to a minor unit.
func pointsValue(points, pointValue int64) int64 {
	v := new(big.Int).Mul(big.NewInt(points), big.NewInt(pointValue))
	neg := v.Sign() < 0
	v.Abs(v)
	q, r := v.QuoRem(v, big.NewInt(protocol.PointValueScale), new(big.Int))
	if r.Lsh(r, 1).Cmp(big.NewInt(protocol.PointValueScale)) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	return q.Int64()
}

// ClosePeriod closes [from, to).
func (s *BoltStore) ClosePeriod(from, to Day, now time.Time) (Period, error) {
	if err := checkRange(from, to); err != nil {
		return Period{}, err
	}
	if to > DayOf(now) {
		return Period{}, protocol.Errorf(protocol.CodeInvalidTime, "to", "%s has not begun: a period can be closed once its last day (%s) is over", to, to-1)
	}
	var p Period
	err := s.admin("close period", func(tx *bolt.Tx) error {
		reg := s.reg.Load()
		if n := len(reg.periods); n > 0 {
			last := reg.periods[n-1]
			if from != last.To {
				return protocol.Errorf(protocol.CodePeriodClosed, "from", "the next period starts on %s, where the last closed one (%s) ends", last.To, PeriodID(last.From, last.To))
			}
		}
		rep, err := settlement(tx, reg, from, to)
		if err != nil {
			return err
		}
		p = Period{From: from, To: to, ClosedAt: now.UTC(), JournalSeq: tx.Bucket(bucketJournal).Sequence(), PointValue: rep.PointValue, Lines: rep.Lines}
		if v := tx.Bucket(bucketMeta).Get(chainKey); v != nil {
			p.ChainHash = hex.EncodeToString(v)
		}
		data, err := json.Marshal(&p)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPeriods).Put(binary.BigEndian.AppendUint32(nil, uint32(from)), data)
	})
	if err != nil {
		return Period{}, err
	}
	s.log.Info("settlement period closed", "period", PeriodID(from, to), "journal_seq", p.JournalSeq)
	return p, nil
}

// Periods lists the closed periods, oldest first.
func (s *BoltStore) Periods() ([]Period, error) {
	return slices.Clone(s.reg.Load().periods), nil
}

// Member returns a member's balance, holds, lots and flag as of now.
func (s *BoltStore) Member(member string, now time.Time) (MemberView, error) {
	if !protocol.ValidID(member) {
		return MemberView{}, idError("member", member)
	}
	v := MemberView{Member: member, Lots: []Lot{}, Holds: []Hold{}}
	c := s.reg.Load().coalition
	err := s.db.View(func(tx *bolt.Tx) error {
		members := tx.Bucket(bucketMembers)
		if b := members.Get(balanceKey(nil, member)); b != nil {
			var ok bool
			if v.Balance, ok = decodeBalance(b); !ok {
				return fmt.Errorf("corrupt balance of %s", member)
			}
			v.Known = true
		}
		prefix := append([]byte(member), 0)
		hc := tx.Bucket(bucketHolds).Cursor()
		for k, val := hc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, val = hc.Next() {
			if len(val) != 16 {
				return fmt.Errorf("corrupt hold %x", k)
			}
			exp := time.Unix(0, int64(binary.BigEndian.Uint64(val))).UTC()
			if !exp.After(now) {
				continue // lapsed; the next write sweeps it
			}
			id := string(k[len(prefix):])
			h := Hold{ID: id, Points: int64(binary.BigEndian.Uint64(val[8:])), ExpiresAt: exp}
			if r := tx.Bucket(bucketTxs).Get([]byte(id)); r != nil {
				var rec TxRecord
				if err := json.Unmarshal(r, &rec); err == nil {
					h.Store, h.Terminal = rec.Store, rec.Terminal
				}
			}
			v.Holds = append(v.Holds, h)
			v.Held += h.Points
		}
		lc := members.Cursor()
		lp := memberKey(nil, member, kindLot)
		for k, val := lc.Seek(lp); k != nil && bytes.HasPrefix(k, lp); k, val = lc.Next() {
			rem, pts, partner, ok := decodeLotValue(val)
			at, id, ok2 := parseLotKey(k, len(member))
			if !ok || !ok2 {
				return fmt.Errorf("corrupt lot %x", k)
			}
			if rem == 0 {
				continue
			}
			v.Lots = append(v.Lots, Lot{ID: id, Partner: partner, EarnedAt: at, ExpiresAt: c.ExpiresAt(at), Points: pts, Remaining: rem})
		}
		if f := tx.Bucket(bucketFlags).Get([]byte(member)); f != nil {
			v.Flag = new(Flag)
			if err := json.Unmarshal(f, v.Flag); err != nil {
				return fmt.Errorf("flag of %s: %w", member, err)
			}
		}
		return nil
	})
	if err != nil {
		return MemberView{}, fmt.Errorf("ledger: member %s: %w", member, err)
	}
	v.Available = v.Balance - v.Held
	return v, nil
}

// Flags lists the members who owe points.
func (s *BoltStore) Flags() ([]Flag, error) {
	out := []Flag{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFlags).ForEach(func(k, v []byte) error {
			var f Flag
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("flag of %s: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: flags: %w", err)
	}
	return out, nil
}
