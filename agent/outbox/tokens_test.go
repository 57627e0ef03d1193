package outbox_test

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// TestSeeToken: a member token's nonce is accepted once, refused again
// after a restart, and forgotten once it could no longer verify.
func TestSeeToken(t *testing.T) {
	b := openBox(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	keep := now.Add(3 * time.Minute)
	see := func(nonce string, keepUntil, at time.Time) bool {
		t.Helper()
		first, err := b.SeeToken(nonce, keepUntil, at)
		if err != nil {
			t.Fatalf("SeeToken %s: %v", nonce, err)
		}
		return first
	}
	if !see("nonce-a", keep, now) {
		t.Fatal("the first scan of a token is a replay")
	}
	if see("nonce-a", keep, now.Add(time.Second)) {
		t.Fatal("the second scan is not a replay")
	}
	if !see("nonce-b", now.Add(time.Minute), now) {
		t.Fatal("another token is a replay")
	}
	b.reopen()
	if see("nonce-a", keep, now.Add(2*time.Second)) {
		t.Fatal("after a restart the replay is not caught")
	}
	// Past its keepUntil a nonce is forgotten (the token no longer
	// verifies anyway); b's went first.
	if see("nonce-b", now.Add(time.Hour), now.Add(time.Minute)) != true {
		t.Fatal("nonce-b was kept past its keepUntil")
	}
	if see("nonce-a", keep, keep.Add(-time.Nanosecond)) {
		t.Fatal("nonce-a forgotten before its keepUntil")
	}
	if !see("nonce-a", keep, keep) {
		t.Fatal("nonce-a kept past its keepUntil")
	}
	if _, err := b.SeeToken("a/b", keep, now); protocol.CodeOf(err) != protocol.CodeInvalidID {
		t.Errorf("SeeToken with a bad nonce: %v", err)
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
}
