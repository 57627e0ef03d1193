package testkit

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// stableCode is the shape of every error code that crosses an API.
var stableCode = regexp.MustCompile(`^[a-z][a-z0-9_]*[a-z0-9]$`)

// JSONAnswer checks that rec is an answer in the shape both HTTP APIs
// promise: JSON on one line and, unless its status is 2xx, exactly the
// error body {"error":{"code","message"}} with a stable code and a
// message. It returns the code ("" for a 2xx); which status the code goes
// with is each API's own rule, for its caller to check.
func JSONAnswer(t testing.TB, rec *httptest.ResponseRecorder) protocol.Code {
	t.Helper()
	body := rec.Body.Bytes()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("HTTP %d with content type %q, want application/json: %q", rec.Code, ct, body)
	}
	if !bytes.HasSuffix(body, []byte("\n")) || bytes.Count(body, []byte("\n")) != 1 || !json.Valid(body) {
		t.Fatalf("HTTP %d: the body is not one line of JSON: %q", rec.Code, body)
	}
	if rec.Code/100 == 2 {
		return ""
	}
	var e httpx.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("HTTP %d: the body is not exactly {\"error\":{\"code\",\"message\"}}: %v: %s", rec.Code, err, body)
	}
	code := e.Error.Code
	switch {
	case !stableCode.MatchString(string(code)):
		t.Fatalf("HTTP %d: error code %q is not a stable code", rec.Code, code)
	case e.Error.Message == "":
		t.Fatalf("HTTP %d %s without a message", rec.Code, code)
	}
	return code
}
