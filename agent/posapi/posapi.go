// Package posapi is the agent's local HTTP API for the point-of-sale
// software: earn, burn, reverse, a member's balance, the scans coming from
// the barcode scanner (member cards, and member QR tokens with the reason
// when one is refused), and the agent's health.
//
// It owns the HTTP surface only — request decoding with size limits, the
// Idempotency-Key header, error bodies with stable codes, status mapping —
// and calls a Service (the agent) for everything else. It listens on
// loopback by default: the POS runs on the same machine.
//
// The API is described by openapi.yaml (embedded as Spec and served at GET
// /v1/openapi.yaml); a test holds it to the routes and the request and
// answer types. Scans reach the POS by long poll (GET /v1/scans?wait=) or as
// server-sent events (GET /v1/scans/stream, resumable with Last-Event-ID).
//
// Every error body is {"error":{"code":"…","message":"…"}} with a code from
// protocol's stable set (plus the few HTTP-level ones below). A burn the hub
// declines is not an error: it is a 200 answer with status "declined" and
// the reason in code.
package posapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// HTTP-level codes, besides protocol's.
const (
	CodeBadRequest                        = httpx.CodeBadRequest       // body is not the expected JSON, a bad header or query parameter
	CodeNotFound                          = httpx.CodeNotFound         // no such endpoint
	CodeMethodNotAllowed                  = httpx.CodeMethodNotAllowed // wrong HTTP method
	CodeIdempotencyConflict protocol.Code = "idempotency_conflict"     // key reused with another request
	CodeInProgress          protocol.Code = "in_progress"              // the first request with this key is still running
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 16 << 10

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 128

// EarnRequest asks for points on a purchase.
type EarnRequest struct {
	Member   string `json:"member"`             // member id from the card or QR code
	Amount   int64  `json:"amount"`             // purchase amount in minor units
	Currency string `json:"currency,omitempty"` // ISO 4217; default: the coalition's, once the hub has sent its config
	Receipt  string `json:"receipt,omitempty"`  // the POS's sale reference
	// Lines are the purchase's line items ({sku, category, amount}), for the
	// partner's category and SKU multipliers. Optional; when present their
	// amounts must add up to Amount.
	Lines []protocol.Line `json:"lines,omitempty"`
}

// BurnRequest asks to redeem points.
type BurnRequest struct {
	Member   string `json:"member"`
	Points   int64  `json:"points"`
	Amount   int64  `json:"amount,omitempty"`   // what the points pay for, minor units (optional)
	Currency string `json:"currency,omitempty"` // required with Amount; the coalition's
	Receipt  string `json:"receipt,omitempty"`
}

// ReverseRequest gives back (part of) an earlier earn or burn.
type ReverseRequest struct {
	Original string `json:"original"`           // tx_id of the earn or burn
	Member   string `json:"member,omitempty"`   // needed only when the original was made at another till
	Points   int64  `json:"points,omitempty"`   // default: all that is left of the original
	Amount   int64  `json:"amount,omitempty"`   // returned amount, minor units (optional)
	Currency string `json:"currency,omitempty"` // required with Amount; the coalition's
	Receipt  string `json:"receipt,omitempty"`
}

// Result answers earn, burn and reverse.
type Result struct {
	// Status is "accepted" (earn, reverse: committed at the till, syncing to
	// the hub), "approved" (burn: the hub applied it) or "declined" (burn: see Code).
	Status string `json:"status"`
	// Code is why a burn was declined: insufficient_points, unknown_member, offline, timeout, …
	Code protocol.Code `json:"code,omitempty"`
	// TxID is the transaction's id; quote it to reverse it.
	TxID   string `json:"tx_id,omitempty"`
	Kind   string `json:"kind"`
	Member string `json:"member"`
	Points int64  `json:"points"`
	// Balance is the member's balance at the hub after a burn, when known.
	// For a burn approved offline it is the till's estimate: the last
	// balance from the hub less this till's offline burns for the member.
	Balance *int64 `json:"balance,omitempty"`
	// Offline is set on a burn approved while the hub was unreachable,
	// within the till's offline policy; the hub books it when the till syncs.
	Offline bool `json:"offline,omitempty"`
	// CreatedAt is the till's time of acceptance.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Quote says how an earn was priced, when the hub's earn rules priced
	// it: its fields (rules_version, base, bonus, campaigns) appear at the
	// top level of the answer. Absent when the till priced with its local
	// --earn-rate (no rules from the hub yet), and for burns and reverses.
	*Quote
}

// Quote is how the partner's earn rules priced an earn: Points = Base + Bonus.
type Quote struct {
	// RulesVersion is the version of the partner's rules that priced it.
	RulesVersion int64 `json:"rules_version"`
	// Base is the rate applied to the purchase (its lines' multipliers and
	// the highest campaign multiplier included), rounded once.
	Base int64 `json:"base"`
	// Bonus is the fixed bonus points of the campaigns in force.
	Bonus int64 `json:"bonus"`
	// Campaigns are the ids of the campaigns that applied.
	Campaigns []string `json:"campaigns,omitempty"`
}

// Balance answers a balance query.
type Balance struct {
	Member string `json:"member"`
	// Known is false when neither the hub nor this till's cache has seen the member.
	Known bool `json:"known"`
	// Points is the balance at the hub ("hub") or as the hub last reported it ("cache").
	Points int64 `json:"points"`
	// Source is "hub" for a live answer, "cache" while offline.
	Source string    `json:"source"`
	AsOf   time.Time `json:"as_of,omitzero"`
	// UnsyncedEarned and UnsyncedBurned are points in this till's outbox, not yet in Points.
	UnsyncedEarned int64 `json:"unsynced_earned"`
	UnsyncedBurned int64 `json:"unsynced_burned"`
}

// Health is the agent's state for the POS and for installers.
type Health struct {
	Store        string `json:"store"`
	Terminal     string `json:"terminal"`
	Version      string `json:"version"`
	HubConnected bool   `json:"hub_connected"`
	// HubError says why the till is not connected to the hub: the last
	// connection attempt's error, with what to do when it is one retrying
	// cannot cure (e.g. "certificate signed by unknown authority": the
	// till does not trust the hub's CA). Empty while connected.
	HubError string `json:"hub_error,omitempty"`
	// Backlog is the number of transactions accepted and not yet acked by the hub.
	Backlog int64 `json:"backlog"`
	// OldestUnsyncedSeconds is the age of the oldest of them (0 when none).
	OldestUnsyncedSeconds float64   `json:"oldest_unsynced_seconds"`
	OldestUnsynced        time.Time `json:"oldest_unsynced,omitzero"`
	Scanner               Scanner   `json:"scanner"`
	// HubRejections counts transactions this till accepted that the hub
	// rejected since the agent started (e.g. a return of a sale the hub does
	// not know). Each is logged at ERROR; an operator must look at them.
	HubRejections    int64         `json:"hub_rejections"`
	LastHubRejection *HubRejection `json:"last_hub_rejection,omitempty"`
	// HubHeld counts the "held" answers received since the agent started:
	// the hub recorded nothing (e.g. unknown_store: the store is not
	// registered yet), so the transaction stays in the outbox and is sent
	// again. A steady rise means the hub is not taking this till's work.
	HubHeld     int64    `json:"hub_held"`
	LastHubHeld *HubHeld `json:"last_hub_held,omitempty"`
	// MACRefused counts the acks and balance replies this enrolled till
	// ignored since the agent started because they were not sealed with
	// its MAC key: forged (someone publishing on its topics at the broker)
	// or from a hub that does not know the key. Each is logged at WARN (at
	// most once a minute); any at all wants an operator's look.
	MACRefused int64 `json:"mac_refused"`
	// ConfigRefused counts the store configs this enrolled till ignored
	// since the agent started because they were not signed by a coalition
	// key it trusts: forged (someone publishing on its store's config
	// topic at the broker) or from a hub that does not sign configs. Each
	// is logged at WARN (at most once a minute); the till keeps pricing
	// with the config it has. Any at all wants an operator's look.
	ConfigRefused int64 `json:"config_refused"`
	// RulesVersion is the version of the partner's earn rules in force now,
	// from the config the hub pushed; 0 when the till has none and prices
	// earns with its --earn-rate.
	RulesVersion int64 `json:"rules_version"`
	// ConfigPublishedAt is when the hub published the config the till holds.
	ConfigPublishedAt time.Time `json:"config_published_at,omitzero"`
	// MemberTokenKeys is how many of the coalition's member token keys the
	// till verifies member QR tokens with (from the hub's config, or from
	// its enrollment); 0: member QR tokens are refused token_unverifiable
	// until the hub's config arrives.
	MemberTokenKeys int `json:"member_token_keys"`
	// Offline is the till's offline burn exposure: burns approved while the
	// hub was unreachable and not yet acked by it.
	Offline OfflineExposure `json:"offline"`
	// ClockOffsetMS is the till's clock minus the hub's, in milliseconds,
	// estimated from the last balance query's round trip; absent before
	// the first. The till reports it to the hub in its status too.
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"`
}

// OfflineExposure is what this till has approved offline that the hub has
// not booked yet, against its offline policy.
type OfflineExposure struct {
	// Enabled is false when the policy approves no offline burn.
	Enabled bool `json:"enabled"`
	// Points is the sum of the queued offline burns; Cap is this till's
	// share of the store's offline exposure cap.
	Points int64 `json:"points"`
	Cap    int64 `json:"cap"`
	// Burns is how many offline burns are queued; the oldest was approved at
	// Oldest, OldestSeconds ago.
	Burns         int       `json:"burns"`
	Oldest        time.Time `json:"oldest,omitzero"`
	OldestSeconds float64   `json:"oldest_seconds"`
	// Alert is set when an offline burn has been queued longer than the
	// policy's alert_after: the till has not reached the hub for too long.
	Alert string `json:"alert,omitempty"`
}

// HubHeld is the latest transaction the hub answered "held".
type HubHeld struct {
	TxID string        `json:"tx_id"`
	Code protocol.Code `json:"code"`
	At   time.Time     `json:"at"`
}

// HubRejection is a transaction accepted at the till and rejected by the hub.
type HubRejection struct {
	TxID string        `json:"tx_id"`
	Kind string        `json:"kind"`
	Code protocol.Code `json:"code"`
	At   time.Time     `json:"at"`
}

// Scanner is the barcode scanner's state.
type Scanner struct {
	// Port is the serial port in use (or last used); USB the VID:PID[:SERIAL]
	// the scanner is chosen by, when it is. Both empty: no scanner configured.
	Port string `json:"port,omitempty"`
	USB  string `json:"usb,omitempty"`
	// Connected reports whether the port is open; Since is when that last changed.
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"`
	LastScan  time.Time `json:"last_scan,omitzero"`
	// LastError is the last failure to find, open or read the port, kept
	// after it is back so an installer can see why it dropped.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Reconnects counts the times the scanner came back after it was lost.
	Reconnects int `json:"reconnects"`
	// Scans counts the scans read; Refused those that were not a member id
	// (a product barcode, a payment card, a bad check digit).
	Scans   uint64 `json:"scans"`
	Refused uint64 `json:"refused"`
}

// The sources of a scan.
const (
	// SourceCard: a member card (or any code carrying the member id as is).
	SourceCard = "card"
	// SourceToken: a member token, the signed rotating QR code of the
	// member app, verified by the till.
	SourceToken = "token"
)

// ScanEvent is one member card or QR code read by the scanner. A member
// token the till refused is an event too, with Error set and no Member,
// so the POS can tell the cashier why ("QR code expired, ask the member to
// refresh it"); a code that is neither a member id nor a token (a product
// barcode) is not offered at all.
type ScanEvent struct {
	// Seq numbers the scans since the agent started: 1, 2, 3…
	Seq uint64 `json:"seq"`
	// Member is the member id read; empty when Error is set.
	Member string `json:"member"`
	// Source is "card" or "token".
	Source string `json:"source"`
	// Symbology is the scanner's AIM symbology identifier (C0: Code 128,
	// Q1: QR code…), when it sends one.
	Symbology string `json:"symbology,omitempty"`
	// ExpiresAt is, for a token, when it expires (by the hub's clock).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Error says why a token was refused: token_expired, token_forged,
	// token_replayed, token_malformed, token_lifetime, token_unverifiable.
	Error *ScanError `json:"error,omitempty"`
	// At is when the scanner read the code, by the till's clock.
	At time.Time `json:"at"`
}

// ScanError is why a scan was refused.
type ScanError struct {
	// Code is the stable reason, for the POS to act on.
	Code protocol.Code `json:"code"`
	// Message says what to do, for the cashier to read out.
	Message string `json:"message"`
}

// Service is what the API needs of the agent. idemKey is the request's
// Idempotency-Key ("" when absent) and hash identifies its body.
type Service interface {
	Earn(ctx context.Context, idemKey, hash string, r EarnRequest) (Result, error)
	Burn(ctx context.Context, idemKey, hash string, r BurnRequest) (Result, error)
	Reverse(ctx context.Context, idemKey, hash string, r ReverseRequest) (Result, error)
	Balance(ctx context.Context, member string) (Balance, error)
	Health(ctx context.Context) Health
	// Scans returns the scans after seq, waiting up to wait for one to arrive.
	Scans(ctx context.Context, after uint64, wait time.Duration) []ScanEvent
}

// Options configures the API beyond its Service.
type Options struct {
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Secret, when set, is required of every request but GET
	// /v1/openapi.yaml, as "Authorization: Bearer <secret>"; a request
	// without it, or with another, is answered 401 unauthorized. Use it
	// when processes other than the POS run on the till.
	Secret string
	// Metrics, when set, serves GET /metrics (the agent's Prometheus
	// metrics), behind Secret like the rest.
	Metrics http.Handler
	// Requests, when set, counts the requests by route and status.
	Requests *Requests
}

// MinSecretLen is the shortest shared secret Options.Secret may be.
const MinSecretLen = 16

// CodeUnauthorized answers a request without the shared secret.
const CodeUnauthorized protocol.Code = "unauthorized"

// Handler returns the API's http.Handler.
func Handler(svc Service, o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	routes := (&api{svc: svc, log: log}).routes()
	httpx.Routes(mux, routes)
	serve := httpx.Canonical(mux)
	if o.Secret == "" {
		return o.instrument(mux, routes, serve) // metrics.go
	}
	want := sha256.Sum256([]byte("Bearer " + o.Secret))
	var refused atomic.Int64
	return o.instrument(mux, routes, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 && r.URL.Path != "/v1/openapi.yaml" {
			// Never the header itself: it may be a mistyped secret.
			if n := refused.Add(1); n == 1 || n%100 == 0 {
				log.Warn("pos api request without the shared secret refused", "path", r.URL.Path, "remote", r.RemoteAddr, "refused", n)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tillsync-agent"`)
			httpx.WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "send the POS API's shared secret as Authorization: Bearer <secret>")
			return
		}
		serve.ServeHTTP(w, r)
	}))
}

