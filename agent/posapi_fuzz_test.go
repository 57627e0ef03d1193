package agent_test

// The POS API's fuzz targets drive posapi.Handler over a real agent: its
// bbolt outbox in a temporary dir, the partner's earn rules from a config
// kept in that outbox, and an offline policy. The agent is never run, so
// it never reaches a hub: earns and reverses are accepted at the till and
// every burn is decided offline, which is all the request paths there are
// short of the hub's verdict. Requests go through httptest, no network.
//
// What each input must get: a well-formed answer (one line of JSON: the
// result, or exactly {"error":{"code","message"}} with a stable code and the
// status that code maps to, never 500 internal); a refused request changes
// nothing in the outbox (its queue, the Idempotency-Key's record); an
// accepted one is in the outbox as answered.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// fuzzMember has a balance from the hub in the till's cache, so burns for
// it can be approved offline; any other member's are declined.
const (
	fuzzMember        = "m1"
	fuzzMemberBalance = int64(1) << 40
)

// posTill is the agent under the POS API fuzz targets.
type posTill struct {
	a *agent.Agent
	h http.Handler
	// asOf is when the hub last told the till fuzzMember's balance.
	asOf time.Time
	// last is the id of the latest earn or approved burn, which a request
	// body names as $TX: a reverse of a transaction the till knows.
	last string
}

// newPOSTill makes the agent once per fuzz target: its outbox holds the
// partner's rules (rulesConfig: a campaign is on at the till's clock) and
// fuzzMember's balance, and its offline policy is wide enough that
// approvals go on for as long as the fuzzer runs.
func newPOSTill(f *testing.F) *posTill {
	dir := f.TempDir()
	clk := clock.NewFake(time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC))
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		f.Fatal(err)
	}
	cfg := rulesConfig(clk.Now().Add(-time.Hour))
	if _, err := ob.SaveConfig(&cfg, false); err != nil {
		f.Fatal(err)
	}
	if err := ob.SaveBalance(fuzzMember, fuzzMemberBalance, clk.Now()); err != nil {
		f.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		f.Fatal(err)
	}
	// New wants the listener Run would serve on; the targets call the handler directly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	a, err := agent.New(agent.Options{DataDir: dir, Broker: "tcp://127.0.0.1:1", Store: store, Terminal: terminal, Partner: partner,
		POSListener: l, Clock: clk, Offline: agent.OfflinePolicy{MemberAllowance: 1 << 50, StoreCap: 1 << 60}})
	if err != nil {
		l.Close()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		l.Close()
		a.Outbox().Close()
	})
	p := &posTill{a: a, h: posapi.Handler(a, posapi.Options{}), asOf: clk.Now()}
	rec := p.serve(httptest.NewRequest(http.MethodPost, "/v1/earn", bytes.NewReader([]byte(`{"member":"m1","amount":2500}`))))
	var res posapi.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); rec.Code != http.StatusOK || err != nil {
		f.Fatalf("first earn: HTTP %d %s", rec.Code, rec.Body)
	}
	p.last = res.TxID
	return p
}

func (p *posTill) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, req)
	return rec
}

// outboxState is what a refused request must leave as it was.
type outboxState struct {
	queued  int64
	idem    outbox.IdemRecord
	hasIdem bool
}

func (p *posTill) state(t *testing.T, key string) outboxState {
	t.Helper()
	var s outboxState
	var err error
	if s.queued, _, err = p.a.Outbox().Stats(); err != nil {
		t.Fatal(err)
	}
	if key != "" {
		if s.idem, s.hasIdem, err = p.a.Outbox().Idem(key); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkAnswer checks that rec is a well-formed POS API answer and returns
// its error code ("" for a 200). wantStatus gives the statuses an error
// code may come with.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, wantStatus func(protocol.Code) []int) protocol.Code {
	t.Helper()
	code := testkit.JSONAnswer(t, rec)
	switch {
	case code == "" && rec.Code != http.StatusOK:
		t.Fatalf("HTTP %d: the POS API answers 200 or an error: %s", rec.Code, rec.Body)
	case code == "":
		return ""
	case code == protocol.CodeInternal || rec.Code == http.StatusInternalServerError:
		t.Fatalf("HTTP %d %s: a request broke the agent: %s", rec.Code, code, rec.Body)
	}
	if want := wantStatus(code); !contains(want, rec.Code) {
		t.Fatalf("HTTP %d for code %s, want one of %v: %s", rec.Code, code, want, rec.Body)
	}
	return code
}

// posStatus is the status a POS API error code comes with (posapi's fail
// and decode).
func posStatus(code protocol.Code) []int {
	switch code {
	case posapi.CodeIdempotencyConflict, posapi.CodeInProgress:
		return []int{http.StatusConflict}
	case protocol.CodeUnknownOriginal:
		return []int{http.StatusNotFound}
	case protocol.CodeOffline, protocol.CodeTimeout:
		return []int{http.StatusServiceUnavailable}
	case protocol.CodeTooLarge:
		return []int{http.StatusRequestEntityTooLarge}
	case posapi.CodeNotFound:
		return []int{http.StatusNotFound}
	case posapi.CodeMethodNotAllowed:
		return []int{http.StatusMethodNotAllowed}
	case posapi.CodeBadRequest:
		return []int{http.StatusBadRequest, http.StatusUnsupportedMediaType}
	}
	return []int{http.StatusBadRequest}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// decodeStrict decodes one line of JSON into v, refusing unknown fields.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("answer %s does not decode into %T: %v", data, v, err)
	}
}

