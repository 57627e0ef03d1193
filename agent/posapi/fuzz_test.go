package posapi_test

// FuzzHandler holds the API's own part to its contract, over a Service
// that records what reaches it (the agent's fuzz targets drive the same
// handler over a real agent and its outbox): a request reaches the
// Service only with the shared secret, a valid Idempotency-Key, a JSON
// Content-Type (or none) and a body that is one JSON object of the
// request's fields within MaxBodyBytes — and then exactly once, with that
// body decoded and the key as sent. Anything else is answered in the error
// body with its status, and the Service never hears of it.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// call is one Service call the recorder saw.
type call struct {
	method    string
	key, hash string
	req       any
}

// recorder is a Service that accepts everything and remembers the calls.
type recorder struct{ calls []call }

func (r *recorder) Earn(_ context.Context, key, hash string, req posapi.EarnRequest) (posapi.Result, error) {
	r.calls = append(r.calls, call{"earn", key, hash, req})
	return posapi.Result{Status: "accepted", TxID: "tx1", Kind: "earn", Member: req.Member}, nil
}

func (r *recorder) Burn(_ context.Context, key, hash string, req posapi.BurnRequest) (posapi.Result, error) {
	r.calls = append(r.calls, call{"burn", key, hash, req})
	return posapi.Result{Status: "approved", TxID: "tx2", Kind: "burn", Member: req.Member, Points: req.Points}, nil
}

func (r *recorder) Reverse(_ context.Context, key, hash string, req posapi.ReverseRequest) (posapi.Result, error) {
	r.calls = append(r.calls, call{"reverse", key, hash, req})
	return posapi.Result{Status: "accepted", TxID: "tx3", Kind: "reverse", Member: req.Member}, nil
}

func (r *recorder) Balance(context.Context, string) (posapi.Balance, error) {
	return posapi.Balance{}, nil
}

func (r *recorder) Health(context.Context) posapi.Health { return posapi.Health{} }

func (r *recorder) Scans(context.Context, uint64, time.Duration) []posapi.ScanEvent { return nil }

var fuzzWrites = [...]struct {
	path, method string
	req          func() any // a new request of the route's type
}{
	{"/v1/earn", "earn", func() any { return new(posapi.EarnRequest) }},
	{"/v1/burn", "burn", func() any { return new(posapi.BurnRequest) }},
	{"/v1/reverse", "reverse", func() any { return new(posapi.ReverseRequest) }},
}

const fuzzSecret = "a-shared-secret-of-the-pos"

