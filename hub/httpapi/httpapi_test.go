package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

func openLedger(t *testing.T) *ledger.BoltStore {
	t.Helper()
	st, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// operatorTokens holds each test server's operator token by its URL: the
// request helpers (do, get, send, doBody) send it unless the request has
// an Authorization header of its own.
var operatorTokens sync.Map

// serve runs the API with o on a test server until the test ends, and
// returns its URL. Requests made with the helpers carry an operator token
// made in o.Store for it.
func serve(t *testing.T, o httpapi.Options) string {
	t.Helper()
	tok := newToken(t, o.Store, ledger.RoleOperator, "")
	srv := httptest.NewServer(httpapi.Handler(o))
	t.Cleanup(srv.Close)
	operatorTokens.Store(srv.URL, tok)
	return srv.URL
}

// newToken makes an API token with role (and partner) in st and returns
// it as a client sends it.
func newToken(t *testing.T, st ledger.Store, role ledger.Role, partner string) string {
	t.Helper()
	tok, secret, err := st.CreateAPIToken(ledger.APIToken{Role: role, Partner: partner, Name: "test " + string(role)}, ledgertest.T0)
	if err != nil {
		t.Fatalf("CreateAPIToken %s %s: %v", role, partner, err)
	}
	return protocol.FormatAPIToken(tok.ID, secret)
}

// authorize adds the test server's operator token to req, unless it has
// an Authorization header already.
func authorize(req *http.Request) {
	if req.Header.Get("Authorization") != "" {
		return
	}
	if tok, ok := operatorTokens.Load(req.URL.Scheme + "://" + req.URL.Host); ok {
		req.Header.Set("Authorization", "Bearer "+tok.(string))
	}
}

// testSeed is the coalition the fixtures trade in: EUR at 0.01 a point,
// partners p1 (store s1, tills t1 and t2) and p2 (store s2, till t1), both
// earning 1 point per EUR 1.00 rounded down — so ledgertest's earns of
// 100×points+1 cents are worth exactly their points.
func testSeed() *ledger.Seed {
	rules := func() *protocol.RuleSet { return &protocol.RuleSet{Currency: "EUR", Points: 1, Per: 100} }
	return &ledger.Seed{
		Coalition: ledger.Coalition{Name: "Test", Currency: "EUR", PointValue: "0.01", ExpiryMonths: 24},
		Partners: []ledger.SeedPartner{
			{ID: "p1", Name: "Partner One", Rules: rules(), Stores: []ledger.SeedStore{{ID: "s1", Name: "Store One", Terminals: []string{"t1", "t2"}}}},
			{ID: "p2", Rules: rules(), Stores: []ledger.SeedStore{{ID: "s2", Terminals: []string{"t1"}}}},
		},
	}
}

// register loads testSeed, as of two hours before ledgertest.T0 (before
// any of its transactions).
func register(t *testing.T, st ledger.Store) {
	t.Helper()
	if _, err := st.LoadSeed(testSeed(), ledgertest.T0.Add(-2*time.Hour)); err != nil {
		t.Fatalf("LoadSeed: %v", err)
	}
}

// fixture is the API over a real ledger with a few stores' transactions:
//
//	s1/t1 at T0 and T0+10s, nothing queued: m1 ends with 65, m2 with 10
//	s1/t2 at T0-10min with 3 queued behind its batch: m3 has 7
//	s2/t1 at T0, nothing queued: m2 gets 1 more (11)
//
// The hub clock reads T0+30s.
type fixture struct {
	store *ledger.BoltStore
	clock *clock.Fake
	url   string
}

const staleAfter = 5 * time.Minute

func newFixture(t *testing.T, o httpapi.Options) *fixture {
	t.Helper()
	st := openLedger(t)
	register(t, st)
	t0 := ledgertest.T0
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Apply(t, st, t0, a.Batch(t, a.Earn("e1", "m1", 100), a.Burn("b1", "m1", 30), a.Earn("e2", "m2", 10)))
	ledgertest.Apply(t, st, t0.Add(10*time.Second), a.Batch(t, a.Reverse("r1", "m1", 5, "e1"), a.Burn("b2", "m2", 500)))
	b := ledgertest.NewTill("s1", "t2", "p1")
	b.Backlog, b.OldestUnsynced = 3, t0.Add(-20*time.Minute)
	ledgertest.Apply(t, st, t0.Add(-10*time.Minute), b.Batch(t, b.Earn("e3", "m3", 7)))
	c := ledgertest.NewTill("s2", "t1", "p2")
	ledgertest.Apply(t, st, t0, c.Batch(t, c.Earn("e4", "m2", 1)))

	f := &fixture{store: st, clock: clock.NewFake(t0.Add(30 * time.Second))}
	o.Store, o.Clock = st, f.clock
	if o.StaleAfter == 0 {
		o.StaleAfter = staleAfter
	}
	f.url = serve(t, o)
	return f
}

type response struct {
	status int
	ctype  string
	body   []byte
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header.Get("Content-Type"), body}
}

