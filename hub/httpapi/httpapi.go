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
// (GET /v1/token-flags).
//
// It administers the coalition through ledger.Store: the coalition's
// settings, partners, stores and terminals, earn rules and campaigns, whole
// seed files (hub/seedfile), closing settlement periods and running expiry.
// It never posts points itself: every change goes through the ledger's own
// methods, which check it and commit it. After a change of the registry or
// of rules it calls Options.OnChange, so that the hub re-publishes the
// stores' configs to their tills.
//
// # Tokens and roles
//
// Every request carries an API token, "Authorization: Bearer
// TSA1.<id>.<secret>" (protocol.FormatAPIToken), but two: POST /v1/enroll,
// which the enrollment token in its body authenticates, and GET /healthz,
// a liveness check answering "ok" and nothing else. The ledger keeps each
// token hashed, with a role (ledger.Role); the hub makes the first operator
// token at its first start, and operators make more over POST
// /v1/api-tokens. Who may call what:
//
//	route                                              operator  read-only  partner
//	GET  /healthz, POST /v1/enroll                     yes       yes        yes       (no token needed)
//	GET  /v1/health, /v1/coalition, /v1/member-token-key
//	                                                   yes       yes        yes
//	GET  /v1/partners, /v1/stores, /v1/enrollments     yes       yes        its own partner, stores and terminals
//	GET  /v1/partners/{partner}/rules                  yes       yes        its own partner's
//	GET  /v1/settlement, /v1/periods                   yes       yes        its own lines (and a total of them)
//	GET  /v1/members, /v1/members/{member}[/balance|/statement],
//	     /v1/flags, /v1/token-flags, /v1/verify        yes       yes        no (member ids)
//	GET  /metrics (Prometheus)                         yes       yes        no (every store)
//	POST /v1/members/{member}/token                    yes       no         no
//	every other PUT and POST (coalition, partners,
//	     rules, campaigns, stores, terminals,
//	     enrollment tokens, revoke, seed, periods,
//	     expiry)                                       yes       no         no
//	GET, POST /v1/api-tokens, POST /v1/api-tokens/{id}/revoke
//	                                                   yes       no         no
//	GET  /v1/broker-users (password hashes)            yes       no         no
//
// A partner token is bound to one partner: it changes nothing, never sees
// a member id (health counts, settlement totals and its stores are
// anonymous), and another partner's data is refused, or left out of a
// list. Unknown paths need a token too.
//
// A request without a token, or with one that is malformed, unknown or
// revoked, is answered 401 unauthorized; a token whose role may not call
// the route, or a partner token reaching another partner's data, 403
// forbidden. Each refusal is counted (GET /v1/health: api_refused) and
// logged at WARN with the token's id and the route — once a minute per
// token (or address), route and code, counting the lines left out — and
// never with the token. A token's last use is recorded at most once a
// minute.
//
// Requests and answers are JSON with the field names of the ledger and
// protocol types. Bodies are size-limited and decoded strictly: an unknown
// field is refused. Errors are {"error":{"code":"…","message":"…"}} with a
// stable code: invalid_*, malformed and missing_field are 400, and
// bad_request (CodeBadRequest) for a query parameter out of range;
// unauthorized 401, forbidden and enrollment_token_* 403, unknown_partner,
// unknown_store, unknown_member and not_found 404, method_not_allowed 405,
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
	"github.com/tillsync/tillsync/internal/logpace"
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
	// AgentStatus returns the status a terminal's till last reported
	// (its retained status message); ok false when none. May be nil.
	AgentStatus func(store, terminal string) (s protocol.TerminalStatus, ok bool)
	// MQTTRefused counts the MQTT connections the embedded broker refused
	// (health: mqtt_refused); nil without one.
	MQTTRefused func() int64
	// MQTTDenied counts the publishes and subscriptions the embedded
	// broker's ACL refused (health: mqtt_denied); nil without one.
	MQTTDenied func() int64
	// MQTTAdvertise is the MQTT address enrolled tills are told to use
	// (EnrollAnswer.MQTTURL), e.g. tls://hub.example.com:8883. Empty: when
	// MQTTPort is set, the scheme MQTTScheme on the host name the till
	// reached the API by, at MQTTPort; otherwise tills are told nothing.
	MQTTAdvertise string
	MQTTScheme    string
	MQTTPort      string
	// Metrics serves GET /metrics (Prometheus), to operator and read-only
	// tokens; nil: the route answers 404.
	Metrics http.Handler

	Logger *slog.Logger
	Clock  clock.Clock
}

