// Package clock is the time source injected into tillsync's long-running
// parts, so that logic never reads the wall clock directly and tests can move
// time (skewed tills, expired holds) without sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Fake is a settable clock for tests. The zero value starts at the zero time;
// use NewFake for a useful start.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// NewFake returns a Fake set to t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the fake forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// Set moves the fake to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

// Or returns c, or Real when c is nil: Options structs use it for their default.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Offset is the system clock moved by D: a till whose clock is wrong. The
// agent runs on one for the chaos harness's clock skew (tillsync-agent run
// --fault-clock-offset).
type Offset struct{ D time.Duration }

// Now returns time.Now() moved by D.
func (o Offset) Now() time.Time { return time.Now().Add(o.D) }
