// Package dashboard is the hub's web dashboard for operators and partner
// brands, served at /dashboard/ beside the HTTP API: which stores are in
// sync, which are not, and why.
//
// It shows every store with its online state (from the embedded broker's
// client list), last seen, backlog, the age of its oldest unsynced
// transaction, sync lag, and — once the tills report them — agent version
// and scanner state, with the stores that need attention on top; a page per
// store with its terminals and its latest journal entries; charts of the
// ingest rate and ack latency over the last minutes; the transactions the
// hub rejected lately, with their reasons; and the ledger's health (the last
// verification, periodic or asked for). A server-sent-events stream keeps
// the page current without reloading it. With alert rules, the alerts
// firing now are listed above the stores (and at /dashboard/api/alerts).
//
// # Who sees what
//
// Signing in takes an API token of the hub (any role), pasted once into the
// login page. The hub checks it like the API does and answers with a
// cookie holding a random session id — HttpOnly, SameSite=Strict, Secure
// over https, never the token — that names a session kept in memory here:
// it ends after Options.SessionIdle without a request, after
// Options.SessionMax in any case, at logout, when the token is revoked
// (checked every SessionRecheck) and when the hub restarts. The
// session's token decides what it sees, by the API's rules: operator and
// read-only tokens see everything; a partner token sees its own partner's
// stores and their rejections, never a member id (the store page leaves
// them out) and not the ledger's health, which names members. Pages without
// a session redirect to the login page; data endpoints answer 401
// unauthorized.
//
// # Assets
//
// Plain HTML, CSS and JavaScript modules embedded in the binary (assets/):
// no build step, nothing loaded from elsewhere, a Content-Security-Policy
// that allows only the hub itself. Charts are hand-drawn SVG.
//
// The package reads the hub through Options — functions the hub wires to
// its broker, ingest and ledger — so that it imports neither; see hub's
// dashboard.go.
package dashboard

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/logpace"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/dashboard/"

// Options configures the dashboard. Store is required; every function may be
// nil, and what it would feed is then shown as unknown (never made up).
type Options struct {
	// Store authenticates the tokens signing in and lists the stores and
	// terminals; its Verify is the ledger health's check.
	Store ledger.Store
	// Connected returns the MQTT client ids connected now. Nil when the
	// hub cannot tell (an external broker): online states are then unknown
	// unless the tills report their status.
	Connected func() []string
	// Counters returns the ingest's counters.
	Counters func() Counters
	// Samples returns the per-second samples of the last minutes, oldest
	// first: the charts.
	Samples func() []Sample
	// Rejections returns the recent rejections and refusals, newest first.
	Rejections func() []Rejection
	// SyncLags returns each terminal's lag as of its last batch.
	SyncLags func() map[TerminalKey]Lag
	// AgentStatus returns what a terminal's agent last reported about
	// itself (its retained status message); ok is false when it reported
	// nothing yet.
	AgentStatus func(store, terminal string) (s AgentStatus, ok bool)
	// Recent returns up to limit journal entries of a store, newest first.
	Recent func(store string, limit int) ([]ledger.Entry, error)
	// Alerts returns the alerts firing now (hub/alerts); nil when the hub
	// has no alert rules.
	Alerts func() []Alert

	// VerifyEvery is how often the ledger is verified (once right after
	// Run starts, then at this interval); default 15 minutes, negative for
	// only when asked on the dashboard.
	VerifyEvery time.Duration
	// VerifyGap is how soon after the last verification another may be
	// asked for; default 30 seconds. A verification replays the whole
	// journal, so nobody may keep the hub doing it.
	VerifyGap time.Duration
	// SessionIdle ends a session unused this long; default 12 hours (an
	// open dashboard uses its session every Tick).
	SessionIdle time.Duration
	// SessionMax ends a session this long after sign-in whatever its use;
	// default 7 days.
	SessionMax time.Duration
	// SessionRecheck is how often a session's token is looked up again, so
	// that revoking it ends the session; default 15 seconds.
	SessionRecheck time.Duration
	// MaxSessions bounds the sessions kept; past it, signing in ends the
	// least recently used one. Default 1000.
	MaxSessions int
	// StaleAfter: a terminal not heard from for this long, with no
	// connection information, is shown as quiet; default 2 minutes.
	StaleAfter time.Duration
	// UnsyncedAfter: a terminal whose oldest unsynced transaction is older
	// than this needs attention; default 15 minutes.
	UnsyncedAfter time.Duration
	// Tick is how often the live stream sends what changed; default 1s.
	Tick time.Duration

	Logger *slog.Logger
	Clock  clock.Clock
}

