package dashboard

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// Counters are the ingest's counters since the hub started (hub/ingest's
// Stats), as the health endpoint of the API shows them.
type Counters struct {
	Batches    int64 `json:"batches"`
	Applied    int64 `json:"applied"`
	Duplicates int64 `json:"duplicates"`
	Rejected   int64 `json:"rejected"`
	Held       int64 `json:"held"`
	Refused    int64 `json:"refused"`
	Dropped    int64 `json:"dropped"`
	QueueDepth int   `json:"queue_depth"`
}

// Sample is one second of the hub's ingest, for the charts.
type Sample struct {
	// At is the end of the second.
	At time.Time `json:"at"`
	// Tx is the transactions answered per second (applied, duplicate,
	// rejected or held).
	Tx float64 `json:"tx"`
	// Acks is the ack batches published in the second; the latencies are
	// meaningless when it is 0.
	Acks int64 `json:"acks"`
	// AckMeanMS and AckP95MS are the mean and 95th percentile of the wait
	// from a batch's arrival to its ack, in milliseconds.
	AckMeanMS float64 `json:"ack_mean_ms"`
	AckP95MS  float64 `json:"ack_p95_ms"`
}

// Rejection is a transaction the hub rejected lately, or a message it
// refused before the ledger (hub/ingest's Rejection).
type Rejection struct {
	At       time.Time     `json:"at"`
	Store    string        `json:"store,omitempty"`
	Terminal string        `json:"terminal,omitempty"`
	Tx       string        `json:"tx,omitempty"`
	Kind     protocol.Kind `json:"kind,omitempty"`
	Code     protocol.Code `json:"code,omitempty"`
	Refused  bool          `json:"refused,omitempty"`
	// Reason is the refusal's reason, or what Code means.
	Reason string `json:"reason,omitempty"`
}

// TerminalKey names a terminal.
type TerminalKey struct{ Store, Terminal string }

// Lag is a terminal's sync lag: how long the oldest transaction of its last
// batch waited between the till and the hub's commit (hub/ingest's Lag).
type Lag struct {
	Lag time.Duration
	At  time.Time
}

// AgentStatus is what a terminal's agent reports about itself in its
// retained status message. Every field but ReportedAt may be missing (an
// older agent, a till without a scanner); missing fields are shown as
// unknown.
type AgentStatus struct {
	// Online is false once the broker published the agent's last will.
	Online bool `json:"online"`
	// Version is the agent's version.
	Version string `json:"version,omitempty"`
	// ScannerConnected says whether the till's scanner is attached; nil
	// when the till has none configured or did not say.
	ScannerConnected *bool `json:"scanner_connected,omitempty"`
	// LastScan is the till's last scan.
	LastScan time.Time `json:"last_scan,omitzero"`
	// ClockOffset is the till's clock minus the hub's; nil when unknown.
	ClockOffset *time.Duration `json:"-"`
	// ClockOffsetMS is ClockOffset in milliseconds, for the page.
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"`
	// OfflineExposure is the points the till approved offline and has not
	// synced; nil when unknown.
	OfflineExposure *int64 `json:"offline_exposure,omitempty"`
	// ReportedAt is when the agent published the status.
	ReportedAt time.Time `json:"reported_at,omitzero"`
}

// The terminal and store states.
const (
	StateOnline  = "online"  // connected to the broker now
	StateOffline = "offline" // not connected now
	StateNever   = "never"   // registered, never connected nor sent a batch
	StateUnknown = "unknown" // the hub cannot see connections (external broker) and the till reported nothing
	StatePartial = "partial" // a store with some terminals online, some not
	StateEmpty   = "empty"   // a store without terminals
)

// Flag is one reason a terminal or store needs attention.
type Flag struct {
	// Code is offline, never, backlog, unsynced, held, rejections,
	// unregistered, scanner, clock or quiet.
	Code string `json:"code"`
	// Level is 2 for what needs an operator now, 1 for a warning, 0 for
	// information.
	Level int `json:"level"`
	// N is the flag's count (backlog, held, rejections) or, for clock,
	// the offset in milliseconds.
	N int64 `json:"n,omitempty"`
	// Since is when it started (offline: last seen; unsynced: the oldest
	// transaction's creation).
	Since time.Time `json:"since,omitzero"`
}

