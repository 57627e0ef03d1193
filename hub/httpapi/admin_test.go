package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// admin is the API over an empty real ledger, counting OnChange calls. The
// hub clock reads ledgertest.T0.
type admin struct {
	store   *ledger.BoltStore
	clock   *clock.Fake
	url     string
	changes atomic.Int64
}

func newAdmin(t *testing.T) *admin {
	t.Helper()
	a := &admin{store: openLedger(t), clock: clock.NewFake(ledgertest.T0)}
	a.url = serve(t, httpapi.Options{Store: a.store, Clock: a.clock, OnChange: func() { a.changes.Add(1) }})
	return a
}

// send makes a request with body (none when empty).
func send(t *testing.T, method, url, body string) response {
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
	authorize(req)
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

// decodeStatus checks a JSON answer with status and decodes it strictly into v.
func decodeStatus(t *testing.T, r response, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	r.status = http.StatusOK
	decodeOK(t, r, v)
}

// checkChanges checks how many times OnChange was called so far.
func (a *admin) checkChanges(t *testing.T, want int64) {
	t.Helper()
	if got := a.changes.Load(); got != want {
		t.Errorf("OnChange called %d times, want %d", got, want)
	}
}

// errCase is one request that must fail with status and code.
type errCase struct {
	name, method, path, body string
	status                   int
	code                     protocol.Code
}

func runErrors(t *testing.T, a *admin, cases []errCase) {
	t.Helper()
	before := a.changes.Load()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, send(t, tc.method, a.url+tc.path, tc.body), tc.status, tc.code)
		})
	}
	if got := a.changes.Load(); got != before {
		t.Errorf("failed requests called OnChange %d times", got-before)
	}
}

const coalitionJSON = `{"name":"Test","currency":"EUR","point_value":"0.01","expiry_months":24,"hold_minutes":15}`