// Dashboard serves the dashboard. Make it with New; Run does its periodic
// work (ledger verification, the terminals' presence).
type Dashboard struct {
	o        Options
	log      *slog.Logger
	static   http.Handler
	sessions *sessions
	verifier *verifier
	view     *viewCache
	presence *presence
	refusals logpace.Pacer
	streams  chan struct{} // one token per live stream allowed
}

// Defaults.
const (
	DefaultVerifyEvery    = 15 * time.Minute
	DefaultVerifyGap      = 30 * time.Second
	DefaultSessionIdle    = 12 * time.Hour
	DefaultSessionMax     = 7 * 24 * time.Hour
	DefaultSessionRecheck = 15 * time.Second
	DefaultMaxSessions    = 1000
	DefaultStaleAfter     = 2 * time.Minute
	DefaultUnsyncedAfter  = 15 * time.Minute
	// MaxStreams bounds the live streams served at once.
	MaxStreams = 256
	// RecentLimit is how many journal entries the store page shows.
	RecentLimit = 50
)

// New returns a dashboard; Options.Store is required.
func New(o Options) *Dashboard {
	if o.Store == nil {
		panic("dashboard: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.VerifyEvery, DefaultVerifyEvery)
	def(&o.VerifyGap, DefaultVerifyGap)
	def(&o.SessionIdle, DefaultSessionIdle)
	def(&o.SessionMax, DefaultSessionMax)
	def(&o.SessionRecheck, DefaultSessionRecheck)
	def(&o.StaleAfter, DefaultStaleAfter)
	def(&o.UnsyncedAfter, DefaultUnsyncedAfter)
	def(&o.Tick, time.Second)
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	d := &Dashboard{
		o: o, log: o.Logger,
		static:   http.StripPrefix(Prefix+"static/", http.FileServerFS(static)),
		sessions: newSessions(o),
		verifier: newVerifier(o),
		view:     &viewCache{},
		presence: newPresence(),
		streams:  make(chan struct{}, MaxStreams),
	}
	return d
}

// Run verifies the ledger at start and every VerifyEvery (and when asked
// on the dashboard), and follows the terminals' connections, until ctx is
// done. A verification running when ctx is done is given up within
// milliseconds; Run returns once none runs any more.
func (d *Dashboard) Run(ctx context.Context) error {
	tick := time.NewTicker(d.o.Tick)
	defer tick.Stop()
	var every <-chan time.Time
	if d.o.VerifyEvery > 0 {
		t := time.NewTicker(d.o.VerifyEvery)
		defer t.Stop()
		every = t.C
		d.verifier.run(ctx, d.log, "start")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			d.presence.update(d.o.Connected, d.o.Clock.Now())
			d.sessions.sweep(d.o.Clock.Now())
		case <-every:
			d.verifier.run(ctx, d.log, "scheduled")
		case <-d.verifier.asked:
			d.verifier.run(ctx, d.log, "asked")
		}
	}
}

// Handler serves everything under Prefix.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", d.page)
	mux.HandleFunc("GET "+Prefix+"stores/{store}", d.page)
	mux.HandleFunc("GET "+Prefix+"login", d.loginPage)
	mux.HandleFunc("POST "+Prefix+"login", d.login)
	mux.HandleFunc("POST "+Prefix+"logout", d.logout)
	mux.HandleFunc("GET "+Prefix+"static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no listings
			http.NotFound(w, r)
			return
		}
		d.static.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET "+Prefix+"api/snapshot", d.api(d.snapshot))
	mux.HandleFunc("GET "+Prefix+"api/stores/{store}", d.api(d.storeDetail))
	mux.HandleFunc("GET "+Prefix+"api/events", d.api(d.events))
	mux.HandleFunc("GET "+Prefix+"api/alerts", d.api(d.alertsAPI))
	mux.HandleFunc("POST "+Prefix+"api/verify", d.api(d.verify))
	mux.HandleFunc(Prefix+"api/", d.api(func(w http.ResponseWriter, r *http.Request, _ *session) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.EscapedPath())
	}))
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Not found. The dashboard is at "+Prefix, http.StatusNotFound)
	})
	return securityHeaders(mux)
}

// securityHeaders lets the pages load nothing but the hub's own assets and
// keeps them out of frames and caches.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin") // not no-referrer: browsers then send "Origin: null" with a form
		if strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			hd.Set("Cache-Control", "no-cache") // revalidate: a new hub may bring new assets
		} else {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}
