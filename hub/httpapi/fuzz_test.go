package httpapi_test

// The hub API's fuzz targets drive httpapi.Handler over a real bbolt ledger,
// opened once per target with testSeed's coalition and a few members'
// transactions, through httptest (no network).
//
// What each input must get: a well-formed answer (one line of JSON — the
// liveness check's "ok" and a CSV settlement aside — and for an error
// exactly {"error":{"code","message"}} with a stable code and the status
// the package doc gives that code, never 500 internal); a refused request
// (4xx) changes nothing the ledger shows; an accepted one is in the ledger
// as answered; and a request without a valid token, or with one whose role
// may not call the route, is never served.
//
// Inputs may name what the fuzzer cannot make up: $OPERATOR, $READONLY and
// $PARTNER (p1's) in an Authorization header are the API's tokens;
// $APITOKEN in a path is the id of a read-only token and $ENROLL in a body
// an enrollment token for s1/t1, both made for that input.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// hubAPI is the API under the fuzz targets.
type hubAPI struct {
	st  *ledger.BoltStore
	h   http.Handler
	now time.Time
	// tokens are the operator's, a read-only one and p1's, as clients send them.
	operator, readOnly, partner string
}

func newHubAPI(f *testing.F) *hubAPI {
	st, err := ledger.OpenBolt(filepath.Join(f.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	t0 := ledgertest.T0
	if _, err := st.LoadSeed(testSeed(), t0.Add(-2*time.Hour)); err != nil {
		f.Fatal(err)
	}
	a := ledgertest.NewTill("s1", "t1", "p1")
	ledgertest.Apply(f, st, t0, a.Batch(f, a.Earn("e1", "m1", 100), a.Burn("b1", "m1", 30), a.Earn("e2", "m2", 10)))
	c := ledgertest.NewTill("s2", "t1", "p2")
	ledgertest.Apply(f, st, t0, c.Batch(f, c.Earn("e4", "m2", 1)))
	h := &hubAPI{st: st, now: t0.Add(30 * time.Second)}
	h.operator = fuzzToken(f, st, ledger.RoleOperator, "")
	h.readOnly = fuzzToken(f, st, ledger.RoleReadOnly, "")
	h.partner = fuzzToken(f, st, ledger.RolePartner, "p1")
	h.h = httpapi.Handler(httpapi.Options{Store: st, Clock: clock.NewFake(h.now), MemberTokenKey: hubTokenKey,
		CAPEM: []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"), CAFingerprint: testFingerprint,
		MQTTAdvertise: "tls://hub.example:8883"})
	// Each token's first use is recorded; from then on, within the minute
	// the clock never leaves, a request with it writes nothing.
	for _, tok := range []string{h.operator, h.readOnly, h.partner} {
		req := httptest.NewRequest(http.MethodGet, "/v1/health", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if rec := h.serve(req); rec.Code != http.StatusOK {
			f.Fatalf("health: HTTP %d %s", rec.Code, rec.Body)
		}
	}
	return h
}

func fuzzToken(f *testing.F, st ledger.Store, role ledger.Role, partner string) string {
	tok, secret, err := st.CreateAPIToken(ledger.APIToken{Role: role, Partner: partner, Name: "fuzz " + string(role)}, ledgertest.T0)
	if err != nil {
		f.Fatal(err)
	}
	return protocol.FormatAPIToken(tok.ID, secret)
}

func (h *hubAPI) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

// expand replaces the placeholders of an Authorization header.
func (h *hubAPI) expandAuth(s string) string {
	return strings.NewReplacer("$OPERATOR", h.operator, "$READONLY", h.readOnly, "$PARTNER", h.partner).Replace(s)
}

// expandPath replaces $APITOKEN in a path parameter with a new read-only
// token's id.
func (h *hubAPI) expandPath(t *testing.T, s string) string {
	if !strings.Contains(s, "$APITOKEN") {
		return s
	}
	tok, _, err := h.st.CreateAPIToken(ledger.APIToken{Role: ledger.RoleReadOnly, Name: "fuzz revoke"}, h.now)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(s, "$APITOKEN", tok.ID)
}

// expandBody replaces $ENROLL in a body with a new enrollment token for
// s1/t1 (which replaces the one before).
func (h *hubAPI) expandBody(t *testing.T, b []byte) []byte {
	if !bytes.Contains(b, []byte("$ENROLL")) {
		return b
	}
	tok, err := h.st.IssueEnrollmentToken("s1", "t1", time.Hour, h.now)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("$ENROLL"), []byte(protocol.FormatEnrollmentToken(tok.ID, tok.Secret, testFingerprint)))
}

// ledgerView is what the ledger shows through its Store methods, for
// telling whether a request changed anything. A token's last use is left
// out: recording it is the one write a refused request may cause.
type ledgerView struct {
	Coalition   ledger.Coalition
	Partners    []ledger.Partner
	Rules       map[string][]protocol.RuleSet
	Stores      []ledger.StoreInfo
	Terminals   []ledger.Terminal
	Tokens      []ledger.APIToken
	Enrollments []ledger.Enrollment
	Periods     []ledger.Period
	Balances    map[string]int64
	Flags       []ledger.Flag
	TokenFlags  []ledger.TokenRecord
}

func (h *hubAPI) view(t *testing.T) []byte {
	t.Helper()
	var v ledgerView
	var errs [11]error
	v.Coalition, errs[0] = h.st.Coalition()
	v.Partners, errs[1] = h.st.Partners()
	v.Rules = map[string][]protocol.RuleSet{}
	for _, p := range v.Partners {
		if v.Rules[p.ID], errs[2] = h.st.Rules(p.ID); errs[2] != nil {
			break
		}
	}
	v.Stores, errs[3] = h.st.Stores()
	v.Terminals, errs[4] = h.st.Terminals()
	v.Tokens, errs[5] = h.st.APITokens()
	for i := range v.Tokens {
		v.Tokens[i].LastUsed = time.Time{}
	}
	v.Enrollments, errs[6] = h.st.Enrollments()
	v.Periods, errs[7] = h.st.Periods()
	v.Balances, errs[8] = h.st.MemberBalances()
	v.Flags, errs[9] = h.st.Flags()
	v.TokenFlags, errs[10] = h.st.TokenFlags()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("reading the ledger: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hubStatus is the status the package doc gives an error code.
func hubStatus(code protocol.Code) int {
	switch code {
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized
	case protocol.CodeForbidden, protocol.CodeEnrollmentUnknown, protocol.CodeEnrollmentUsed, protocol.CodeEnrollmentExpired:
		return http.StatusForbidden
	case protocol.CodeUnknownPartner, protocol.CodeUnknownStore, protocol.CodeUnknownMember, protocol.CodeNotFound:
		return http.StatusNotFound
	case httpx.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case protocol.CodeConflict, protocol.CodePeriodClosed:
		return http.StatusConflict
	case protocol.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// checkAnswer checks that rec is a well-formed answer of the API and
// returns its error code ("" for a 2xx).
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) protocol.Code {
	t.Helper()
	body := rec.Body.Bytes()
	ct := rec.Header().Get("Content-Type")
	if rec.Code == http.StatusInternalServerError {
		t.Fatalf("HTTP 500: a request broke the API: %s", body)
	}
	if rec.Code/100 == 2 && ct != "application/json" {
		switch ct {
		case "text/plain; charset=utf-8": // GET /healthz
			if string(body) != "ok\n" {
				t.Fatalf("HTTP %d %s: %q", rec.Code, ct, body)
			}
		case "text/csv; charset=utf-8": // GET /v1/settlement?format=csv
			if _, err := csv.NewReader(bytes.NewReader(body)).ReadAll(); err != nil {
				t.Fatalf("HTTP %d: CSV that does not read: %v", rec.Code, err)
			}
		default:
			t.Fatalf("HTTP %d with content type %q: %q", rec.Code, ct, body)
		}
		return ""
	}
	code := testkit.JSONAnswer(t, rec)
	switch {
	case code == "":
		return ""
	case rec.Code != hubStatus(code):
		t.Fatalf("HTTP %d for code %s, want %d: %s", rec.Code, code, hubStatus(code), body)
	case code == protocol.CodeUnauthorized && rec.Header().Get("WWW-Authenticate") == "":
		t.Fatalf("HTTP 401 without WWW-Authenticate")
	}
	return code
}

// decodeAnswer decodes a 2xx body strictly into v.
func decodeAnswer(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("HTTP %d %s does not decode into %T: %v", rec.Code, rec.Body, v, err)
	}
}

// pathSegment escapes s as one path segment, "." and ".." too (as %2E,
// which url.PathEscape leaves as they are), so the request reaches the
// route, which refuses them: they are not ids.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// bodyRoute is a request with a body; the path's {a} and {b} are filled
// from the input.
type bodyRoute struct {
	method, path string
	status       int // of an accepted request
	open         bool
}

var bodyRoutes = [...]bodyRoute{
	{"PUT", "/v1/coalition", 200, false},
	{"PUT", "/v1/partners/{a}", 200, false},
	{"PUT", "/v1/stores/{a}", 200, false},
	{"PUT", "/v1/stores/{a}/terminals/{b}", 200, false},
	{"POST", "/v1/partners/{a}/rules", 201, false},
	{"POST", "/v1/partners/{a}/campaigns", 201, false},
	{"POST", "/v1/stores/{a}/terminals/{b}/enrollment-token", 201, false},
	{"POST", "/v1/stores/{a}/terminals/{b}/revoke", 200, false},
	{"POST", "/v1/seed", 200, false},
	{"POST", "/v1/periods", 201, false},
	{"POST", "/v1/expiry", 200, false},
	{"POST", "/v1/api-tokens", 201, false},
	{"POST", "/v1/api-tokens/{a}/revoke", 200, false},
	{"POST", "/v1/members/{a}/token", 201, false},
	{"POST", "/v1/enroll", 201, true},
}

// FuzzAPIBody sends every request the API decodes a body of (route picks
// which), with the operator's token, path parameters a and b, and any
// body.
func FuzzAPIBody(f *testing.F) {
	for _, s := range []struct {
		route uint8
		a, b  string
		body  string
	}{
		{0, "", "", `{"name":"Test","currency":"EUR","point_value":"0.01","expiry_months":24}`},
		{0, "", "", `{"name":"Test","currency":"USD","point_value":"-1"}`},
		{1, "p3", "", `{"name":"Partner Three"}`},
		{1, "p3", "", ``},
		{1, "p 3", "", `{"name":"x"}`},
		{2, "s3", "", `{"partner":"p1","name":"Store Three"}`},
		{2, "s1", "", `{"partner":"p2"}`},
		{2, "s4", "", `{"partner":"nope"}`},
		{3, "s1", "t9", ``},
		{3, "s9", "t1", `{}`},
		{4, "p1", "", `{"currency":"EUR","points":2,"per":100,"rounding":"nearest","categories":{"dairy":"2"},"skus":{"A-1":"0.5"}}`},
		{4, "p1", "", `{"partner":"p2","currency":"EUR","points":1,"per":100}`},
		{4, "p1", "", `{"currency":"EUR","points":1,"per":0,"categories":{"x":"1e400"}}`},
		{5, "p1", "", `{"id":"xmas","from":"2026-11-01T00:00:00Z","to":"2026-12-25T00:00:00Z","multiplier":"2","bonus":50,"min_amount":2000}`},
		{5, "p9", "", `{"id":"x","from":"2026-11-01T00:00:00Z","to":"2026-10-01T00:00:00Z"}`},
		{6, "s1", "t2", `{"expires_in":"24h"}`},
		{6, "s1", "t2", `{"expires_in":"-5m"}`},
		{6, "s9", "t9", ``},
		{7, "s1", "t2", ``},
		{8, "", "", "coalition:\n  name: Seeded\n  currency: EUR\n  point_value: \"0.01\"\npartners:\n  - id: p4\n    stores:\n      - id: s4\n        terminals: [t1]\n"},
		{8, "", "", `{"partners":[{"id":"p5","rules":{"currency":"EUR","points":1,"per":100}}]}`},
		{8, "", "", "partners:\n  - id: [\n"},
		{9, "", "", `{"from":"2026-11-01","to":"2026-11-02"}`},
		{9, "", "", `{"from":"2026-11-02","to":"2026-11-01"}`},
		{9, "", "", `{"from":"2099-12-31","to":"2100-01-01"}`},
		{10, "", "", ``},
		{10, "", "", `{"as_of":"2030-01-01T00:00:00Z"}`},
		{11, "", "", `{"role":"partner","partner":"p2","name":"p2's system"}`},
		{11, "", "", `{"role":"operator","partner":"p1"}`},
		{11, "", "", `{"role":"root"}`},
		{12, "$APITOKEN", "", ``},
		{12, "unknown", "", ``},
		{13, "m1", "", ``},
		{13, "new-member", "", `{}`},
		{13, "m 1", "", ``},
		{14, "", "", `{"token":"$ENROLL","public_key":"MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="}`},
		{14, "", "", `{"token":"$ENROLL","public_key":"` + strings.Repeat("A", 43) + `="}`},
		{14, "", "", `{"token":"TSE1.x.y","public_key":"AAAA"}`},
		{14, "", "", `{"token":"","public_key":""}`},
		{0, "", "", `{"name":"Test"}{}`},
		{2, "s3", "", `{"partner":"p1","name":"Store Three","id":"s4"}`},
	} {
		f.Add(s.route, s.a, s.b, []byte(s.body))
	}
	h := newHubAPI(f)
	pub := hubTokenKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, route uint8, a, b string, body []byte) {
		fuzzlimit.Check(t)
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		a, b = h.expandPath(t, a), h.expandPath(t, b)
		body = h.expandBody(t, body)
		target := strings.NewReplacer("{a}", pathSegment(a), "{b}", pathSegment(b)).Replace(rt.path)
		req := httptest.NewRequest(rt.method, target, bytes.NewReader(body))
		if !rt.open {
			req.Header.Set("Authorization", "Bearer "+h.operator)
		}
		before := h.view(t)
		rec := h.serve(req)
		code := checkAnswer(t, rec)
		after := h.view(t)
		if code != "" {
			if !bytes.Equal(before, after) {
				t.Fatalf("%s %s: HTTP %d %s changed the ledger:\n%s\n%s", rt.method, target, rec.Code, code, before, after)
			}
			return
		}
		if rec.Code != rt.status {
			t.Fatalf("%s %s accepted with HTTP %d, want %d", rt.method, target, rec.Code, rt.status)
		}
		h.checkAccepted(t, rt, a, b, body, rec, pub)
	})
}

// checkAccepted checks an accepted request's answer against the ledger.
func (h *hubAPI) checkAccepted(t *testing.T, rt bodyRoute, a, b string, body []byte, rec *httptest.ResponseRecorder, pub ed25519.PublicKey) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s %s (a %q, b %q) answered %s: "+format, append([]any{rt.method, rt.path, a, b, rec.Body}, args...)...)
	}
	switch rt.path {
	case "/v1/coalition":
		var got ledger.Coalition
		decodeAnswer(t, rec, &got)
		if c, err := h.st.Coalition(); err != nil || c != got {
			fail("the ledger has %+v (%v)", c, err)
		}
	case "/v1/partners/{a}":
		var got ledger.Partner
		decodeAnswer(t, rec, &got)
		ps, _ := h.st.Partners()
		if got.ID != a || !slices.Contains(ps, got) {
			fail("partners are %+v", ps)
		}
	case "/v1/stores/{a}":
		var got ledger.StoreInfo
		var req httpapi.StoreBody
		mustUnmarshal(t, body, &req)
		decodeAnswer(t, rec, &got)
		ss, _ := h.st.Stores()
		if got.ID != a || got.Partner != req.Partner || !slices.Contains(ss, got) {
			fail("stores are %+v", ss)
		}
	case "/v1/stores/{a}/terminals/{b}":
		var got httpapi.TerminalAnswer
		decodeAnswer(t, rec, &got)
		ts, _ := h.st.Terminals()
		if got != (httpapi.TerminalAnswer{Store: a, Terminal: b, Registered: true}) ||
			!slices.ContainsFunc(ts, func(x ledger.Terminal) bool { return x.Store == a && x.Terminal == b }) {
			fail("terminals are %+v", ts)
		}
	case "/v1/partners/{a}/rules", "/v1/partners/{a}/campaigns":
		var got protocol.RuleSet
		decodeAnswer(t, rec, &got)
		rs, _ := h.st.Rules(a)
		if got.Partner != a || len(rs) == 0 || rs[len(rs)-1].Version != got.Version {
			fail("the partner's rules are %+v", rs)
		}
		if rt.path == "/v1/partners/{a}/campaigns" {
			var c protocol.Campaign
			mustUnmarshal(t, body, &c)
			if !slices.ContainsFunc(got.Campaigns, func(x protocol.Campaign) bool { return x.ID == c.ID }) {
				fail("campaign %q is not in the new version", c.ID)
			}
		}
	case "/v1/stores/{a}/terminals/{b}/enrollment-token":
		var got httpapi.EnrollmentTokenAnswer
		decodeAnswer(t, rec, &got)
		_, _, fp, err := protocol.ParseEnrollmentToken(got.Token)
		if got.Store != a || got.Terminal != b || err != nil || fp != testFingerprint || !got.ExpiresAt.After(h.now) {
			fail("the token does not parse with the hub's fingerprint, or has expired (%v)", err)
		}
	case "/v1/stores/{a}/terminals/{b}/revoke":
		// Its pending token is gone, and so are its credentials if it enrolled.
		es, _ := h.st.Enrollments()
		if !slices.ContainsFunc(es, func(e ledger.Enrollment) bool {
			return e.Store == a && e.Terminal == b && e.TokenExpires.IsZero() && (e.EnrolledAt.IsZero() || !e.RevokedAt.IsZero())
		}) {
			fail("enrollments are %+v", es)
		}
	case "/v1/seed":
		var got ledger.SeedReport
		decodeAnswer(t, rec, &got)
	case "/v1/periods":
		var got ledger.Period
		decodeAnswer(t, rec, &got)
		ps, _ := h.st.Periods()
		if len(ps) == 0 || ps[len(ps)-1].From != got.From || ps[len(ps)-1].To != got.To || got.From >= got.To {
			fail("periods are %+v", ps)
		}
	case "/v1/expiry":
		var got ledger.ExpiryReport
		decodeAnswer(t, rec, &got)
		if got.AsOf.After(h.now) || got.Points < 0 {
			fail("expired ahead of time, or negative points")
		}
	case "/v1/api-tokens":
		var got httpapi.NewAPIToken
		var req httpapi.APITokenBody
		mustUnmarshal(t, body, &req)
		decodeAnswer(t, rec, &got)
		id, secret, err := protocol.ParseAPIToken(got.Token)
		if err != nil || id != got.APIToken.ID {
			fail("the token does not parse (%v)", err)
		}
		tok, err := h.st.AuthenticateAPIToken(id, secret, h.now)
		if err != nil || tok.Role != req.Role || tok.Partner != req.Partner {
			fail("the token authenticates as %+v (%v)", tok, err)
		}
	case "/v1/api-tokens/{a}/revoke":
		var got ledger.APIToken
		decodeAnswer(t, rec, &got)
		ts, _ := h.st.APITokens()
		if got.ID != a || !slices.ContainsFunc(ts, func(x ledger.APIToken) bool { return x.ID == a && !x.RevokedAt.IsZero() }) {
			fail("tokens are %+v", ts)
		}
	case "/v1/members/{a}/token":
		var got httpapi.MemberToken
		decodeAnswer(t, rec, &got)
		mt, err := protocol.VerifyMemberToken(got.Token, []ed25519.PublicKey{pub}, h.now, 0)
		if err != nil || mt.Member != a || got.Member != a {
			fail("the token verifies as %+v (%v)", mt, err)
		}
	case "/v1/enroll":
		var got httpapi.EnrollAnswer
		decodeAnswer(t, rec, &got)
		if ok, reason := h.st.AuthenticateTerminal(got.MQTTUsername, []byte(got.MQTTPassword)); !ok || got.Store != "s1" || got.Terminal != "t1" {
			fail("the credentials do not authenticate (%s)", reason)
		}
	default:
		t.Fatalf("no check for %s", rt.path)
	}
}

