package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

const wait = 10 * time.Second

// fixture is a dashboard over a real bbolt ledger with two partners' stores
// (s1 of p1 with tills t1 and t2, s2 of p2 with t1) and one token of each
// role; what the broker and the ingest would feed it is set by the test.
type fixture struct {
	t     *testing.T
	st    *ledger.BoltStore
	clock *clock.Fake
	d     *dashboard.Dashboard
	srv   *httptest.Server

	mu        sync.Mutex
	connected []string

	operator, partner, other, readOnly string // API tokens
	revokeMe                           ledger.APIToken
}

func newFixture(t *testing.T, edit func(*dashboard.Options), tls bool) *fixture {
	t.Helper()
	st, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, clock: clock.NewFake(ledgertest.T0)}
	a1, a2, b1 := ledgertest.NewTill("s1", "t1", "p1"), ledgertest.NewTill("s1", "t2", "p1"), ledgertest.NewTill("s2", "t1", "p2")
	ledgertest.Register(t, st, a1, a2, b1)
	a2.Backlog, a2.OldestUnsynced = 3, ledgertest.T0.Add(-time.Hour)
	ledgertest.Apply(t, st, ledgertest.T0.Add(-time.Minute),
		a1.Batch(t, a1.Earn("e1", "member-1", 10), a1.Earn("e2", "member-2", 20)),
		a2.Batch(t, a2.Earn("e3", "member-1", 5)),
		b1.Batch(t, b1.Earn("x1", "member-9", 7)),
	)
	mk := func(role ledger.Role, partner string) (string, ledger.APIToken) {
		tok, secret, err := st.CreateAPIToken(ledger.APIToken{Name: string(role) + " test", Role: role, Partner: partner}, ledgertest.T0)
		if err != nil {
			t.Fatal(err)
		}
		return protocol.FormatAPIToken(tok.ID, secret), tok
	}
	f.operator, _ = mk(ledger.RoleOperator, "")
	f.partner, _ = mk(ledger.RolePartner, "p1")
	f.other, f.revokeMe = mk(ledger.RoleReadOnly, "")
	f.readOnly, _ = mk(ledger.RoleReadOnly, "")
	f.connected = []string{protocol.AgentClientID("s1", "t1"), protocol.AgentClientID("s1", "t2"), protocol.AgentClientID("s2", "t1")}
	o := dashboard.Options{
		Store: st, Clock: f.clock,
		Connected: func() []string {
			f.mu.Lock()
			defer f.mu.Unlock()
			return slices.Clone(f.connected)
		},
		Counters: func() dashboard.Counters { return dashboard.Counters{Batches: 3, Applied: 4} },
		Samples: func() []dashboard.Sample {
			return []dashboard.Sample{{At: ledgertest.T0.Add(-2 * time.Second), Tx: 2, Acks: 1, AckMeanMS: 1, AckP95MS: 2}, {At: ledgertest.T0.Add(-time.Second), Tx: 3}}
		},
		Rejections: func() []dashboard.Rejection {
			return []dashboard.Rejection{
				{At: ledgertest.T0, Store: "s2", Terminal: "t1", Tx: "x2", Kind: protocol.KindBurn, Code: protocol.CodeInsufficientPoints},
				{At: ledgertest.T0, Store: "s1", Terminal: "t1", Refused: true, Reason: "bad batch: invalid_id: member \"secret-member\""},
			}
		},
		Recent: func(store string, limit int) ([]ledger.Entry, error) { return st.RecentEntries(store, limit, 0) },
	}
	if edit != nil {
		edit(&o)
	}
	f.d = dashboard.New(o)
	if tls {
		f.srv = httptest.NewTLSServer(f.d.Handler())
	} else {
		f.srv = httptest.NewServer(f.d.Handler())
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) setConnected(ids ...string) {
	f.mu.Lock()
	f.connected = ids
	f.mu.Unlock()
	f.clock.Advance(time.Second) // past the view's cache
}

