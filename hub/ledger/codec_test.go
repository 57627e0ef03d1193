package ledger

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestAppendEntryMatchesJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.UTC)
	created := time.Date(2026, 11, 23, 11, 4, 5, 0, time.FixedZone("CET", 3600))
	entries := []Entry{
		{},
		{Seq: 1, TxID: "01J", Kind: "earn", Member: "m1", Partner: "p1", Store: "s1", Terminal: "t1", Points: 100,
			Postings: []Posting{{Account: "member/m1", Delta: 100}, {Account: "partner/p1/issued", Delta: -100}}, At: at, CreatedAt: created},
		{Seq: 1<<64 - 1, TxID: "r.1_x-2", Kind: "reverse", Member: "m", Original: "e1", Points: -9223372036854775808,
			Postings: []Posting{}, At: at.In(time.FixedZone("", -5*3600-1800))},
		// Not ids, but the encoder must still be right.
		{TxID: "quote\" back\\ <tag>&amp; \x01 ünï \u2028", Member: "\t\n"},
		// Every field set: an expiry restating a closed period.
		{Seq: 42, TxID: "", Kind: "expire", Member: "m1", Partner: "p1", Store: "s1", Terminal: "t1", Original: "o1", Lot: "e1", Points: -5,
			Postings: []Posting{{Account: "member/m1", Delta: -5}, {Account: "partner/p1/expired", Delta: 5}}, At: at, CreatedAt: created,
			Day: DayOf(created), Restates: "2026-10-01..2026-11-01", Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{Kind: "earn", Day: -1, Restates: "..2026-10-01", Hash: "<not hex>", Postings: []Posting{{}}},
	}
	for i, e := range entries {
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEntry([]byte("prefix"), &e); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("entry %d:\n got  %s\n want prefix%s", i, got, want)
		}
	}
	checkEveryField(t, entries[4])
}

// checkEveryField fails the test unless v (a struct) sets every field
// encoding/json writes: so that a field added later is in the comparison.
func checkEveryField(t *testing.T, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	if n := reflect.TypeOf(v).NumField(); len(keys) != n {
		t.Errorf("the full %T sets %d of its %d fields: %s", v, len(keys), n, data)
	}
}

func TestAppendTxRecordMatchesJSON(t *testing.T) {
	recs := []TxRecord{
		{},
		{ID: "e1", Status: "applied", Kind: "earn", Member: "m1", Points: 100, Reversed: 40, JournalSeq: 7, Store: "s1", Terminal: "t1", Balance: -3, Partner: "p1"},
		{ID: "v1", Status: "rejected", Code: "original_mismatch", Kind: "void", Member: "m1", Original: "b1", Balance: 12},
		{ID: "<&>", Member: "\"\\"},
		// Every field set.
		{ID: "c1", Status: "applied", Code: "x", Kind: "capture", Member: "m1", Points: 80, Reversed: 40, Amount: 1600, Returned: 800,
			Quoted: 79, RulesVersion: 3, Offline: true, HoldState: HoldCaptured,
			HoldExpires: time.Date(2026, 11, 23, 10, 15, 0, 123, time.FixedZone("CET", 3600)), Capture: "c2",
			Lots:  []LotUse{{Lot: "e1", At: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), Points: 60}, {Lot: "e<2>", At: time.Date(2026, 3, 5, 0, 0, 0, 1, time.FixedZone("", -3*3600)), Points: 20}},
			LotAt: time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC), JournalSeq: 1<<64 - 1, Store: "s1", Terminal: "t1", Balance: -7,
			Partner: "p1", Original: "h1", TerminalSeq: 1<<64 - 1},
		// Zero-length lots are left out like nil ones.
		{ID: "b1", Status: "rejected", Kind: "burn", Lots: []LotUse{}, Offline: true, Quoted: -1, RulesVersion: -2, Amount: -3, Returned: -4},
	}
	for i, r := range recs {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendTxRecord(nil, &r); !bytes.Equal(got, want) {
			t.Errorf("record %d:\n got  %s\n want %s", i, got, want)
		}
	}
	checkEveryField(t, recs[4])
}

// TestArenaKeepsValues: a value handed out stays intact while later values
// are appended, across chunk growth; reset makes the memory reusable.
func TestArenaKeepsValues(t *testing.T) {
	var a arena
	var got [][]byte
	var want []string
	for i := range 5000 {
		s := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%300)
		if i%997 == 0 {
			s = bytes.Repeat([]byte{'Z'}, 3*minArenaChunk) // outgrows any chunk
		}
		v := a.commit(append(a.tail(), s...))
		if cap(v) != len(v) {
			t.Fatalf("value %d has spare capacity %d: an append to it would overwrite its neighbour", i, cap(v)-len(v))
		}
		got = append(got, v)
		want = append(want, string(s))
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("value %d changed", i)
		}
	}
	a.reset()
	if len(a.tail()) != 0 || cap(a.tail()) == 0 {
		t.Errorf("after reset: tail len %d cap %d", len(a.tail()), cap(a.tail()))
	}
}