func mustUnmarshal(t *testing.T, body []byte, v any) {
	t.Helper()
	if len(bytes.TrimSpace(body)) == 0 {
		return
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("accepted a body that does not decode: %v: %q", err, body)
	}
}

// queryRoutes are the reads (and the member token, whose ttl is a query
// parameter); {a} is filled from the input.
var queryRoutes = [...]struct{ method, path string }{
	{"GET", "/v1/settlement"},
	{"GET", "/v1/members/{a}/statement"},
	{"POST", "/v1/members/{a}/token"},
	{"GET", "/v1/members/{a}"},
	{"GET", "/v1/members/{a}/balance"},
	{"GET", "/v1/partners/{a}/rules"},
	{"GET", "/v1/stores"},
	{"GET", "/v1/partners"},
	{"GET", "/v1/enrollments"},
	{"GET", "/v1/periods"},
	{"GET", "/v1/members"},
	{"GET", "/v1/flags"},
	{"GET", "/v1/token-flags"},
	{"GET", "/v1/verify"},
	{"GET", "/v1/api-tokens"},
	{"GET", "/v1/broker-users"},
	{"GET", "/v1/coalition"},
	{"GET", "/v1/member-token-key"},
	{"GET", "/v1/health"},
}

// FuzzAPIQuery sends the API's reads with any query and path parameter a,
// with the operator's token: settlement's from, to and format, a
// statement's limit, a member token's ttl. What the API cannot read is
// refused with the field's code; a read changes nothing.
func FuzzAPIQuery(f *testing.F) {
	for _, s := range []struct {
		route    uint8
		a, query string
	}{
		{0, "", "from=2026-11-01&to=2026-12-01"},
		{0, "", "from=2026-11-01&to=2026-12-01&format=csv"},
		{0, "", "from=2026-11-23&to=2026-11-23"},
		{0, "", "from=1999-12-31&to=2026-01-01"},
		{0, "", "from=2026-02-30&to=2026-03-01"},
		{0, "", "from=2026-11-01"},
		{0, "", "from=2026-11-01&to=2026-12-01&format=xml"},
		{0, "", "from=2000-01-01&to=2099-12-31&from=x"},
		{1, "m1", ""},
		{1, "m1", "limit=1"},
		{1, "m1", "limit=1000"},
		{1, "m1", "limit=1001"},
		{1, "m1", "limit=0x10"},
		{1, "nobody", "limit=5"},
		{1, "m 1", ""},
		{2, "m1", "ttl=90"},
		{2, "m1", "ttl=2m"},
		{2, "m1", "ttl=9s"},
		{2, "m1", "ttl=9223372036854775807"},
		{2, "m1", "ttl=-90"},
		{3, "m2", ""},
		{4, "m2", ""},
		{4, ".", ""},
		{5, "p1", ""},
		{5, "p9", ""},
		{6, "", "partner=p1"},
	} {
		f.Add(s.route, s.a, s.query)
	}
	h := newHubAPI(f)
	pub := hubTokenKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, route uint8, a, query string) {
		fuzzlimit.Check(t)
		rt := queryRoutes[int(route)%len(queryRoutes)]
		target := strings.ReplaceAll(rt.path, "{a}", pathSegment(a))
		req := httptest.NewRequest(rt.method, target, nil)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+h.operator)
		q := req.URL.Query()
		before := h.view(t)
		rec := h.serve(req)
		code := checkAnswer(t, rec)
		if after := h.view(t); !bytes.Equal(before, after) {
			t.Fatalf("%s %s?%s: HTTP %d changed the ledger:\n%s\n%s", rt.method, target, query, rec.Code, before, after)
		}
		if strings.Contains(rt.path, "{a}") && !protocol.ValidID(a) {
			// An empty segment names no endpoint, nor does a lone "/":
			// http.ServeMux takes a segment that is one escaped slash for a
			// trailing slash, which no single-segment wildcard matches.
			want := protocol.CodeInvalidID
			if a == "" || a == "/" {
				want = httpx.CodeNotFound
			}
			if code != want {
				t.Fatalf("%s %s: HTTP %d %s, want %s", rt.method, target, rec.Code, rec.Body, want)
			}
			return
		}
		switch rt.path {
		case "/v1/settlement":
			h.checkSettlement(t, q, rec, code)
		case "/v1/members/{a}/statement":
			limit, lerr := strconv.Atoi(q.Get("limit"))
			limitOK := q.Get("limit") == "" || lerr == nil && limit >= 1 && limit <= 1000
			if q.Get("limit") == "" {
				limit = 50
			}
			_, known, _ := h.st.Balance(a)
			switch {
			case !limitOK:
				if code != "bad_request" {
					t.Fatalf("statement ?%s: HTTP %d %s, want 400 bad_request", query, rec.Code, rec.Body)
				}
			case !known:
				if code != protocol.CodeUnknownMember {
					t.Fatalf("statement of %q: HTTP %d %s, want 404 unknown_member", a, rec.Code, rec.Body)
				}
			default:
				var s httpapi.Statement
				decodeAnswer(t, rec, &s)
				if s.Member != a || len(s.Entries) > limit {
					t.Fatalf("statement of %q ?%s: %d entries, limit %d", a, query, len(s.Entries), limit)
				}
			}
		case "/v1/members/{a}/token":
			ttl, ok := tokenTTL(q.Get("ttl"))
			if !ok {
				if code != "bad_request" {
					t.Fatalf("member token ?%s: HTTP %d %s, want 400 bad_request", query, rec.Code, rec.Body)
				}
				break
			}
			var mt httpapi.MemberToken
			if code != "" {
				t.Fatalf("member token ?%s: HTTP %d %s", query, rec.Code, rec.Body)
			}
			decodeAnswer(t, rec, &mt)
			if want := h.now.Add(ttl).Truncate(time.Second).UTC(); !mt.ExpiresAt.Equal(want) {
				t.Fatalf("member token ?%s expires at %s, want %s", query, mt.ExpiresAt, want)
			}
			if _, err := protocol.VerifyMemberToken(mt.Token, []ed25519.PublicKey{pub}, h.now, 0); err != nil {
				t.Fatalf("member token ?%s does not verify: %v", query, err)
			}
		default:
			if code != "" && code != protocol.CodeUnknownPartner && code != protocol.CodeUnknownMember {
				t.Fatalf("%s %s?%s: HTTP %d %s", rt.method, target, query, rec.Code, rec.Body)
			}
		}
	})
}

