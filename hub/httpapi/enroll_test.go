package httpapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
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

// enrollAPI is the API over a real ledger with testSeed's terminals,
// logging at DEBUG into logs and recording OnCredentials calls.
type enrollAPI struct {
	url   string
	clock *clock.Fake
	logs  *testkit.Buffer
	mu    sync.Mutex
	creds []string
}

const testFingerprint = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func newEnrollAPI(t *testing.T) *enrollAPI {
	t.Helper()
	st := openLedger(t)
	register(t, st)
	a := &enrollAPI{clock: clock.NewFake(ledgertest.T0), logs: new(testkit.Buffer)}
	a.url = serve(t, httpapi.Options{Store: st, Clock: a.clock,
		CAPEM: []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"), CAFingerprint: testFingerprint,
		MemberTokenKey: hubTokenKey,
		OnCredentials: func(store, terminal string) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.creds = append(a.creds, store+"/"+terminal)
		},
		Logger: slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return a
}

func (a *enrollAPI) credentialChanges() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.creds, " ")
}

func (a *enrollAPI) token(t *testing.T, path, body string) httpapi.EnrollmentTokenAnswer {
	t.Helper()
	var tok httpapi.EnrollmentTokenAnswer
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/stores/"+path+"/enrollment-token", body), http.StatusCreated, &tok)
	return tok
}

func enrollBody(t *testing.T, token string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, httpapi.EnrollRequest{Token: token, PublicKey: base64.StdEncoding.EncodeToString(pub)})
}

// TestEnrollAPI: a token issued over the API carries the hub's CA
// fingerprint and enrolls its terminal once, handing out the credentials,
// the CA and the member token key; every refusal has its stable code and
// is counted; neither the token's secret nor the password is logged.
func TestEnrollAPI(t *testing.T) {
	a := newEnrollAPI(t)
	tok := a.token(t, "s1/terminals/t1", `{"expires_in":"1h"}`)
	if tok.Store != "s1" || tok.Terminal != "t1" || !tok.ExpiresAt.Equal(ledgertest.T0.Add(time.Hour)) {
		t.Fatalf("token answer %+v", tok)
	}
	_, secret, fp, err := protocol.ParseEnrollmentToken(tok.Token)
	if err != nil || fp != testFingerprint {
		t.Fatalf("token %q: fingerprint %q, %v", tok.Token, fp, err)
	}
	other := a.token(t, "s1/terminals/t2", "") // default lifetime
	expiring := a.token(t, "s2/terminals/t1", `{"expires_in":"10m"}`)

	body := enrollBody(t, tok.Token)
	var ans httpapi.EnrollAnswer
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/enroll", body), http.StatusCreated, &ans)
	if ans.Store != "s1" || ans.Terminal != "t1" || ans.Partner != "p1" || ans.MQTTUsername != protocol.AgentUsername("s1", "t1") ||
		len(ans.MQTTPassword) < 40 || !strings.Contains(ans.CAPEM, "BEGIN CERTIFICATE") || len(ans.MemberTokenKeys) != 1 {
		t.Fatalf("enroll answer %+v", ans)
	}
	if key, err := base64.RawURLEncoding.DecodeString(ans.MACKey); err != nil || len(key) != protocol.MACKeyLen {
		t.Fatalf("enroll answer's MAC key %q: %v", ans.MACKey, err)
	}
	if got := a.credentialChanges(); got != "s1/t1" {
		t.Errorf("OnCredentials after enrolling: %q, want s1/t1", got)
	}

	a.clock.Advance(11 * time.Minute)
	otherID, _, _, _ := protocol.ParseEnrollmentToken(other.Token)
	wrongSecret := protocol.FormatEnrollmentToken(otherID, make([]byte, 32), fp)
	unknown := protocol.FormatEnrollmentToken("nope", secret, fp)
	for _, c := range []struct {
		name, body string
		status     int
		code       protocol.Code
	}{
		{"the token again", body, http.StatusForbidden, protocol.CodeEnrollmentUsed},
		{"an expired token", enrollBody(t, expiring.Token), http.StatusForbidden, protocol.CodeEnrollmentExpired},
		{"an unknown token", enrollBody(t, unknown), http.StatusForbidden, protocol.CodeEnrollmentUnknown},
		{"a wrong secret", enrollBody(t, wrongSecret), http.StatusForbidden, protocol.CodeEnrollmentUnknown},
		{"not a token", enrollBody(t, "TSE1.x"), http.StatusBadRequest, protocol.CodeMalformed},
		{"no public key", mustJSON(t, httpapi.EnrollRequest{Token: tok.Token}), http.StatusBadRequest, protocol.CodeMalformed},
		{"a short public key", mustJSON(t, httpapi.EnrollRequest{Token: tok.Token, PublicKey: "AAAA"}), http.StatusBadRequest, protocol.CodeMalformed},
		{"an empty body", "", http.StatusBadRequest, protocol.CodeMalformed},
		{"an oversize body", `{"token":"` + strings.Repeat("A", httpapi.MaxEnrollBody) + `"}`, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, doBody(t, "POST", a.url+"/v1/enroll", c.body), c.status, c.code)
		})
	}
	var health struct {
		OK         bool  `json:"ok"`
		Refused    int64 `json:"enrollments_refused"`
		APIRefused int64 `json:"api_refused"`
	}
	decodeOK(t, get(t, a.url+"/v1/health"), &health)
	if health.Refused != 9 || health.APIRefused != 0 {
		t.Errorf("enrollments_refused = %d, api_refused %d; want 9 and 0 (enrollment needs no API token)", health.Refused, health.APIRefused)
	}
	if got := a.credentialChanges(); got != "s1/t1" {
		t.Errorf("OnCredentials after refusals: %q", got)
	}

	logs := a.logs.String()
	for name, secretText := range map[string]string{
		"the token":           tok.Token,
		"the token's secret":  base64.RawURLEncoding.EncodeToString(secret),
		"the MQTT password":   ans.MQTTPassword,
		"the MAC key":         ans.MACKey,
		"the expiring secret": strings.Split(expiring.Token, ".")[2],
	} {
		if strings.Contains(logs, secretText) {
			t.Errorf("the log holds %s:\n%s", name, logs)
		}
	}
	if !strings.Contains(logs, "terminal enrolled") || !strings.Contains(logs, "enrollment_token_used") {
		t.Errorf("the log does not tell the enrollment and the refusal's code:\n%s", logs)
	}
}