// browser is a client with a cookie jar that does not follow redirects.
func (f *fixture) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *f.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// login posts token to the login form and returns the answer.
func (f *fixture) login(c *http.Client, token, next string) *http.Response {
	f.t.Helper()
	form := url.Values{"token": {token}}
	if next != "" {
		form.Set("next", next)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/dashboard/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// signedIn returns a browser signed in with token.
func (f *fixture) signedIn(token string) *http.Client {
	f.t.Helper()
	c := f.browser()
	if r := f.login(c, token, ""); r.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("sign-in: %d", r.StatusCode)
	}
	return c
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) get(c *http.Client, path string) answer {
	f.t.Helper()
	return f.do(c, "GET", path, nil)
}

func (f *fixture) do(c *http.Client, method, path string, hdr map[string]string) answer {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	return v
}

func errCode(t *testing.T, a answer) protocol.Code {
	t.Helper()
	var b struct {
		Error struct{ Code protocol.Code } `json:"error"`
	}
	json.Unmarshal([]byte(a.body), &b)
	return b.Error.Code
}

// TestSignIn: pages redirect to the login and data endpoints answer 401
// without a session; a wrong token starts none; the right one sets a
// cookie that is HttpOnly, SameSite=Strict, scoped to the dashboard, and
// holds a random id rather than the token.
func TestSignIn(t *testing.T) {
	f := newFixture(t, nil, false)
	c := f.browser()
	for _, p := range []string{"/dashboard/", "/dashboard/stores/s1"} {
		a := f.get(c, p)
		if want := "/dashboard/login?next=" + url.QueryEscape(p); a.status != http.StatusSeeOther || a.header.Get("Location") != want {
			t.Errorf("GET %s without a session: %d to %q, want 303 to %s", p, a.status, a.header.Get("Location"), want)
		}
	}
	for _, p := range []string{"/dashboard/api/snapshot", "/dashboard/api/stores/s1", "/dashboard/api/events", "/dashboard/api/nothing"} {
		if a := f.get(c, p); a.status != http.StatusUnauthorized || errCode(t, a) != protocol.CodeUnauthorized {
			t.Errorf("GET %s without a session: %d %s, want 401 unauthorized", p, a.status, a.body)
		}
	}
	if a := f.do(c, "POST", "/dashboard/api/verify", nil); a.status != http.StatusUnauthorized {
		t.Errorf("POST verify without a session: %d", a.status)
	}
	if a := f.get(c, "/dashboard/login"); a.status != http.StatusOK || !strings.Contains(a.body, `name="token"`) {
		t.Fatalf("login page: %d", a.status)
	}

	if _, err := f.st.RevokeAPIToken(f.revokeMe.ID, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	id, _, _ := protocol.ParseAPIToken(f.operator)
	for name, tok := range map[string]string{
		"not a token":  "hello",
		"empty":        "",
		"wrong secret": protocol.FormatAPIToken(id, make([]byte, protocol.APISecretLen)),
		"unknown id":   protocol.FormatAPIToken("AAAAAAAAAAAA", make([]byte, protocol.APISecretLen)),
		"revoked":      f.other,
	} {
		r := f.login(c, tok, "")
		if r.StatusCode != http.StatusUnauthorized || len(r.Cookies()) != 0 {
			t.Errorf("%s: %d with cookies %v, want 401 and none", name, r.StatusCode, r.Cookies())
		}
	}
	if a := f.get(c, "/dashboard/api/snapshot"); a.status != http.StatusUnauthorized {
		t.Fatalf("a refused sign-in opened a session: %d", a.status)
	}

	r := f.login(c, f.operator, "/dashboard/stores/s1")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard/stores/s1" {
		t.Fatalf("sign-in: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	cs := r.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", cs)
	}
	ck := cs[0]
	_, secret, _ := protocol.ParseAPIToken(f.operator)
	if ck.Name != dashboard.CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/dashboard/" ||
		len(ck.Value) < 40 || strings.Contains(f.operator, ck.Value) || strings.Contains(ck.Value, string(secret)) {
		t.Fatalf("cookie %+v", ck)
	}
	if a := f.get(c, "/dashboard/"); a.status != http.StatusOK || !strings.Contains(a.body, "app.js") {
		t.Fatalf("the page with a session: %d", a.status)
	}
	if a := f.get(c, "/dashboard/login"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/dashboard/" {
		t.Errorf("the login page with a session: %d to %q", a.status, a.header.Get("Location"))
	}
	if a := f.get(c, "/dashboard/api/nothing"); a.status != http.StatusNotFound {
		t.Errorf("an unknown endpoint with a session: %d", a.status)
	}

	// Somewhere else to go after signing in is not followed.
	for _, next := range []string{"https://evil.example/", "//evil.example/dashboard/", "/v1/stores", "/dashboard/api/snapshot", `/dashboard/\evil`} {
		if r := f.login(f.browser(), f.operator, next); r.Header.Get("Location") != "/dashboard/" {
			t.Errorf("next %q: went to %q", next, r.Header.Get("Location"))
		}
	}
	// Another site's form cannot sign in, nor sign out or ask for work.
	form := url.Values{"token": {f.operator}}
	req, _ := http.NewRequest("POST", f.srv.URL+"/dashboard/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := f.browser().Do(req); err != nil || resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("a sign-in from another origin: %v %v", resp, err)
	}
	if a := f.do(c, "POST", "/dashboard/api/verify", map[string]string{"Origin": "https://evil.example"}); a.status != http.StatusForbidden {
		t.Errorf("verify from another origin: %d", a.status)
	}
	if a := f.do(c, "POST", "/dashboard/logout", map[string]string{"Origin": "https://evil.example"}); a.status != http.StatusForbidden {
		t.Errorf("logout from another origin: %d", a.status)
	}
	if a := f.get(c, "/dashboard/api/snapshot"); a.status != http.StatusOK {
		t.Errorf("the session after the refused logout: %d", a.status)
	}
}

// TestSecureCookieOverHTTPS: a browser that came over https gets a Secure
// cookie.
func TestSecureCookieOverHTTPS(t *testing.T) {
	f := newFixture(t, nil, true)
	r := f.login(f.browser(), f.operator, "")
	if cs := r.Cookies(); r.StatusCode != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in over https: %d, cookies %+v", r.StatusCode, cs)
	}
}

