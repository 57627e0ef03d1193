package ledger

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"
)

// Records are stored as JSON so they can be read with bbolt's own tools and
// decoded with encoding/json. The two written on the hot path (an Entry and a
// TxRecord per transaction) are encoded by hand here instead of by
// reflection; codec_test.go checks the bytes equal encoding/json's.

// appendEntry appends e as JSON, byte for byte what json.Marshal(e) gives.
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"tx_id":`...)
	b = appendString(b, e.TxID)
	b = append(b, `,"kind":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"member":`...)
	b = appendString(b, e.Member)
	b = append(b, `,"partner":`...)
	b = appendString(b, e.Partner)
	b = append(b, `,"store":`...)
	b = appendString(b, e.Store)
	b = append(b, `,"terminal":`...)
	b = appendString(b, e.Terminal)
	if e.Original != "" {
		b = append(b, `,"original":`...)
		b = appendString(b, e.Original)
	}
	if e.Lot != "" {
		b = append(b, `,"lot":`...)
		b = appendString(b, e.Lot)
	}
	b = append(b, `,"points":`...)
	b = strconv.AppendInt(b, e.Points, 10)
	b = append(b, `,"postings":`...)
	if e.Postings == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range e.Postings {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"account":`...)
			b = appendString(b, p.Account)
			b = append(b, `,"delta":`...)
			b = strconv.AppendInt(b, p.Delta, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"at":`...)
	b = appendTime(b, e.At)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, e.CreatedAt)
	b = append(b, `,"day":"`...)
	b = e.Day.Time().AppendFormat(b, time.DateOnly)
	b = append(b, '"')
	if e.Restates != "" {
		b = append(b, `,"restates":`...)
		b = appendString(b, e.Restates)
	}
	b = append(b, `,"hash":`...)
	b = appendString(b, e.Hash)
	return append(b, '}')
}

// appendTxRecord appends r as JSON, byte for byte what json.Marshal(r) gives.
func appendTxRecord(b []byte, r *TxRecord) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	if r.Code != "" {
		b = append(b, `,"code":`...)
		b = appendString(b, string(r.Code))
	}
	b = append(b, `,"kind":`...)
	b = appendString(b, string(r.Kind))
	b = append(b, `,"member":`...)
	b = appendString(b, r.Member)
	b = append(b, `,"points":`...)
	b = strconv.AppendInt(b, r.Points, 10)
	b = append(b, `,"reversed":`...)
	b = strconv.AppendInt(b, r.Reversed, 10)
	if r.Amount != 0 {
		b = append(b, `,"amount":`...)
		b = strconv.AppendInt(b, r.Amount, 10)
	}
	if r.Returned != 0 {
		b = append(b, `,"returned":`...)
		b = strconv.AppendInt(b, r.Returned, 10)
	}
	if r.Quoted != 0 {
		b = append(b, `,"quoted":`...)
		b = strconv.AppendInt(b, r.Quoted, 10)
	}
	if r.RulesVersion != 0 {
		b = append(b, `,"rules_version":`...)
		b = strconv.AppendInt(b, r.RulesVersion, 10)
	}
	if r.Offline {
		b = append(b, `,"offline":true`...)
	}
	if r.HoldState != "" {
		b = append(b, `,"hold_state":`...)
		b = appendString(b, r.HoldState)
	}
	if !r.HoldExpires.IsZero() {
		b = append(b, `,"hold_expires":`...)
		b = appendTime(b, r.HoldExpires)
	}
	if r.Capture != "" {
		b = append(b, `,"capture":`...)
		b = appendString(b, r.Capture)
	}
	if len(r.Lots) != 0 {
		b = append(b, `,"lots":[`...)
		for i, u := range r.Lots {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"lot":`...)
			b = appendString(b, u.Lot)
			b = append(b, `,"at":`...)
			b = appendTime(b, u.At)
			b = append(b, `,"points":`...)
			b = strconv.AppendInt(b, u.Points, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if !r.LotAt.IsZero() {
		b = append(b, `,"lot_at":`...)
		b = appendTime(b, r.LotAt)
	}
	b = append(b, `,"journal_seq":`...)
	b = strconv.AppendUint(b, r.JournalSeq, 10)
	b = append(b, `,"store":`...)
	b = appendString(b, r.Store)
	b = append(b, `,"terminal":`...)
	b = appendString(b, r.Terminal)
	b = append(b, `,"balance":`...)
	b = strconv.AppendInt(b, r.Balance, 10)
	if r.Partner != "" {
		b = append(b, `,"partner":`...)
		b = appendString(b, r.Partner)
	}
	if r.Original != "" {
		b = append(b, `,"original":`...)
		b = appendString(b, r.Original)
	}
	if r.TerminalSeq != 0 {
		b = append(b, `,"terminal_seq":`...)
		b = strconv.AppendUint(b, r.TerminalSeq, 10)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Ids never need escaping; anything
// that might (quotes, controls, HTML characters, non-ASCII) goes through
// encoding/json so the output stays identical to json.Marshal's.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime appends t as time.Time.MarshalJSON does (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// seqKey returns the 8-byte big-endian key of a journal sequence number, so
// that bbolt's byte order is journal order.
func seqKey(b []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(b, seq) }

// Balances are stored as 8-byte big-endian two's complement.
func appendBalance(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func decodeBalance(v []byte) (int64, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

// arena hands out byte slices that stay untouched until reset. bbolt keeps a
// reference to every value passed to Put until the transaction commits, so a
// value buffer must not be reused within a transaction; the arena lets Apply
// reuse its memory across commits instead.
type arena struct {
	buf []byte
}

// Chunk sizes: chunks double up to maxArenaChunk, so that the one chunk kept
// across commits fits a typical group commit without pinning the memory of
// the largest one ever seen.
const (
	minArenaChunk = 64 << 10
	maxArenaChunk = 4 << 20
)

// tail returns the free space of the current chunk (length 0) to append into;
// commit(b) then claims what was appended. If the append outgrew the chunk,
// b lives in memory of its own, which is just as safe.
func (a *arena) tail() []byte { return a.buf[len(a.buf):] }

// commit claims b, which was built by appending to tail().
func (a *arena) commit(b []byte) []byte {
	if len(b) > 0 && cap(a.buf)-len(a.buf) >= len(b) && &a.buf[:len(a.buf)+1][len(a.buf)] == &b[0] {
		a.buf = a.buf[:len(a.buf)+len(b)]
		return b[:len(b):len(b)]
	}
	// b outgrew the chunk: start a new chunk for what comes next; b keeps its
	// own (freshly allocated) memory.
	n := max(min(2*cap(a.buf), maxArenaChunk), minArenaChunk, 2*len(b))
	a.buf = make([]byte, 0, n)
	return b[:len(b):len(b)]
}

// reset makes the arena's memory reusable. Only call it once nothing handed
// out is referenced any more (after the bbolt transaction has ended).
func (a *arena) reset() { a.buf = a.buf[:0] }
