// Package logpace paces log lines about refusals: one line per key (who,
// what, where) a minute at most, each saying how many went unlogged since
// the last. A script with a revoked token, a till with a wrong password,
// or someone trying credentials must not flood an operator's log, and
// every refusal must still be accounted for.
package logpace

import (
	"sync"
	"time"
)

// Every is how often a refusal of the same key is logged.
const Every = time.Minute

// MaxKeys bounds the keys remembered; past it, keys older than Every are
// forgotten (and all of them if that is not enough, as under a flood of
// made-up keys).
const MaxKeys = 4096

// Pacer decides which refusals to log. Its zero value is ready to use.
type Pacer struct {
	mu   sync.Mutex
	seen map[string]*entry
}

type entry struct {
	at    time.Time
	quiet int
}

// Allow reports whether to log a refusal of key at now and, when it does,
// how many refusals of key went unlogged before it. A clock that stepped
// back logs at once.
func (p *Pacer) Allow(key string, now time.Time) (unlogged int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = make(map[string]*entry)
	}
	e := p.seen[key]
	if e != nil && now.Sub(e.at) < Every && !now.Before(e.at) {
		e.quiet++
		return 0, false
	}
	if e == nil {
		if len(p.seen) >= MaxKeys {
			for k, old := range p.seen {
				if now.Sub(old.at) >= Every {
					delete(p.seen, k)
				}
			}
			if len(p.seen) >= MaxKeys {
				clear(p.seen)
			}
		}
		e = &entry{}
		p.seen[key] = e
	}
	unlogged, e.at, e.quiet = e.quiet, now, 0
	return unlogged, true
}