// TerminalRow is one terminal as the dashboard shows it.
type TerminalRow struct {
	Store      string `json:"store"`
	Terminal   string `json:"terminal"`
	Registered bool   `json:"registered"`
	// State is online, offline, never or unknown.
	State string `json:"state"`
	// Since is when the terminal connected (online) or was last seen
	// connected (offline), as far as this hub run saw it.
	Since time.Time `json:"since,omitzero"`
	// LastSeen is the last time the hub heard from the terminal: a batch,
	// or its connection.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastBatch is the commit time of its last batch.
	LastBatch time.Time `json:"last_batch,omitzero"`
	// Backlog and OldestUnsynced are what its last batch said was left
	// behind it.
	Backlog        int64     `json:"backlog"`
	OldestUnsynced time.Time `json:"oldest_unsynced,omitzero"`
	InSync         bool      `json:"in_sync"`
	HeldBack       int64     `json:"held_back,omitempty"`
	Applied        int64     `json:"applied"`
	LastSeq        uint64    `json:"last_seq"`
	// SyncLagMS is its sync lag in milliseconds; nil before its first
	// batch since the hub started.
	SyncLagMS *float64 `json:"sync_lag_ms,omitempty"`
	// Status is what the till reported about itself; nil until it does.
	Status *AgentStatus `json:"status,omitempty"`
	Flags  []Flag       `json:"flags"`
	Level  int          `json:"level"`
}

// StoreRow is one store in the stores table: its terminals summed up.
type StoreRow struct {
	Store      string `json:"store"`
	Name       string `json:"name,omitempty"`
	Partner    string `json:"partner,omitempty"`
	Registered bool   `json:"registered"`
	// State is online, partial, offline, never, unknown or empty.
	State           string    `json:"state"`
	Terminals       int       `json:"terminals"`
	Online          int       `json:"online"`
	LastSeen        time.Time `json:"last_seen,omitzero"`
	Backlog         int64     `json:"backlog"`
	OldestUnsynced  time.Time `json:"oldest_unsynced,omitzero"`
	SyncLagMS       *float64  `json:"sync_lag_ms,omitempty"`
	InSync          bool      `json:"in_sync"`
	Versions        []string  `json:"versions,omitempty"`
	Scanners        int       `json:"scanners"`         // terminals that reported a scanner state
	ScannersOK      int       `json:"scanners_ok"`      // of which connected
	RecentRejection int       `json:"recent_rejection"` // rejections in the last hour
	Flags           []Flag    `json:"flags"`
	Level           int       `json:"level"`
}

// Overview is the strip of figures at the top.
type Overview struct {
	Now             time.Time `json:"now"`
	Stores          int       `json:"stores"`
	StoresOnline    int       `json:"stores_online"`
	StoresAttention int       `json:"stores_attention"`
	Terminals       int       `json:"terminals"`
	TerminalsOnline int       `json:"terminals_online"`
	Backlog         int64     `json:"backlog"`
	// ConnectionsKnown is false when the hub cannot see connections.
	ConnectionsKnown bool      `json:"connections_known"`
	Counters         *Counters `json:"counters,omitempty"`
}

// SessionInfo says who is signed in.
type SessionInfo struct {
	TokenID string      `json:"token_id"`
	Name    string      `json:"name,omitempty"`
	Role    ledger.Role `json:"role"`
	Partner string      `json:"partner,omitempty"`
	// CanVerify: the role may ask for a ledger verification.
	CanVerify bool `json:"can_verify"`
}

// TxRow is one journal entry on a store page. Member is left out for a
// partner's session.
type TxRow struct {
	Seq       uint64    `json:"seq"`
	TxID      string    `json:"tx_id"`
	Kind      string    `json:"kind"`
	Member    string    `json:"member,omitempty"`
	Terminal  string    `json:"terminal"`
	Points    int64     `json:"points"`
	Original  string    `json:"original,omitempty"`
	At        time.Time `json:"at"`
	CreatedAt time.Time `json:"created_at"`
	// LagMS is how long after its creation (by the till's clock) the hub
	// committed it.
	LagMS float64 `json:"lag_ms"`
}