// routes are the API's endpoints; openapi.yaml describes exactly these.
func (a *api) routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"POST /v1/earn":                    a.earn,
		"POST /v1/burn":                    a.burn,
		"POST /v1/reverse":                 a.reverse,
		"GET /v1/members/{member}/balance": a.balance,
		"GET /v1/scans":                    a.scans,
		"GET /v1/scans/stream":             a.scanStream,
		"GET /v1/health":                   a.health,
		"GET /v1/openapi.yaml":             serveSpec,
	}
}

// Serve runs the API on l until ctx is done. A request still running then
// (a burn waiting for the hub) sees its context cancelled and answers; Serve
// returns after every handler has, so the agent may close its outbox.
func Serve(ctx context.Context, l net.Listener, svc Service, o Options) error {
	if err := httpx.Serve(ctx, l, Handler(svc, o)); err != nil {
		return fmt.Errorf("posapi: %w", err)
	}
	return nil
}

type api struct {
	svc Service
	log *slog.Logger
}

func (a *api) earn(w http.ResponseWriter, r *http.Request) {
	var req EarnRequest
	key, hash, ok := a.decode(w, r, &req)
	if !ok {
		return
	}
	res, err := a.svc.Earn(r.Context(), key, hash, req)
	a.answer(w, r, res, err)
}

