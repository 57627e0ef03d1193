package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// Lots and holds.
//
// A member's points live in lots, one per earn, dated when they were earned.
// Burns and captures take from the oldest lots first and remember what they
// took (TxRecord.Lots), so that a return puts points back where they came
// from, with their old expiry. A reverse of an earn takes from its own lot
// first. While a member owes points (balance below zero) every lot is empty,
// and points credited pay the debt before they fill a lot; so the lots of a
// member always add up to max(balance, 0), which Verify checks.
//
// A hold reserves points without posting them: the available balance is the
// balance less the member's active holds. The expiry run never expires
// points a hold has reserved (holds are served from the oldest lots first).

// lotKey is member, 0x00, kindLot, 8-byte earned-at (unix ns), lot id: one
// member's lots are contiguous and oldest first (members.go).
func lotKey(b []byte, member string, at time.Time, id string) []byte {
	b = memberKey(b, member, kindLot)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	return append(b, id...)
}

// lotTimeKey is 8-byte earned-at, member, 0x00, lot id.
func lotTimeKey(b []byte, at time.Time, member, id string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = append(b, member...)
	b = append(b, 0)
	return append(b, id...)
}

// lotValue is 8-byte remaining, 8-byte original points, partner.
func appendLotValue(b []byte, remaining, points int64, partner string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(remaining))
	b = binary.BigEndian.AppendUint64(b, uint64(points))
	return append(b, partner...)
}

func decodeLotValue(v []byte) (remaining, points int64, partner string, ok bool) {
	if len(v) < 16 {
		return 0, 0, "", false
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), string(v[16:]), true
}

// parseLotKey splits a lot key of a member whose id is memberLen bytes.
func parseLotKey(k []byte, memberLen int) (at time.Time, id string, ok bool) {
	if len(k) < memberLen+2+8 {
		return time.Time{}, "", false
	}
	rest := k[memberLen+2:]
	return time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC(), string(rest[8:]), true
}

// putLot writes a lot and keeps the expiry index in step.
func (a *applier) putLot(member string, at time.Time, id, partner string, remaining, points int64) error {
	a.key = lotKey(a.key[:0], member, at, id)
	v := a.arena.commit(appendLotValue(a.arena.tail(), remaining, points, partner))
	if err := a.members.Put(a.key, v); err != nil {
		return fmt.Errorf("lot %s: %w", id, err)
	}
	a.key = lotTimeKey(a.key[:0], at, member, id)
	if remaining > 0 {
		return a.lotTimes.Put(a.key, empty)
	}
	return a.lotTimes.Delete(a.key)
}

// lotChange is a lot's new remaining, applied after a cursor walk (bbolt
// cursors must not walk over their own writes).
type lotChange struct {
	at        time.Time
	id        string
	partner   string
	remaining int64
	points    int64
}

// takeLots takes points from the member's lots, from prefer first (when
// given), then oldest first, and returns what it took from each. It takes
// less when the lots run out: the rest is the member's debt.
func (a *applier) takeLots(member string, points int64, prefer *LotUse) ([]LotUse, error) {
	var uses []LotUse
	var changes []lotChange
	left := points
	if prefer != nil && !prefer.At.IsZero() {
		a.key = lotKey(a.key[:0], member, prefer.At, prefer.Lot)
		if v := a.members.Get(a.key); v != nil {
			rem, pts, partner, ok := decodeLotValue(v)
			if !ok {
				return nil, fmt.Errorf("corrupt lot %s of %s", prefer.Lot, member)
			}
			if n := min(rem, left); n > 0 {
				left -= n
				uses = append(uses, LotUse{Lot: prefer.Lot, At: prefer.At, Points: n})
				changes = append(changes, lotChange{prefer.At, prefer.Lot, partner, rem - n, pts})
			}
		}
	}
	if left > 0 {
		prefix := memberKey(nil, member, kindLot)
		c := a.members.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && left > 0; k, v = c.Next() {
			rem, pts, partner, ok := decodeLotValue(v)
			if !ok {
				return nil, fmt.Errorf("corrupt lot %x of %s", k, member)
			}
			at, id, ok := parseLotKey(k, len(member))
			if !ok {
				return nil, fmt.Errorf("corrupt lot key %x", k)
			}
			if prefer != nil && id == prefer.Lot && at.Equal(prefer.At) {
				continue // already taken from
			}
			if rem == 0 {
				continue
			}
			n := min(rem, left)
			left -= n
			uses = append(uses, LotUse{Lot: id, At: at, Points: n})
			changes = append(changes, lotChange{at, id, partner, rem - n, pts})
		}
	}
	for _, ch := range changes {
		if err := a.putLot(member, ch.at, ch.id, ch.partner, ch.remaining, ch.points); err != nil {
			return nil, err
		}
	}
	return uses, nil
}

