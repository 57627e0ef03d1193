package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// roleAPI is the fixture's API (stores s1 of p1 and s2 of p2, members m1
// to m3) with a token of every kind, counting OnChange and OnCredentials
// calls and logging at DEBUG.
type roleAPI struct {
	*fixture
	logs                 *testkit.Buffer
	changes, credentials atomic.Int64
	// tokens by principal; "none" sends no Authorization header.
	tokens map[string]string
	// spare is a read-only token's id, for the revoke route to revoke.
	spare string
}

// The principals of the role table, in the order each route is tried:
// the refused ones first, so that nothing they might change is hidden by
// an allowed request.
var principals = []string{"none", "malformed", "unknown", "revoked", "partner-other", "partner", "read-only", "operator"}

func newRoleAPI(t *testing.T) *roleAPI {
	t.Helper()
	a := &roleAPI{logs: new(testkit.Buffer)}
	a.fixture = newFixture(t, httpapi.Options{
		MemberTokenKey: hubTokenKey,
		OnChange:       func() { a.changes.Add(1) },
		OnCredentials:  func(string, string) { a.credentials.Add(1) },
		Logger:         slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	st := a.store
	op, _ := operatorTokens.Load(a.url)
	revoked := newToken(t, st, ledger.RoleOperator, "")
	rid, _, _ := protocol.ParseAPIToken(revoked)
	if _, err := st.RevokeAPIToken(rid, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	oid, _, _ := protocol.ParseAPIToken(op.(string))
	a.tokens = map[string]string{
		"none":          "",
		"malformed":     "TSA1.not-a-token",
		"unknown":       protocol.FormatAPIToken(oid, bytes.Repeat([]byte{9}, protocol.APISecretLen)),
		"revoked":       revoked,
		"partner-other": newToken(t, st, ledger.RolePartner, "p2"),
		"partner":       newToken(t, st, ledger.RolePartner, "p1"),
		"read-only":     newToken(t, st, ledger.RoleReadOnly, ""),
		"operator":      op.(string),
	}
	spare, _, err := st.CreateAPIToken(ledger.APIToken{Role: ledger.RoleReadOnly, Name: "spare"}, ledgertest.T0)
	if err != nil {
		t.Fatal(err)
	}
	a.spare = spare.ID
	// A pending enrollment for the revoke route.
	if _, err := st.IssueEnrollmentToken("s1", "t2", 0, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	return a
}

// as sends a request with who's token (none for "none").
func (a *roleAPI) as(t *testing.T, who, method, path, body string) response {
	t.Helper()
	tok, ok := a.tokens[who]
	if !ok {
		t.Fatalf("no principal %q", who)
	}
	return sendAs(t, tok, method, a.url+path, body)
}

// sendAs sends a request with token as its bearer token (none when empty).
func sendAs(t *testing.T, token, method, url, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header.Get("Content-Type"), b}
}

// snapshot is everything the API could change, as one string.
func (a *roleAPI) snapshot(t *testing.T) string {
	t.Helper()
	st := a.store
	var parts []any
	add := func(v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v)
	}
	add(st.Coalition())
	add(st.Partners())
	add(st.Stores())
	add(st.Terminals())
	ps, err := st.Partners()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		add(st.Rules(p.ID))
	}
	add(st.Enrollments())
	add(st.Periods())
	add(st.MemberBalances())
	add(st.Transactions())
	add(st.TokenFlags())
	add(st.Verify())
	toks, err := st.APITokens()
	for i := range toks {
		toks[i].LastUsed = time.Time{} // a use is not a change
	}
	add(toks, err)
	js, err := json.Marshal(parts)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// routeCase is one route of the role table: a request that succeeds with
// status ok when its caller may make it.
type routeCase struct {
	pattern, method, path, body string
	ok                          int
	// who may call it: "open" (no token needed), "everyone" (partner tokens
	// too), "readers" (operator and read-only) or "operator".
	who string
	// otherPartner: the path names p1, so p2's token is refused.
	otherPartner bool
}

func routeCases(spare string) []routeCase {
	return []routeCase{
		{"GET /healthz", "GET", "/healthz", "", 200, "open", false},
		{"POST /v1/enroll", "POST", "/v1/enroll", "{}", 400, "open", false},

		{"GET /v1/health", "GET", "/v1/health", "", 200, "everyone", false},
		{"GET /v1/coalition", "GET", "/v1/coalition", "", 200, "everyone", false},
		{"GET /v1/member-token-key", "GET", "/v1/member-token-key", "", 200, "everyone", false},
		{"GET /v1/partners", "GET", "/v1/partners", "", 200, "everyone", false},
		{"GET /v1/partners/{partner}/rules", "GET", "/v1/partners/p1/rules", "", 200, "everyone", true},
		{"GET /v1/stores", "GET", "/v1/stores", "", 200, "everyone", false},
		{"GET /v1/enrollments", "GET", "/v1/enrollments", "", 200, "everyone", false},
		{"GET /v1/settlement", "GET", "/v1/settlement?from=2026-11-01&to=2026-12-01", "", 200, "everyone", false},
		{"GET /v1/periods", "GET", "/v1/periods", "", 200, "everyone", false},

		{"GET /v1/members", "GET", "/v1/members", "", 200, "readers", false},
		{"GET /v1/members/{member}", "GET", "/v1/members/m1", "", 200, "readers", false},
		{"GET /v1/members/{member}/balance", "GET", "/v1/members/m1/balance", "", 200, "readers", false},
		{"GET /v1/members/{member}/statement", "GET", "/v1/members/m1/statement", "", 200, "readers", false},
		{"GET /v1/flags", "GET", "/v1/flags", "", 200, "readers", false},
		{"GET /v1/token-flags", "GET", "/v1/token-flags", "", 200, "readers", false},
		{"GET /v1/verify", "GET", "/v1/verify", "", 200, "readers", false},
		{"GET /metrics", "GET", "/metrics", "", 404, "readers", false}, // no Options.Metrics here: hub's TestMetrics scrapes it

		{"POST /v1/members/{member}/token", "POST", "/v1/members/m1/token", "", 201, "operator", false},
		{"PUT /v1/coalition", "PUT", "/v1/coalition", `{"name":"Renamed","currency":"EUR","point_value":"0.01","expiry_months":24}`, 200, "operator", false},
		{"PUT /v1/partners/{partner}", "PUT", "/v1/partners/p3", `{"name":"Three"}`, 200, "operator", false},
		{"POST /v1/partners/{partner}/rules", "POST", "/v1/partners/p1/rules", `{"points":2,"per":100}`, 201, "operator", true},
		{"POST /v1/partners/{partner}/campaigns", "POST", "/v1/partners/p1/campaigns", `{"id":"c1","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","bonus":5}`, 201, "operator", true},
		{"PUT /v1/stores/{store}", "PUT", "/v1/stores/s3", `{"partner":"p1"}`, 200, "operator", false},
		{"PUT /v1/stores/{store}/terminals/{terminal}", "PUT", "/v1/stores/s1/terminals/t9", "", 200, "operator", false},
		{"POST /v1/stores/{store}/terminals/{terminal}/enrollment-token", "POST", "/v1/stores/s1/terminals/t1/enrollment-token", "", 201, "operator", false},
		{"POST /v1/stores/{store}/terminals/{terminal}/revoke", "POST", "/v1/stores/s1/terminals/t2/revoke", "", 200, "operator", false},
		{"POST /v1/seed", "POST", "/v1/seed", "coalition: {currency: EUR, point_value: '0.01'}\npartners: [{id: p4}]\n", 200, "operator", false},
		{"POST /v1/periods", "POST", "/v1/periods", `{"from":"2026-11-01","to":"2026-11-02"}`, 201, "operator", false},
		{"POST /v1/expiry", "POST", "/v1/expiry", "", 200, "operator", false},
		{"GET /v1/api-tokens", "GET", "/v1/api-tokens", "", 200, "operator", false},
		{"GET /v1/broker-users", "GET", "/v1/broker-users", "", 200, "operator", false},
		{"POST /v1/api-tokens", "POST", "/v1/api-tokens", `{"role":"read-only","name":"x"}`, 201, "operator", false},
		{"POST /v1/api-tokens/{id}/revoke", "POST", "/v1/api-tokens/" + spare + "/revoke", "", 200, "operator", false},
	}
}

// want is the status and code who gets on c.
func (c routeCase) want(who string) (int, protocol.Code) {
	if c.who == "open" {
		return c.ok, ""
	}
	switch who {
	case "none", "malformed", "unknown", "revoked":
		return http.StatusUnauthorized, protocol.CodeUnauthorized
	case "operator":
		return c.ok, ""
	case "read-only":
		if c.who == "readers" || c.who == "everyone" {
			return c.ok, ""
		}
	case "partner":
		if c.who == "everyone" {
			return c.ok, ""
		}
	case "partner-other":
		if c.who == "everyone" && !c.otherPartner {
			return c.ok, ""
		}
	}
	return http.StatusForbidden, protocol.CodeForbidden
}

// TestRoles: every route × every kind of caller — operator, a partner's
// token on its own and on another partner's data, read-only, no token, a
// malformed, an unknown and a revoked one: the status and code each gets,
// and that a refused request changes nothing, calls no hook, and is
// counted.
func TestRoles(t *testing.T) {
	cases := routeCases("spare")
	var patterns []string
	for _, c := range cases {
		patterns = append(patterns, c.pattern)
	}
	slices.Sort(patterns)
	all := httpapi.Patterns()
	slices.Sort(all)
	if !slices.Equal(patterns, all) {
		t.Fatalf("the table's routes\n%v\nare not the API's\n%v", patterns, all)
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			a := newRoleAPI(t)
			c := routeCases(a.spare)[slices.IndexFunc(cases, func(x routeCase) bool { return x.pattern == c.pattern })]
			refused := 0
			for _, who := range principals {
				before, changes, creds := a.snapshot(t), a.changes.Load(), a.credentials.Load()
				r := a.as(t, who, c.method, c.path, c.body)
				status, code := c.want(who)
				if code == "" {
					if r.status != status {
						t.Errorf("%s: status %d, want %d: %s", who, r.status, status, r.body)
					}
					continue
				}
				refused++
				t.Run(who, func(t *testing.T) { checkError(t, r, status, code) })
				if after := a.snapshot(t); after != before {
					t.Errorf("%s: a refused %s changed the ledger:\nbefore %s\nafter  %s", who, c.method, before, after)
				}
				if a.changes.Load() != changes || a.credentials.Load() != creds {
					t.Errorf("%s: a refused request called OnChange or OnCredentials", who)
				}
			}
			var h struct {
				APIRefused int `json:"api_refused"`
			}
			if r := a.as(t, "operator", "GET", "/v1/health", ""); r.status != 200 || json.Unmarshal(r.body, &h) != nil || h.APIRefused != refused {
				t.Errorf("health after %d refusals: %s", refused, r.body)
			}
		})
	}
	// HEAD is GET for who may call it.
	a := newRoleAPI(t)
	if r := a.as(t, "partner", "HEAD", "/v1/members", ""); r.status != http.StatusForbidden {
		t.Errorf("HEAD /v1/members with a partner token: %d", r.status)
	}
	if r := a.as(t, "read-only", "HEAD", "/v1/members", ""); r.status != http.StatusOK {
		t.Errorf("HEAD /v1/members with a read-only token: %d", r.status)
	}
}