func get(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url)
}

// decodeOK checks a 200 JSON answer and decodes it strictly into v.
func decodeOK(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	if r.ctype != "application/json" {
		t.Errorf("content type %q, want application/json", r.ctype)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// checkError checks an error answer: the status, and a body that is one
// line of exactly {"error":{"code":…,"message":…}} with a non-empty message.
func checkError(t *testing.T, r response, status int, code protocol.Code) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if r.ctype != "application/json" {
		t.Errorf("content type %q, want application/json", r.ctype)
	}
	if !bytes.HasSuffix(r.body, []byte("\n")) || bytes.Count(r.body, []byte("\n")) != 1 {
		t.Errorf("error body is not one line: %q", r.body)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &outer); err != nil || len(outer) != 1 || outer["error"] == nil {
		t.Fatalf("error body %s: want exactly {\"error\":…} (%v)", r.body, err)
	}
	var inner map[string]string
	if err := json.Unmarshal(outer["error"], &inner); err != nil || len(inner) != 2 {
		t.Fatalf("error object %s: want exactly code and message (%v)", outer["error"], err)
	}
	if inner["code"] != string(code) {
		t.Errorf("code %q, want %q (%s)", inner["code"], code, r.body)
	}
	if inner["message"] == "" {
		t.Errorf("empty message: %s", r.body)
	}
}

func TestBalance(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	tests := []struct {
		member string
		want   httpapi.MemberBalance
	}{
		{"m1", httpapi.MemberBalance{Member: "m1", Known: true, Points: 65}},
		{"m2", httpapi.MemberBalance{Member: "m2", Known: true, Points: 11}},
		{"m3", httpapi.MemberBalance{Member: "m3", Known: true, Points: 7}},
		{"nobody", httpapi.MemberBalance{Member: "nobody", Known: false, Points: 0}},
		{"M1", httpapi.MemberBalance{Member: "M1", Known: false, Points: 0}}, // ids are case-sensitive
	}
	for _, tt := range tests {
		t.Run(tt.member, func(t *testing.T) {
			var got httpapi.MemberBalance
			decodeOK(t, get(t, f.url+"/v1/members/"+tt.member+"/balance"), &got)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatement(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	tests := []struct {
		name, query string
		member      string
		points      int64
		txs         []string
	}{
		{"newest first", "", "m1", 65, []string{"r1", "b1", "e1"}},
		{"limit 1", "?limit=1", "m1", 65, []string{"r1"}},
		{"limit 2", "?limit=2", "m1", 65, []string{"r1", "b1"}},
		{"limit above entries", "?limit=1000", "m1", 65, []string{"r1", "b1", "e1"}},
		{"another member across stores", "", "m2", 11, []string{"e4", "e2"}}, // b2 was rejected: no entry
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got httpapi.Statement
			decodeOK(t, get(t, f.url+"/v1/members/"+tt.member+"/statement"+tt.query), &got)
			if got.Member != tt.member || got.Points != tt.points {
				t.Errorf("statement of %s with %d points, want %s with %d", got.Member, got.Points, tt.member, tt.points)
			}
			var txs []string
			for _, e := range got.Entries {
				txs = append(txs, e.TxID)
			}
			if !reflect.DeepEqual(txs, tt.txs) {
				t.Fatalf("entries %v, want %v", txs, tt.txs)
			}
			// The entries are the ledger's own, not a summary of them.
			want, err := f.store.Statement(tt.member, len(tt.txs))
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !want[i].At.Equal(got.Entries[i].At) || !want[i].CreatedAt.Equal(got.Entries[i].CreatedAt) {
					t.Fatalf("entry %d times differ: %+v vs %+v", i, got.Entries[i], want[i])
				}
				got.Entries[i].At, got.Entries[i].CreatedAt = want[i].At, want[i].CreatedAt
			}
			if !reflect.DeepEqual(got.Entries, want) {
				t.Fatalf("entries\n got %+v\nwant %+v", got.Entries, want)
			}
		})
	}
	t.Run("default limit is 50", func(t *testing.T) {
		st := openLedger(t)
		register(t, st)
		tl := ledgertest.NewTill("s1", "t1", "p1")
		var txs []protocol.Transaction
		for i := range 60 {
			txs = append(txs, tl.Earn(fmt.Sprintf("e%02d", i), "m1", 1))
		}
		ledgertest.Apply(t, st, ledgertest.T0, tl.Batch(t, txs...))
		url := serve(t, httpapi.Options{Store: st})
		var got httpapi.Statement
		decodeOK(t, get(t, url+"/v1/members/m1/statement"), &got)
		if len(got.Entries) != 50 || got.Points != 60 || got.Entries[0].TxID != txs[59].ID {
			t.Fatalf("%d entries, points %d, newest %s: want 50, 60, %s", len(got.Entries), got.Points, got.Entries[0].TxID, txs[59].ID)
		}
	})
}

func TestErrors(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	long := strings.Repeat("m", protocol.MaxIDLen+1)
	tests := []struct {
		name, method, path string
		status             int
		code               protocol.Code
	}{
		{"limit zero", "GET", "/v1/members/m1/statement?limit=0", 400, "bad_request"},
		{"limit negative", "GET", "/v1/members/m1/statement?limit=-1", 400, "bad_request"},
		{"limit too large", "GET", "/v1/members/m1/statement?limit=1001", 400, "bad_request"},
		{"limit not a number", "GET", "/v1/members/m1/statement?limit=ten", 400, "bad_request"},
		{"limit fraction", "GET", "/v1/members/m1/statement?limit=1.5", 400, "bad_request"},
		{"member checked before limit", "GET", "/v1/members/a+b/statement?limit=0", 400, protocol.CodeInvalidID},
		{"unknown member statement", "GET", "/v1/members/nobody/statement", 404, protocol.CodeUnknownMember},
		{"unknown member with a limit", "GET", "/v1/members/nobody/statement?limit=5", 404, protocol.CodeUnknownMember},
		{"invalid member: plus", "GET", "/v1/members/a+b/balance", 400, protocol.CodeInvalidID},
		{"invalid member: escaped slash", "GET", "/v1/members/a%2Fb/balance", 400, protocol.CodeInvalidID},
		{"invalid member: space", "GET", "/v1/members/a%20b/balance", 400, protocol.CodeInvalidID},
		{"invalid member: hash", "GET", "/v1/members/a%23b/statement", 400, protocol.CodeInvalidID},
		{"invalid member: non-ASCII", "GET", "/v1/members/m%C3%BC/balance", 400, protocol.CodeInvalidID},
		{"invalid member: too long", "GET", "/v1/members/" + long + "/balance", 400, protocol.CodeInvalidID},
		{"invalid member: too long statement", "GET", "/v1/members/" + long + "/statement", 400, protocol.CodeInvalidID},
		{"unknown path", "GET", "/v1/nope", 404, "not_found"},
		{"root", "GET", "/", 404, "not_found"},
		{"unversioned", "GET", "/members", 404, "not_found"},
		{"unknown member resource", "GET", "/v1/members/m1/history", 404, "not_found"},
		{"too deep", "GET", "/v1/members/m1/balance/x", 404, "not_found"},
		{"v2", "GET", "/v2/health", 404, "not_found"},
		{"POST to a GET endpoint", "POST", "/v1/health", 405, "method_not_allowed"},
		{"DELETE a member", "DELETE", "/v1/members/m1/balance", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, do(t, tt.method, f.url+tt.path), tt.status, tt.code)
		})
	}
}