func TestCoalitionAPI(t *testing.T) {
	a := newAdmin(t)
	var c ledger.Coalition
	decodeOK(t, get(t, a.url+"/v1/coalition"), &c)
	if c != (ledger.Coalition{}) {
		t.Fatalf("coalition before any settings: %+v", c)
	}
	decodeOK(t, send(t, "PUT", a.url+"/v1/coalition", coalitionJSON), &c)
	want := ledger.Coalition{Name: "Test", Currency: "EUR", PointValue: "0.01", ExpiryMonths: 24, HoldMinutes: 15}
	if c != want {
		t.Fatalf("PUT answered %+v, want %+v", c, want)
	}
	decodeOK(t, get(t, a.url+"/v1/coalition"), &c)
	if c != want {
		t.Fatalf("GET after PUT: %+v, want %+v", c, want)
	}
	a.checkChanges(t, 1)

	big := `{"name":"` + strings.Repeat("x", httpapi.MaxSmallBody) + `"}`
	runErrors(t, a, []errCase{
		{"unknown field", "PUT", "/v1/coalition", `{"name":"x","currency":"EUR","point_value":"0.01","colour":"red"}`, 400, protocol.CodeMalformed},
		{"misspelt field", "PUT", "/v1/coalition", `{"currency":"EUR","pointvalue":"0.01"}`, 400, protocol.CodeMalformed},
		{"empty body", "PUT", "/v1/coalition", "", 400, protocol.CodeMalformed},
		{"not JSON", "PUT", "/v1/coalition", `currency=EUR`, 400, protocol.CodeMalformed},
		{"wrong type", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","expiry_months":"24"}`, 400, protocol.CodeMalformed},
		{"trailing value", "PUT", "/v1/coalition", coalitionJSON + `{}`, 400, protocol.CodeMalformed},
		{"bad currency", "PUT", "/v1/coalition", `{"currency":"euro","point_value":"0.01"}`, 400, protocol.CodeInvalidCurrency},
		{"bad point value", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0"}`, 400, protocol.CodeInvalidAmount},
		{"point value as a number", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":0.01}`, 400, protocol.CodeMalformed},
		{"expiry out of range", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","expiry_months":-1}`, 400, protocol.CodeMalformed},
		{"too large", "PUT", "/v1/coalition", big, 413, protocol.CodeTooLarge},
		{"wrong method", "DELETE", "/v1/coalition", "", 405, "method_not_allowed"},
	})
	decodeOK(t, get(t, a.url+"/v1/coalition"), &c)
	if c != want {
		t.Fatalf("failed PUTs changed the coalition: %+v", c)
	}

	// Once a partner has rules in EUR, the currency is fixed.
	send(t, "PUT", a.url+"/v1/partners/p1", "")
	if r := send(t, "POST", a.url+"/v1/partners/p1/rules", `{"points":1,"per":100}`); r.status != 201 {
		t.Fatalf("POST rules: %d %s", r.status, r.body)
	}
	n := a.changes.Load()
	runErrors(t, a, []errCase{
		{"currency change with rules", "PUT", "/v1/coalition", `{"currency":"USD","point_value":"0.01"}`, 409, protocol.CodeConflict},
	})
	a.checkChanges(t, n)
}

// goInternals matches what Go's error text would show a client: type
// names and time layouts, which say nothing to an operator.
var goInternals = regexp.MustCompile(`\bu?int(8|16|32|64)?\b|\bfloat(32|64)\b|\bbool\b|time\.|parsing time|UnmarshalJSON|2006-01-02T15|Z07:00|protocol\.|ledger\.|\[\]`)

// TestBodyErrorsSayWhatIsWrong: a body of the wrong shape is refused
// malformed with a message naming the field (or the value) and what is
// wanted there in words, never Go's type names or time layouts.
func TestBodyErrorsSayWhatIsWrong(t *testing.T) {
	a := newAdmin(t)
	send(t, "PUT", a.url+"/v1/partners/p1", "")
	for _, tc := range []struct {
		name, method, path, body string
		wants                    []string
	}{
		{"a string for a number", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","expiry_months":"12"}`, []string{"expiry_months", "a JSON string where a whole number is wanted"}},
		{"a fraction for a number", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","hold_minutes":1.5}`, []string{"hold_minutes", "1.5", "a whole number"}},
		{"true for a number", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","hold_minutes":true}`, []string{"hold_minutes", "a whole number"}},
		{"a number for a string", "PUT", "/v1/coalition", `{"name":5,"currency":"EUR","point_value":"0.01"}`, []string{"name", "a JSON number where a string is wanted"}},
		{"a list for a string", "PUT", "/v1/partners/p1", `{"name":["x"]}`, []string{"name", "a JSON array where a string is wanted"}},
		{"a string for a 64-bit number", "POST", "/v1/partners/p1/campaigns", `{"id":"c1","from":"2030-01-01T00:00:00Z","to":"2030-01-02T00:00:00Z","bonus":"5"}`, []string{"bonus", "a whole number"}},
		{"an object for a list", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"campaigns":{"id":"c1"}}`, []string{"campaigns", "a list"}},
		{"a word for a time", "POST", "/v1/expiry", `{"as_of":"yesterday"}`, []string{`"yesterday"`, "not a time", "RFC 3339", "2026-12-01T09:00:00Z"}},
		{"a month 13", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"effective_from":"2026-13-01T00:00:00Z"}`, []string{`"2026-13-01T00:00:00Z"`, "not a time", "month out of range"}},
		{"a number for a time", "POST", "/v1/expiry", `{"as_of":5}`, []string{"a time", "RFC 3339"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.method, a.url+tc.path, tc.body)
			checkError(t, r, 400, protocol.CodeMalformed)
			var eb struct{ Error struct{ Message string } }
			json.Unmarshal(r.body, &eb)
			for _, w := range tc.wants {
				if !strings.Contains(eb.Error.Message, w) {
					t.Errorf("message %q does not say %q", eb.Error.Message, w)
				}
			}
			if m := goInternals.FindString(eb.Error.Message); m != "" {
				t.Errorf("message %q shows Go's %q", eb.Error.Message, m)
			}
		})
	}
}

func TestPartnersAPI(t *testing.T) {
	a := newAdmin(t)
	r := get(t, a.url+"/v1/partners")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"partners":[]}` {
		t.Fatalf("partners of an empty ledger: %d %s", r.status, r.body)
	}
	var p ledger.Partner
	decodeOK(t, send(t, "PUT", a.url+"/v1/partners/greencross", `{"name":"GreenCross Pharmacy"}`), &p)
	if p.ID != "greencross" || p.Name != "GreenCross Pharmacy" || !p.CreatedAt.Equal(ledgertest.T0) {
		t.Fatalf("PUT answered %+v", p)
	}
	a.clock.Advance(time.Hour)
	p = ledger.Partner{}
	decodeOK(t, send(t, "PUT", a.url+"/v1/partners/bean-bar", ""), &p) // no body: no name
	if p.ID != "bean-bar" || p.Name != "" {
		t.Fatalf("PUT without a body answered %+v", p)
	}
	decodeOK(t, send(t, "PUT", a.url+"/v1/partners/greencross", `{"name":"GreenCross"}`), &p) // a rename
	if p.Name != "GreenCross" || !p.CreatedAt.Equal(ledgertest.T0) {
		t.Fatalf("rename answered %+v; want the new name and the first creation time", p)
	}
	a.checkChanges(t, 3)
	var list struct {
		Partners []ledger.Partner `json:"partners"`
	}
	decodeOK(t, get(t, a.url+"/v1/partners"), &list)
	if len(list.Partners) != 2 || list.Partners[0].ID != "bean-bar" || list.Partners[1].ID != "greencross" || list.Partners[1].Name != "GreenCross" {
		t.Fatalf("partners %+v", list.Partners)
	}
	runErrors(t, a, []errCase{
		{"bad id", "PUT", "/v1/partners/a+b", `{"name":"x"}`, 400, protocol.CodeInvalidID},
		{"bad id: escaped slash", "PUT", "/v1/partners/a%2Fb", `{"name":"x"}`, 400, protocol.CodeInvalidID},
		{"id too long", "PUT", "/v1/partners/" + strings.Repeat("p", protocol.MaxIDLen+1), `{}`, 400, protocol.CodeInvalidID},
		{"unknown field", "PUT", "/v1/partners/p1", `{"name":"x","logo":"y"}`, 400, protocol.CodeMalformed},
		{"control character in name", "PUT", "/v1/partners/p1", `{"name":"a\u0007b"}`, 400, protocol.CodeMalformed},
		{"name too long", "PUT", "/v1/partners/p1", `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, protocol.CodeMalformed},
		{"POST is not PUT", "POST", "/v1/partners/p1", `{}`, 405, "method_not_allowed"},
	})
}

func TestStoreAdminAPI(t *testing.T) {
	a := newAdmin(t)
	send(t, "PUT", a.url+"/v1/partners/p1", "")
	send(t, "PUT", a.url+"/v1/partners/p2", "")
	var s ledger.StoreInfo
	decodeOK(t, send(t, "PUT", a.url+"/v1/stores/s1", `{"partner":"p1","name":"Store One"}`), &s)
	if s.ID != "s1" || s.Partner != "p1" || s.Name != "Store One" || !s.CreatedAt.Equal(ledgertest.T0) {
		t.Fatalf("PUT store answered %+v", s)
	}
	decodeOK(t, send(t, "PUT", a.url+"/v1/stores/s2", `{"partner":"p2"}`), &s)
	var term httpapi.TerminalAnswer
	decodeOK(t, send(t, "PUT", a.url+"/v1/stores/s1/terminals/t1", ""), &term)
	if term != (httpapi.TerminalAnswer{Store: "s1", Terminal: "t1", Registered: true}) {
		t.Fatalf("PUT terminal answered %+v", term)
	}
	decodeOK(t, send(t, "PUT", a.url+"/v1/stores/s1/terminals/t1", "{}"), &term) // twice is harmless
	a.checkChanges(t, 6)

	// Registered stores appear, with and without terminals, beside a store
	// the coalition has not registered whose till sent a batch.
	tl := ledgertest.NewTill("s9", "t1", "p1")
	ledgertest.Apply(t, a.store, ledgertest.T0, tl.Batch(t, tl.Earn("e1", "m1", 1)))
	var got struct {
		Stores []httpapi.Store `json:"stores"`
	}
	decodeOK(t, get(t, a.url+"/v1/stores"), &got)
	if len(got.Stores) != 3 {
		t.Fatalf("stores %+v", got.Stores)
	}
	s1, s2, s9 := got.Stores[0], got.Stores[1], got.Stores[2]
	if s1.Store != "s1" || s1.Partner != "p1" || s1.Name != "Store One" || !s1.Registered || len(s1.Terminals) != 1 {
		t.Errorf("s1: %+v", s1)
	} else if tm := s1.Terminals[0]; tm.Terminal.Terminal != "t1" || !tm.Registered || !tm.NeverSeen || tm.LastSeenSeconds != 0 {
		t.Errorf("s1's registered terminal that sent nothing: %+v", tm)
	}
	if s2.Store != "s2" || s2.Partner != "p2" || !s2.Registered || s2.Terminals == nil || len(s2.Terminals) != 0 || !s2.InSync {
		t.Errorf("s2 (registered, no terminals): %+v", s2)
	}
	if s9.Store != "s9" || s9.Registered || s9.Partner != "" || len(s9.Terminals) != 1 || s9.Terminals[0].NeverSeen {
		t.Errorf("s9 (unregistered): %+v", s9)
	}

	runErrors(t, a, []errCase{
		{"bad store id", "PUT", "/v1/stores/a+b", `{"partner":"p1"}`, 400, protocol.CodeInvalidID},
		{"missing partner", "PUT", "/v1/stores/s3", `{"name":"x"}`, 400, protocol.CodeMissingField},
		{"empty body", "PUT", "/v1/stores/s3", ``, 400, protocol.CodeMalformed},
		{"bad partner id", "PUT", "/v1/stores/s3", `{"partner":"a/b"}`, 400, protocol.CodeInvalidID},
		{"unknown partner", "PUT", "/v1/stores/s3", `{"partner":"nobody"}`, 404, protocol.CodeUnknownPartner},
		{"unknown field", "PUT", "/v1/stores/s3", `{"partner":"p1","city":"Berlin"}`, 400, protocol.CodeMalformed},
		{"terminal of an unknown store", "PUT", "/v1/stores/s3/terminals/t1", "", 404, protocol.CodeUnknownStore},
		{"bad terminal id", "PUT", "/v1/stores/s1/terminals/t%231", "", 400, protocol.CodeInvalidID},
		{"terminal body with a field", "PUT", "/v1/stores/s1/terminals/t2", `{"name":"x"}`, 400, protocol.CodeMalformed},
		{"GET a terminal", "GET", "/v1/stores/s1/terminals/t1", "", 405, "method_not_allowed"},
	})
}

// A store that has transactions cannot move to another partner.
func TestStoreMoveConflict(t *testing.T) {
	a := newAdmin(t)
	register(t, a.store)
	tl := ledgertest.NewTill("s1", "t1", "p1")
	acks := ledgertest.Apply(t, a.store, ledgertest.T0, tl.Batch(t, tl.Earn("e1", "m1", 5)))
	if acks[0][0].Status != protocol.StatusApplied {
		t.Fatalf("earn at a registered store: %+v", acks[0][0])
	}
	runErrors(t, a, []errCase{
		{"move a store with transactions", "PUT", "/v1/stores/s1", `{"partner":"p2"}`, 409, protocol.CodeConflict},
	})
	var s ledger.StoreInfo
	decodeOK(t, send(t, "PUT", a.url+"/v1/stores/s1", `{"partner":"p1","name":"Renamed"}`), &s)
	if s.Name != "Renamed" || s.Partner != "p1" {
		t.Fatalf("rename: %+v", s)
	}
}

func TestRulesAPI(t *testing.T) {
	a := newAdmin(t)
	send(t, "PUT", a.url+"/v1/partners/p1", "")
	// Rules need the coalition's currency first.
	runErrors(t, a, []errCase{
		{"rules before a currency", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100}`, 409, protocol.CodeConflict},
	})
	send(t, "PUT", a.url+"/v1/coalition", coalitionJSON)
	var rules httpapi.Rules
	decodeOK(t, get(t, a.url+"/v1/partners/p1/rules"), &rules)
	if rules.Partner != "p1" || rules.InForce != 0 || rules.Versions == nil || len(rules.Versions) != 0 {
		t.Fatalf("rules of a partner without any: %+v", rules)
	}
	var rs protocol.RuleSet
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p1/rules",
		`{"points":1,"per":100,"rounding":"nearest","categories":{"rx":"0","beauty":"2"},"skus":{"123":"3"}}`), 201, &rs)
	if rs.Partner != "p1" || rs.Version != 1 || rs.Currency != "EUR" || !rs.EffectiveFrom.Equal(ledgertest.T0) || rs.Categories["beauty"] != "2" {
		t.Fatalf("recorded %+v", rs)
	}
	// The body may name the partner of the path, and a version (ignored:
	// the hub numbers them).
	a.clock.Advance(time.Hour)
	next := ledgertest.T0.Add(2 * time.Hour)
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p1/rules",
		`{"partner":"p1","version":7,"points":2,"per":100,"effective_from":"`+next.Format(time.RFC3339)+`"}`), 201, &rs)
	if rs.Version != 2 || !rs.EffectiveFrom.Equal(next) || rs.Rounding != protocol.RoundDown {
		t.Fatalf("second version %+v", rs)
	}
	decodeOK(t, get(t, a.url+"/v1/partners/p1/rules"), &rules)
	if rules.InForce != 1 || len(rules.Versions) != 2 || rules.Versions[1].Version != 2 {
		t.Fatalf("rules %+v: want 2 versions, 1 in force", rules)
	}
	a.clock.Set(next)
	decodeOK(t, get(t, a.url+"/v1/partners/p1/rules"), &rules)
	if rules.InForce != 2 {
		t.Fatalf("in force at %v: %d, want 2", next, rules.InForce)
	}
	a.checkChanges(t, 4) // partner, coalition, two rules

	runErrors(t, a, []errCase{
		{"rules of an unknown partner", "GET", "/v1/partners/nobody/rules", "", 404, protocol.CodeUnknownPartner},
		{"rules for an unknown partner", "POST", "/v1/partners/nobody/rules", `{"points":1,"per":100}`, 404, protocol.CodeUnknownPartner},
		{"bad partner id", "POST", "/v1/partners/a+b/rules", `{"points":1,"per":100}`, 400, protocol.CodeInvalidID},
		{"another partner in the body", "POST", "/v1/partners/p1/rules", `{"partner":"p2","points":1,"per":100}`, 400, protocol.CodeMalformed},
		{"unknown field", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"rate":2}`, 400, protocol.CodeMalformed},
		{"per zero", "POST", "/v1/partners/p1/rules", `{"points":1,"per":0}`, 400, protocol.CodeInvalidRules},
		{"bad multiplier", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"categories":{"rx":"-1"}}`, 400, protocol.CodeInvalidRules},
		{"bad rounding", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"rounding":"sideways"}`, 400, protocol.CodeInvalidRules},
		{"another currency", "POST", "/v1/partners/p1/rules", `{"currency":"USD","points":1,"per":100}`, 400, protocol.CodeCurrencyMismatch},
		{"in the past", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"effective_from":"2026-01-01T00:00:00Z"}`, 400, protocol.CodeInvalidRules},
		{"empty body", "POST", "/v1/partners/p1/rules", "", 400, protocol.CodeMalformed},
		{"too large", "POST", "/v1/partners/p1/rules", `{"points":1,"per":100,"skus":{"a":"` + strings.Repeat("1", httpapi.MaxRulesBody) + `"}}`, 413, protocol.CodeTooLarge},
		{"PUT rules", "PUT", "/v1/partners/p1/rules", `{}`, 405, "method_not_allowed"},
	})
}

func TestCampaignAPI(t *testing.T) {
	a := newAdmin(t)
	register(t, a.store)
	const xmas = `{"id":"xmas","name":"Double points","from":"2026-12-10T00:00:00Z","to":"2026-12-24T00:00:00Z","multiplier":"2"}`
	// p1 gets a category table first, which the campaign's version keeps.
	var v2 protocol.RuleSet
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p1/rules", `{"points":1,"per":100,"categories":{"rx":"0"},"new_partner_bonus":50}`), 201, &v2)
	a.clock.Advance(time.Minute)
	n := a.changes.Load()
	var rs protocol.RuleSet
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p1/campaigns", xmas), 201, &rs)
	a.checkChanges(t, n+1)
	want := v2
	want.Version, want.EffectiveFrom = v2.Version+1, ledgertest.T0.Add(time.Minute)
	want.Campaigns = []protocol.Campaign{{ID: "xmas", Name: "Double points", From: time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), Multiplier: "2"}}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("campaign version\n got %+v\nwant %+v", rs, want)
	}
	// A second campaign keeps the first.
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p1/campaigns", `{"id":"jan","from":"2027-01-01T00:00:00Z","to":"2027-02-01T00:00:00Z","bonus":20,"min_amount":500}`), 201, &rs)
	if rs.Version != want.Version+1 || len(rs.Campaigns) != 2 || rs.Campaigns[0].ID != "xmas" || rs.Campaigns[1].Bonus != 20 || rs.Categories["rx"] != "0" {
		t.Fatalf("second campaign: %+v", rs)
	}
	var rules httpapi.Rules
	decodeOK(t, get(t, a.url+"/v1/partners/p1/rules"), &rules)
	if rules.InForce != rs.Version {
		t.Fatalf("in force %d, want the campaign's version %d", rules.InForce, rs.Version)
	}

	// A partner with no rules yet has nothing to add a campaign to.
	send(t, "PUT", a.url+"/v1/partners/p3", "")
	// p2 has a version scheduled after now: a campaign from now would come
	// before it.
	decodeStatus(t, send(t, "POST", a.url+"/v1/partners/p2/rules", `{"points":3,"per":100,"effective_from":"2027-01-01T00:00:00Z"}`), 201, &rs)
	runErrors(t, a, []errCase{
		{"unknown partner", "POST", "/v1/partners/nobody/campaigns", xmas, 404, protocol.CodeUnknownPartner},
		{"bad partner id", "POST", "/v1/partners/a+b/campaigns", xmas, 400, protocol.CodeInvalidID},
		{"no rules", "POST", "/v1/partners/p3/campaigns", xmas, 409, protocol.CodeConflict},
		{"same id again", "POST", "/v1/partners/p1/campaigns", xmas, 409, protocol.CodeConflict},
		{"scheduled version", "POST", "/v1/partners/p2/campaigns", xmas, 409, protocol.CodeConflict},
		{"neither multiplier nor bonus", "POST", "/v1/partners/p1/campaigns", `{"id":"c2","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z"}`, 400, protocol.CodeInvalidRules},
		{"to before from", "POST", "/v1/partners/p1/campaigns", `{"id":"c2","from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z","bonus":1}`, 400, protocol.CodeInvalidRules},
		{"bad campaign id", "POST", "/v1/partners/p1/campaigns", `{"id":"a b","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","bonus":1}`, 400, protocol.CodeInvalidID},
		{"unknown field", "POST", "/v1/partners/p1/campaigns", `{"id":"c2","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","bonus":1,"stores":["s1"]}`, 400, protocol.CodeMalformed},
		{"bad time", "POST", "/v1/partners/p1/campaigns", `{"id":"c2","from":"tomorrow","to":"2026-12-02T00:00:00Z","bonus":1}`, 400, protocol.CodeMalformed},
	})
}

func TestSeedAPI(t *testing.T) {
	a := newAdmin(t)
	const seed = `
coalition: {name: Test, currency: EUR, point_value: "0.01", expiry_months: 24}
partners:
  - id: p1
    name: Partner One
    rules: {currency: EUR, points: 1, per: 100, categories: {rx: "0"}}
    stores:
      - {id: s1, terminals: [t1, t2]}
  - id: p2
    stores: [{id: s2}]
`
	var rep ledger.SeedReport
	decodeOK(t, send(t, "POST", a.url+"/v1/seed", seed), &rep)
	if rep != (ledger.SeedReport{Partners: 2, Stores: 2, Terminals: 2, Rules: 1}) {
		t.Fatalf("first load: %+v", rep)
	}
	decodeOK(t, send(t, "POST", a.url+"/v1/seed", seed), &rep)
	if rep != (ledger.SeedReport{}) {
		t.Fatalf("second load: %+v, want no change", rep)
	}
	a.checkChanges(t, 2)
	stores, _ := a.store.Stores()
	if len(stores) != 2 || stores[0].Partner != "p1" {
		t.Fatalf("stores after the seed: %+v", stores)
	}
	// The documented demo file loads over the API too.
	demo, err := os.ReadFile("../../cmd/tillsync-sim/demo-coalition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	decodeOK(t, send(t, "POST", a.url+"/v1/seed", string(demo)), &rep)
	if rep.Partners != 3 {
		t.Fatalf("demo: %+v", rep)
	}
	// JSON works as well.
	js, _ := json.Marshal(testSeed())
	decodeOK(t, send(t, "POST", a.url+"/v1/seed", string(js)), &rep)

	runErrors(t, a, []errCase{
		{"unknown key", "POST", "/v1/seed", "coalition: {currency: EUR, point_value: '0.01'}\npartners: [{id: p1, nmae: x}]\n", 400, protocol.CodeMalformed},
		{"empty", "POST", "/v1/seed", "", 400, protocol.CodeMalformed},
		{"not YAML", "POST", "/v1/seed", "coalition: [\n", 400, protocol.CodeMalformed},
		{"bad currency", "POST", "/v1/seed", "coalition: {currency: euro, point_value: '0.01'}\n", 400, protocol.CodeInvalidCurrency},
		{"bad store id", "POST", "/v1/seed", "coalition: {currency: EUR, point_value: '0.01'}\npartners: [{id: p1, stores: [{id: 'a/b'}]}]\n", 400, protocol.CodeInvalidID},
		{"currency change", "POST", "/v1/seed", "coalition: {currency: USD, point_value: '0.01'}\n", 409, protocol.CodeConflict},
		{"too large", "POST", "/v1/seed", "# " + strings.Repeat("x", httpapi.MaxSeedBody), 413, protocol.CodeTooLarge},
	})
	r := send(t, "POST", a.url+"/v1/seed", "coalition: {currency: EUR, point_value: '0.01'}\npartners: [{id: p1, nmae: x}]\n")
	if !bytes.Contains(r.body, []byte(`unknown key \"nmae\"`)) || !bytes.Contains(r.body, []byte("partners[0]")) {
		t.Errorf("unknown key error does not name the key and where: %s", r.body)
	}
}