// StoreDetail is a store page.
type StoreDetail struct {
	Now        time.Time     `json:"now"`
	Store      StoreRow      `json:"store"`
	Terminals  []TerminalRow `json:"terminals"`
	Recent     []TxRow       `json:"recent"`
	Rejections []Rejection   `json:"rejections"`
}

// Alert is an alert firing now (hub/alerts' Alert): one rule for one store.
type Alert struct {
	Alert     string `json:"alert"`
	Condition string `json:"condition"`
	Store     string `json:"store"`
	Partner   string `json:"partner,omitempty"`
	// Severity is info, warning or critical.
	Severity string `json:"severity"`
	// Value and Threshold are in Unit: seconds or ratio.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"`
	// Since is when the condition was first seen to hold; FiredAt when the
	// alert fired.
	Since   time.Time `json:"since"`
	FiredAt time.Time `json:"fired_at"`
	Summary string    `json:"summary"`
}

// Alerts is the alerts panel.
type Alerts struct {
	// Configured is false when the hub has no alert rules.
	Configured bool    `json:"configured"`
	Firing     []Alert `json:"firing"`
}

// Snapshot is everything the main page shows.
type Snapshot struct {
	Alerts     Alerts        `json:"alerts"`
	Session    SessionInfo   `json:"session"`
	Overview   Overview      `json:"overview"`
	Samples    []Sample      `json:"samples"`
	Stores     []StoreRow    `json:"stores"`
	Rejections []Rejection   `json:"rejections"`
	Ledger     *LedgerHealth `json:"ledger,omitempty"`
}

// state is the unscoped view, built at most once per half Tick and shared
// by every request and stream.
type state struct {
	at         time.Time
	stores     []StoreRow // sorted: most urgent first, then by id
	terminals  map[string][]TerminalRow
	partnerOf  map[string]string // registered store → partner
	rejections []Rejection
	counters   *Counters
	samples    []Sample
	known      bool
	err        error
}

type viewCache struct {
	mu   sync.Mutex
	last *state
}

// state returns the current view, building it when the last one is older
// than half a Tick.
func (d *Dashboard) state() *state {
	now := d.o.Clock.Now()
	d.view.mu.Lock()
	defer d.view.mu.Unlock()
	if s := d.view.last; s != nil && s.err == nil && !now.Before(s.at) && now.Sub(s.at) < d.o.Tick/2 {
		return s
	}
	s := d.build(now)
	d.view.last = s
	return s
}

// presence follows the terminals' connections between views: when each
// connected, and when it was last seen connected.
type presence struct {
	mu    sync.Mutex
	known bool
	m     map[TerminalKey]*seen
}

type seen struct {
	connected bool
	since     time.Time // connected since, while connected
	last      time.Time // last seen connected
}

func newPresence() *presence { return &presence{m: make(map[TerminalKey]*seen)} }

// maxPresence bounds the terminals followed (made-up client ids included).
const maxPresence = 50_000

func (p *presence) update(connected func() []string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known = connected != nil
	if connected == nil {
		return
	}
	now = now.UTC()
	on := map[TerminalKey]bool{}
	for _, id := range connected() {
		if s, t, ok := protocol.ParseAgentClientID(id); ok {
			on[TerminalKey{s, t}] = true
		}
	}
	for k, s := range p.m {
		if s.connected && !on[k] {
			s.connected = false
		}
	}
	for k := range on {
		s := p.m[k]
		if s == nil {
			if len(p.m) >= maxPresence {
				continue
			}
			s = &seen{}
			p.m[k] = s
		}
		if !s.connected {
			s.connected, s.since = true, now
		}
		s.last = now
	}
}

func (p *presence) copy() (map[TerminalKey]seen, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[TerminalKey]seen, len(p.m))
	for k, s := range p.m {
		out[k] = *s
	}
	return out, p.known
}