var posWrites = [...]string{"/v1/earn", "/v1/burn", "/v1/reverse"}

// FuzzPOSRequest sends earn, burn and reverse requests (route picks which)
// with any body, Idempotency-Key and Content-Type. A body may name $TX: the
// till's latest earn or approved burn, so reverses can reach transactions
// it knows.
func FuzzPOSRequest(f *testing.F) {
	for _, s := range []struct {
		route      uint8
		key, ctype string
		body       string
	}{
		{0, "", "application/json", `{"member":"m1","amount":1999,"currency":"EUR","receipt":"R-1"}`},
		{0, "sale-1", "", `{"member":"m2","amount":2500,"lines":[{"sku":"SKU-4711","category":"dairy","amount":2000},{"category":"tobacco","amount":500}]}`},
		{0, "sale-1", "", `{"member":"m2","amount":2501}`},
		{0, "", "text/plain", `{"member":"m1","amount":100}`},
		{0, "", "", `{"member":"m1","amount":100,"currency":"USD"}`},
		{0, "", "", `{"member":"m 1","amount":-1}`},
		{0, "", "", `{"member":"m1","amount":100,"extra":1}`},
		{0, "", "", `{"member":"m1","amount":100}}`},
		{1, "burn-1", "", `{"member":"m1","points":25,"amount":25,"currency":"EUR"}`},
		{1, "", "", `{"member":"m9","points":10}`},
		{1, "", "", `{"member":"m1","points":0}`},
		{2, "", "", `{"original":"$TX"}`},
		{2, "ret-1", "", `{"original":"$TX","amount":500,"currency":"EUR"}`},
		{2, "", "", `{"original":"$TX","points":1,"member":"m2"}`},
		{2, "", "", `{"original":"01ZZZZZZZZZZZZZZZZZZZZZZZZ","member":"m3","points":5}`},
		{2, "", "", `{"original":"nope"}`},
		{2, "key with spaces", "", `{"original":"$TX"}`},
		{0, "", "", ``},
		{0, "", "", `[]`},
		{1, "", "", `null`},
	} {
		f.Add(s.route, s.key, s.ctype, []byte(s.body))
	}
	p := newPOSTill(f)
	f.Fuzz(func(t *testing.T, route uint8, key, ctype string, body []byte) {
		fuzzlimit.Check(t)
		path := posWrites[int(route)%len(posWrites)]
		body = bytes.ReplaceAll(body, []byte("$TX"), []byte(p.last))
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		before := p.state(t, key)
		rec := p.serve(req)
		code := checkAnswer(t, rec, posStatus)
		after := p.state(t, key)
		if code != "" {
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("HTTP %d %s changed the outbox: %+v, then %+v", rec.Code, code, before, after)
			}
			return
		}
		var res posapi.Result
		decodeStrict(t, rec.Body.Bytes(), &res)
		if before.hasIdem {
			// A repeat: the first answer again, nothing new queued.
			var first posapi.Result
			if err := json.Unmarshal(before.idem.Response, &first); err != nil || before.idem.Pending {
				t.Fatalf("HTTP 200 for a key whose record is %+v (%v)", before.idem, err)
			}
			if !sameJSON(t, first, res) || after.queued != before.queued {
				t.Fatalf("repeat of key %q answered %s, first answer %s; queued %d, then %d", key, rec.Body, before.idem.Response, before.queued, after.queued)
			}
			return
		}
		p.checkAccepted(t, path, key, body, res, before, after)
	})
}