// FuzzHandler sends earn, burn and reverse requests (route picks which)
// with any Authorization, Idempotency-Key, Content-Type and body.
func FuzzHandler(f *testing.F) {
	ok := "Bearer " + fuzzSecret
	for _, s := range []struct {
		route                  uint8
		auth, key, ctype, body string
	}{
		{0, ok, "", "application/json", `{"member":"m1","amount":1999,"currency":"EUR","lines":[{"sku":"A","amount":1999}]}`},
		{1, ok, "burn-1", "", `{"member":"m1","points":25}`},
		{2, ok, "k", "application/json; charset=utf-8", `{"original":"01J","points":5} ` + "\n"},
		{0, "", "", "", `{"member":"m1","amount":1}`},
		{0, "bearer " + fuzzSecret, "", "", `{"member":"m1","amount":1}`},
		{0, ok + " ", "", "", `{"member":"m1","amount":1}`},
		{0, ok, "a b", "", `{"member":"m1","amount":1}`},
		{0, ok, strings.Repeat("k", 129), "", `{"member":"m1","amount":1}`},
		{0, ok, "", "text/json", `{"member":"m1","amount":1}`},
		{0, ok, "", "", `{"member":"m1","amount":"1"}`},
		{0, ok, "", "", `{"Member":"m1","AMOUNT":1}`},
		{0, ok, "", "", `{"member":"m1","amount":1,"extra":true}`},
		{0, ok, "", "", `{"member":"m1"}{"member":"m2"}`},
		{0, ok, "", "", `{"member":"m1"}]`},
		{0, ok, "", "", `null`},
		{0, ok, "", "", ``},
		{0, ok, "", "", `{"member":"m1","receipt":"` + strings.Repeat("r", posapi.MaxBodyBytes) + `"}`},
	} {
		f.Add(s.route, s.auth, s.key, s.ctype, []byte(s.body))
	}
	rec := &recorder{}
	h := posapi.Handler(rec, posapi.Options{Secret: fuzzSecret})
	f.Fuzz(func(t *testing.T, route uint8, auth, key, ctype string, body []byte) {
		fuzzlimit.Check(t)
		w := fuzzWrites[int(route)%len(fuzzWrites)]
		req := httptest.NewRequest(http.MethodPost, w.path, bytes.NewReader(body))
		for k, v := range map[string]string{"Authorization": auth, "Idempotency-Key": key, "Content-Type": ctype} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec.calls = rec.calls[:0]
		resp := httptest.NewRecorder()
		h.ServeHTTP(resp, req)
		code := answerCode(t, resp)

		// What the API documents, in the order it checks.
		var want protocol.Code
		decoded := w.req()
		switch {
		case auth != "Bearer "+fuzzSecret:
			want = posapi.CodeUnauthorized
		case len(key) > posapi.MaxIdempotencyKeyLen || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }):
			want = posapi.CodeBadRequest
		case ctype != "" && !strings.HasPrefix(ctype, "application/json"):
			want = posapi.CodeBadRequest
		case len(body) > posapi.MaxBodyBytes:
			want = protocol.CodeTooLarge
		case !oneObject(body, decoded):
			want = posapi.CodeBadRequest
		}
		if code != want {
			t.Fatalf("POST %s (Authorization %q, key %q, Content-Type %q) %q: HTTP %d %s, want code %q", w.path, auth, key, ctype, body, resp.Code, resp.Body, want)
		}
		if want != "" {
			if len(rec.calls) != 0 {
				t.Fatalf("a request answered %s reached the Service: %+v", want, rec.calls)
			}
			return
		}
		if len(rec.calls) != 1 {
			t.Fatalf("an accepted request made %d Service calls", len(rec.calls))
		}
		c := rec.calls[0]
		if c.method != w.method || c.key != key || c.hash == "" || !reflect.DeepEqual(c.req, reflect.ValueOf(decoded).Elem().Interface()) {
			t.Fatalf("Service got %s key %q hash %q %+v, want %s key %q %+v", c.method, c.key, c.hash, c.req, w.method, key, decoded)
		}
	})
}

// oneObject reports whether body is one JSON value of v's fields (and
// decodes it into v), with only white space after it.
func oneObject(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	return len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) == 0
}

// answerCode checks that resp is one line of JSON — a result, or exactly
// {"error":{"code","message"}} with a non-empty code and message — and
// returns the error code ("" for a 200).
func answerCode(t *testing.T, resp *httptest.ResponseRecorder) protocol.Code {
	t.Helper()
	body := resp.Body.Bytes()
	if ct := resp.Header().Get("Content-Type"); ct != "application/json" || bytes.Count(body, []byte("\n")) != 1 || !json.Valid(body) {
		t.Fatalf("HTTP %d %q: %q is not one line of JSON", resp.Code, ct, body)
	}
	if resp.Code == http.StatusOK {
		return ""
	}
	var e httpx.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("HTTP %d: %s is not an error body (%v)", resp.Code, body, err)
	}
	want := map[protocol.Code][]int{
		posapi.CodeUnauthorized: {http.StatusUnauthorized},
		posapi.CodeBadRequest:   {http.StatusBadRequest, http.StatusUnsupportedMediaType},
		protocol.CodeTooLarge:   {http.StatusRequestEntityTooLarge},
	}[e.Error.Code]
	if !contains(want, resp.Code) {
		t.Fatalf("HTTP %d for code %s: %s", resp.Code, e.Error.Code, body)
	}
	return e.Error.Code
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