// TestSessionEnds: a session ends when unused for SessionIdle, after
// SessionMax however used, at logout, and once its token is revoked.
func TestSessionEnds(t *testing.T) {
	f := newFixture(t, func(o *dashboard.Options) {
		o.SessionIdle, o.SessionMax, o.SessionRecheck = time.Hour, 5*time.Hour, time.Minute
	}, false)
	snap := func(c *http.Client) int { return f.get(c, "/dashboard/api/snapshot").status }

	idle := f.signedIn(f.operator)
	f.clock.Advance(59 * time.Minute)
	if s := snap(idle); s != http.StatusOK {
		t.Fatalf("used 59 minutes after sign-in: %d", s)
	}
	f.clock.Advance(59 * time.Minute)
	if s := snap(idle); s != http.StatusOK {
		t.Fatalf("used 59 minutes after its last use: %d", s)
	}
	f.clock.Advance(time.Hour)
	if s := snap(idle); s != http.StatusUnauthorized {
		t.Fatalf("unused for an hour: %d, want 401", s)
	}
	if a := f.get(idle, "/dashboard/"); a.status != http.StatusSeeOther {
		t.Fatalf("the page of an ended session: %d", a.status)
	}

	busy := f.signedIn(f.operator)
	for range 4 {
		f.clock.Advance(59 * time.Minute)
		if s := snap(busy); s != http.StatusOK {
			t.Fatalf("a session in use: %d", s)
		}
	}
	f.clock.Advance(time.Hour)
	if s := snap(busy); s != http.StatusUnauthorized {
		t.Fatalf("past SessionMax: %d, want 401", s)
	}

	revoked := f.signedIn(f.other)
	if _, err := f.st.RevokeAPIToken(f.revokeMe.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if s := snap(revoked); s != http.StatusUnauthorized {
		t.Fatalf("a revoked token's session a minute later: %d, want 401", s)
	}

	out := f.signedIn(f.operator)
	req, _ := http.NewRequest("POST", f.srv.URL+"/dashboard/logout", nil)
	resp, err := out.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/login" || len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("logout: %d to %q, cookies %+v", resp.StatusCode, resp.Header.Get("Location"), cs)
	}
	if s := snap(out); s != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", s)
	}
}

