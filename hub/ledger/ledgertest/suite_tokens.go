package ledgertest

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testTokenSightings: a member token accepted at one store, at another till
// of the same store (recorded, not flagged), then at a second store
// (flagged, once); flags outlive the pruning of their sightings, and a
// sighting is refused when its nonce names another member.
func testTokenSightings(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	exp := T0.Add(2 * time.Minute)
	see := func(nonce, store, terminal string, at time.Time) ledger.TokenSighting {
		return ledger.TokenSighting{Nonce: nonce, Member: "m1", ExpiresAt: exp, Store: store, Terminal: terminal, At: at}
	}
	record := func(sg ledger.TokenSighting, now time.Time) (ledger.TokenRecord, bool) {
		t.Helper()
		rec, flagged, err := s.SeeToken(sg, now)
		if err != nil {
			t.Fatalf("SeeToken %+v: %v", sg, err)
		}
		return rec, flagged
	}
	flags := func() []ledger.TokenRecord {
		t.Helper()
		fs, err := s.TokenFlags()
		if err != nil {
			t.Fatalf("TokenFlags: %v", err)
		}
		if fs == nil {
			t.Fatal("TokenFlags returned nil, want an empty list")
		}
		return fs
	}

	if fs := flags(); len(fs) != 0 {
		t.Fatalf("flags of an empty ledger: %+v", fs)
	}
	first := TokenSeenAt("s1", "t1", T0, T0.Add(time.Second))
	rec, flagged := record(see("n1", "s1", "t1", T0), T0.Add(time.Second))
	want := ledger.TokenRecord{Nonce: "n1", Member: "m1", ExpiresAt: exp, First: first, Sightings: 1}
	if flagged || !SameTokenRecord(rec, want) {
		t.Fatalf("first sighting: %+v, flagged %v; want %+v", rec, flagged, want)
	}
	// The next till of the same store: a member may scan again there.
	rec, flagged = record(see("n1", "s1", "t2", T0.Add(10*time.Second)), T0.Add(11*time.Second))
	want.Sightings = 2
	if flagged || !SameTokenRecord(rec, want) || len(flags()) != 0 {
		t.Fatalf("a second till of the same store: %+v, flagged %v, flags %+v; want %+v and no flag", rec, flagged, flags(), want)
	}
	// Another token of the same member at another store: no flag either.
	if _, flagged := record(see("n2", "s2", "t1", T0), T0.Add(time.Second)); flagged {
		t.Fatal("another token at another store was flagged")
	}
	// The same token at another store: flagged, once.
	other := TokenSeenAt("s2", "t1", T0.Add(30*time.Second), T0.Add(31*time.Second))
	rec, flagged = record(see("n1", "s2", "t1", T0.Add(30*time.Second)), T0.Add(31*time.Second))
	want.Sightings, want.Elsewhere, want.FlaggedAt = 3, &other, other.SeenAt
	if !flagged || !SameTokenRecord(rec, want) {
		t.Fatalf("a second store: %+v, flagged %v; want %+v, flagged", rec, flagged, want)
	}
	rec, flagged = record(see("n1", "s3", "t1", T0.Add(40*time.Second)), T0.Add(41*time.Second))
	want.Sightings = 4
	if flagged || !SameTokenRecord(rec, want) {
		t.Fatalf("a third store: %+v, flagged %v; want %+v, not flagged again", rec, flagged, want)
	}
	if fs := flags(); len(fs) != 1 || !SameTokenRecord(fs[0], want) {
		t.Fatalf("flags: %+v, want %+v", fs, want)
	}

	// Another member under the same nonce: refused, nothing changes.
	bad := see("n1", "s4", "t1", T0)
	bad.Member = "m2"
	if _, _, err := s.SeeToken(bad, T0.Add(time.Minute)); protocol.CodeOf(err) != protocol.CodeConflict {
		t.Fatalf("a sighting of n1 for another member: %v, want conflict", err)
	}
	for _, bad := range []ledger.TokenSighting{
		{Nonce: "", Member: "m1", ExpiresAt: exp, Store: "s1", Terminal: "t1", At: T0},
		{Nonce: "n/1", Member: "m1", ExpiresAt: exp, Store: "s1", Terminal: "t1", At: T0},
		{Nonce: "n9", Member: "m1", Store: "s1", Terminal: "t1", At: T0},
		{Nonce: "n9", Member: "m1", ExpiresAt: exp, Store: "s1", Terminal: "t#", At: T0},
	} {
		if _, _, err := s.SeeToken(bad, T0); protocol.CodeOf(err) == protocol.CodeInternal || err == nil {
			t.Errorf("SeeToken %+v: %v, want a protocol refusal", bad, err)
		}
	}

	// Pruning: nothing before TokenRetention after the expiry; then the
	// sightings go and the flag stays.
	if n, err := s.PruneTokens(exp.Add(ledger.TokenRetention - time.Second)); err != nil || n != 0 {
		t.Fatalf("PruneTokens before the retention ran out: %d, %v", n, err)
	}
	if n, err := s.PruneTokens(exp.Add(ledger.TokenRetention)); err != nil || n != 2 {
		t.Fatalf("PruneTokens: %d, %v; want n1 and n2 pruned", n, err)
	}
	if n, err := s.PruneTokens(exp.Add(2 * ledger.TokenRetention)); err != nil || n != 0 {
		t.Fatalf("PruneTokens again: %d, %v", n, err)
	}
	if fs := flags(); len(fs) != 1 || !SameTokenRecord(fs[0], want) {
		t.Fatalf("flags after pruning: %+v, want %+v", fs, want)
	}
	// A pruned token seen again starts over (a till would refuse it as
	// expired long before; the hub does not keep it for ever).
	later := exp.Add(2 * ledger.TokenRetention)
	if rec, flagged := record(see("n1", "s5", "t1", later), later); flagged || rec.Sightings != 1 || rec.First.Store != "s5" {
		t.Fatalf("n1 after pruning: %+v, flagged %v; want a first sighting", rec, flagged)
	}

	// A second flag lists after the first.
	record(see("n3", "s1", "t1", later), later)
	record(see("n3", "s2", "t1", later), later.Add(time.Second))
	if fs := flags(); len(fs) != 2 || fs[0].Nonce != "n1" || fs[1].Nonce != "n3" {
		t.Fatalf("two flags: %+v, want n1 then n3", fs)
	}
	CheckVerify(t, s) // sightings move no points
}

// TokenSeenAt is the sighting of a token at store/terminal, accepted at at
// by the till's clock and recorded at seenAt by the hub's, as a store
// returns it (in UTC).
func TokenSeenAt(store, terminal string, at, seenAt time.Time) ledger.TokenSeen {
	return ledger.TokenSeen{Store: store, Terminal: terminal, At: at.UTC(), SeenAt: seenAt.UTC()}
}

// SameTokenRecord reports whether a and b say the same, comparing times as
// instants.
func SameTokenRecord(a, b ledger.TokenRecord) bool {
	seen := func(x, y *ledger.TokenSeen) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.Store == y.Store && x.Terminal == y.Terminal && x.At.Equal(y.At) && x.SeenAt.Equal(y.SeenAt)
	}
	return a.Nonce == b.Nonce && a.Member == b.Member && a.ExpiresAt.Equal(b.ExpiresAt) && seen(&a.First, &b.First) &&
		a.Sightings == b.Sightings && seen(a.Elsewhere, b.Elsewhere) && a.FlaggedAt.Equal(b.FlaggedAt)
}