// restoreLots puts rest points of the burn or capture o back into the lots
// it took them from, the last taken first, and records that on o. Points
// beyond what o took from lots (o overdrew, and the debt has been paid
// since) go into a new lot id, dated now, of o's partner.
func (a *applier) restoreLots(member string, o *TxRecord, rest int64, id string) error {
	for i := len(o.Lots) - 1; i >= 0 && rest > 0; i-- {
		u := &o.Lots[i]
		n := min(u.Points, rest)
		if n == 0 {
			continue
		}
		a.key = lotKey(a.key[:0], member, u.At, u.Lot)
		rem, pts, partner := int64(0), n, o.Partner
		if v := a.members.Get(a.key); v != nil {
			var ok bool
			if rem, pts, partner, ok = decodeLotValue(v); !ok {
				return fmt.Errorf("corrupt lot %s of %s", u.Lot, member)
			}
		}
		if err := a.putLot(member, u.At, u.Lot, partner, rem+n, pts); err != nil {
			return err
		}
		u.Points -= n
		rest -= n
	}
	kept := o.Lots[:0]
	for _, u := range o.Lots {
		if u.Points > 0 {
			kept = append(kept, u)
		}
	}
	o.Lots = kept
	if len(o.Lots) == 0 {
		o.Lots = nil
	}
	if rest > 0 {
		return a.putLot(member, a.now, id, o.Partner, rest, rest)
	}
	return nil
}

// holdKey is member, 0x00, hold id.
func holdKey(b []byte, member, id string) []byte {
	b = append(b, member...)
	b = append(b, 0)
	return append(b, id...)
}

// heldOf returns the member's active held points, lapsing (and recording as
// lapsed) every hold of the member that is due. It may load records into
// a.recs: callers must not hold pointers into it across the call.
func (a *applier) heldOf(member string) (int64, error) {
	if v, ok := a.held[member]; ok {
		return v, nil
	}
	prefix := append(append([]byte(nil), member...), 0)
	var sum int64
	var lapsed []string
	now := a.now.UnixNano()
	for k, v := a.holdCur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = a.holdCur.Next() {
		if len(v) != 16 {
			return 0, fmt.Errorf("corrupt hold %x", k)
		}
		if int64(binary.BigEndian.Uint64(v)) <= now {
			lapsed = append(lapsed, string(k[len(prefix):]))
			continue
		}
		sum += int64(binary.BigEndian.Uint64(v[8:]))
	}
	for _, id := range lapsed {
		if err := a.holds.Delete(holdKey(a.key[:0], member, id)); err != nil {
			return 0, fmt.Errorf("lapse hold %s: %w", id, err)
		}
		i, found, err := a.record(id)
		if err != nil {
			return 0, err
		}
		if found {
			a.recs[i].rec.HoldState = HoldLapsed
			a.recs[i].dirty = true
		}
		a.log.Debug("hold lapsed", "tx", id, "member", member)
	}
	a.held[member] = sum
	return sum, nil
}

func (a *applier) putHold(member, id string, expires time.Time, points int64) error {
	if _, err := a.heldOf(member); err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint64(a.arena.tail(), uint64(expires.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(points))
	if err := a.holds.Put(holdKey(a.key[:0], member, id), a.arena.commit(b)); err != nil {
		return fmt.Errorf("hold %s: %w", id, err)
	}
	a.held[member] += points
	return nil
}

func (a *applier) dropHold(member, id string, points int64) error {
	if _, err := a.heldOf(member); err != nil {
		return err
	}
	if err := a.holds.Delete(holdKey(a.key[:0], member, id)); err != nil {
		return fmt.Errorf("release hold %s: %w", id, err)
	}
	a.held[member] -= points
	return nil
}