// build reads the ledger, the broker and the ingest into a view.
func (d *Dashboard) build(now time.Time) *state {
	s := &state{at: now, terminals: map[string][]TerminalRow{}, partnerOf: map[string]string{}}
	reg, err := d.o.Store.Stores()
	if err != nil {
		s.err = err
		return s
	}
	ts, err := d.o.Store.Terminals()
	if err != nil {
		s.err = err
		return s
	}
	d.presence.update(d.o.Connected, now)
	pres, known := d.presence.copy()
	s.known = known
	var lags map[TerminalKey]Lag
	if d.o.SyncLags != nil {
		lags = d.o.SyncLags()
	}
	if d.o.Rejections != nil {
		s.rejections = d.o.Rejections()
		for i := range s.rejections {
			if r := &s.rejections[i]; r.Reason == "" {
				r.Reason = codeReasons[r.Code]
			}
		}
	}
	if d.o.Counters != nil {
		c := d.o.Counters()
		s.counters = &c
	}
	if d.o.Samples != nil {
		s.samples = d.o.Samples()
	}

	rows := map[string]*StoreRow{}
	get := func(id string) *StoreRow {
		r := rows[id]
		if r == nil {
			r = &StoreRow{Store: id, InSync: true}
			rows[id] = r
		}
		return r
	}
	for _, info := range reg {
		r := get(info.ID)
		r.Name, r.Partner, r.Registered = info.Name, info.Partner, true
		s.partnerOf[info.ID] = info.Partner
	}
	listed := map[TerminalKey]bool{}
	for _, t := range ts {
		listed[TerminalKey{t.Store, t.Terminal}] = true
	}
	// A till connected now that has sent nothing yet is shown too.
	for k, p := range pres {
		if p.connected && !listed[k] {
			ts = append(ts, ledger.Terminal{Store: k.Store, Terminal: k.Terminal})
		}
	}
	for _, t := range ts {
		k := TerminalKey{t.Store, t.Terminal}
		p, hasP := pres[k]
		row := d.terminalRow(t, p, hasP, known, lags, now)
		s.terminals[t.Store] = append(s.terminals[t.Store], row)
		get(t.Store)
	}
	hourAgo := now.Add(-time.Hour)
	rejected := map[string]int{}
	for _, r := range s.rejections {
		if r.Store != "" && !r.At.Before(hourAgo) {
			rejected[r.Store]++
		}
	}
	for id, r := range rows {
		tr := s.terminals[id]
		slices.SortFunc(tr, func(a, b TerminalRow) int {
			return cmp.Or(b.Level-a.Level, strings.Compare(a.Terminal, b.Terminal))
		})
		summarize(r, tr, rejected[id])
		s.stores = append(s.stores, *r)
	}
	slices.SortFunc(s.stores, func(a, b StoreRow) int {
		return cmp.Or(b.Level-a.Level, strings.Compare(a.Store, b.Store))
	})
	return s
}

// terminalRow is what the dashboard shows of one terminal.
func (d *Dashboard) terminalRow(t ledger.Terminal, p seen, hasP, known bool, lags map[TerminalKey]Lag, now time.Time) TerminalRow {
	row := TerminalRow{
		Store: t.Store, Terminal: t.Terminal, Registered: t.Registered,
		LastBatch: t.LastSeen, LastSeen: t.LastSeen,
		Backlog: t.Backlog, OldestUnsynced: t.OldestUnsynced, InSync: t.Backlog == 0,
		HeldBack: t.HeldBack, Applied: t.Applied, LastSeq: t.LastSeq, Flags: []Flag{},
	}
	if lag, ok := lags[TerminalKey{t.Store, t.Terminal}]; ok {
		ms := float64(lag.Lag) / float64(time.Millisecond)
		row.SyncLagMS = &ms
	}
	var st *AgentStatus
	if d.o.AgentStatus != nil {
		if s, ok := d.o.AgentStatus(t.Store, t.Terminal); ok {
			if s.ClockOffset != nil && s.ClockOffsetMS == nil {
				ms := s.ClockOffset.Milliseconds()
				s.ClockOffsetMS = &ms
			}
			st = &s
			row.Status = st
		}
	}
	if hasP && p.last.After(row.LastSeen) {
		row.LastSeen = p.last
	}
	switch {
	case known && p.connected:
		row.State, row.Since = StateOnline, p.since
	case known && row.LastSeen.IsZero():
		row.State = StateNever
	case known:
		row.State = StateOffline
		if hasP {
			row.Since = p.last
		}
	case st != nil && st.Online:
		row.State = StateOnline
		if st.ReportedAt.After(row.LastSeen) {
			row.LastSeen = st.ReportedAt
		}
	case st != nil:
		row.State = StateOffline
	case row.LastSeen.IsZero():
		row.State = StateNever
	default:
		row.State = StateUnknown
	}
	flag := func(f Flag) {
		row.Flags = append(row.Flags, f)
		row.Level = max(row.Level, f.Level)
	}
	switch row.State {
	case StateOffline:
		flag(Flag{Code: "offline", Level: 2, Since: row.LastSeen})
	case StateNever:
		flag(Flag{Code: "never", Level: 1})
	case StateUnknown:
		if now.Sub(row.LastSeen) > d.o.StaleAfter {
			flag(Flag{Code: "quiet", Level: 0, Since: row.LastSeen})
		}
	}
	if !t.OldestUnsynced.IsZero() && now.Sub(t.OldestUnsynced) > d.o.UnsyncedAfter {
		flag(Flag{Code: "unsynced", Level: 2, Since: t.OldestUnsynced})
	}
	if t.Backlog > 0 {
		flag(Flag{Code: "backlog", Level: 1, N: t.Backlog})
	}
	if t.HeldBack > 0 {
		flag(Flag{Code: "held", Level: 1, N: t.HeldBack})
	}
	if st != nil && st.ScannerConnected != nil && !*st.ScannerConnected {
		flag(Flag{Code: "scanner", Level: 1})
	}
	if st != nil && st.ClockOffsetMS != nil && abs(*st.ClockOffsetMS) > clockOffsetWarnMS {
		flag(Flag{Code: "clock", Level: 1, N: *st.ClockOffsetMS})
	}
	return row
}

