package agent

import (
	"context"
	"sync"
	"time"

	"github.com/tillsync/tillsync/agent/posapi"
)

// scanLog keeps the last scans for the POS to collect by sequence number,
// with long polling: a reader waits on a channel that is closed (and
// replaced) at each new scan.
type scanLog struct {
	mu    sync.Mutex
	seq   uint64
	ring  []posapi.ScanEvent
	fresh chan struct{}
}

const scanLogSize = 256

func (l *scanLog) init() { l.fresh = make(chan struct{}) }

func (l *scanLog) add(e posapi.ScanEvent) {
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	l.ring = append(l.ring, e)
	if len(l.ring) > scanLogSize {
		l.ring = l.ring[len(l.ring)-scanLogSize:]
	}
	close(l.fresh)
	l.fresh = make(chan struct{})
	l.mu.Unlock()
}

func (l *scanLog) after(ctx context.Context, seq uint64, wait time.Duration) []posapi.ScanEvent {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		var out []posapi.ScanEvent
		from := seq
		if from > l.seq {
			// A cursor from before the agent restarted (numbering starts
			// again at 1): everything kept is new to this reader.
			from = 0
		}
		for _, e := range l.ring {
			if e.Seq > from {
				out = append(out, e)
			}
		}
		fresh := l.fresh
		l.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			return out
		}
		select {
		case <-fresh:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