// CodeBadRequest answers a query parameter out of range (a statement's
// limit, a member token's ttl); the POS API answers it too (httpx).
const CodeBadRequest = httpx.CodeBadRequest

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
	// AgentStatus is what the till last reported about itself on its
	// status topic (without its MAC); absent when it reported nothing
	// since the hub started.
	AgentStatus *protocol.TerminalStatus `json:"agent_status,omitempty"`
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
	a := &api{o: o, access: map[string]access{}}
	mux := http.NewServeMux()
	handlers := map[string]http.HandlerFunc{}
	for _, rt := range a.routes() {
		handlers[rt.pattern], a.access[rt.pattern] = rt.h, rt.access
	}
	httpx.Routes(mux, handlers)
	return a.guard(mux)
}

// routes are the API's endpoints and who may call each: the table in the
// package doc.
func (a *api) routes() []route {
	return []route{
		{"GET /healthz", open, a.healthz},
		{"POST /v1/enroll", open, a.enroll},

		{"GET /v1/health", everyone, a.health},
		{"GET /v1/coalition", everyone, a.coalition},
		{"GET /v1/member-token-key", everyone, a.tokenKeys},
		{"GET /v1/partners", everyone, a.partners},
		{"GET /v1/partners/{partner}/rules", everyone, a.rules},
		{"GET /v1/stores", everyone, a.stores},
		{"GET /v1/enrollments", everyone, a.enrollments},
		{"GET /v1/settlement", everyone, a.settlement},
		{"GET /v1/periods", everyone, a.periods},

		{"GET /v1/members", readers, a.members},
		{"GET /v1/members/{member}", readers, a.memberView},
		{"GET /v1/members/{member}/balance", readers, a.balance},
		{"GET /v1/members/{member}/statement", readers, a.statement},
		{"GET /v1/flags", readers, a.flags},
		{"GET /v1/token-flags", readers, a.tokenFlags},
		{"GET /v1/verify", readers, a.verify},
		{"GET /metrics", readers, a.metrics},

		{"POST /v1/members/{member}/token", operatorOnly, a.mintToken},
		{"PUT /v1/coalition", operatorOnly, a.setCoalition},
		{"PUT /v1/partners/{partner}", operatorOnly, a.putPartner},
		{"POST /v1/partners/{partner}/rules", operatorOnly, a.addRules},
		{"POST /v1/partners/{partner}/campaigns", operatorOnly, a.addCampaign},
		{"PUT /v1/stores/{store}", operatorOnly, a.putStore},
		{"PUT /v1/stores/{store}/terminals/{terminal}", operatorOnly, a.addTerminal},
		{"POST /v1/stores/{store}/terminals/{terminal}/enrollment-token", operatorOnly, a.enrollmentToken},
		{"POST /v1/stores/{store}/terminals/{terminal}/revoke", operatorOnly, a.revokeTerminal},
		{"POST /v1/seed", operatorOnly, a.seed},
		{"POST /v1/periods", operatorOnly, a.closePeriod},
		{"POST /v1/expiry", operatorOnly, a.expire},
		{"GET /v1/api-tokens", operatorOnly, a.apiTokens},
		{"POST /v1/api-tokens", operatorOnly, a.createAPIToken},
		{"POST /v1/api-tokens/{id}/revoke", operatorOnly, a.revokeAPIToken},
		{"GET /v1/broker-users", operatorOnly, a.brokerUsers},
	}
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
	// access is who may call each route, by pattern.
	access map[string]access
	// enrollRefused counts refused POST /v1/enroll requests, apiRefused
	// the requests refused for their token (401 and 403).
	enrollRefused, apiRefused atomic.Int64
	// refusals paces the log lines about refused requests (who, code, route).
	refusals logpace.Pacer
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
			httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "limit: must be a whole number from 1 to 1000")
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

// stores lists every store; a partner's token sees its own registered
// stores only.
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
		if a.o.AgentStatus != nil {
			if as, ok := a.o.AgentStatus(t.Store, t.Terminal); ok {
				as.MAC = ""
				st.AgentStatus = &as
			}
		}
		s := get(t.Store)
		s.Terminals = append(s.Terminals, st)
		s.Backlog += t.Backlog
		s.InSync = s.InSync && st.InSync
	}
	slices.Sort(ids)
	out := make([]Store, 0, len(ids))
	partner := partnerOf(r)
	for _, id := range ids {
		if s := byID[id]; partner == "" || s.Partner == partner {
			out = append(out, *s)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"stores": out})
}

// healthz answers a liveness check: the one request besides an enrollment
// that needs no token, and it says nothing else.
func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// health answers the hub's counters: numbers only, no ids, so partner
// tokens may read them too.
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"ok": true, "enrollments_refused": a.enrollRefused.Load(), "api_refused": a.apiRefused.Load()}
	if a.o.Stats != nil {
		body["ingest"] = a.o.Stats()
	}
	if a.o.MQTTDenied != nil {
		body["mqtt_denied"] = a.o.MQTTDenied()
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