// clockOffsetWarnMS: a till's clock off by more than this needs setting
// (offline earns are priced and dated by it).
const clockOffsetWarnMS = 2 * 60 * 1000

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// summarize fills a store's row from its terminals' rows.
func summarize(r *StoreRow, ts []TerminalRow, rejections int) {
	r.Terminals = len(ts)
	r.Flags = []Flag{}
	counts := map[string]int{}
	versions := map[string]bool{}
	flags := map[string]*Flag{}
	for _, t := range ts {
		counts[t.State]++
		if t.LastSeen.After(r.LastSeen) {
			r.LastSeen = t.LastSeen
		}
		r.Backlog += t.Backlog
		r.InSync = r.InSync && t.InSync
		if !t.OldestUnsynced.IsZero() && (r.OldestUnsynced.IsZero() || t.OldestUnsynced.Before(r.OldestUnsynced)) {
			r.OldestUnsynced = t.OldestUnsynced
		}
		if t.SyncLagMS != nil && (r.SyncLagMS == nil || *t.SyncLagMS > *r.SyncLagMS) {
			v := *t.SyncLagMS
			r.SyncLagMS = &v
		}
		if st := t.Status; st != nil {
			if st.Version != "" {
				versions[st.Version] = true
			}
			if st.ScannerConnected != nil {
				r.Scanners++
				if *st.ScannerConnected {
					r.ScannersOK++
				}
			}
		}
		// A store's flag sums its terminals' of the same code: the
		// earliest since, the largest clock offset, counts added up.
		for _, f := range t.Flags {
			g := flags[f.Code]
			if g == nil {
				g = &Flag{Code: f.Code, Level: f.Level, Since: f.Since}
				flags[f.Code] = g
			}
			if f.Code == "clock" {
				if abs(f.N) > abs(g.N) {
					g.N = f.N
				}
			} else {
				g.N += f.N
			}
			if !f.Since.IsZero() && (g.Since.IsZero() || f.Since.Before(g.Since)) {
				g.Since = f.Since
			}
		}
	}
	for _, code := range flagOrder {
		if g := flags[code]; g != nil {
			r.Flags = append(r.Flags, *g)
		}
	}
	r.Online = counts[StateOnline]
	switch {
	case len(ts) == 0:
		r.State = StateEmpty
	case r.Online == len(ts):
		r.State = StateOnline
	case r.Online > 0:
		r.State = StatePartial
	case counts[StateUnknown] > 0:
		r.State = StateUnknown
	case counts[StateOffline] > 0:
		r.State = StateOffline
	default:
		r.State = StateNever
	}
	if rejections > 0 {
		r.RecentRejection = rejections
		r.Flags = append(r.Flags, Flag{Code: "rejections", Level: 1, N: int64(rejections)})
	}
	if !r.Registered {
		r.Flags = append(r.Flags, Flag{Code: "unregistered", Level: 1})
	}
	for _, f := range r.Flags {
		r.Level = max(r.Level, f.Level)
	}
	for v := range versions {
		r.Versions = append(r.Versions, v)
	}
	slices.Sort(r.Versions)
}

