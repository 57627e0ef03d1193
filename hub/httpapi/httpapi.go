// Package httpapi is the hub's HTTP API for operators and partners: member
// balances and statements, and every store's terminals with when they were
// last seen and the backlog they reported, so an operator can tell which
// stores are in sync. It reads the ledger; it never writes it.
//
// Errors are {"error":{"code":"…","message":"…"}} with a stable code.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// Options configures the API. Store is required.
type Options struct {
	Store ledger.Store
	// Stats returns live hub counters for /v1/health; may be nil.
	Stats func() any
	// StaleAfter: a terminal not heard from for this long is shown as quiet;
	// default 2 minutes.
	StaleAfter time.Duration
	Logger     *slog.Logger
	Clock      clock.Clock
}

// MemberBalance answers GET /v1/members/{member}/balance.
type MemberBalance struct {
	Member string `json:"member"`
	Known  bool   `json:"known"`
	Points int64  `json:"points"`
}

// Statement answers GET /v1/members/{member}/statement.
type Statement struct {
	Member  string         `json:"member"`
	Points  int64          `json:"points"`
	Entries []ledger.Entry `json:"entries"`
}

// TerminalStatus is one terminal in GET /v1/stores.
type TerminalStatus struct {
	ledger.Terminal
	// InSync is true when the terminal's last batch left nothing queued behind it.
	InSync bool `json:"in_sync"`
	// Quiet is true when the hub has not heard from the terminal for StaleAfter
	// (a closed store, or one that cannot reach the hub).
	Quiet bool `json:"quiet"`
	// LastSeenSeconds is how long ago the hub last heard from it.
	LastSeenSeconds float64 `json:"last_seen_seconds"`
}

// Store is one store in GET /v1/stores.
type Store struct {
	Store     string           `json:"store"`
	InSync    bool             `json:"in_sync"`
	Backlog   int64            `json:"backlog"`
	Terminals []TerminalStatus `json:"terminals"`
}

// Handler returns the API's handler.
func Handler(o Options) http.Handler {
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	a := &api{o: o}
	mux := http.NewServeMux()
	httpx.Routes(mux, map[string]http.HandlerFunc{
		"GET /v1/members":                    a.members,
		"GET /v1/members/{member}/balance":   a.balance,
		"GET /v1/members/{member}/statement": a.statement,
		"GET /v1/stores":                     a.stores,
		"GET /v1/health":                     a.health,
	})
	return mux
}

// Serve runs the API on l until ctx is done.
func Serve(ctx context.Context, l net.Listener, o Options) error {
	if err := httpx.Serve(ctx, l, Handler(o)); err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	return nil
}

type api struct{ o Options }

func (a *api) member(w http.ResponseWriter, r *http.Request) (string, bool) {
	m := r.PathValue("member")
	if !protocol.ValidID(m) {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidID, "member: must be 1-64 characters of A-Z a-z 0-9 . _ -")
		return "", false
	}
	return m, true
}

func (a *api) balance(w http.ResponseWriter, r *http.Request) {
	m, ok := a.member(w, r)
	if !ok {
		return
	}
	p, known, err := a.o.Store.Balance(m)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, MemberBalance{Member: m, Known: known, Points: p})
}

func (a *api) statement(w http.ResponseWriter, r *http.Request) {
	m, ok := a.member(w, r)
	if !ok {
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", "limit: must be a whole number from 1 to 1000")
			return
		}
		limit = n
	}
	p, known, err := a.o.Store.Balance(m)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if !known {
		httpx.WriteError(w, http.StatusNotFound, protocol.CodeUnknownMember, "no member "+m+" in the ledger")
		return
	}
	es, err := a.o.Store.Statement(m, limit)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if es == nil {
		es = []ledger.Entry{}
	}
	httpx.WriteJSON(w, http.StatusOK, Statement{Member: m, Points: p, Entries: es})
}

func (a *api) members(w http.ResponseWriter, r *http.Request) {
	bs, err := a.o.Store.MemberBalances()
	if err != nil {
		a.internal(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"members": bs})
}

func (a *api) stores(w http.ResponseWriter, r *http.Request) {
	ts, err := a.o.Store.Terminals()
	if err != nil {
		a.internal(w, r, err)
		return
	}
	now := a.o.Clock.Now()
	out := []Store{}
	for _, t := range ts {
		st := TerminalStatus{Terminal: t, LastSeenSeconds: max(0, now.Sub(t.LastSeen).Seconds())}
		st.InSync = t.Backlog == 0
		st.Quiet = now.Sub(t.LastSeen) > a.o.StaleAfter
		if len(out) == 0 || out[len(out)-1].Store != t.Store {
			out = append(out, Store{Store: t.Store, InSync: true})
		}
		s := &out[len(out)-1]
		s.Terminals = append(s.Terminals, st)
		s.Backlog += t.Backlog
		s.InSync = s.InSync && st.InSync
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"stores": out})
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"ok": true}
	if a.o.Stats != nil {
		body["ingest"] = a.o.Stats()
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.o.Logger.Error("hub api request failed", "path", r.URL.Path, "err", err)
	httpx.WriteError(w, http.StatusInternalServerError, protocol.CodeInternal, "internal error; see the hub log")
}