// TestSnapshot: the operator's view of the stores, most urgent first: a
// till that disconnects is offline with its last sight, a backlog and an
// old unsynced transaction are flagged, rejections counted, and the
// ledger's health is there.
func TestSnapshot(t *testing.T) {
	f := newFixture(t, nil, false)
	c := f.signedIn(f.operator)
	snap := decode[dashboard.Snapshot](t, f.get(c, "/dashboard/api/snapshot"))
	if snap.Session.Role != ledger.RoleOperator || !snap.Session.CanVerify || snap.Ledger == nil || snap.Ledger.State != dashboard.LedgerNever {
		t.Fatalf("session %+v ledger %+v", snap.Session, snap.Ledger)
	}
	if len(snap.Stores) != 2 || len(snap.Samples) != 2 || len(snap.Rejections) != 2 || snap.Overview.Counters.Applied != 4 {
		t.Fatalf("snapshot %+v", snap)
	}
	s1 := snap.Stores[0]
	if s1.Store != "s1" || s1.State != dashboard.StateOnline || s1.Online != 2 || s1.Backlog != 3 || s1.InSync || s1.Level != 2 ||
		!s1.OldestUnsynced.Equal(ledgertest.T0.Add(-time.Hour)) || !s1.LastSeen.Equal(ledgertest.T0) {
		t.Fatalf("s1: %+v", s1)
	}
	if got := codes(s1.Flags); !slices.Equal(got, []string{"unsynced", "backlog", "rejections"}) {
		t.Errorf("s1's flags %v", got)
	}
	if ov := snap.Overview; ov.Stores != 2 || ov.StoresOnline != 2 || ov.Terminals != 3 || ov.TerminalsOnline != 3 || ov.Backlog != 3 || !ov.ConnectionsKnown || ov.StoresAttention != 2 {
		t.Errorf("overview %+v", ov)
	}

	if snap.Stores[1].Store != "s2" || snap.Stores[1].Level != 1 {
		t.Fatalf("s2 before its till left: %+v", snap.Stores[1])
	}
	// s2's till leaves: offline, seen last at the last look, as urgent as s1 now.
	f.setConnected(protocol.AgentClientID("s1", "t1"), protocol.AgentClientID("s1", "t2"))
	snap = decode[dashboard.Snapshot](t, f.get(c, "/dashboard/api/snapshot"))
	s2 := snap.Stores[1]
	if s2.Store != "s2" || s2.State != dashboard.StateOffline || s2.Level != 2 || !s2.LastSeen.Equal(ledgertest.T0) || codes(s2.Flags)[0] != "offline" {
		t.Fatalf("s2 after its till left: %+v", s2)
	}
	if snap.Overview.StoresOnline != 1 {
		t.Errorf("overview %+v", snap.Overview)
	}
	// One of s1's two: partly online.
	f.setConnected(protocol.AgentClientID("s1", "t1"))
	snap = decode[dashboard.Snapshot](t, f.get(c, "/dashboard/api/snapshot"))
	for _, s := range snap.Stores {
		if s.Store == "s1" && (s.State != dashboard.StatePartial || s.Online != 1 || s.Terminals != 2) {
			t.Errorf("s1 with one till left: %+v", s)
		}
	}

	// The store page: terminals, journal entries with their members,
	// rejections.
	det := decode[dashboard.StoreDetail](t, f.get(c, "/dashboard/api/stores/s1"))
	if len(det.Terminals) != 2 || det.Terminals[0].Terminal != "t2" || det.Terminals[0].State != dashboard.StateOffline ||
		len(det.Recent) != 3 || det.Recent[0].TxID != "e3" || det.Recent[0].Member != "member-1" || det.Recent[0].LagMS <= 0 ||
		len(det.Rejections) != 1 || !det.Rejections[0].Refused {
		t.Fatalf("s1's page: %+v", det)
	}
	if a := f.get(c, "/dashboard/api/stores/nope"); a.status != http.StatusNotFound {
		t.Errorf("an unknown store: %d", a.status)
	}
	if a := f.get(c, "/dashboard/api/stores/a%20b"); a.status != http.StatusBadRequest {
		t.Errorf("a bad store id: %d", a.status)
	}
}

