package logpace

import (
	"strconv"
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	var p Pacer
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if n, ok := p.Allow("a", t0); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := range 5 {
		if _, ok := p.Allow("a", t0.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatal("logged again within a minute")
		}
	}
	if _, ok := p.Allow("b", t0.Add(time.Second)); !ok {
		t.Error("another key waits for the first")
	}
	if n, ok := p.Allow("a", t0.Add(Every)); !ok || n != 5 {
		t.Errorf("after a minute: %d unlogged, %v; want 5, true", n, ok)
	}
	if _, ok := p.Allow("a", t0); !ok {
		t.Error("a clock stepped back does not log")
	}
	// A flood of keys stays bounded.
	for i := range MaxKeys + 10 {
		p.Allow(strconv.Itoa(i), t0.Add(2*Every))
	}
	if len(p.seen) > MaxKeys {
		t.Errorf("%d keys remembered", len(p.seen))
	}
}