// TestRevokeAndEnrollmentsAPI: revoking drops the pending token or the
// credentials and tells OnCredentials; GET /v1/enrollments lists each
// terminal's state without secrets.
func TestRevokeAndEnrollmentsAPI(t *testing.T) {
	a := newEnrollAPI(t)
	tok := a.token(t, "s1/terminals/t1", "")
	var ans httpapi.EnrollAnswer
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/enroll", enrollBody(t, tok.Token)), http.StatusCreated, &ans)
	pending := a.token(t, "s1/terminals/t2", "")

	a.clock.Advance(time.Minute)
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/stores/s1/terminals/t1/revoke", ""), http.StatusOK, new(map[string]any))
	if got := a.credentialChanges(); got != "s1/t1 s1/t1" {
		t.Errorf("OnCredentials: %q, want enroll and revoke of s1/t1", got)
	}
	checkError(t, doBody(t, "POST", a.url+"/v1/stores/s2/terminals/t1/revoke", ""), http.StatusNotFound, protocol.CodeNotFound)
	checkError(t, doBody(t, "POST", a.url+"/v1/stores/s1/terminals/t9/enrollment-token", ""), http.StatusNotFound, protocol.CodeNotFound)
	checkError(t, doBody(t, "POST", a.url+"/v1/stores/s1/terminals/t2/enrollment-token", `{"expires_in":"soon"}`), http.StatusBadRequest, protocol.CodeMalformed)
	checkError(t, doBody(t, "POST", a.url+"/v1/stores/s1/terminals/t2/enrollment-token", `{"expires_in":"1000h"}`), http.StatusBadRequest, protocol.CodeMalformed)

	r := get(t, a.url+"/v1/enrollments")
	var list struct {
		Enrollments []ledger.Enrollment `json:"enrollments"`
	}
	decodeOK(t, r, &list)
	if len(list.Enrollments) != 2 {
		t.Fatalf("enrollments %+v", list)
	}
	t1, t2 := list.Enrollments[0], list.Enrollments[1]
	if t1.Terminal != "t1" || t1.EnrolledAt.IsZero() || !t1.RevokedAt.Equal(ledgertest.T0.Add(time.Minute)) || len(t1.PublicKey) != ed25519.PublicKeySize {
		t.Errorf("the revoked terminal: %+v", t1)
	}
	if t2.Terminal != "t2" || !t2.EnrolledAt.IsZero() || !t2.TokenExpires.Equal(pending.ExpiresAt) {
		t.Errorf("the terminal with a pending token: %+v", t2)
	}
	var raw map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, e := range raw["enrollments"] {
		for k := range e {
			if strings.Contains(k, "hash") || strings.Contains(k, "salt") || strings.Contains(k, "secret") || strings.Contains(k, "password") {
				t.Errorf("the list shows %s", k)
			}
		}
	}
	if strings.Contains(string(r.body), ans.MQTTPassword) || strings.Contains(string(r.body), strings.Split(pending.Token, ".")[2]) || strings.Contains(string(r.body), ans.MACKey) {
		t.Error("the list holds a secret")
	}
}

// TestBrokerUsersAPI: GET /v1/broker-users lists the enrolled, unrevoked
// terminals' usernames and Mosquitto hashes, never a password or MAC key.
func TestBrokerUsersAPI(t *testing.T) {
	a := newEnrollAPI(t)
	var users struct {
		Users []ledger.BrokerUser `json:"users"`
	}
	decodeOK(t, get(t, a.url+"/v1/broker-users"), &users)
	if users.Users == nil || len(users.Users) != 0 {
		t.Fatalf("before any enrollment: %+v", users)
	}
	var ans, ans2 httpapi.EnrollAnswer
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/enroll", enrollBody(t, a.token(t, "s1/terminals/t1", "").Token)), http.StatusCreated, &ans)
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/enroll", enrollBody(t, a.token(t, "s1/terminals/t2", "").Token)), http.StatusCreated, &ans2)
	decodeStatus(t, doBody(t, "POST", a.url+"/v1/stores/s1/terminals/t2/revoke", ""), http.StatusOK, new(map[string]any))
	r := get(t, a.url+"/v1/broker-users")
	decodeOK(t, r, &users)
	if len(users.Users) != 1 || users.Users[0].Username != ans.MQTTUsername || !strings.HasPrefix(users.Users[0].MosquittoHash, "$7$") {
		t.Fatalf("broker users %+v", users)
	}
	for _, secret := range []string{ans.MQTTPassword, ans.MACKey, ans2.MQTTPassword, ans2.MACKey} {
		if strings.Contains(string(r.body), secret) {
			t.Fatal("the list holds a secret")
		}
	}
}
