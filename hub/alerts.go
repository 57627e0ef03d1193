package hub

import (
	"sync"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
)

// alertSource gives the alert rules the hub's facts: each store and
// terminal as the dashboard sees it (online from the broker's client list,
// last seen, oldest unsynced from the ledger), the store's applied count
// from the ledger and its rejections counted off the ingest's recent ones.
type alertSource struct {
	dash *dashboard.Dashboard
	// rejections are the ingest's recent rejections, newest first.
	rejections func() []ingest.Rejection
	// started is when the hub started: a till cannot have connected while
	// the hub was down, so it counts as seen then at the latest — else
	// every quiet store would be "offline for hours" the moment the hub
	// restarts, before its tills had a chance to reconnect.
	started time.Time
	// exposure returns a till's offline exposure and cap; nil while the
	// hub has no source for it (the tills' retained status will be one).
	exposure func(store, terminal string) (alerts.Exposure, bool)

	mu       sync.Mutex
	rejected map[string]int64 // store → rejections counted this run
	lastAt   time.Time        // newest rejection counted
	lastAtN  int              // how many counted at exactly lastAt
}

var _ alerts.Source = (*alertSource)(nil)

func (a *alertSource) Facts() (alerts.Facts, error) {
	stores, terms, err := a.dash.View()
	if err != nil {
		return alerts.Facts{}, err
	}
	rejected := a.countRejections()
	f := alerts.Facts{Stores: make([]alerts.StoreFacts, 0, len(stores))}
	for _, s := range stores {
		sf := alerts.StoreFacts{Store: s.Store, Partner: s.Partner, Rejected: rejected[s.Store]}
		for _, t := range terms[s.Store] {
			tf := alerts.TerminalFacts{Terminal: t.Terminal, LastSeen: t.LastSeen, OldestUnsynced: t.OldestUnsynced}
			if !tf.LastSeen.IsZero() && tf.LastSeen.Before(a.started) {
				tf.LastSeen = a.started
			}
			switch t.State {
			case dashboard.StateOnline:
				tf.Online = new(true)
			case dashboard.StateOffline, dashboard.StateNever:
				tf.Online = new(false)
			}
			if a.exposure != nil {
				if e, ok := a.exposure(t.Store, t.Terminal); ok {
					tf.Exposure = &e
				}
			}
			sf.Applied += t.Applied
			sf.Terminals = append(sf.Terminals, tf)
		}
		f.Stores = append(f.Stores, sf)
	}
	return f, nil
}

// countRejections adds the rejections the ingest answered since the last
// call to the per-store counts, and returns them. The ingest keeps its
// last ingest.MaxRejections: between two evaluations the hub may answer
// more than that, and the rate then counts fewer than there were.
func (a *alertSource) countRejections() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rejected == nil {
		a.rejected = map[string]int64{}
	}
	rs := a.rejections()
	var newest time.Time
	newestN, atLast := 0, 0
	for _, r := range rs {
		if r.Refused || r.Tx == "" || r.Store == "" {
			continue
		}
		if newest.IsZero() {
			newest = r.At
		}
		if r.At.Equal(newest) {
			newestN++
		}
		switch {
		case r.At.After(a.lastAt):
			a.rejected[r.Store]++
		case r.At.Equal(a.lastAt):
			if atLast++; atLast > a.lastAtN {
				a.rejected[r.Store]++
			}
		}
	}
	if !newest.IsZero() && !newest.Before(a.lastAt) {
		if newest.Equal(a.lastAt) {
			newestN = max(newestN, a.lastAtN)
		}
		a.lastAt, a.lastAtN = newest, newestN
	}
	out := make(map[string]int64, len(a.rejected))
	for k, v := range a.rejected {
		out[k] = v
	}
	return out
}