// A ledger that fails answers 500 internal without its error text.
func TestInternalError(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/members/m1/balance", "/v1/members/m1/statement", "/v1/members", "/v1/stores"} {
		t.Run(path, func(t *testing.T) {
			r := get(t, f.url+path)
			checkError(t, r, http.StatusInternalServerError, protocol.CodeInternal)
			if bytes.Contains(r.body, []byte("ledger")) || bytes.Contains(r.body, []byte("database")) {
				t.Errorf("internal error text reached the client: %s", r.body)
			}
		})
	}
}

func TestStores(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	t0 := ledgertest.T0
	type terminal struct {
		store, terminal string
		inSync, quiet   bool
		seconds         float64
		backlog         int64
		lastSeen        time.Time
	}
	type store struct {
		store   string
		inSync  bool
		backlog int64
		terms   []terminal
	}
	check := func(t *testing.T, want []store) {
		t.Helper()
		var got struct {
			Stores []httpapi.Store `json:"stores"`
		}
		decodeOK(t, get(t, f.url+"/v1/stores"), &got)
		if len(got.Stores) != len(want) {
			t.Fatalf("%d stores, want %d: %+v", len(got.Stores), len(want), got.Stores)
		}
		for i, w := range want {
			g := got.Stores[i]
			if g.Store != w.store || g.InSync != w.inSync || g.Backlog != w.backlog || len(g.Terminals) != len(w.terms) {
				t.Fatalf("store %d: %+v, want %+v", i, g, w)
			}
			for j, wt := range w.terms {
				gt := g.Terminals[j]
				if gt.Store != wt.store || gt.Terminal.Terminal != wt.terminal || gt.InSync != wt.inSync || gt.Quiet != wt.quiet ||
					gt.LastSeenSeconds != wt.seconds || gt.Backlog != wt.backlog || !gt.LastSeen.Equal(wt.lastSeen) {
					t.Errorf("store %s terminal %d: %+v, want %+v", w.store, j, gt, wt)
				}
			}
		}
	}

	t.Run("now", func(t *testing.T) {
		check(t, []store{
			{"s1", false, 3, []terminal{
				{"s1", "t1", true, false, 20, 0, t0.Add(10 * time.Second)},
				{"s1", "t2", false, true, 630, 3, t0.Add(-10 * time.Minute)},
			}},
			{"s2", true, 0, []terminal{
				{"s2", "t1", true, false, 30, 0, t0},
			}},
		})
	})
	t.Run("exactly StaleAfter is not yet quiet", func(t *testing.T) {
		f.clock.Set(t0.Add(staleAfter))
		check(t, []store{
			{"s1", false, 3, []terminal{
				{"s1", "t1", true, false, staleAfter.Seconds() - 10, 0, t0.Add(10 * time.Second)},
				{"s1", "t2", false, true, staleAfter.Seconds() + 600, 3, t0.Add(-10 * time.Minute)},
			}},
			{"s2", true, 0, []terminal{
				{"s2", "t1", true, false, staleAfter.Seconds(), 0, t0},
			}},
		})
	})
	t.Run("a moment later s2 is quiet", func(t *testing.T) {
		f.clock.Set(t0.Add(staleAfter + time.Second))
		check(t, []store{
			{"s1", false, 3, []terminal{
				{"s1", "t1", true, false, staleAfter.Seconds() - 9, 0, t0.Add(10 * time.Second)},
				{"s1", "t2", false, true, staleAfter.Seconds() + 601, 3, t0.Add(-10 * time.Minute)},
			}},
			{"s2", true, 0, []terminal{
				{"s2", "t1", true, true, staleAfter.Seconds() + 1, 0, t0},
			}},
		})
	})
	t.Run("a till whose batch is newer than the hub clock", func(t *testing.T) {
		// Hub clock stepped back: last seen is never negative.
		f.clock.Set(t0.Add(-time.Hour))
		var got struct {
			Stores []httpapi.Store `json:"stores"`
		}
		decodeOK(t, get(t, f.url+"/v1/stores"), &got)
		for _, s := range got.Stores {
			for _, tm := range s.Terminals {
				if tm.LastSeenSeconds < 0 {
					t.Errorf("%s/%s last seen %v seconds ago", tm.Store, tm.Terminal.Terminal, tm.LastSeenSeconds)
				}
			}
		}
	})
	t.Run("a terminal catching up brings its store in sync", func(t *testing.T) {
		f.clock.Set(t0.Add(30 * time.Second))
		b := ledgertest.NewTill("s1", "t2", "p1")
		b.Seq = 1
		ledgertest.Apply(t, f.store, t0.Add(25*time.Second), b.Batch(t, b.Earn("e5", "m3", 1)))
		check(t, []store{
			{"s1", true, 0, []terminal{
				{"s1", "t1", true, false, 20, 0, t0.Add(10 * time.Second)},
				{"s1", "t2", true, false, 5, 0, t0.Add(25 * time.Second)},
			}},
			{"s2", true, 0, []terminal{
				{"s2", "t1", true, false, 30, 0, t0},
			}},
		})
	})
}