// checkAccepted checks a new 200 answer against the request and the outbox.
func (p *posTill) checkAccepted(t *testing.T, path, key string, body []byte, res posapi.Result, before, after outboxState) {
	t.Helper()
	var member string
	var points int64 = -1 // the points the request fixed, -1 when it left them to the till
	switch path {
	case "/v1/earn":
		var r posapi.EarnRequest
		mustUnmarshal(t, body, &r)
		member = r.Member
		if res.Status != "accepted" || res.Kind != string(protocol.KindEarn) {
			t.Fatalf("earn answered %+v", res)
		}
		if res.Quote != nil && res.Points != res.Base+res.Bonus {
			t.Fatalf("earn quoted %d points = base %d + bonus %d", res.Points, res.Base, res.Bonus)
		}
	case "/v1/burn":
		var r posapi.BurnRequest
		mustUnmarshal(t, body, &r)
		member, points = r.Member, r.Points
		if res.Kind != string(protocol.KindBurn) {
			t.Fatalf("burn answered %+v", res)
		}
		switch {
		case res.Status == "declined" && res.Code != "" && res.TxID == "" && !res.Offline:
			// Declined offline: nothing written, not even the key.
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("a burn declined %s changed the outbox: %+v, then %+v", res.Code, before, after)
			}
			if res.Member != member || res.Points != points {
				t.Fatalf("burn of %d for %q declined as %+v", points, member, res)
			}
			return
		case res.Status == "approved" && res.Offline && res.Code == "" && res.Balance != nil:
		default:
			t.Fatalf("burn answered %+v; offline, it is declined with a code or approved offline with a balance", res)
		}
	case "/v1/reverse":
		var r posapi.ReverseRequest
		mustUnmarshal(t, body, &r)
		member = r.Member
		if r.Points != 0 {
			points = r.Points
		}
		if res.Status != "accepted" || res.Kind != string(protocol.KindReverse) || res.Points <= 0 {
			t.Fatalf("reverse answered %+v", res)
		}
	}
	if member != "" && res.Member != member || points >= 0 && res.Points != points {
		t.Fatalf("%s for %q of %d points answered %+v", path, member, points, res)
	}
	if !protocol.ValidID(res.TxID) || !protocol.ValidID(res.Member) || res.Points < 0 {
		t.Fatalf("%s answered %+v", path, res)
	}
	if after.queued != before.queued+1 {
		t.Fatalf("%s accepted as %s, queued %d, then %d", path, res.TxID, before.queued, after.queued)
	}
	l, found, err := p.a.Outbox().Local(res.TxID)
	if err != nil || !found || string(l.Kind) != res.Kind || l.Member != res.Member || l.Points != res.Points {
		t.Fatalf("%s answered %+v; the outbox has %+v, %v (%v)", path, res, l, found, err)
	}
	if key != "" && (!after.hasIdem || after.idem.TxID != res.TxID || after.idem.Pending) {
		t.Fatalf("%s with key %q answered %s; the key's record is %+v, %v", path, key, res.TxID, after.idem, after.hasIdem)
	}
	if res.Kind != string(protocol.KindReverse) {
		p.last = res.TxID
	}
}

func mustUnmarshal(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("accepted a body that does not decode: %v: %q", err, body)
	}
}