// tokenTTL reads a member token's ?ttl= as the API documents it: a Go
// duration or whole seconds, from MinTokenTTL to protocol.MaxTokenLifetime;
// empty is the default.
func tokenTTL(s string) (time.Duration, bool) {
	if s == "" {
		return protocol.DefaultTokenTTL, true
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	return d, err == nil && d >= httpapi.MinTokenTTL && d <= protocol.MaxTokenLifetime
}

// checkSettlement holds GET /v1/settlement to its parameters: from and to
// are days (YYYY-MM-DD, 2000-2099) with from before to, format is json or
// csv or nothing.
func (h *hubAPI) checkSettlement(t *testing.T, q url.Values, rec *httptest.ResponseRecorder, code protocol.Code) {
	t.Helper()
	format := q.Get("format")
	from, ferr := ledger.ParseDay(q.Get("from"))
	to, terr := ledger.ParseDay(q.Get("to"))
	switch {
	case format != "" && format != "json" && format != "csv":
		if code != protocol.CodeMalformed {
			t.Fatalf("settlement ?%s: HTTP %d %s, want 400 malformed", q.Encode(), rec.Code, rec.Body)
		}
	case q.Get("from") == "" || ferr == nil && q.Get("to") == "":
		// from first, then to
		if code != protocol.CodeMissingField {
			t.Fatalf("settlement ?%s: HTTP %d %s, want 400 missing_field", q.Encode(), rec.Code, rec.Body)
		}
	case ferr != nil || terr != nil || to <= from:
		if code != protocol.CodeInvalidTime {
			t.Fatalf("settlement ?%s: HTTP %d %s, want 400 invalid_time", q.Encode(), rec.Code, rec.Body)
		}
	case format == "csv":
		rows, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
		if rec.Code != http.StatusOK || err != nil || len(rows) < 2 || !slices.Equal(rows[0], httpapi.SettlementCSVHeader) || rows[len(rows)-1][0] != "TOTAL" {
			t.Fatalf("settlement ?%s: HTTP %d %q (%v)", q.Encode(), rec.Code, rec.Body, err)
		}
	default:
		var s ledger.Settlement
		decodeAnswer(t, rec, &s)
		if s.From != from || s.To != to || s.Total.Partner != "TOTAL" {
			t.Fatalf("settlement ?%s: %s", q.Encode(), rec.Body)
		}
	}
}

// apiRoutes, openRoutes, readerRoutes, partnerRoutes: every route, and
// those served without a token, to a read-only token and to a partner's
// (the package doc's table), matched the way the API's mux matches.
var apiRoutes, openRoutes, readerRoutes, partnerRoutes = http.NewServeMux(), http.NewServeMux(), http.NewServeMux(), http.NewServeMux()

func init() {
	nop := func(http.ResponseWriter, *http.Request) {}
	open := []string{"GET /healthz", "POST /v1/enroll"}
	partner := append([]string{"GET /v1/health", "GET /v1/coalition", "GET /v1/member-token-key", "GET /v1/partners",
		"GET /v1/partners/{partner}/rules", "GET /v1/stores", "GET /v1/enrollments", "GET /v1/settlement", "GET /v1/periods"}, open...)
	for _, p := range httpapi.Patterns() {
		apiRoutes.HandleFunc(p, nop)
		if slices.Contains(open, p) {
			openRoutes.HandleFunc(p, nop)
		}
		if slices.Contains(partner, p) {
			partnerRoutes.HandleFunc(p, nop)
		}
		if strings.HasPrefix(p, "GET ") && p != "GET /v1/api-tokens" && p != "GET /v1/broker-users" || slices.Contains(open, p) {
			readerRoutes.HandleFunc(p, nop)
		}
	}
}

// matches reports whether mux has a route for r, its path canonical.
func matches(mux *http.ServeMux, r *http.Request) bool {
	_, pattern := mux.Handler(r)
	return pattern != "" && httpx.IsCanonical(r)
}

// roleOf is the role of the token an Authorization header carries: one of
// the fuzz tokens (spaces around it allowed), after a Bearer scheme in any
// case; "" for anything else.
func (h *hubAPI) roleOf(auth string) ledger.Role {
	scheme, cred, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	switch strings.TrimSpace(cred) {
	case h.operator:
		return ledger.RoleOperator
	case h.readOnly:
		return ledger.RoleReadOnly
	case h.partner:
		return ledger.RolePartner
	}
	return ""
}

// FuzzAPIAuth sends any method and request target with any Authorization
// header (and no body). Only the liveness check and enrollment are served
// without a token; without one of the real tokens anything else is 401; a
// real token's role may call its routes and is refused 403 on the others;
// a path no route has is 404 or 405 — and a refusal changes nothing.
func FuzzAPIAuth(f *testing.F) {
	for _, s := range []struct{ method, target, auth string }{
		{"GET", "/v1/stores", "Bearer $OPERATOR"},
		{"GET", "/v1/stores", "bearer $PARTNER"},
		{"GET", "/v1/stores", "Bearer  $OPERATOR"},
		{"GET", "/v1/stores", "Basic $OPERATOR"},
		{"GET", "/v1/members", "Bearer $PARTNER"},
		{"GET", "/v1/partners/p2/rules", "Bearer $PARTNER"},
		{"PUT", "/v1/partners/p9", "Bearer $READONLY"},
		{"POST", "/v1/expiry", "Bearer $READONLY"},
		{"POST", "/v1/expiry", "Bearer $OPERATOR"},
		{"GET", "/v1/api-tokens", "Bearer $READONLY"},
		{"GET", "/v1/broker-users", "Bearer $OPERATOR"},
		{"GET", "/healthz", ""},
		{"HEAD", "/healthz", "Bearer nope"},
		{"POST", "/v1/enroll", ""},
		{"GET", "/v1/nothing", ""},
		{"GET", "/v1/nothing", "Bearer $OPERATOR"},
		{"DELETE", "/v1/stores", "Bearer $OPERATOR"},
		{"GET", "/v1//stores", "Bearer $OPERATOR"},
		{"GET", "/v1/stores/../members", "Bearer $PARTNER"},
		{"GET", "/v1/members/%2E%2E", "Bearer $OPERATOR"},
		{"GET", "/v1/stores", "Bearer TSA1." + strings.Repeat("A", 20) + "." + strings.Repeat("B", 43)},
		{"GET", "/v1/stores", "Bearer TSA1..."},
		{"GET", "*", "Bearer $OPERATOR"},
		{"GET", "/metrics", "Bearer $OPERATOR"},
		{"GET", "/v1/settlement?from=2026-11-01&to=2026-12-01&format=csv", "Bearer $PARTNER"},
	} {
		f.Add(s.method, s.target, s.auth)
	}
	h := newHubAPI(f)
	f.Fuzz(func(t *testing.T, method, target, auth string) {
		fuzzlimit.Check(t)
		auth = h.expandAuth(auth)
		// What net/http's server refuses before any handler sees it.
		if !validMethod(method) || strings.ContainsAny(target, " \t\r\n") || !validHeaderValue(auth) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL, req.RequestURI = method, u, target
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		before := h.view(t)
		rec := h.serve(req)
		code := checkAnswer(t, rec)
		if after := h.view(t); rec.Code/100 != 2 && !bytes.Equal(before, after) {
			t.Fatalf("%s %s: HTTP %d %s changed the ledger:\n%s\n%s", method, target, rec.Code, code, before, after)
		}
		role := h.roleOf(auth)
		var want protocol.Code // "" when the route decides
		switch {
		case matches(openRoutes, req):
		case role == "":
			want = protocol.CodeUnauthorized
		case !matches(apiRoutes, req):
			if code != httpx.CodeNotFound && code != httpx.CodeMethodNotAllowed {
				t.Fatalf("%s %s (no route) with a %s token: HTTP %d %s, want 404 or 405", method, target, role, rec.Code, rec.Body)
			}
		case role == ledger.RoleReadOnly && !matches(readerRoutes, req), role == ledger.RolePartner && !matches(partnerRoutes, req):
			want = protocol.CodeForbidden
		case code == protocol.CodeUnauthorized:
			t.Fatalf("%s %s with a %s token: HTTP %d %s", method, target, role, rec.Code, rec.Body)
		}
		if want != "" && code != want {
			t.Fatalf("%s %s with Authorization %q: HTTP %d %s, want %s", method, target, auth, rec.Code, rec.Body, want)
		}
	})
}

// validMethod is net/http's rule for a method: an HTTP token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range []byte(m) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue is net/http's rule for a header value: no control
// characters but tab.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