func TestStoresDefaultStaleAfter(t *testing.T) {
	st := openLedger(t)
	tl := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Apply(t, st, ledgertest.T0, tl.Batch(t, tl.Earn("e1", "m1", 1)))
	c := clock.NewFake(ledgertest.T0.Add(2 * time.Minute))
	url := serve(t, httpapi.Options{Store: st, Clock: c})
	quiet := func() bool {
		var got struct {
			Stores []httpapi.Store `json:"stores"`
		}
		decodeOK(t, get(t, url+"/v1/stores"), &got)
		if len(got.Stores) != 1 || len(got.Stores[0].Terminals) != 1 {
			t.Fatalf("stores %+v", got.Stores)
		}
		return got.Stores[0].Terminals[0].Quiet
	}
	if quiet() {
		t.Fatal("quiet after exactly 2 minutes; the default StaleAfter is 2 minutes")
	}
	c.Advance(time.Millisecond)
	if !quiet() {
		t.Fatal("not quiet after more than 2 minutes")
	}
}

func TestEmptyLedger(t *testing.T) {
	url := serve(t, httpapi.Options{Store: openLedger(t)})
	// Empty lists are [] and {}, never null: dashboards iterate them.
	for path, want := range map[string]string{
		"/v1/stores":  `{"stores":[]}`,
		"/v1/members": `{"members":{}}`,
		"/v1/health":  `{"api_refused":0,"enrollments_refused":0,"ok":true}`,
	} {
		r := get(t, url+path)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
			t.Errorf("%s: %d %s, want %s", path, r.status, r.body, want)
		}
	}
	var b httpapi.MemberBalance
	decodeOK(t, get(t, url+"/v1/members/m1/balance"), &b)
	if b != (httpapi.MemberBalance{Member: "m1"}) {
		t.Fatalf("balance in an empty ledger: %+v", b)
	}
	checkError(t, get(t, url+"/v1/members/m1/statement"), 404, protocol.CodeUnknownMember)
}

