// Package httpapi is the hub's HTTP API for operators and partner brands.
//
// It reads: member balances, statements and points (lots, holds, flags),
// every store's terminals with when they were last seen and the backlog they
// reported (so an operator can tell which stores are in sync), settlement
// reports (JSON or CSV), closed periods and a replay of the whole journal.
//
// It mints member tokens — signed, short-lived QR codes a member app shows
// instead of a card (protocol.MintMemberToken) — with the coalition's key
// (POST /v1/members/{member}/token), publishes that key's public half (GET
// /v1/member-token-key), and lists the tokens tills accepted at two stores
// (GET /v1/token-flags). The API has no authentication of its own yet: put
// the token endpoint behind the member app's backend, never on the open
// internet.
//
// It administers the coalition through ledger.Store: the coalition's
// settings, partners, stores and terminals, earn rules and campaigns, whole
// seed files (hub/seedfile), closing settlement periods and running expiry.
// It never posts points itself: every change goes through the ledger's own
// methods, which check it and commit it. After a change of the registry or
// of rules it calls Options.OnChange, so that the hub re-publishes the
// stores' configs to their tills.
//
// Requests and answers are JSON with the field names of the ledger and
// protocol types. Bodies are size-limited and decoded strictly: an unknown
// field is refused. Errors are {"error":{"code":"…","message":"…"}} with a
// stable protocol code: invalid_*, malformed and missing_field are 400,
// unknown_partner, unknown_store, unknown_member and not_found 404,
// conflict and period_closed 409, too_large 413.
package httpapi

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// OnChange is called after every successful change of the coalition's
	// settings, partners, stores, terminals or rules (seeds and campaigns
	// included), so that the hub can re-publish the stores' configs. It must
	// not block. May be nil.
	OnChange func()
	// MemberTokenKey signs the member tokens of POST
	// /v1/members/{member}/token, and its public half is GET
	// /v1/member-token-key. Nil: both answer 404 not_found.
	MemberTokenKey ed25519.PrivateKey
	// MemberTokenTTL is a token's lifetime when the request names none;
	// default protocol.DefaultTokenTTL, at most protocol.MaxTokenLifetime.
	MemberTokenTTL time.Duration
	// CAPEM is the hub's CA certificate, given to tills at enrollment, and
	// CAFingerprint its SHA-256 (hex), written into enrollment tokens so a
	// till can pin the hub; both empty when the hub has no CA.
	CAPEM         []byte
	CAFingerprint string
	// OnCredentials is called after a terminal's credentials change (it
	// enrolled, or was revoked), to disconnect at once the client connected
	// with the old ones (or with none). It must not block. May be nil.
	OnCredentials func(store, terminal string)
	// MQTTRefused counts the MQTT connections the embedded broker refused
	// (health: mqtt_refused); nil without one.
	MQTTRefused func() int64

	Logger *slog.Logger
	Clock  clock.Clock
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
	// LastSeenSeconds is how long ago the hub last heard from it (0 when never).
	LastSeenSeconds float64 `json:"last_seen_seconds"`
	// NeverSeen is set for a registered terminal that has sent nothing yet.
	NeverSeen bool `json:"never_seen,omitempty"`
}

