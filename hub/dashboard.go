package hub

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
)

// recentScan is how far back in the journal a store page looks for the
// store's latest entries.
const recentScan = 20_000

// newDashboard wires the dashboard to the hub's parts: the embedded
// broker's client list (an external broker's is out of reach), the
// ingest's counters, rejections and lags, the samples, the ledger.
func (h *Hub) newDashboard(bus broker.Bus, in *ingest.Ingest) *dashboard.Dashboard {
	o := dashboard.Options{
		Store:       h.ledger,
		VerifyEvery: h.o.LedgerVerifyEvery,
		Logger:      h.log,
		Clock:       h.o.Clock,
		Counters: func() dashboard.Counters {
			st := in.Stats()
			return dashboard.Counters{Batches: st.Batches, Applied: st.Applied, Duplicates: st.Duplicates, Rejected: st.Rejected,
				Held: st.Held, Refused: st.Refused, Dropped: st.Dropped, QueueDepth: st.QueueDepth}
		},
		Samples: h.samples.samples,
		Rejections: func() []dashboard.Rejection {
			rs := in.Rejections()
			out := make([]dashboard.Rejection, len(rs))
			for i, r := range rs {
				out[i] = dashboard.Rejection{At: r.At, Store: r.Store, Terminal: r.Terminal, Tx: r.Tx, Kind: r.Kind, Code: r.Code, Refused: r.Refused, Reason: r.Reason}
			}
			return out
		},
		SyncLags: func() map[dashboard.TerminalKey]dashboard.Lag {
			ls := in.SyncLags()
			out := make(map[dashboard.TerminalKey]dashboard.Lag, len(ls))
			for k, l := range ls {
				out[dashboard.TerminalKey{Store: k.Store, Terminal: k.Terminal}] = dashboard.Lag{Lag: l.Lag, At: l.At}
			}
			return out
		},
		Recent: func(store string, limit int) ([]ledger.Entry, error) {
			return h.ledger.RecentEntries(store, limit, recentScan)
		},
		AgentStatus: func(store, terminal string) (dashboard.AgentStatus, bool) {
			s, ok := in.Status(store, terminal)
			if !ok {
				return dashboard.AgentStatus{}, false
			}
			return agentStatus(s), true
		},
	}
	if h.o.Alerts != nil {
		o.Alerts = func() []dashboard.Alert {
			fs := h.Alerts()
			out := make([]dashboard.Alert, len(fs))
			for i, a := range fs {
				out[i] = dashboard.Alert{Alert: a.Alert, Condition: string(a.Condition), Store: a.Store, Partner: a.Partner, Severity: string(a.Severity),
					Value: a.Value, Threshold: a.Threshold, Unit: a.Unit, Since: a.Since, FiredAt: a.FiredAt, Summary: a.Summary}
			}
			return out
		}
	}
	if e, ok := bus.(*broker.Embedded); ok {
		o.Connected = e.ConnectedClients
	}
	return dashboard.New(o)
}

// agentStatus is a till's status as the dashboard shows it.
func agentStatus(s ingest.TerminalStatus) dashboard.AgentStatus {
	d := dashboard.AgentStatus{Online: s.Online, Version: s.AgentVersion, ScannerConnected: s.ScannerConnected,
		LastScan: s.LastScan, ReportedAt: s.ReceivedAt} // the hub's clock: the page compares it with the hub's now
	if s.ClockOffsetMS != nil {
		off := time.Duration(*s.ClockOffsetMS) * time.Millisecond
		d.ClockOffset = &off
	}
	points := s.OfflinePoints // every status carries it: 0 is none in use
	d.OfflineExposure = &points
	return d
}

// httpHandler serves the dashboard under /dashboard/ (and redirects
// /dashboard there) and the API everywhere else. A path that is not
// canonical goes to the API as it is, which refuses it in its own error
// body (after its token check), where this mux would redirect it.
func httpHandler(api http.Handler, dash *dashboard.Dashboard) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, dash.Handler())
	mux.Handle("/", api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.IsCanonical(r) {
			api.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveHTTP serves h on l until ctx is done.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	if err := httpx.Serve(ctx, l, h); err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	return nil
}