func (a *api) burn(w http.ResponseWriter, r *http.Request) {
	var req BurnRequest
	key, hash, ok := a.decode(w, r, &req)
	if !ok {
		return
	}
	res, err := a.svc.Burn(r.Context(), key, hash, req)
	a.answer(w, r, res, err)
}

func (a *api) reverse(w http.ResponseWriter, r *http.Request) {
	var req ReverseRequest
	key, hash, ok := a.decode(w, r, &req)
	if !ok {
		return
	}
	res, err := a.svc.Reverse(r.Context(), key, hash, req)
	a.answer(w, r, res, err)
}

func (a *api) balance(w http.ResponseWriter, r *http.Request) {
	m := r.PathValue("member")
	if !protocol.ValidID(m) {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidID, "member: must be 1-64 characters of A-Z a-z 0-9 . _ -")
		return
	}
	b, err := a.svc.Balance(r.Context(), m)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

func (a *api) scans(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, ok := cursor(w, q.Get("after"))
	if !ok {
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > time.Minute {
			httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "wait: must be a duration from 0s to 60s, e.g. 10s")
			return
		}
		wait = d
	}
	// A wait longer than the server's read timeout must not end the request.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	ev := a.svc.Scans(r.Context(), after, wait)
	if ev == nil {
		ev = []ScanEvent{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"scans": ev})
}

