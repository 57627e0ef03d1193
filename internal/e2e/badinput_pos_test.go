//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/protocol"
)

// posCase is one bad request to the till's POS API.
type posCase struct {
	input        string // for the table
	method, path string
	body         string
	// header is sent besides Content-Type: application/json and the
	// shared secret; auth, when set, replaces the secret ("-": none).
	header [][2]string
	auth   string
	ctype  string // replaces application/json when set
	status int
	code   protocol.Code
}

// posAPI throws bad requests at the till's POS API: each is refused with
// its status and code, and the till, its outbox and the hub are as before.
func (tr *tour) posAPI() {
	t := tr.t
	earn := func(fields string) string { return `{"member":"` + tourMember + `",` + fields + `}` }
	validEarn := earn(`"amount":1000,"currency":"EUR"`)
	member := func(m string) string {
		b, _ := json.Marshal(map[string]any{"member": m, "amount": 1000, "currency": "EUR"})
		return string(b)
	}
	burn := func(fields string) string { return `{"member":"` + tourMember + `",` + fields + `}` }
	reverse := func(fields string) string { return `{"original":"` + tr.earnTx + `"` + fields + `}` }
	lines := func(n int) string {
		var ls []string
		for i := range n {
			ls = append(ls, fmt.Sprintf(`{"sku":"S%d","amount":10}`, i))
		}
		return earn(`"amount":` + strconv.Itoa(10*n) + `,"currency":"EUR","lines":[` + strings.Join(ls, ",") + `]`)
	}
	long := strings.Repeat("m", protocol.MaxIDLen+1)
	key := func(k string) [][2]string { return [][2]string{{"Idempotency-Key", k}} }
	bad := posapi.CodeBadRequest

	cases := []posCase{
		// The body as JSON.
		{"`POST /v1/earn`: JSON cut short", "POST", "/v1/earn", `{"member":"M1001","amount":`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: a form, not JSON", "POST", "/v1/earn", `member=M1001&amount=1000`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: a JSON array", "POST", "/v1/earn", `[]`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: `null`", "POST", "/v1/earn", `null`, nil, "", "", 400, protocol.CodeMissingField},
		{"`POST /v1/earn`: empty body", "POST", "/v1/earn", ``, nil, "", "", 400, bad},
		{"`POST /v1/earn`: a second JSON value after the body", "POST", "/v1/earn", validEarn + `{}`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: a stray `}` after the body", "POST", "/v1/earn", validEarn + `}`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: unknown field `pointz`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","pointz":5`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: amount as a string", "POST", "/v1/earn", earn(`"amount":"1000","currency":"EUR"`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: amount `10.5`", "POST", "/v1/earn", earn(`"amount":10.5,"currency":"EUR"`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: amount `1e30`", "POST", "/v1/earn", earn(`"amount":1e30,"currency":"EUR"`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: amount past int64", "POST", "/v1/earn", earn(`"amount":99999999999999999999,"currency":"EUR"`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: member as a number", "POST", "/v1/earn", `{"member":1001,"amount":1000,"currency":"EUR"}`, nil, "", "", 400, bad},
		{"`POST /v1/earn`: lines as an object", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","lines":{"sku":"A"}`), nil, "", "", 400, bad},
		{"`POST /v1/earn`: body over 16 KiB", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","receipt":"` + strings.Repeat("r", posapi.MaxBodyBytes) + `"`), nil, "", "", 413, protocol.CodeTooLarge},
		{"`POST /v1/earn`: Content-Type text/plain", "POST", "/v1/earn", validEarn, nil, "", "text/plain", 415, bad},

		// Member ids.
		{"`POST /v1/earn`: member empty", "POST", "/v1/earn", member(""), nil, "", "", 400, protocol.CodeMissingField},
		{"`POST /v1/earn`: member `M/1`", "POST", "/v1/earn", member("M/1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member `M+1`", "POST", "/v1/earn", member("M+1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member `M#1`", "POST", "/v1/earn", member("M#1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member with a space", "POST", "/v1/earn", member("M 1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member with a NUL", "POST", "/v1/earn", member("M\x001"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member with a line break", "POST", "/v1/earn", member("M\n1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member not ASCII (`Mé1`)", "POST", "/v1/earn", member("Mé1"), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/earn`: member of 65 characters", "POST", "/v1/earn", member(long), nil, "", "", 400, protocol.CodeInvalidID},

		// Amounts, currencies, lines, receipts.
		{"`POST /v1/earn`: amount `-100`", "POST", "/v1/earn", earn(`"amount":-100,"currency":"EUR"`), nil, "", "", 400, protocol.CodeInvalidAmount},
		{"`POST /v1/earn`: amount `0`", "POST", "/v1/earn", earn(`"amount":0,"currency":"EUR"`), nil, "", "", 400, protocol.CodeInvalidAmount},
		{"`POST /v1/earn`: amount over 10^12", "POST", "/v1/earn", earn(`"amount":1000000000001,"currency":"EUR"`), nil, "", "", 400, protocol.CodeInvalidAmount},
		{"`POST /v1/earn`: currency `eur`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"eur"`), nil, "", "", 400, protocol.CodeInvalidCurrency},
		{"`POST /v1/earn`: currency `EURO`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EURO"`), nil, "", "", 400, protocol.CodeInvalidCurrency},
		{"`POST /v1/earn`: currency `€`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"€"`), nil, "", "", 400, protocol.CodeInvalidCurrency},
		{"`POST /v1/earn`: currency `USD` (the coalition's is EUR)", "POST", "/v1/earn", earn(`"amount":1000,"currency":"USD"`), nil, "", "", 400, protocol.CodeCurrencyMismatch},
		{"`POST /v1/earn`: lines adding up to 900 of 1000", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","lines":[{"sku":"A","amount":600},{"sku":"B","amount":300}]`), nil, "", "", 400, protocol.CodeInvalidLines},
		{"`POST /v1/earn`: a line of `-100`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","lines":[{"sku":"A","amount":1100},{"sku":"B","amount":-100}]`), nil, "", "", 400, protocol.CodeInvalidLines},
		{"`POST /v1/earn`: a line's sku `A B`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","lines":[{"sku":"A B","amount":1000}]`), nil, "", "", 400, protocol.CodeInvalidLines},
		{"`POST /v1/earn`: 101 lines", "POST", "/v1/earn", lines(protocol.MaxLines + 1), nil, "", "", 400, protocol.CodeInvalidLines},
		{"`POST /v1/earn`: receipt `R 1`", "POST", "/v1/earn", earn(`"amount":1000,"currency":"EUR","receipt":"R 1"`), nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/burn`: points `0`", "POST", "/v1/burn", burn(`"points":0`), nil, "", "", 400, protocol.CodeInvalidPoints},
		{"`POST /v1/burn`: points `-5`", "POST", "/v1/burn", burn(`"points":-5`), nil, "", "", 400, protocol.CodeInvalidPoints},
		{"`POST /v1/burn`: points over 10^9", "POST", "/v1/burn", burn(`"points":1000000001`), nil, "", "", 400, protocol.CodeInvalidPoints},
		{"`POST /v1/burn`: points `1.5`", "POST", "/v1/burn", burn(`"points":1.5`), nil, "", "", 400, bad},
		{"`POST /v1/burn`: an amount without currency", "POST", "/v1/burn", burn(`"points":5,"amount":500`), nil, "", "", 400, protocol.CodeInvalidCurrency},
		{"`POST /v1/burn`: an amount in USD (the coalition's is EUR)", "POST", "/v1/burn", burn(`"points":5,"amount":500,"currency":"USD"`), nil, "", "", 400, protocol.CodeCurrencyMismatch},
		{"`POST /v1/burn`: member `M#1`", "POST", "/v1/burn", `{"member":"M#1","points":5}`, nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/burn`: member missing", "POST", "/v1/burn", `{"points":5}`, nil, "", "", 400, protocol.CodeMissingField},
		{"`POST /v1/burn`: unknown field `amout`", "POST", "/v1/burn", burn(`"points":5,"amout":500`), nil, "", "", 400, bad},
		{"`POST /v1/reverse`: original `a+b`", "POST", "/v1/reverse", `{"original":"a+b"}`, nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/reverse`: original missing", "POST", "/v1/reverse", `{"points":5}`, nil, "", "", 400, protocol.CodeInvalidID},
		{"`POST /v1/reverse`: points `-1`", "POST", "/v1/reverse", reverse(`,"points":-1`), nil, "", "", 400, protocol.CodeInvalidPoints},
		{"`POST /v1/reverse`: amount `-1`", "POST", "/v1/reverse", reverse(`,"amount":-1,"currency":"EUR"`), nil, "", "", 400, protocol.CodeInvalidAmount},
		{"`POST /v1/reverse`: 51 of the earn's 50 points", "POST", "/v1/reverse", reverse(`,"points":51`), nil, "", "", 400, protocol.CodeOverReversed},
		{"`POST /v1/reverse`: the earn, for another member", "POST", "/v1/reverse", reverse(`,"member":"M2002","points":5`), nil, "", "", 400, protocol.CodeOriginalMismatch},
		{"`POST /v1/reverse`: an original this till never made, without member", "POST", "/v1/reverse", `{"original":"01J000000000000000000000XX"}`, nil, "", "", 404, protocol.CodeUnknownOriginal},
		{"`POST /v1/reverse`: a return of 60.00 of the 50.00 sale", "POST", "/v1/reverse", reverse(`,"amount":6000,"currency":"EUR"`), nil, "", "", 400, protocol.CodeOverReversed},
		{"`POST /v1/reverse`: a return of 25.00 USD of the 50.00 EUR sale", "POST", "/v1/reverse", reverse(`,"amount":2500,"currency":"USD"`), nil, "", "", 400, protocol.CodeCurrencyMismatch},
		{"`POST /v1/reverse`: unknown field `all`", "POST", "/v1/reverse", reverse(`,"all":true`), nil, "", "", 400, bad},

		// The Idempotency-Key header.
		{"`POST /v1/earn`: Idempotency-Key of 129 characters", "POST", "/v1/earn", validEarn, key(strings.Repeat("k", posapi.MaxIdempotencyKeyLen+1)), "", "", 400, bad},
		{"`POST /v1/earn`: Idempotency-Key with a space", "POST", "/v1/earn", validEarn, key("k 1"), "", "", 400, bad},
		{"`POST /v1/burn`: Idempotency-Key with a tab", "POST", "/v1/burn", burn(`"points":5`), key("k\t1"), "", "", 400, bad},
		{"`POST /v1/reverse`: Idempotency-Key not ASCII (`clé`)", "POST", "/v1/reverse", reverse(`,"points":1`), key("clé"), "", "", 400, bad},
		{"`POST /v1/earn`: the setup earn's Idempotency-Key with another amount", "POST", "/v1/earn", earn(`"amount":9000,"currency":"EUR"`), key(tourEarnKey), "", "", 409, posapi.CodeIdempotencyConflict},
		{"`POST /v1/burn`: the setup earn's Idempotency-Key on a burn", "POST", "/v1/burn", burn(`"points":5`), key(tourEarnKey), "", "", 409, posapi.CodeIdempotencyConflict},

		// Methods and paths.
		{"`GET /v1/earn`", "GET", "/v1/earn", "", nil, "", "", 405, posapi.CodeMethodNotAllowed},
		{"`PUT /v1/burn`", "PUT", "/v1/burn", burn(`"points":5`), nil, "", "", 405, posapi.CodeMethodNotAllowed},
		{"`DELETE /v1/reverse`", "DELETE", "/v1/reverse", "", nil, "", "", 405, posapi.CodeMethodNotAllowed},
		{"`POST /v1/health`", "POST", "/v1/health", "{}", nil, "", "", 405, posapi.CodeMethodNotAllowed},
		{"`GET /v1/points` (no such route)", "GET", "/v1/points", "", nil, "", "", 404, posapi.CodeNotFound},
		{"`POST /v2/earn` (no such version)", "POST", "/v2/earn", validEarn, nil, "", "", 404, posapi.CodeNotFound},
		{"`GET /v1/members/balance` (no member)", "GET", "/v1/members/balance", "", nil, "", "", 404, posapi.CodeNotFound},

		// The member in the balance path.
		{"`GET /v1/members/M%2F1/balance`", "GET", "/v1/members/M%2F1/balance", "", nil, "", "", 400, protocol.CodeInvalidID},
		{"`GET /v1/members/M+1/balance`", "GET", "/v1/members/M+1/balance", "", nil, "", "", 400, protocol.CodeInvalidID},
		{"`GET /v1/members/M%00/balance`", "GET", "/v1/members/M%00/balance", "", nil, "", "", 400, protocol.CodeInvalidID},
		{"`GET /v1/members/<65 characters>/balance`", "GET", "/v1/members/" + long + "/balance", "", nil, "", "", 400, protocol.CodeInvalidID},

		// The scans' query.
		{"`GET /v1/scans?after=-1`", "GET", "/v1/scans?after=-1", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?after=abc`", "GET", "/v1/scans?after=abc", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?after=18446744073709551616` (past uint64)", "GET", "/v1/scans?after=18446744073709551616", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?wait=soon`", "GET", "/v1/scans?wait=soon", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?wait=5` (no unit)", "GET", "/v1/scans?wait=5", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?wait=-1s`", "GET", "/v1/scans?wait=-1s", "", nil, "", "", 400, bad},
		{"`GET /v1/scans?wait=61s`", "GET", "/v1/scans?wait=61s", "", nil, "", "", 400, bad},
		{"`GET /v1/scans/stream?after=x`", "GET", "/v1/scans/stream?after=x", "", nil, "", "", 400, bad},
		{"`GET /v1/scans/stream`, Last-Event-ID `abc`", "GET", "/v1/scans/stream", "", [][2]string{{"Last-Event-ID", "abc"}}, "", "", 400, bad},

		// The shared secret.
		{"`POST /v1/earn` without the shared secret", "POST", "/v1/earn", validEarn, nil, "-", "", 401, posapi.CodeUnauthorized},
		{"`POST /v1/earn` with another secret", "POST", "/v1/earn", validEarn, nil, "Bearer not-the-secret-at-all-0000", "", 401, posapi.CodeUnauthorized},
		{"`POST /v1/earn` with the secret, without `Bearer`", "POST", "/v1/earn", validEarn, nil, tourSecret, "", 401, posapi.CodeUnauthorized},
		{"`POST /v1/earn` with the secret and one more character", "POST", "/v1/earn", validEarn, nil, "Bearer " + tourSecret + "x", "", 401, posapi.CodeUnauthorized},
		{"`GET /v1/health` without the shared secret", "GET", "/v1/health", "", nil, "-", "", 401, posapi.CodeUnauthorized},
		{"`GET /metrics` without the shared secret", "GET", "/metrics", "", nil, "-", "", 401, posapi.CodeUnauthorized},
	}
	for _, c := range cases {
		h := [][2]string{{"Content-Type", "application/json"}}
		if c.ctype != "" {
			h[0][1] = c.ctype
		}
		switch c.auth {
		case "":
			h = append(h, [2]string{"Authorization", "Bearer " + tourSecret})
		case "-":
		default:
			h = append(h, [2]string{"Authorization", c.auth})
		}
		h = append(h, c.header...)
		var msg string
		tr.unchanged("POS API "+c.input, func() {
			r := send(t, c.method, tr.till.pos+c.path, c.body, h)
			msg = checkHTTPError(t, "POS API "+c.input, r, c.status, c.code)
		})
		for _, kv := range c.header {
			if kv[0] != "Idempotency-Key" || kv[1] == tourEarnKey {
				continue
			}
			if _, found, err := tr.till.a.Outbox().Idem(kv[1]); err != nil || found {
				t.Errorf("POS API %s: the refused key %q is recorded (%v)", c.input, kv[1], err)
			}
		}
		tr.record(tourRow{Surface: "POS API", Input: c.input, Answer: strconv.Itoa(c.status), Code: string(c.code), Message: msg})
	}
}