// Store is one store in GET /v1/stores: every registered store (with or
// without terminals) and every store a terminal has sent batches for.
type Store struct {
	Store string `json:"store"`
	// Partner is the brand the store is registered with; empty when unregistered.
	Partner string `json:"partner,omitempty"`
	// Name is the registered store's name.
	Name string `json:"name,omitempty"`
	// Registered is false for a store whose tills send batches the
	// coalition has not registered (their transactions are held).
	Registered bool             `json:"registered"`
	InSync     bool             `json:"in_sync"`
	Backlog    int64            `json:"backlog"`
	Terminals  []TerminalStatus `json:"terminals"`
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
	if o.OnChange == nil {
		o.OnChange = func() {}
	}
	if o.MemberTokenTTL <= 0 || o.MemberTokenTTL > protocol.MaxTokenLifetime {
		o.MemberTokenTTL = protocol.DefaultTokenTTL
	}
	a := &api{o: o}
	mux := http.NewServeMux()
	httpx.Routes(mux, map[string]http.HandlerFunc{
		"GET /v1/members":                    a.members,
		"GET /v1/members/{member}":           a.memberView,
		"GET /v1/members/{member}/balance":   a.balance,
		"GET /v1/members/{member}/statement": a.statement,
		"POST /v1/members/{member}/token":    a.mintToken,
		"GET /v1/member-token-key":           a.tokenKeys,
		"GET /v1/stores":                     a.stores,
		"GET /v1/health":                     a.health,

		"GET /v1/coalition":                                             a.coalition,
		"PUT /v1/coalition":                                             a.setCoalition,
		"GET /v1/partners":                                              a.partners,
		"PUT /v1/partners/{partner}":                                    a.putPartner,
		"GET /v1/partners/{partner}/rules":                              a.rules,
		"POST /v1/partners/{partner}/rules":                             a.addRules,
		"POST /v1/partners/{partner}/campaigns":                         a.addCampaign,
		"PUT /v1/stores/{store}":                                        a.putStore,
		"PUT /v1/stores/{store}/terminals/{terminal}":                   a.addTerminal,
		"POST /v1/stores/{store}/terminals/{terminal}/enrollment-token": a.enrollmentToken,
		"POST /v1/stores/{store}/terminals/{terminal}/revoke":           a.revokeTerminal,
		"GET /v1/enrollments":                                           a.enrollments,
		"GET /v1/broker-users":                                          a.brokerUsers,
		"POST /v1/enroll":                                               a.enroll,
		"POST /v1/seed":                                                 a.seed,

		"GET /v1/flags":       a.flags,
		"GET /v1/token-flags": a.tokenFlags,
		"GET /v1/settlement":  a.settlement,
		"GET /v1/periods":     a.periods,
		"POST /v1/periods":    a.closePeriod,
		"POST /v1/expiry":     a.expire,
		"GET /v1/verify":      a.verify,
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

type api struct {
	o Options
	// enrollRefused counts refused POST /v1/enroll requests.
	enrollRefused atomic.Int64
	// rulesMu serialises the read-modify-write of a campaign, which adds a
	// version built from the one in force.
	rulesMu sync.Mutex
}

func (a *api) member(w http.ResponseWriter, r *http.Request) (string, bool) {
	return pathID(w, r, "member")
}

// pathID returns the path value name, answering 400 invalid_id when it is
// not a protocol id.
func pathID(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v := r.PathValue(name)
	if !protocol.ValidID(v) {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidID, fmt.Sprintf("%s: must be 1-%d characters of A-Z a-z 0-9 . _ -", name, protocol.MaxIDLen))
		return "", false
	}
	return v, true
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
	reg, err := a.o.Store.Stores()
	if err != nil {
		a.internal(w, r, err)
		return
	}
	now := a.o.Clock.Now()
	byID := map[string]*Store{}
	var ids []string
	get := func(id string) *Store {
		s := byID[id]
		if s == nil {
			s = &Store{Store: id, InSync: true, Terminals: []TerminalStatus{}}
			byID[id] = s
			ids = append(ids, id)
		}
		return s
	}
	for _, info := range reg {
		s := get(info.ID)
		s.Partner, s.Name, s.Registered = info.Partner, info.Name, true
	}
	for _, t := range ts {
		st := TerminalStatus{Terminal: t, LastSeenSeconds: max(0, now.Sub(t.LastSeen).Seconds())}
		st.InSync = t.Backlog == 0
		st.Quiet = now.Sub(t.LastSeen) > a.o.StaleAfter
		if t.LastSeen.IsZero() {
			st.NeverSeen, st.LastSeenSeconds = true, 0
		}
		s := get(t.Store)
		s.Terminals = append(s.Terminals, st)
		s.Backlog += t.Backlog
		s.InSync = s.InSync && st.InSync
	}
	slices.Sort(ids)
	out := make([]Store, 0, len(ids))
	for _, id := range ids {
		out = append(out, *byID[id])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"stores": out})
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"ok": true, "enrollments_refused": a.enrollRefused.Load()}
	if a.o.Stats != nil {
		body["ingest"] = a.o.Stats()
	}
	if a.o.MQTTRefused != nil {
		body["mqtt_refused"] = a.o.MQTTRefused()
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.o.Logger.Error("hub api request failed", "path", r.URL.Path, "err", err)
	httpx.WriteError(w, http.StatusInternalServerError, protocol.CodeInternal, "internal error; see the hub log")
}