// fixtureT0Day is the accounting day of newFixture's transactions.
const fixtureDay = "2026-11-23"

func TestMemberViewAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	var v ledger.MemberView
	decodeOK(t, get(t, f.url+"/v1/members/m1"), &v)
	if v.Member != "m1" || !v.Known || v.Balance != 65 || v.Held != 0 || v.Available != 65 || v.Flag != nil {
		t.Fatalf("m1: %+v", v)
	}
	var left int64
	for _, l := range v.Lots {
		left += l.Remaining
	}
	if len(v.Lots) != 1 || v.Lots[0].ID != "e1" || v.Lots[0].Partner != "p1" || left != 65 || v.Lots[0].ExpiresAt.IsZero() {
		t.Fatalf("m1's lots %+v: want e1 with 65 left, expiring", v.Lots)
	}
	want, err := f.store.Member("m1", f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want.Lots == nil {
		want.Lots = []ledger.Lot{}
	}
	if want.Holds == nil {
		want.Holds = []ledger.Hold{}
	}
	// Times come back through JSON: compare them as instants.
	if g, w := mustJSON(t, v), mustJSON(t, want); g != w {
		t.Fatalf("API\n%s\nledger\n%s", g, w)
	}
	r := get(t, f.url+"/v1/members/nobody")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"known":false`)) || !bytes.Contains(r.body, []byte(`"lots":[]`)) {
		t.Fatalf("unknown member: %d %s", r.status, r.body)
	}
	checkError(t, get(t, f.url+"/v1/members/a+b"), 400, protocol.CodeInvalidID)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFlagsAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	r := get(t, f.url+"/v1/flags")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"flags":[]}` {
		t.Fatalf("flags with nobody owing: %d %s", r.status, r.body)
	}
	// m3 spends its 7 points, then the earn is returned: m3 owes 7.
	tl := ledgertest.NewTill("s1", "t2", "p1")
	tl.Seq = 1
	ledgertest.Apply(t, f.store, ledgertest.T0.Add(20*time.Second), tl.Batch(t, tl.Burn("b9", "m3", 7), tl.Reverse("r9", "m3", 7, "e3")))
	var got struct {
		Flags []ledger.Flag `json:"flags"`
	}
	decodeOK(t, get(t, f.url+"/v1/flags"), &got)
	if len(got.Flags) != 1 || got.Flags[0].Member != "m3" || got.Flags[0].Balance != -7 || got.Flags[0].Reason != ledger.FlagReturnAfterSpend || got.Flags[0].TxID != "r9" {
		t.Fatalf("flags %+v", got.Flags)
	}
}

func TestSettlementAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	q := "/v1/settlement?from=" + fixtureDay + "&to=2026-11-24"
	var s ledger.Settlement
	decodeOK(t, get(t, f.url+q), &s)
	if s.Currency != "EUR" || s.PointValue != "0.01" || s.From.String() != fixtureDay || s.To.String() != "2026-11-24" || s.Closed {
		t.Fatalf("settlement header %+v", s)
	}
	wantLines := []ledger.SettlementLine{
		{Partner: "p1", Issued: 112, Redeemed: 30, IssuedValue: 112, RedeemedValue: 30, Net: 82},
		{Partner: "p2", Issued: 1, IssuedValue: 1, Net: 1},
	}
	if !reflect.DeepEqual(s.Lines, wantLines) {
		t.Fatalf("lines\n got %+v\nwant %+v", s.Lines, wantLines)
	}
	if want := (ledger.SettlementLine{Partner: "TOTAL", Issued: 113, Redeemed: 30, IssuedValue: 113, RedeemedValue: 30, Net: 83}); s.Total != want {
		t.Fatalf("total %+v, want %+v", s.Total, want)
	}

	r := get(t, f.url+q+"&format=csv")
	if r.status != 200 || !strings.HasPrefix(r.ctype, "text/csv") {
		t.Fatalf("CSV: %d %q %s", r.status, r.ctype, r.body)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"partner", "restates", "issued", "redeemed", "expired", "issued_value", "redeemed_value", "net"},
		{"p1", "", "112", "30", "0", "1.12", "0.30", "0.82"},
		{"p2", "", "1", "0", "0", "0.01", "0.00", "0.01"},
		{"TOTAL", "", "113", "30", "0", "1.13", "0.30", "0.83"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("CSV\n got %q\nwant %q", rows, want)
	}

	// A day with nothing on it: every partner, all zero.
	decodeOK(t, get(t, f.url+"/v1/settlement?from=2026-11-01&to=2026-11-02"), &s)
	for _, l := range append(s.Lines, s.Total) {
		if l.Issued != 0 || l.Redeemed != 0 || l.Net != 0 {
			t.Errorf("line on an empty day: %+v", l)
		}
	}

	runErrors(t, &admin{url: f.url}, []errCase{
		{"no from", "GET", "/v1/settlement?to=2026-11-24", "", 400, protocol.CodeMissingField},
		{"no to", "GET", "/v1/settlement?from=2026-11-23", "", 400, protocol.CodeMissingField},
		{"bad day", "GET", "/v1/settlement?from=2026-11-31&to=2026-12-01", "", 400, protocol.CodeInvalidTime},
		{"a time, not a day", "GET", "/v1/settlement?from=2026-11-23T00:00:00Z&to=2026-12-01", "", 400, protocol.CodeInvalidTime},
		{"to before from", "GET", "/v1/settlement?from=2026-11-24&to=2026-11-23", "", 400, protocol.CodeInvalidTime},
		{"empty span", "GET", "/v1/settlement?from=2026-11-23&to=2026-11-23", "", 400, protocol.CodeInvalidTime},
		{"bad format", "GET", "/v1/settlement?from=2026-11-23&to=2026-11-24&format=xml", "", 400, protocol.CodeMalformed},
	})
}

func TestPeriodsAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	a := &admin{url: f.url}
	r := get(t, f.url+"/v1/periods")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"periods":[]}` {
		t.Fatalf("periods before any close: %d %s", r.status, r.body)
	}
	var p ledger.Period
	decodeStatus(t, send(t, "POST", f.url+"/v1/periods", `{"from":"2026-11-01","to":"2026-11-23"}`), 201, &p)
	if p.From.String() != "2026-11-01" || p.To.String() != fixtureDay || !p.ClosedAt.Equal(f.clock.Now()) || p.ChainHash == "" {
		t.Fatalf("closed %+v", p)
	}
	var list struct {
		Periods []ledger.Period `json:"periods"`
	}
	decodeOK(t, get(t, f.url+"/v1/periods"), &list)
	if len(list.Periods) != 1 || list.Periods[0].From != p.From {
		t.Fatalf("periods %+v", list.Periods)
	}
	runErrors(t, a, []errCase{
		{"a period before the closed one", "POST", "/v1/periods", `{"from":"2026-10-01","to":"2026-11-01"}`, 409, protocol.CodePeriodClosed},
		{"overlapping the closed one", "POST", "/v1/periods", `{"from":"2026-11-15","to":"2026-11-23"}`, 409, protocol.CodePeriodClosed},
		{"missing to", "POST", "/v1/periods", `{"from":"2026-11-23"}`, 400, protocol.CodeMissingField},
		{"bad day", "POST", "/v1/periods", `{"from":"2026-11-23","to":"23.11.2026"}`, 400, protocol.CodeInvalidTime},
		{"to before from", "POST", "/v1/periods", `{"from":"2026-11-23","to":"2026-11-01"}`, 400, protocol.CodeInvalidTime},
		{"unknown field", "POST", "/v1/periods", `{"from":"2026-11-23","to":"2026-11-24","note":"x"}`, 400, protocol.CodeMalformed},
		{"empty body", "POST", "/v1/periods", ``, 400, protocol.CodeMalformed},
	})
	// A period ending after today cannot be closed yet.
	r = send(t, "POST", f.url+"/v1/periods", `{"from":"2026-11-23","to":"2026-12-01"}`)
	if r.status != 400 && r.status != 409 {
		t.Fatalf("closing a period that has not ended: %d %s", r.status, r.body)
	}
}

func TestExpiryAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	a := &admin{url: f.url}
	var rep ledger.ExpiryReport
	decodeOK(t, send(t, "POST", f.url+"/v1/expiry", ""), &rep)
	if !rep.AsOf.Equal(f.clock.Now()) || rep.Points != 0 {
		t.Fatalf("expiry now: %+v", rep)
	}
	// 24 months: points earned in November 2026 expire on 2028-12-01.
	exp := time.Date(2028, 12, 1, 0, 0, 0, 0, time.UTC)
	f.clock.Set(exp.Add(time.Hour))
	decodeOK(t, send(t, "POST", f.url+"/v1/expiry", `{"as_of":"`+exp.Add(-time.Second).Format(time.RFC3339)+`"}`), &rep)
	if rep.Points != 0 {
		t.Fatalf("a second before expiry: %+v", rep)
	}
	decodeOK(t, send(t, "POST", f.url+"/v1/expiry", `{"as_of":"`+exp.Format(time.RFC3339)+`"}`), &rep)
	if rep.Points != 65+11+7 || rep.Members != 3 || !rep.AsOf.Equal(exp) {
		t.Fatalf("at expiry: %+v", rep)
	}
	decodeOK(t, send(t, "POST", f.url+"/v1/expiry", `{}`), &rep)
	if rep.Points != 0 {
		t.Fatalf("again: %+v, want nothing more", rep)
	}
	runErrors(t, a, []errCase{
		{"in the future", "POST", "/v1/expiry", `{"as_of":"2030-01-01T00:00:00Z"}`, 400, protocol.CodeInvalidTime},
		{"not a time", "POST", "/v1/expiry", `{"as_of":"soon"}`, 400, protocol.CodeMalformed},
		{"unknown field", "POST", "/v1/expiry", `{"at":"2026-01-01T00:00:00Z"}`, 400, protocol.CodeMalformed},
		{"GET", "GET", "/v1/expiry", "", 405, "method_not_allowed"},
	})
}

func TestVerifyAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	var v httpapi.Verify
	decodeOK(t, get(t, f.url+"/v1/verify"), &v)
	if !v.OK || v.Entries != 6 || v.ChainHead == "" || v.ChainBreak != "" || len(v.Problems) != 0 {
		t.Fatalf("verify %+v", v)
	}
	r := get(t, f.url+"/v1/verify")
	if !bytes.Contains(r.body, []byte(`"ok":true`)) || !bytes.Contains(r.body, []byte(`"chain_head":"`+v.ChainHead+`"`)) {
		t.Fatalf("verify body %s", r.body)
	}
}

// Reads never call OnChange; a failed change does not either.
func TestOnChangeOnlyOnChanges(t *testing.T) {
	a := newAdmin(t)
	for _, p := range []string{"/v1/coalition", "/v1/partners", "/v1/stores", "/v1/flags", "/v1/periods", "/v1/verify", "/v1/members", "/v1/health"} {
		get(t, a.url+p)
	}
	a.checkChanges(t, 0)
	send(t, "PUT", a.url+"/v1/coalition", coalitionJSON)
	send(t, "PUT", a.url+"/v1/partners/p1", "")
	send(t, "PUT", a.url+"/v1/stores/s1", `{"partner":"p1"}`)
	send(t, "PUT", a.url+"/v1/stores/s1/terminals/t1", "")
	send(t, "POST", a.url+"/v1/partners/p1/rules", `{"points":1,"per":100}`)
	send(t, "POST", a.url+"/v1/partners/p1/campaigns", `{"id":"c","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","bonus":5}`)
	send(t, "POST", a.url+"/v1/seed", "coalition: {currency: EUR, point_value: '0.01'}\n")
	a.checkChanges(t, 7)
	send(t, "POST", a.url+"/v1/expiry", "")
	a.checkChanges(t, 7)
}

// A ledger that fails answers 500 internal on the admin endpoints too.
func TestAdminInternalError(t *testing.T) {
	a := newAdmin(t)
	register(t, a.store)
	if err := a.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/flags", ""},
		{"GET", "/v1/members/m1", ""},
		{"GET", "/v1/settlement?from=2026-11-01&to=2026-11-02", ""},
		{"GET", "/v1/verify", ""},
		{"PUT", "/v1/partners/p9", `{}`},
		{"POST", "/v1/expiry", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := send(t, tc.method, a.url+tc.path, tc.body)
			checkError(t, r, http.StatusInternalServerError, protocol.CodeInternal)
			if bytes.Contains(r.body, []byte("database")) || bytes.Contains(r.body, []byte("not yet")) {
				t.Errorf("internal error text reached the client: %s", r.body)
			}
		})
	}
}