func TestMembers(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	var got struct {
		Members map[string]int64 `json:"members"`
	}
	decodeOK(t, get(t, f.url+"/v1/members"), &got)
	want := map[string]int64{"m1": 65, "m2": 11, "m3": 7}
	if !reflect.DeepEqual(got.Members, want) {
		t.Fatalf("members %v, want %v", got.Members, want)
	}
}

func TestHealth(t *testing.T) {
	t.Run("without stats", func(t *testing.T) {
		f := newFixture(t, httpapi.Options{})
		var got map[string]any
		decodeOK(t, get(t, f.url+"/v1/health"), &got)
		if !reflect.DeepEqual(got, map[string]any{"ok": true, "enrollments_refused": 0.0, "api_refused": 0.0}) {
			t.Fatalf("health %v", got)
		}
	})
	t.Run("with stats", func(t *testing.T) {
		type stats struct {
			Applied int64 `json:"applied"`
			Refused int64 `json:"refused"`
		}
		n := int64(0)
		f := newFixture(t, httpapi.Options{Stats: func() any { n++; return stats{Applied: n, Refused: 2} }})
		for want := int64(1); want <= 2; want++ {
			var got struct {
				OK         bool  `json:"ok"`
				Ingest     stats `json:"ingest"`
				Refused    int64 `json:"enrollments_refused"`
				APIRefused int64 `json:"api_refused"`
			}
			decodeOK(t, get(t, f.url+"/v1/health"), &got)
			if !got.OK || got.Ingest != (stats{Applied: want, Refused: 2}) {
				t.Fatalf("health %+v: want live stats on every call", got)
			}
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		f := newFixture(t, httpapi.Options{})
		if r := do(t, http.MethodHead, f.url+"/v1/health"); r.status != 200 {
			t.Fatalf("HEAD /v1/health: %d", r.status)
		}
	})
}

func TestServeStopsOnCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := openLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, l, httpapi.Options{Store: st}) }()
	url := "http://" + l.Addr().String()
	testkit.WaitFor(t, 10*time.Second, "the API to answer", func() bool {
		res, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after its context was cancelled, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("still listening after Serve returned")
	}
}
