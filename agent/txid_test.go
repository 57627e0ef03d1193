package agent

import (
	"sort"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

func TestULIDSortsAndIsValid(t *testing.T) {
	var g idGen
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 5000; i++ {
		// Several ids per millisecond, and once the clock steps back.
		at := base.Add(time.Duration(i/3) * time.Millisecond)
		if i == 4000 {
			at = base
		}
		ids = append(ids, g.next(at))
	}
	seen := map[string]bool{}
	for i, id := range ids {
		if len(id) != 26 || !protocol.ValidID(id) {
			t.Fatalf("id %q: want 26 valid characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if i > 0 && ids[i-1] >= id {
			t.Fatalf("ids out of order at %d: %s then %s", i, ids[i-1], id)
		}
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids not sorted")
	}
}

func TestULIDEncodesTime(t *testing.T) {
	var b [16]byte
	if got := encodeULID(b); got != "00000000000000000000000000" {
		t.Fatalf("zero: %s", got)
	}
	for i := range b {
		b[i] = 0xff
	}
	if got := encodeULID(b); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Fatalf("max: %s", got)
	}
}