func codes(fs []dashboard.Flag) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

// TestPartnerScoping: a partner's session sees its own stores and their
// rejections (without the refusal's detail), never a member id, not the
// ledger's health; another partner's store page is refused; read-only sees
// all and may ask for a verification, a partner may not.
func TestPartnerScoping(t *testing.T) {
	f := newFixture(t, nil, false)
	p := f.signedIn(f.partner)
	snap := decode[dashboard.Snapshot](t, f.get(p, "/dashboard/api/snapshot"))
	if len(snap.Stores) != 1 || snap.Stores[0].Store != "s1" || snap.Ledger != nil || snap.Session.CanVerify || snap.Session.Partner != "p1" {
		t.Fatalf("partner's snapshot: stores %+v ledger %+v session %+v", snap.Stores, snap.Ledger, snap.Session)
	}
	if len(snap.Rejections) != 1 || snap.Rejections[0].Store != "s1" || snap.Rejections[0].Reason != "bad batch" {
		t.Fatalf("partner's rejections %+v", snap.Rejections)
	}
	if snap.Overview.Stores != 1 || snap.Overview.Terminals != 2 {
		t.Errorf("partner's overview %+v", snap.Overview)
	}
	if a := f.get(p, "/dashboard/api/snapshot"); strings.Contains(a.body, "member-") || strings.Contains(a.body, "secret-member") {
		t.Errorf("a member id reached a partner: %s", a.body)
	}
	a := f.get(p, "/dashboard/api/stores/s1")
	det := decode[dashboard.StoreDetail](t, a)
	if len(det.Recent) != 3 || strings.Contains(a.body, "member-") {
		t.Fatalf("partner's store page: %s", a.body)
	}
	if a := f.get(p, "/dashboard/api/stores/s2"); a.status != http.StatusForbidden || errCode(t, a) != protocol.CodeForbidden {
		t.Errorf("another partner's store: %d %s", a.status, a.body)
	}
	if a := f.get(p, "/dashboard/api/events?store=s2"); a.status != http.StatusForbidden {
		t.Errorf("another partner's store's stream: %d", a.status)
	}
	if a := f.do(p, "POST", "/dashboard/api/verify", nil); a.status != http.StatusForbidden {
		t.Errorf("a partner asking for a verification: %d", a.status)
	}

	ro := f.signedIn(f.readOnly)
	snap = decode[dashboard.Snapshot](t, f.get(ro, "/dashboard/api/snapshot"))
	if len(snap.Stores) != 2 || snap.Ledger == nil || !snap.Session.CanVerify || len(snap.Rejections) != 2 {
		t.Fatalf("read-only's snapshot %+v", snap)
	}
	if a := f.do(ro, "POST", "/dashboard/api/verify", nil); a.status != http.StatusAccepted {
		t.Errorf("read-only asking for a verification: %d %s", a.status, a.body)
	}
}

