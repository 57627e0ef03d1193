package outbox_test

import "testing"

// The session counter goes on from where it was after a close and reopen,
// and is independent of the transaction sequence.
func TestNextSessionSurvivesReopen(t *testing.T) {
	b := openBox(t)
	var last uint64
	for i := range 3 {
		n, err := b.NextSession()
		if err != nil {
			t.Fatal(err)
		}
		if n != last+1 {
			t.Fatalf("session %d: got %d, want %d", i, n, last+1)
		}
		last = n
	}
	b.mustAppend(newTx("01A", "earn", "m1", 10))
	b.reopen()
	n, err := b.NextSession()
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("after reopen: session %d, want 4", n)
	}
}