// sameJSON reports whether a and b encode alike: time zones and empty
// slices that JSON does not keep apart compare equal.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// FuzzPOSScans sends GET /v1/scans and GET /v1/scans/stream with any query
// (after, wait) and Last-Event-ID. The request's context is already done,
// as when the POS has gone: a long poll answers at once with what there
// is, a stream ends after its first line. A cursor or wait the API cannot
// read is refused with bad_request; anything else gets the (empty) list.
func FuzzPOSScans(f *testing.F) {
	for _, s := range []struct {
		stream      bool
		query, last string
	}{
		{false, "", ""},
		{false, "after=0&wait=10s", ""},
		{false, "after=18446744073709551615&wait=60s", ""},
		{false, "after=18446744073709551616", ""},
		{false, "wait=61s", ""},
		{false, "wait=-1ns", ""},
		{false, "wait=1h&after=3", ""},
		{false, "after=-1", ""},
		{false, "after=%31%32&wait=%3", ""},
		{false, "after=1&after=x", ""},
		{false, "wait=1e3s", ""},
		{true, "", ""},
		{true, "after=7", "9"},
		{true, "", "x"},
		{true, "after=x", "3"},
	} {
		f.Add(s.stream, s.query, s.last)
	}
	p := newPOSTill(f)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, stream bool, query, lastEventID string) {
		fuzzlimit.Check(t)
		path := "/v1/scans"
		if stream {
			path += "/stream"
		}
		req := httptest.NewRequestWithContext(gone, http.MethodGet, path, nil)
		req.URL.RawQuery = query
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		q := req.URL.Query()
		wantOK := validCursor(q.Get("after"))
		if stream {
			if lastEventID != "" {
				wantOK = wantOK && validCursor(lastEventID)
			}
		} else {
			wantOK = wantOK && validWait(q.Get("wait"))
		}
		rec := p.serve(req)
		if wantOK && stream {
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Body.String() != "retry: 1000\n\n" {
				t.Fatalf("stream ?%s (Last-Event-ID %q): HTTP %d %q %q", query, lastEventID, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			return
		}
		code := checkAnswer(t, rec, posStatus)
		switch {
		case wantOK && code != "":
			t.Fatalf("%s?%s refused: HTTP %d %s", path, query, rec.Code, rec.Body)
		case !wantOK && (rec.Code != http.StatusBadRequest || code != posapi.CodeBadRequest):
			t.Fatalf("%s?%s (Last-Event-ID %q): HTTP %d %s, want 400 bad_request", path, query, lastEventID, rec.Code, rec.Body)
		case wantOK:
			var ans struct {
				Scans []posapi.ScanEvent `json:"scans"`
			}
			decodeStrict(t, rec.Body.Bytes(), &ans)
			if ans.Scans == nil || len(ans.Scans) != 0 {
				t.Fatalf("scans ?%s: %s, want an empty list (no scanner)", query, rec.Body)
			}
		}
	})
}

// validCursor and validWait are the API's documented rules for a scan
// cursor (a whole number, or nothing) and a long poll's wait (a duration
// from 0s to 60s, or nothing).
func validCursor(s string) bool {
	if s == "" {
		return true
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func validWait(s string) bool {
	if s == "" {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d >= 0 && d <= time.Minute
}

// pathSegment escapes s as one path segment, "." and ".." too (as %2E),
// which url.PathEscape leaves as they are: the request then reaches the
// route, which refuses them (they are not ids), instead of naming another
// path.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// FuzzPOSBalance asks GET /v1/members/{member}/balance for any member, the
// path segment escaped as a POS must (pathSegment). A member id is answered
// from the till's cache (the agent is offline) with what its outbox holds
// for the member; anything else is refused invalid_id, but for an empty
// segment and a lone "/", which name no endpoint.
func FuzzPOSBalance(f *testing.F) {
	for _, m := range []string{fuzzMember, "m2", "M-2.b_3", "a b", "m1/balance", "..", ".", "", "m%31", "\x00", "ünï", string(bytes.Repeat([]byte("x"), 65))} {
		f.Add(m)
	}
	p := newPOSTill(f)
	f.Fuzz(func(t *testing.T, member string) {
		fuzzlimit.Check(t)
		req := httptest.NewRequest(http.MethodGet, "/v1/members/"+pathSegment(member)+"/balance", nil)
		rec := p.serve(req)
		code := checkAnswer(t, rec, posStatus)
		if member == "" || member == "/" {
			// "/v1/members//balance" names no endpoint, and neither does
			// "/v1/members/%2F/balance": http.ServeMux takes a segment that
			// is one escaped slash for a trailing slash, which no
			// single-segment wildcard matches.
			if rec.Code != http.StatusNotFound || code != httpx.CodeNotFound {
				t.Fatalf("balance of no member: HTTP %d %s, want 404 not_found", rec.Code, rec.Body)
			}
			return
		}
		if !protocol.ValidID(member) {
			if rec.Code != http.StatusBadRequest || code != protocol.CodeInvalidID {
				t.Fatalf("balance of %q: HTTP %d %s, want 400 invalid_id", member, rec.Code, rec.Body)
			}
			return
		}
		if code != "" {
			t.Fatalf("balance of %q: HTTP %d %s", member, rec.Code, rec.Body)
		}
		var b posapi.Balance
		decodeStrict(t, rec.Body.Bytes(), &b)
		earned, burned, err := p.a.Outbox().PendingPoints(member, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		want := posapi.Balance{Member: member, Source: "cache", UnsyncedEarned: earned, UnsyncedBurned: burned}
		if member == fuzzMember {
			want.Known, want.Points, want.AsOf = true, fuzzMemberBalance, p.asOf
		}
		if !reflect.DeepEqual(b, want) {
			t.Fatalf("balance of %q: %+v, want %+v", member, b, want)
		}
	})
}