// TestNoConnectionInfo: with an external broker the online state is
// unknown, unless the tills' own status says it; what they report (version,
// scanner, clock) fills in and raises flags.
func TestNoConnectionInfo(t *testing.T) {
	yes, no := true, false
	offset := 5 * time.Minute
	f := newFixture(t, func(o *dashboard.Options) {
		o.Connected = nil
		o.AgentStatus = func(store, terminal string) (dashboard.AgentStatus, bool) {
			switch store + "/" + terminal {
			case "s1/t1":
				return dashboard.AgentStatus{Online: true, Version: "1.4.0", ScannerConnected: &yes, ReportedAt: ledgertest.T0}, true
			case "s1/t2":
				return dashboard.AgentStatus{Online: true, Version: "1.5.0", ScannerConnected: &no, ClockOffset: &offset, ReportedAt: ledgertest.T0}, true
			}
			return dashboard.AgentStatus{}, false
		}
	}, false)
	f.clock.Advance(10 * time.Minute)
	c := f.signedIn(f.operator)
	snap := decode[dashboard.Snapshot](t, f.get(c, "/dashboard/api/snapshot"))
	if snap.Overview.ConnectionsKnown {
		t.Error("connections known without a broker's list")
	}
	var s1, s2 dashboard.StoreRow
	for _, s := range snap.Stores {
		switch s.Store {
		case "s1":
			s1 = s
		case "s2":
			s2 = s
		}
	}
	if s1.State != dashboard.StateOnline || !slices.Equal(s1.Versions, []string{"1.4.0", "1.5.0"}) || s1.Scanners != 2 || s1.ScannersOK != 1 {
		t.Errorf("s1 from its tills' status: %+v", s1)
	}
	if got := codes(s1.Flags); !slices.Contains(got, "scanner") || !slices.Contains(got, "clock") {
		t.Errorf("s1's flags %v", got)
	}
	if s2.State != dashboard.StateUnknown || len(s2.Versions) != 0 || s2.Scanners != 0 || !slices.Contains(codes(s2.Flags), "quiet") {
		t.Errorf("s2 with nothing reported: %+v", s2)
	}
	det := decode[dashboard.StoreDetail](t, f.get(c, "/dashboard/api/stores/s1"))
	for _, tr := range det.Terminals {
		if tr.Terminal == "t2" && (tr.Status == nil || *tr.Status.ClockOffsetMS != offset.Milliseconds() || tr.Status.Version != "1.5.0") {
			t.Errorf("t2's status %+v", tr.Status)
		}
	}
}

// TestVerifyOnDemand: a verification asked for runs on Run's goroutine and
// shows in the ledger's health; asking again at once is refused with when
// to try again.
func TestVerifyOnDemand(t *testing.T) {
	f := newFixture(t, func(o *dashboard.Options) { o.VerifyEvery = -1; o.Tick = 20 * time.Millisecond }, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	c := f.signedIn(f.operator)
	if a := f.do(c, "POST", "/dashboard/api/verify", nil); a.status != http.StatusAccepted {
		t.Fatalf("verify: %d %s", a.status, a.body)
	}
	if a := f.do(c, "POST", "/dashboard/api/verify", nil); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("verify again at once: %d %s", a.status, a.body)
	}
	testkit.WaitFor(t, wait, "the verification's result", func() bool {
		f.clock.Advance(time.Second)
		l := decode[dashboard.Snapshot](t, f.get(c, "/dashboard/api/snapshot")).Ledger
		return l.State == dashboard.LedgerOK && !l.Running && l.Entries == 4 && l.ChainIntact && l.Trigger == "asked"
	})
}

