package ledger_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
)

// TestRecentEntries: a store's journal entries newest first, up to limit,
// within the last scan entries; a store whose id another's begins with is
// not mistaken for it.
func TestRecentEntries(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "ledger.db"))
	a, b, c := ledgertest.NewTill("s1", "t1", "p1"), ledgertest.NewTill("s10", "t1", "p1"), ledgertest.NewTill("s2", "t9", "p2")
	ledgertest.Register(t, s, a, b, c)
	ledgertest.Apply(t, s, ledgertest.T0,
		a.Batch(t, a.Earn("a1", "m1", 10), a.Earn("a2", "m1", 20)),
		b.Batch(t, b.Earn("b1", "m2", 5)),
		a.Batch(t, a.Earn("a3", "m3", 30)),
		c.Batch(t, c.Earn("c1", "m2", 1), c.Earn("c2", "m2", 2)),
	)
	ids := func(es []ledger.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.TxID)
		}
		return out
	}
	for _, tt := range []struct {
		store       string
		limit, scan int
		want        []string
	}{
		{"s1", 10, 0, []string{"a3", "a2", "a1"}},
		{"s1", 2, 0, []string{"a3", "a2"}},
		{"s10", 10, 0, []string{"b1"}},
		{"s1", 10, 3, []string{"a3"}}, // c2, c1, a3
		{"s1", 10, 2, nil},
		{"s1", 0, 0, nil},
		{"nobody", 10, 0, nil},
	} {
		got, err := s.RecentEntries(tt.store, tt.limit, tt.scan)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("RecentEntries(%s, %d, %d) = %v, want %v", tt.store, tt.limit, tt.scan, ids(got), tt.want)
		}
	}
	got, _ := s.RecentEntries("s1", 1, 0)
	if e := got[0]; e.Store != "s1" || e.Terminal != "t1" || e.Member != "m3" || e.Points != 30 || e.Kind != "earn" || !e.At.Equal(ledgertest.T0) {
		t.Errorf("entry %+v", e)
	}
}