// StreamKeepalive is how often the scan stream sends a comment line while
// no scan arrives, so proxies and the POS can tell a quiet stream from a
// dead one.
const StreamKeepalive = 15 * time.Second

// scanStream sends scans as server-sent events: "event: scan", the scan's
// sequence number as the event id and the ScanEvent as data. A POS that
// reconnects with Last-Event-ID (or ?after=) gets what it missed that the
// agent still keeps.
func (a *api) scanStream(w http.ResponseWriter, r *http.Request) {
	after, ok := cursor(w, r.URL.Query().Get("after"))
	if !ok {
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if after, ok = cursor(w, id); !ok {
			return
		}
	}
	rc := http.NewResponseController(w)
	// The server's read timeout would otherwise end the stream.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		a.log.Debug("scan stream: clear read deadline", "err", err)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	for {
		if err := rc.Flush(); err != nil {
			return
		}
		ev := a.svc.Scans(r.Context(), after, StreamKeepalive)
		if r.Context().Err() != nil {
			return
		}
		if len(ev) == 0 {
			fmt.Fprint(w, ": keepalive\n\n")
			continue
		}
		for _, e := range ev {
			data, err := json.Marshal(e)
			if err != nil {
				return
			}
			fmt.Fprintf(w, "id: %d\nevent: scan\ndata: %s\n\n", e.Seq, data)
			after = e.Seq
		}
	}
}