// TestVerifyStopsWithRun: a hub stopping during the start's verification
// gives it up: Run returns, and the ledger's health shows no result (not an
// error) and nothing running.
func TestVerifyStopsWithRun(t *testing.T) {
	f := newFixture(t, func(o *dashboard.Options) { o.VerifyEvery = time.Hour }, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.d.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	l := decode[dashboard.Snapshot](t, f.get(f.signedIn(f.operator), "/dashboard/api/snapshot")).Ledger
	if l.State != dashboard.LedgerNever || l.Running || l.Error != "" {
		t.Fatalf("ledger health after a stopped verification: %+v", l)
	}
}

// TestStatic: the assets are served with a policy that lets the page load
// nothing from elsewhere.
func TestStatic(t *testing.T) {
	f := newFixture(t, nil, false)
	c := f.browser()
	for _, p := range []string{"/dashboard/static/app.js", "/dashboard/static/chart.js", "/dashboard/static/format.js", "/dashboard/static/app.css", "/dashboard/static/favicon.svg"} {
		a := f.get(c, p)
		if a.status != http.StatusOK || a.body == "" {
			t.Errorf("%s: %d", p, a.status)
		}
	}
	a := f.get(c, "/dashboard/login")
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", a.header)
	}
	for _, p := range []string{"/dashboard/static/nope.js", "/dashboard/static/", "/dashboard/nothing"} {
		if a := f.get(c, p); a.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, a.status)
		}
	}
}

// TestAlerts: the alerts firing now are in the snapshot, at
// /dashboard/api/alerts and in the live stream, scoped like the stores;
// without a session the endpoint answers 401; without rules the panel
// says so.
func TestAlerts(t *testing.T) {
	firing := []dashboard.Alert{
		{Alert: "store-offline", Condition: "store_offline", Store: "s1", Partner: "p1", Severity: "critical", Value: 700, Threshold: 600, Unit: "seconds", Since: ledgertest.T0, FiredAt: ledgertest.T0, Summary: "store-offline: store s1 offline"},
		{Alert: "stuck", Condition: "oldest_unsynced", Store: "s2", Partner: "p2", Severity: "warning", Value: 4000, Threshold: 1800, Unit: "seconds", Since: ledgertest.T0, FiredAt: ledgertest.T0},
	}
	f := newFixture(t, func(o *dashboard.Options) { o.Alerts = func() []dashboard.Alert { return firing } }, false)
	if a := f.get(f.browser(), "/dashboard/api/alerts"); a.status != http.StatusUnauthorized {
		t.Errorf("alerts without a session: %d", a.status)
	}
	op := f.signedIn(f.operator)
	got := decode[dashboard.Alerts](t, f.get(op, "/dashboard/api/alerts"))
	if !got.Configured || len(got.Firing) != 2 || got.Firing[0].Store != "s1" || got.Firing[0].Severity != "critical" {
		t.Errorf("operator's alerts %+v", got)
	}
	if snap := decode[dashboard.Snapshot](t, f.get(op, "/dashboard/api/snapshot")); len(snap.Alerts.Firing) != 2 {
		t.Errorf("snapshot's alerts %+v", snap.Alerts)
	}
	p := f.signedIn(f.partner)
	got = decode[dashboard.Alerts](t, f.get(p, "/dashboard/api/alerts"))
	if !got.Configured || len(got.Firing) != 1 || got.Firing[0].Store != "s1" {
		t.Errorf("partner's alerts %+v", got)
	}
	events, _ := f.stream(p, "/dashboard/api/events")
	ev := until(t, events, "alerts")
	if !strings.Contains(ev.data, `"store":"s1"`) || strings.Contains(ev.data, `"s2"`) {
		t.Errorf("partner's alerts event: %s", ev.data)
	}

	none := newFixture(t, nil, false)
	got = decode[dashboard.Alerts](t, none.get(none.signedIn(none.operator), "/dashboard/api/alerts"))
	if got.Configured || got.Firing == nil || len(got.Firing) != 0 {
		t.Errorf("alerts without rules %+v", got)
	}
}