// Unknown paths and methods want a token too; with one they are 404/405.
// The bearer scheme is case-insensitive; anything else is refused.
func TestAuthorizationHeader(t *testing.T) {
	a := newRoleAPI(t)
	for _, c := range []struct{ name, method, path, header string }{
		{"an unknown path", "GET", "/v1/nope", ""},
		{"the root", "GET", "/", ""},
		{"a wrong method", "DELETE", "/v1/stores", ""},
		{"POST /healthz", "POST", "/healthz", ""},
		{"basic auth", "GET", "/v1/stores", "Basic b3A6cGFzcw=="},
		{"the token without a scheme", "GET", "/v1/stores", a.tokens["operator"]},
		{"an empty bearer", "GET", "/v1/stores", "Bearer "},
		{"an enrollment token", "GET", "/v1/stores", "Bearer TSE1.x." + strings.Repeat("A", 43) + "."},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, a.url+c.path, nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			checkError(t, response{res.StatusCode, res.Header.Get("Content-Type"), body}, 401, protocol.CodeUnauthorized)
			if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	checkError(t, a.as(t, "operator", "GET", "/v1/nope", ""), 404, "not_found")
	checkError(t, a.as(t, "read-only", "DELETE", "/v1/stores", ""), 405, "method_not_allowed")
	// Two Authorization headers: refused, whichever comes first.
	req, _ := http.NewRequest("GET", a.url+"/v1/stores", nil)
	req.Header.Add("Authorization", "Bearer "+a.tokens["operator"])
	req.Header.Add("Authorization", "Bearer "+a.tokens["partner"])
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Errorf("two tokens: %v %v", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
	req, _ = http.NewRequest("GET", a.url+"/v1/stores", nil)
	req.Header.Set("Authorization", "bearer "+a.tokens["read-only"])
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("lower-case bearer: %v %v", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
}

// GET /healthz answers ok, to anyone, and nothing more.
func TestHealthz(t *testing.T) {
	a := newRoleAPI(t)
	for _, who := range principals {
		r := a.as(t, who, "GET", "/healthz", "")
		if r.status != 200 || string(r.body) != "ok\n" || !strings.HasPrefix(r.ctype, "text/plain") {
			t.Errorf("%s: %d %q %q", who, r.status, r.ctype, r.body)
		}
	}
}

// A partner's token sees its own partner, stores, terminals and settlement
// lines, and nothing of the other partner's.
func TestPartnerSeesItsOwn(t *testing.T) {
	a := newRoleAPI(t)
	if _, err := a.store.IssueEnrollmentToken("s2", "t1", 0, ledgertest.T0); err != nil {
		t.Fatal(err)
	}
	// A period closed with lines of both partners.
	a.clock.Set(ledgertest.T0.Add(48 * time.Hour))
	if _, err := a.store.ClosePeriod(mustDay(t, "2026-11-01"), mustDay(t, "2026-11-24"), a.clock.Now()); err != nil {
		t.Fatal(err)
	}
	read := func(who, path string, v any) []byte {
		t.Helper()
		r := a.as(t, who, "GET", path, "")
		decodeOK(t, r, v)
		return r.body
	}
	for _, p := range []struct{ who, partner, store, other, otherStore string }{
		{"partner", "p1", "s1", "p2", "s2"},
		{"partner-other", "p2", "s2", "p1", "s1"},
	} {
		t.Run(p.partner, func(t *testing.T) {
			var bodies [][]byte
			var stores struct {
				Stores []httpapi.Store `json:"stores"`
			}
			bodies = append(bodies, read(p.who, "/v1/stores", &stores))
			if len(stores.Stores) != 1 || stores.Stores[0].Store != p.store || stores.Stores[0].Partner != p.partner || len(stores.Stores[0].Terminals) == 0 {
				t.Errorf("stores: %+v", stores.Stores)
			}
			var partners struct {
				Partners []ledger.Partner `json:"partners"`
			}
			bodies = append(bodies, read(p.who, "/v1/partners", &partners))
			if len(partners.Partners) != 1 || partners.Partners[0].ID != p.partner {
				t.Errorf("partners: %+v", partners.Partners)
			}
			var enr struct {
				Enrollments []ledger.Enrollment `json:"enrollments"`
			}
			bodies = append(bodies, read(p.who, "/v1/enrollments", &enr))
			if len(enr.Enrollments) == 0 || slices.ContainsFunc(enr.Enrollments, func(e ledger.Enrollment) bool { return e.Store != p.store }) {
				t.Errorf("enrollments: %+v", enr.Enrollments)
			}
			var s ledger.Settlement
			bodies = append(bodies, read(p.who, "/v1/settlement?from=2026-11-01&to=2026-12-01", &s))
			if len(s.Lines) != 1 || s.Lines[0].Partner != p.partner || s.Lines[0].Issued == 0 {
				t.Fatalf("settlement lines: %+v", s.Lines)
			}
			if l := s.Lines[0]; s.Total.Partner != "TOTAL" || s.Total.Issued != l.Issued || s.Total.Redeemed != l.Redeemed ||
				s.Total.IssuedValue != l.IssuedValue || s.Total.Net != l.Net {
				t.Errorf("total %+v is not the partner's line %+v", s.Total, l)
			}
			r := a.as(t, p.who, "GET", "/v1/settlement?from=2026-11-01&to=2026-12-01&format=csv", "")
			rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
			if err != nil || r.status != 200 || len(rows) != 3 || rows[1][0] != p.partner || rows[2][0] != "TOTAL" {
				t.Errorf("settlement CSV: %d %q, %v", r.status, r.body, err)
			}
			bodies = append(bodies, r.body)
			var periods struct {
				Periods []ledger.Period `json:"periods"`
			}
			bodies = append(bodies, read(p.who, "/v1/periods", &periods))
			if len(periods.Periods) != 1 || len(periods.Periods[0].Lines) != 1 || periods.Periods[0].Lines[0].Partner != p.partner {
				t.Errorf("periods: %+v", periods.Periods)
			}
			var rules httpapi.Rules
			bodies = append(bodies, read(p.who, "/v1/partners/"+p.partner+"/rules", &rules))
			checkError(t, a.as(t, p.who, "GET", "/v1/partners/"+p.other+"/rules", ""), 403, protocol.CodeForbidden)
			for _, path := range []string{"/v1/members", "/v1/members/m1", "/v1/members/m2/statement", "/v1/flags", "/v1/token-flags", "/v1/verify"} {
				checkError(t, a.as(t, p.who, "GET", path, ""), 403, protocol.CodeForbidden)
			}
			for _, b := range bodies {
				for _, other := range []string{`"` + p.other + `"`, `"` + p.otherStore + `"`, p.other + ",", `"m1"`, `"m2"`, `"m3"`} {
					if bytes.Contains(b, []byte(other)) {
						t.Errorf("a %s token's answer names %s: %s", p.partner, other, b)
					}
				}
			}
		})
	}
	// The operator and read-only tokens see both partners.
	for _, who := range []string{"operator", "read-only"} {
		var s ledger.Settlement
		read(who, "/v1/settlement?from=2026-11-01&to=2026-12-01", &s)
		var stores struct {
			Stores []httpapi.Store `json:"stores"`
		}
		read(who, "/v1/stores", &stores)
		if len(s.Lines) != 2 || len(stores.Stores) != 2 {
			t.Errorf("%s sees %d settlement lines and %d stores, want 2 and 2", who, len(s.Lines), len(stores.Stores))
		}
	}
}

func mustDay(t *testing.T, s string) ledger.Day {
	t.Helper()
	d, err := ledger.ParseDay(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Tokens over the API: made once, listed without secrets, revoked for good.
func TestAPITokensAPI(t *testing.T) {
	a := newRoleAPI(t)
	var made httpapi.NewAPIToken
	decodeStatus(t, a.as(t, "operator", "POST", "/v1/api-tokens", `{"role":"partner","partner":"p2","name":"p2 reports"}`), http.StatusCreated, &made)
	id, secret, err := protocol.ParseAPIToken(made.Token)
	if err != nil || id != made.APIToken.ID || made.APIToken.Role != ledger.RolePartner || made.APIToken.Partner != "p2" ||
		made.APIToken.Name != "p2 reports" || !made.APIToken.CreatedAt.Equal(a.clock.Now()) {
		t.Fatalf("made %+v, %v", made, err)
	}
	var stores struct {
		Stores []httpapi.Store `json:"stores"`
	}
	decodeOK(t, sendAs(t, made.Token, "GET", a.url+"/v1/stores", ""), &stores)
	if len(stores.Stores) != 1 || stores.Stores[0].Store != "s2" {
		t.Fatalf("the new token sees %+v", stores.Stores)
	}

	for _, c := range []struct {
		name, body string
		status     int
		code       protocol.Code
	}{
		{"no role", `{}`, 400, protocol.CodeMalformed},
		{"an unknown role", `{"role":"admin"}`, 400, protocol.CodeMalformed},
		{"a partner token without a partner", `{"role":"partner"}`, 400, protocol.CodeMissingField},
		{"an unknown partner", `{"role":"partner","partner":"p9"}`, 404, protocol.CodeUnknownPartner},
		{"an operator token with a partner", `{"role":"operator","partner":"p1"}`, 400, protocol.CodeMalformed},
		{"an unknown field", `{"role":"operator","secret":"x"}`, 400, protocol.CodeMalformed},
		{"an empty body", ``, 400, protocol.CodeMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, a.as(t, "operator", "POST", "/v1/api-tokens", c.body), c.status, c.code)
		})
	}

	r := a.as(t, "operator", "GET", "/v1/api-tokens", "")
	var list struct {
		APITokens []ledger.APIToken `json:"api_tokens"`
	}
	decodeOK(t, r, &list)
	if len(list.APITokens) != 7 || !slices.ContainsFunc(list.APITokens, func(x ledger.APIToken) bool { return x.ID == id }) {
		t.Fatalf("listed %+v", list.APITokens)
	}
	for _, tok := range a.tokens {
		if i := strings.LastIndex(tok, "."); i > 0 && bytes.Contains(r.body, []byte(tok[i+1:])) {
			t.Fatalf("the list holds a secret: %s", r.body)
		}
	}
	if bytes.Contains(r.body, []byte(made.Token[len("TSA1."+id+"."):])) || bytes.Contains(r.body, []byte("hash")) || bytes.Contains(r.body, []byte("salt")) {
		t.Fatalf("the list holds a secret or its hash: %s", r.body)
	}

	var revoked ledger.APIToken
	decodeOK(t, a.as(t, "operator", "POST", "/v1/api-tokens/"+id+"/revoke", ""), &revoked)
	if revoked.ID != id || !revoked.RevokedAt.Equal(a.clock.Now()) {
		t.Fatalf("revoked %+v", revoked)
	}
	checkError(t, sendAs(t, made.Token, "GET", a.url+"/v1/stores", ""), 401, protocol.CodeUnauthorized)
	checkError(t, sendAs(t, protocol.FormatAPIToken(id, secret), "GET", a.url+"/v1/health", ""), 401, protocol.CodeUnauthorized)
	checkError(t, a.as(t, "operator", "POST", "/v1/api-tokens/nope/revoke", ""), 404, protocol.CodeNotFound)
	checkError(t, a.as(t, "operator", "POST", "/v1/api-tokens/a+b/revoke", ""), 400, protocol.CodeInvalidID)
	// A token may revoke itself; the next request is refused.
	self := a.tokens["operator"]
	selfID, _, _ := protocol.ParseAPIToken(self)
	decodeOK(t, a.as(t, "operator", "POST", "/v1/api-tokens/"+selfID+"/revoke", ""), &revoked)
	checkError(t, a.as(t, "operator", "GET", "/v1/api-tokens", ""), 401, protocol.CodeUnauthorized)
}

// No token's secret reaches the log, at DEBUG, whatever happens to it:
// used, refused, made over the API, revoked. Refusals are logged with the
// token's id and the route.
func TestAPITokenSecretsNeverLogged(t *testing.T) {
	a := newRoleAPI(t)
	for _, who := range principals {
		a.as(t, who, "GET", "/v1/stores", "")
		a.as(t, who, "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01"}`)
	}
	var made httpapi.NewAPIToken
	decodeStatus(t, a.as(t, "operator", "POST", "/v1/api-tokens", `{"role":"read-only"}`), http.StatusCreated, &made)
	sendAs(t, made.Token, "GET", a.url+"/v1/members", "")
	a.as(t, "operator", "POST", "/v1/api-tokens/"+made.APIToken.ID+"/revoke", "")
	sendAs(t, made.Token, "GET", a.url+"/v1/members", "")

	logs := a.logs.String()
	secrets := map[string]string{"made over the API": made.Token}
	for who, tok := range a.tokens {
		if tok != "" {
			secrets[who] = tok
		}
	}
	for who, tok := range secrets {
		part := tok[strings.LastIndex(tok, ".")+1:]
		if len(part) > 8 && strings.Contains(logs, part) || strings.Contains(logs, tok) {
			t.Errorf("the log holds the %s token:\n%s", who, logs)
		}
	}
	pid, _, _ := protocol.ParseAPIToken(a.tokens["partner"])
	rid, _, _ := protocol.ParseAPIToken(a.tokens["revoked"])
	for _, want := range []string{
		"hub api request refused", "code=forbidden", "code=unauthorized", "token_id=" + pid, "token_id=" + rid,
		`route="PUT /v1/coalition"`, "role=partner", "api token created", "api token revoked", "token_id=" + made.APIToken.ID,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not mention %q:\n%s", want, logs)
		}
	}
}

// A refusal is logged once a minute per token, route and code, with the
// count of those not logged; each is counted in health.
func TestRefusalsLoggedOncePerMinute(t *testing.T) {
	a := newRoleAPI(t)
	for range 5 {
		a.as(t, "read-only", "PUT", "/v1/coalition", "{}")
	}
	lines := func() int { return strings.Count(a.logs.String(), "hub api request refused") }
	if n := lines(); n != 1 {
		t.Fatalf("5 refusals within a minute logged %d times, want once:\n%s", n, a.logs.String())
	}
	a.as(t, "read-only", "POST", "/v1/expiry", "") // another route: its own line
	a.as(t, "none", "PUT", "/v1/coalition", "{}")  // another caller: its own line
	if n := lines(); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, a.logs.String())
	}
	a.clock.Advance(time.Minute)
	a.as(t, "read-only", "PUT", "/v1/coalition", "{}")
	if n := lines(); n != 4 || !strings.Contains(a.logs.String(), "unlogged=4") {
		t.Fatalf("a minute later: %d lines, want 4 with unlogged=4:\n%s", n, a.logs.String())
	}
	var h map[string]any
	decodeOK(t, a.as(t, "operator", "GET", "/v1/health", ""), &h)
	if h["api_refused"] != 8.0 {
		t.Errorf("api_refused = %v, want 8", h["api_refused"])
	}
}

// A token's use is recorded once a minute at most, not per request.
func TestAPITokenLastUsed(t *testing.T) {
	a := newRoleAPI(t)
	id, _, _ := protocol.ParseAPIToken(a.tokens["read-only"])
	lastUsed := func() time.Time {
		toks, err := a.store.APITokens()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(toks, func(x ledger.APIToken) bool { return x.ID == id })
		return toks[i].LastUsed
	}
	first := a.clock.Now()
	a.as(t, "read-only", "GET", "/v1/stores", "")
	a.clock.Advance(30 * time.Second)
	a.as(t, "read-only", "GET", "/v1/stores", "")
	if lu := lastUsed(); !lu.Equal(first) {
		t.Fatalf("last used %s, want %s (the first use; the second was within a minute)", lu, first)
	}
	a.clock.Advance(30 * time.Second)
	a.as(t, "read-only", "GET", "/v1/stores", "")
	if lu := lastUsed(); !lu.Equal(a.clock.Now()) {
		t.Fatalf("last used %s, want %s", lu, a.clock.Now())
	}
}