// cursor reads a scan sequence number ("" is 0), answering 400 when it is not one.
func cursor(w http.ResponseWriter, s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "after: must be a whole number")
		return 0, false
	}
	return v, true
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, a.svc.Health(r.Context()))
}

// decode reads a JSON body of at most MaxBodyBytes into v, refusing unknown
// fields, and returns the Idempotency-Key and a hash of the body.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) (key, hash string, ok bool) {
	key = r.Header.Get("Idempotency-Key")
	if len(key) > MaxIdempotencyKeyLen || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("Idempotency-Key: at most %d printable ASCII characters", MaxIdempotencyKeyLen))
		return "", "", false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, CodeBadRequest, "Content-Type must be application/json")
		return "", "", false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "could not read the request body")
		return "", "", false
	}
	if len(body) > MaxBodyBytes {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
		return "", "", false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, jsonProblem(err))
		return "", "", false
	}
	// dec.More reports false before a stray '}' or ']': look at the bytes.
	if rest := strings.TrimLeft(string(body[dec.InputOffset():]), " \t\r\n"); rest != "" {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "trailing data after the JSON body")
		return "", "", false
	}
	return key, bodyHash(r.URL.Path, body), true
}

func (a *api) answer(w http.ResponseWriter, r *http.Request, res Result, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

// fail maps a Service error to a status and a one-line body. Internal
// details are logged, not sent.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := protocol.CodeOf(err)
	status := http.StatusBadRequest
	switch code {
	case protocol.CodeInternal:
		a.log.Error("pos api request failed", "path", r.URL.Path, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, code, "internal error; see the agent log")
		return
	case CodeIdempotencyConflict, CodeInProgress:
		status = http.StatusConflict
	case protocol.CodeUnknownOriginal:
		status = http.StatusNotFound
	case protocol.CodeOffline, protocol.CodeTimeout:
		status = http.StatusServiceUnavailable
	}
	msg := err.Error()
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg = strings.TrimPrefix(pe.Error(), string(pe.Code)+": ")
	}
	httpx.WriteError(w, status, code, msg)
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		if te.Field != "" {
			return "wrong type for field " + te.Field
		}
		return "the body must be a JSON object"
	case errors.Is(err, io.EOF):
		return "empty body; send a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "invalid JSON"
}
