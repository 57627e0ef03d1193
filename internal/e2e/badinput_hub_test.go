//go:build unix

package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// hubCase is one bad request to the hub's HTTP API.
type hubCase struct {
	input        string // for the table
	method, path string
	body         string
	// token names the API token sent (tour.tokens; "" the operator's, "-"
	// none); auth, when set, is sent as the Authorization header instead.
	token, auth string
	status      int
	code        protocol.Code
}

// hubAPI throws bad requests at the hub's HTTP API: each is refused with
// its status and code, the refusals of a token are counted (api_refused)
// and those of an enrollment too (enrollments_refused), and the ledger,
// registry and tokens are as before.
func (tr *tour) hubAPI() {
	t := tr.t
	pub, _, _ := ed25519.GenerateKey(nil)
	pubKey := base64.StdEncoding.EncodeToString(pub)
	// A token of the right form whose id the hub never issued, and an
	// enrollment token likewise.
	unknownAPI := protocol.FormatAPIToken("0123456789abcdef", make([]byte, 32))
	unknownEnroll := tr.unknownEnroll
	tr.replace = append(tr.replace, pubKey, "<public key>")
	enroll := func(token, key string) string {
		b, _ := json.Marshal(map[string]string{"token": token, "public_key": key})
		return string(b)
	}
	big := func(n int) string { return `{"name":"` + strings.Repeat("x", n) + `"}` }
	long := strings.Repeat("p", protocol.MaxIDLen+1)
	const m, inv, missing = protocol.CodeMalformed, protocol.CodeInvalidID, protocol.CodeMissingField
	rules := func(fields string) string {
		return `{"effective_from":"2026-01-01T00:00:00Z","currency":"EUR","points":1,"per":100` + fields + `}`
	}
	campaign := func(fields string) string {
		return `{"id":"c1","from":"2030-01-01T00:00:00Z","to":"2030-01-02T00:00:00Z"` + fields + `}`
	}

	cases := []hubCase{
		// The coalition's settings.
		{"`PUT /v1/coalition`: JSON cut short", "PUT", "/v1/coalition", `{"currency":"EUR",`, "", "", 400, m},
		{"`PUT /v1/coalition`: empty body", "PUT", "/v1/coalition", ``, "", "", 400, m},
		{"`PUT /v1/coalition`: a JSON array", "PUT", "/v1/coalition", `[]`, "", "", 400, m},
		{"`PUT /v1/coalition`: a second JSON value", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01"}{}`, "", "", 400, m},
		{"`PUT /v1/coalition`: unknown field `curency`", "PUT", "/v1/coalition", `{"curency":"EUR","point_value":"0.01"}`, "", "", 400, m},
		{"`PUT /v1/coalition`: name as a number", "PUT", "/v1/coalition", `{"name":5,"currency":"EUR","point_value":"0.01"}`, "", "", 400, m},
		{"`PUT /v1/coalition`: expiry_months `\"12\"`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","expiry_months":"12"}`, "", "", 400, m},
		{"`PUT /v1/coalition`: currency `eur`", "PUT", "/v1/coalition", `{"currency":"eur","point_value":"0.01"}`, "", "", 400, protocol.CodeInvalidCurrency},
		{"`PUT /v1/coalition`: point_value `abc`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"abc"}`, "", "", 400, protocol.CodeInvalidAmount},
		{"`PUT /v1/coalition`: point_value `-0.01`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"-0.01"}`, "", "", 400, protocol.CodeInvalidAmount},
		{"`PUT /v1/coalition`: point_value `0.01` as a number", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":0.01}`, "", "", 400, m},
		{"`PUT /v1/coalition`: expiry_months `-1`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","expiry_months":-1}`, "", "", 400, m},
		{"`PUT /v1/coalition`: hold_minutes `-5`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","hold_minutes":-5}`, "", "", 400, m},
		{"`PUT /v1/coalition`: return_wait_days `1000`", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.01","return_wait_days":1000}`, "", "", 400, m},
		{"`PUT /v1/coalition`: currency `USD` once points were booked in EUR", "PUT", "/v1/coalition", `{"currency":"USD","point_value":"0.01"}`, "", "", 409, protocol.CodeConflict},
		{"`PUT /v1/coalition`: body over 64 KiB", "PUT", "/v1/coalition", big(httpapi.MaxSmallBody), "", "", 413, protocol.CodeTooLarge},

		// Partners, stores, terminals.
		{"`PUT /v1/partners/a+b`", "PUT", "/v1/partners/a+b", `{"name":"x"}`, "", "", 400, inv},
		{"`PUT /v1/partners/a%2Fb`", "PUT", "/v1/partners/a%2Fb", `{"name":"x"}`, "", "", 400, inv},
		{"`PUT /v1/partners/<65 characters>`", "PUT", "/v1/partners/" + long, `{"name":"x"}`, "", "", 400, inv},
		{"`PUT /v1/partners/p9`: unknown field `nmae`", "PUT", "/v1/partners/p9", `{"nmae":"x"}`, "", "", 400, m},
		{"`PUT /v1/partners/p9`: name as a list", "PUT", "/v1/partners/p9", `{"name":["x"]}`, "", "", 400, m},
		{"`PUT /v1/partners/p9`: name with a line break", "PUT", "/v1/partners/p9", `{"name":"a\nb"}`, "", "", 400, m},
		{"`PUT /v1/partners/p9`: name of 10,000 characters", "PUT", "/v1/partners/p9", big(10000), "", "", 400, m},
		{"`PUT /v1/partners/p9`: body over 64 KiB", "PUT", "/v1/partners/p9", big(httpapi.MaxSmallBody), "", "", 413, protocol.CodeTooLarge},
		{"`PUT /v1/stores/s9`: no partner", "PUT", "/v1/stores/s9", `{"name":"x"}`, "", "", 400, missing},
		{"`PUT /v1/stores/s9`: partner `nope` (not registered)", "PUT", "/v1/stores/s9", `{"partner":"nope"}`, "", "", 404, protocol.CodeUnknownPartner},
		{"`PUT /v1/stores/s9`: partner `p/1`", "PUT", "/v1/stores/s9", `{"partner":"p/1"}`, "", "", 400, inv},
		{"`PUT /v1/stores/s+9`", "PUT", "/v1/stores/s+9", `{"partner":"pharmacy"}`, "", "", 400, inv},
		{"`PUT /v1/stores/tour-store`: moved to partner cafe after trading", "PUT", "/v1/stores/" + tourStore, `{"partner":"cafe"}`, "", "", 409, protocol.CodeConflict},
		{"`PUT /v1/stores/nope/terminals/t1` (store not registered)", "PUT", "/v1/stores/nope/terminals/t1", ``, "", "", 404, protocol.CodeUnknownStore},
		{"`PUT /v1/stores/tour-store/terminals/t%231`", "PUT", "/v1/stores/" + tourStore + "/terminals/t%231", ``, "", "", 400, inv},
		{"`PUT /v1/stores/tour-store/terminals/t2`: a body with a field", "PUT", "/v1/stores/" + tourStore + "/terminals/t2", `{"name":"x"}`, "", "", 400, m},

		// Rules and campaigns.
		{"`POST /v1/partners/pharmacy/rules`: per `0`", "POST", "/v1/partners/pharmacy/rules", rules(`,"per":0`), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/rules`: points `-1`", "POST", "/v1/partners/pharmacy/rules", rules(`,"points":-1`), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/rules`: rounding `sideways`", "POST", "/v1/partners/pharmacy/rules", rules(`,"rounding":"sideways"`), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/rules`: a category multiplier `x2`", "POST", "/v1/partners/pharmacy/rules", rules(`,"categories":{"beauty":"x2"}`), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/rules`: currency `USD`", "POST", "/v1/partners/pharmacy/rules", `{"effective_from":"2026-01-01T00:00:00Z","currency":"USD","points":1,"per":100}`, "", "", 400, protocol.CodeCurrencyMismatch},
		{"`POST /v1/partners/pharmacy/rules`: effective_from `tomorrow`", "POST", "/v1/partners/pharmacy/rules", `{"effective_from":"tomorrow","currency":"EUR","points":1,"per":100}`, "", "", 400, m},
		{"`POST /v1/partners/pharmacy/rules`: the body names partner cafe", "POST", "/v1/partners/pharmacy/rules", rules(`,"partner":"cafe"`), "", "", 400, m},
		{"`POST /v1/partners/nope/rules` (not registered)", "POST", "/v1/partners/nope/rules", rules(``), "", "", 404, protocol.CodeUnknownPartner},
		{"`POST /v1/partners/pharmacy/rules`: body over 512 KiB", "POST", "/v1/partners/pharmacy/rules", big(httpapi.MaxRulesBody), "", "", 413, protocol.CodeTooLarge},
		{"`POST /v1/partners/pharmacy/campaigns`: to before from", "POST", "/v1/partners/pharmacy/campaigns", `{"id":"c1","from":"2030-01-02T00:00:00Z","to":"2030-01-01T00:00:00Z","bonus":5}`, "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/campaigns`: neither multiplier nor bonus", "POST", "/v1/partners/pharmacy/campaigns", campaign(``), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/campaigns`: bonus `-5`", "POST", "/v1/partners/pharmacy/campaigns", campaign(`,"bonus":-5`), "", "", 400, protocol.CodeInvalidRules},
		{"`POST /v1/partners/pharmacy/campaigns`: id `c 1`", "POST", "/v1/partners/pharmacy/campaigns", `{"id":"c 1","from":"2030-01-01T00:00:00Z","to":"2030-01-02T00:00:00Z","bonus":5}`, "", "", 400, inv},
		{"`POST /v1/partners/pharmacy/campaigns`: bonus as a string", "POST", "/v1/partners/pharmacy/campaigns", campaign(`,"bonus":"5"`), "", "", 400, m},
		{"`POST /v1/partners/cafe/campaigns` (cafe has no rules)", "POST", "/v1/partners/cafe/campaigns", campaign(`,"bonus":5`), "", "", 409, protocol.CodeConflict},

		// Seeds.
		{"`POST /v1/seed`: YAML that does not parse", "POST", "/v1/seed", "coalition:\n  currency: [EUR\n", "", "", 400, m},
		{"`POST /v1/seed`: unknown key `nmae` on line 5", "POST", "/v1/seed", "coalition:\n  currency: EUR\npartners:\n  - id: p1\n    nmae: x\n", "", "", 400, m},
		{"`POST /v1/seed`: a partner id `p 1`", "POST", "/v1/seed", "coalition:\n  currency: EUR\n  point_value: 0.01\npartners:\n  - id: p 1\n", "", "", 400, inv},
		{"`POST /v1/seed`: expiry_months `many`", "POST", "/v1/seed", "coalition:\n  currency: EUR\n  expiry_months: many\n", "", "", 400, m},
		{"`POST /v1/seed`: empty body", "POST", "/v1/seed", "", "", "", 400, m},
		{"`POST /v1/seed`: body over 1 MiB", "POST", "/v1/seed", "coalition:\n  name: " + strings.Repeat("x", 1<<20) + "\n", "", "", 413, protocol.CodeTooLarge},

		// API tokens.
		{"`POST /v1/api-tokens`: role `admin`", "POST", "/v1/api-tokens", `{"role":"admin"}`, "", "", 400, m},
		{"`POST /v1/api-tokens`: role partner without partner", "POST", "/v1/api-tokens", `{"role":"partner"}`, "", "", 400, missing},
		{"`POST /v1/api-tokens`: role operator with a partner", "POST", "/v1/api-tokens", `{"role":"operator","partner":"pharmacy"}`, "", "", 400, m},
		{"`POST /v1/api-tokens`: partner `nope` (not registered)", "POST", "/v1/api-tokens", `{"role":"partner","partner":"nope"}`, "", "", 404, protocol.CodeUnknownPartner},
		{"`POST /v1/api-tokens`: unknown field `scope`", "POST", "/v1/api-tokens", `{"role":"read-only","scope":"all"}`, "", "", 400, m},
		{"`POST /v1/api-tokens`: empty body", "POST", "/v1/api-tokens", ``, "", "", 400, m},
		{"`POST /v1/api-tokens/nope/revoke` (no such token)", "POST", "/v1/api-tokens/nope/revoke", ``, "", "", 404, protocol.CodeNotFound},
		{"`POST /v1/api-tokens/a+b/revoke`", "POST", "/v1/api-tokens/a+b/revoke", ``, "", "", 400, inv},

		// Enrollment.
		{"`POST /v1/enroll`: token `TSE1.x`", "POST", "/v1/enroll", enroll("TSE1.x", pubKey), "-", "", 400, m},
		{"`POST /v1/enroll`: an enrollment token the hub never issued", "POST", "/v1/enroll", enroll(unknownEnroll, pubKey), "-", "", 403, protocol.CodeEnrollmentUnknown},
		{"`POST /v1/enroll`: public_key not base64", "POST", "/v1/enroll", enroll(unknownEnroll, "not base64!"), "-", "", 400, m},
		{"`POST /v1/enroll`: empty body", "POST", "/v1/enroll", ``, "-", "", 400, m},
		{"`POST /v1/enroll`: unknown field `store`", "POST", "/v1/enroll", `{"token":"` + unknownEnroll + `","public_key":"` + pubKey + `","store":"s1"}`, "-", "", 400, m},
		{"`POST /v1/enroll`: body over 4 KiB", "POST", "/v1/enroll", enroll(strings.Repeat("T", httpapi.MaxEnrollBody), pubKey), "-", "", 413, protocol.CodeTooLarge},
		{"`POST /v1/stores/tour-store/terminals/till-1/enrollment-token`: expires_in `soon`", "POST", "/v1/stores/" + tourStore + "/terminals/" + tourTill + "/enrollment-token", `{"expires_in":"soon"}`, "", "", 400, m},
		{"`POST /v1/stores/tour-store/terminals/till-1/enrollment-token`: expires_in `-1h`", "POST", "/v1/stores/" + tourStore + "/terminals/" + tourTill + "/enrollment-token", `{"expires_in":"-1h"}`, "", "", 400, m},
		{"`POST /v1/stores/tour-store/terminals/till-1/enrollment-token`: expires_in `100000h`", "POST", "/v1/stores/" + tourStore + "/terminals/" + tourTill + "/enrollment-token", `{"expires_in":"100000h"}`, "", "", 400, m},
		{"`POST /v1/stores/nope/terminals/t1/enrollment-token` (not registered)", "POST", "/v1/stores/nope/terminals/t1/enrollment-token", ``, "", "", 404, protocol.CodeNotFound},
		{"`POST /v1/stores/tour-store/terminals/t9/revoke` (no such terminal)", "POST", "/v1/stores/" + tourStore + "/terminals/t9/revoke", ``, "", "", 404, protocol.CodeNotFound},

		// Periods, expiry, member tokens.
		{"`POST /v1/periods`: no to", "POST", "/v1/periods", `{"from":"2026-01-01"}`, "", "", 400, missing},
		{"`POST /v1/periods`: from `2026-13-01`", "POST", "/v1/periods", `{"from":"2026-13-01","to":"2026-12-01"}`, "", "", 400, protocol.CodeInvalidTime},
		{"`POST /v1/periods`: from `1999-01-01`", "POST", "/v1/periods", `{"from":"1999-01-01","to":"1999-02-01"}`, "", "", 400, protocol.CodeInvalidTime},
		{"`POST /v1/periods`: to before from", "POST", "/v1/periods", `{"from":"2026-02-01","to":"2026-01-01"}`, "", "", 400, protocol.CodeInvalidTime},
		{"`POST /v1/periods`: a period that has not ended (to 2099-01-01)", "POST", "/v1/periods", `{"from":"2026-01-01","to":"2099-01-01"}`, "", "", 400, protocol.CodeInvalidTime},
		{"`POST /v1/periods`: from as a number", "POST", "/v1/periods", `{"from":20260101,"to":"2026-02-01"}`, "", "", 400, m},
		{"`POST /v1/expiry`: as_of `2999-01-01T00:00:00Z` (the future)", "POST", "/v1/expiry", `{"as_of":"2999-01-01T00:00:00Z"}`, "", "", 400, protocol.CodeInvalidTime},
		{"`POST /v1/expiry`: as_of `yesterday`", "POST", "/v1/expiry", `{"as_of":"yesterday"}`, "", "", 400, m},
		{"`POST /v1/members/M1001/token?ttl=1h`", "POST", "/v1/members/" + tourMember + "/token?ttl=1h", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`POST /v1/members/M1001/token?ttl=5s`", "POST", "/v1/members/" + tourMember + "/token?ttl=5s", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`POST /v1/members/M1001/token?ttl=soon`", "POST", "/v1/members/" + tourMember + "/token?ttl=soon", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`POST /v1/members/M%231/token`", "POST", "/v1/members/M%231/token", ``, "", "", 400, inv},
		{"`POST /v1/members/M1001/token`: a body with a field", "POST", "/v1/members/" + tourMember + "/token", `{"ttl":"2m"}`, "", "", 400, m},

		// Query parameters and paths of the reads.
		{"`GET /v1/settlement` without from", "GET", "/v1/settlement?to=2026-02-01", ``, "", "", 400, missing},
		{"`GET /v1/settlement?from=2026-02-30`", "GET", "/v1/settlement?from=2026-02-30&to=2026-03-01", ``, "", "", 400, protocol.CodeInvalidTime},
		{"`GET /v1/settlement`: to before from", "GET", "/v1/settlement?from=2026-03-01&to=2026-02-01", ``, "", "", 400, protocol.CodeInvalidTime},
		{"`GET /v1/settlement?format=xml`", "GET", "/v1/settlement?from=2026-01-01&to=2026-02-01&format=xml", ``, "", "", 400, m},
		{"`GET /v1/members/M1001/statement?limit=0`", "GET", "/v1/members/" + tourMember + "/statement?limit=0", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`GET /v1/members/M1001/statement?limit=1001`", "GET", "/v1/members/" + tourMember + "/statement?limit=1001", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`GET /v1/members/M1001/statement?limit=ten`", "GET", "/v1/members/" + tourMember + "/statement?limit=ten", ``, "", "", 400, httpapi.CodeBadRequest},
		{"`GET /v1/members/M9999/statement` (no such member)", "GET", "/v1/members/M9999/statement", ``, "", "", 404, protocol.CodeUnknownMember},
		{"`GET /v1/members/M%201`", "GET", "/v1/members/M%201", ``, "", "", 400, inv},
		{"`GET /v1/members/<65 characters>/balance`", "GET", "/v1/members/" + long + "/balance", ``, "", "", 400, inv},
		{"`GET /v1/partners/a+b/rules`", "GET", "/v1/partners/a+b/rules", ``, "", "", 400, inv},
		{"`GET /v1/points` (no such route)", "GET", "/v1/points", ``, "", "", 404, httpx.CodeNotFound},
		{"`DELETE /v1/partners`", "DELETE", "/v1/partners", ``, "", "", 405, httpx.CodeMethodNotAllowed},
		{"`POST /v1/verify`", "POST", "/v1/verify", ``, "", "", 405, httpx.CodeMethodNotAllowed},

		// Tokens and roles.
		{"`GET /v1/partners` without a token", "GET", "/v1/partners", ``, "-", "", 401, protocol.CodeUnauthorized},
		{"`GET /v1/partners`: `Bearer TSA1.x`", "GET", "/v1/partners", ``, "", "Bearer TSA1.x", 401, protocol.CodeUnauthorized},
		{"`GET /v1/partners`: the operator token as Basic", "GET", "/v1/partners", ``, "", "Basic " + tr.tokens["operator"], 401, protocol.CodeUnauthorized},
		{"`GET /v1/partners`: a token the hub never issued", "GET", "/v1/partners", ``, "", "Bearer " + unknownAPI, 401, protocol.CodeUnauthorized},
		{"`GET /v1/partners`: a revoked token", "GET", "/v1/partners", ``, "revoked", "", 401, protocol.CodeUnauthorized},
		{"`GET /v1/partners`: the operator token with its secret changed", "GET", "/v1/partners", ``, "", "Bearer " + tamper(tr.tokens["operator"]), 401, protocol.CodeUnauthorized},
		{"`GET /v1/points` without a token", "GET", "/v1/points", ``, "-", "", 401, protocol.CodeUnauthorized},
		{"`PUT /v1/coalition` with a read-only token", "PUT", "/v1/coalition", `{"currency":"EUR","point_value":"0.02"}`, "read-only", "", 403, protocol.CodeForbidden},
		{"`POST /v1/api-tokens` with a read-only token", "POST", "/v1/api-tokens", `{"role":"operator"}`, "read-only", "", 403, protocol.CodeForbidden},
		{"`GET /v1/api-tokens` with a read-only token", "GET", "/v1/api-tokens", ``, "read-only", "", 403, protocol.CodeForbidden},
		{"`GET /v1/members` with a partner token", "GET", "/v1/members", ``, "partner", "", 403, protocol.CodeForbidden},
		{"`GET /v1/partners/cafe/rules` with pharmacy's partner token", "GET", "/v1/partners/cafe/rules", ``, "partner", "", 403, protocol.CodeForbidden},
		{"`PUT /v1/stores/s9` with a partner token", "PUT", "/v1/stores/s9", `{"partner":"pharmacy"}`, "partner", "", 403, protocol.CodeForbidden},
		{"`POST /v1/members/M1001/token` with a read-only token", "POST", "/v1/members/" + tourMember + "/token", ``, "read-only", "", 403, protocol.CodeForbidden},
	}
	tr.replace = append(tr.replace, unknownAPI, "<unknown token>", tamper(tr.tokens["operator"]), "<tampered token>")
	for _, c := range cases {
		var h [][2]string
		if c.body != "" {
			h = append(h, [2]string{"Content-Type", "application/json"})
		}
		switch {
		case c.auth != "":
			h = append(h, [2]string{"Authorization", c.auth})
		case c.token == "-":
		case c.token == "":
			h = append(h, [2]string{"Authorization", "Bearer " + tr.tokens["operator"]})
		default:
			h = append(h, [2]string{"Authorization", "Bearer " + tr.tokens[c.token]})
		}
		var msg string
		api0, enr0 := tr.refusals()
		tr.unchanged("hub API "+c.input, func() {
			r := send(t, c.method, "http://"+tr.e.httpAddr+c.path, c.body, h)
			msg = checkHTTPError(t, "hub API "+c.input, r, c.status, c.code)
		})
		api1, enr1 := tr.refusals()
		wantAPI, wantEnr := int64(0), int64(0)
		switch {
		case c.code == protocol.CodeUnauthorized || c.code == protocol.CodeForbidden:
			wantAPI = 1
		case c.path == "/v1/enroll":
			wantEnr = 1
		}
		if api1-api0 != wantAPI || enr1-enr0 != wantEnr {
			t.Errorf("hub API %s: counted %d api_refused and %d enrollments_refused, want %d and %d", c.input, api1-api0, enr1-enr0, wantAPI, wantEnr)
		}
		tr.record(tourRow{Surface: "hub API", Input: c.input, Answer: strconv.Itoa(c.status), Code: string(c.code), Message: msg})
	}
}

// refusals reads the hub's refusal counters: requests refused for their
// API token, and enrollments refused.
func (tr *tour) refusals() (api, enroll int64) {
	var h struct {
		API    int64 `json:"api_refused"`
		Enroll int64 `json:"enrollments_refused"`
	}
	hubGet(tr.t, tr.e, "/v1/health", &h)
	return h.API, h.Enroll
}

// tamper returns tok with the first character of its secret changed.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return fmt.Sprintf("%s%c%s", tok[:i], c, tok[i+1:])
}