// flagOrder is the order a store's flags are shown in: the worst first.
var flagOrder = []string{"offline", "unsynced", "backlog", "held", "never", "scanner", "clock", "quiet"}

// scoped returns the stores, rejections and overview a session may see.
func (s *state) scoped(ss *session) ([]StoreRow, []Rejection, Overview) {
	p := ss.partner()
	ov := Overview{Now: s.at, ConnectionsKnown: s.known, Counters: s.counters}
	stores := s.stores
	rejections := s.rejections
	if p != "" {
		stores = nil
		for _, r := range s.stores {
			if r.Registered && r.Partner == p {
				stores = append(stores, r)
			}
		}
		rejections = nil
		for _, r := range s.rejections {
			if r.Store != "" && s.partnerOf[r.Store] == p {
				// The refusal's detail may quote the message (a member
				// id); a partner sees what was wrong, not the values.
				r.Reason, _, _ = strings.Cut(r.Reason, ": ")
				rejections = append(rejections, r)
			}
		}
	}
	for _, r := range stores {
		ov.Stores++
		if r.State == StateOnline {
			ov.StoresOnline++
		}
		if r.Level >= 1 {
			ov.StoresAttention++
		}
		ov.Terminals += r.Terminals
		ov.TerminalsOnline += r.Online
		ov.Backlog += r.Backlog
	}
	if stores == nil {
		stores = []StoreRow{}
	}
	if rejections == nil {
		rejections = []Rejection{}
	}
	return stores, rejections, ov
}

// codeReasons say what a rejection's code means, for the rejections list.
var codeReasons = map[protocol.Code]string{
	protocol.CodeInsufficientPoints: "the member's available points do not cover the burn",
	protocol.CodeUnknownMember:      "no such member at the hub",
	protocol.CodeUnknownOriginal:    "the return or void names a sale the hub never received (within the return wait)",
	protocol.CodeOriginalMismatch:   "the return names a transaction of another member, kind or partner",
	protocol.CodeOverReversed:       "the returns would take back more than the sale earned",
	protocol.CodeVoided:             "the till voided this burn before it arrived",
	protocol.CodeStoreMismatch:      "the transaction names another store or terminal than its sender",
	protocol.CodePartnerMismatch:    "the store posted as another partner than the one it trades as",
	protocol.CodeCurrencyMismatch:   "the amount is in another currency than the coalition's",
	protocol.CodeExceedsHold:        "the capture takes more points than its hold reserved",
	protocol.CodeHoldSettled:        "the hold was already captured or voided",
	protocol.CodeInvalidAmount:      "the amount is out of range",
	protocol.CodeInvalidPoints:      "the points are out of range",
	protocol.CodeInvalidCurrency:    "the currency is not an ISO 4217 code",
	protocol.CodeInvalidSeq:         "the terminal sequence number is missing",
	protocol.CodeInvalidTime:        "the creation time is missing or absurd",
	protocol.CodeInvalidKind:        "an unknown kind of transaction",
	protocol.CodeInvalidID:          "an id breaks the id rules",
	protocol.CodeInvalidLines:       "the line items are malformed or do not add up to the amount",
	protocol.CodeMissingField:       "a required field is empty",
	protocol.CodeMalformed:          "the transaction is malformed",
	protocol.CodeUnsupported:        "a protocol version the hub does not speak",
}

// View returns the stores and their terminals as the dashboard shows them
// now, to every session (not scoped to a partner): the hub's alert rules
// read them. The rows are shared: callers must not change them.
func (d *Dashboard) View() ([]StoreRow, map[string][]TerminalRow, error) {
	s := d.state()
	return s.stores, s.terminals, s.err
}
