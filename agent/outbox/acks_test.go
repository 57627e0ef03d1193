package outbox_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/protocol"
)

// openWith opens an outbox with the given answer delay; it is closed when the test ends.
func openWith(t *testing.T, delay time.Duration) (*outbox.Outbox, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := outbox.Open(path, outbox.Options{AckDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o, path
}

// onDisk returns how many transactions the file at path holds queued
// right now, as a till killed at this moment would find it: it reads a
// copy, so the outbox holding the file is not disturbed.
func onDisk(t *testing.T, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.CheckFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func appendAll(t *testing.T, o *outbox.Outbox, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := o.Append(newTx(id, protocol.KindEarn, "m1", 10), "", nil, false); err != nil {
			t.Fatalf("Append %s: %v", id, err)
		}
	}
}

func pendingIDs(t *testing.T, o *outbox.Outbox) []string {
	t.Helper()
	txs, err := o.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return ids(txs)
}

// An answer is not written in a commit of its own: the queue's reads leave
// it out at once, the file keeps it until the next commit, and that commit
// (a POS request's) deletes it. Killed before, the till would find it
// queued and send it again — never lost.
func TestAckedWaitsForTheNextCommit(t *testing.T) {
	o, path := openWith(t, time.Hour)
	appendAll(t, o, "a", "b")
	done, held, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied, Member: "m1", Balance: 10}}, t0)
	if err != nil || len(done) != 1 || len(held) != 0 {
		t.Fatalf("Acked = %v, %v, %v; want a done", done, held, err)
	}
	if got := pendingIDs(t, o); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Pending after a's answer = %v, want [b]", got)
	}
	if q, err := o.Queued("a"); err != nil || q {
		t.Errorf("Queued(a) = %v, %v; want false", q, err)
	}
	n, oldest, err := o.Stats()
	if err != nil || n != 1 || !oldest.Equal(t0) {
		t.Errorf("Stats = %d, %v, %v; want 1, b's time", n, oldest, err)
	}
	if got := onDisk(t, path); got != 2 {
		t.Fatalf("the file holds %d queued before the next commit, want 2 (a is written with the next commit)", got)
	}
	// The same answer again while it waits is a duplicate.
	if done, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, t0); err != nil || len(done) != 0 {
		t.Errorf("a second answer for a = %v, %v; want nothing done", done, err)
	}
	appendAll(t, o, "c")
	if got := onDisk(t, path); got != 2 {
		t.Errorf("after c's commit the file holds %d queued, want 2 (b, c)", got)
	}
	if got := pendingIDs(t, o); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Pending = %v, want [b c]", got)
	}
}

// With no commit to go with, the answers are written on their own after the delay.
func TestAckedWrittenAfterTheDelay(t *testing.T) {
	o, path := openWith(t, 20*time.Millisecond)
	appendAll(t, o, "a", "b", "c")
	if _, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied}, {ID: "c", Status: protocol.StatusRejected, Code: protocol.CodeInvalidPoints}}, t0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for onDisk(t, path) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the file still holds %d queued 10 s after the answers, want 1", onDisk(t, path))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := pendingIDs(t, o); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Pending = %v, want [b]", got)
	}
}

// What an answer changes is read through: the points it booked, the
// balance it reported, the queue PendingPoints sums.
func TestAckedEffectsAreRead(t *testing.T) {
	o, _ := openWith(t, time.Hour)
	appendAll(t, o, "a", "b")
	if _, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied, Member: "m1", Balance: 125, Points: 115}}, t0); err != nil {
		t.Fatal(err)
	}
	if l, _, err := o.Local("a"); err != nil || l.Points != 115 {
		t.Errorf("Local(a) = %+v, %v; want the 115 points booked", l, err)
	}
	if bal, ok, err := o.CachedBalance("m1"); err != nil || !ok || bal.Points != 125 {
		t.Errorf("CachedBalance(m1) = %+v, %v, %v; want 125", bal, ok, err)
	}
	if earned, _, err := o.PendingPoints("m1", 100); err != nil || earned != 10 {
		t.Errorf("PendingPoints(m1) earned %d, %v; want 10 (b alone)", earned, err)
	}
	if err := o.Append(reverseOf("r", "a", "m1", 115), "", nil, false); err != nil {
		t.Errorf("a reverse of all the booked points: %v", err)
	}
}

// A commit that fails takes the waiting answers down with it, and they
// wait on; Close writes them.
func TestAckedSurvivesAFailedCommit(t *testing.T) {
	o, path := openWith(t, time.Hour)
	if err := o.Append(newTx("a", protocol.KindEarn, "m1", 10), "k1", &outbox.IdemRecord{Hash: "h", TxID: "a"}, false); err != nil {
		t.Fatal(err)
	}
	appendAll(t, o, "b")
	if _, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, t0); err != nil {
		t.Fatal(err)
	}
	err := o.Append(newTx("c", protocol.KindEarn, "m1", 10), "k1", &outbox.IdemRecord{Hash: "h", TxID: "c"}, false)
	if !errors.Is(err, outbox.ErrIdemExists) {
		t.Fatalf("Append under a used key: %v, want ErrIdemExists", err)
	}
	if got := onDisk(t, path); got != 2 {
		t.Errorf("after a refused commit the file holds %d queued, want 2", got)
	}
	if got := pendingIDs(t, o); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Pending = %v, want [b]", got)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := outbox.CheckFile(path); err != nil || n != 1 {
		t.Errorf("after Close the file holds %d queued (%v), want 1", n, err)
	}
}

// A held answer removes nothing, and one for a transaction whose answer
// is waiting is stale.
func TestHeldWhileAnswerWaits(t *testing.T) {
	o, _ := openWith(t, time.Hour)
	appendAll(t, o, "a", "b")
	if _, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, t0); err != nil {
		t.Fatal(err)
	}
	done, held, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusHeld}, {ID: "b", Status: protocol.StatusHeld}}, t0)
	if err != nil || len(done) != 0 || len(held) != 1 || held[0].ID != "b" {
		t.Errorf("Acked(held a, held b) = %v, %v, %v; want b held", done, held, err)
	}
	if got := pendingIDs(t, o); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Pending = %v, want [b]", got)
	}
}

// A negative delay writes each Acked call at once, as before.
func TestAckedAtOnce(t *testing.T) {
	o, path := openWith(t, -1)
	appendAll(t, o, "a", "b")
	if _, _, err := o.Acked([]protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, path); got != 1 {
		t.Errorf("the file holds %d queued, want 1", got)
	}
}
