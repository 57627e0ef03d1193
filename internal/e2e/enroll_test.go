package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// hubToken is the operator API token the hub wrote into its data dir.
func (e *env) hubToken(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.hubDir, hub.OperatorTokenFile))
	if err != nil {
		t.Fatalf("the hub's operator token: %v", err)
	}
	return strings.TrimSpace(string(data))
}

// hubRequest sends a request to the hub's HTTP API with the operator
// token, or with none for POST /v1/enroll (its own token authenticates it).
func hubRequest(t *testing.T, e *env, method, path string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.httpAddr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if path != "/v1/enroll" {
		req.Header.Set("Authorization", "Bearer "+e.hubToken(t))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// hubGet GETs path from the hub's HTTP API into v.
func hubGet(t *testing.T, e *env, path string, v any) {
	t.Helper()
	resp := hubRequest(t, e, "GET", path, nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// hubPost posts body to the hub's HTTP API and decodes the answer into v;
// it returns the status and the error code of an error answer.
func hubPost(t *testing.T, e *env, path string, body any, v any) (int, protocol.Code) {
	t.Helper()
	data, _ := json.Marshal(body)
	resp := hubRequest(t, e, "POST", path, bytes.NewReader(data))
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code protocol.Code } `json:"error"`
	}
	json.Unmarshal(raw, &eb)
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %s: %v", path, raw, err)
		}
	}
	return resp.StatusCode, eb.Error.Code
}

// TestEnrollment: a terminal enrolls once with its token and then syncs
// over TLS with its own credentials, which nobody else can use; the token
// is refused a second time; without credentials nobody connects; revoking
// the terminal drops it at once and for good.
func TestEnrollment(t *testing.T) {
	e := newEnv(t, "embedded-tls")
	e.httpAddr = testkit.FreePort(t)
	p := e.pki
	e.requireEnrollment = true
	h := startHubOnce(t, e)
	store := e.store("enr-")
	if err := h.h.Ledger().AddTerminal(store, "till-1", time.Now()); err != nil {
		t.Fatal(err)
	}

	var tok httpapi.EnrollmentTokenAnswer
	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/till-1/enrollment-token", map[string]string{"expires_in": "1h"}, &tok); st != http.StatusCreated {
		t.Fatalf("enrollment token: HTTP %d %s", st, code)
	}
	if _, _, fp, err := protocol.ParseEnrollmentToken(tok.Token); err != nil || fp != p.CAFingerprint() {
		t.Fatalf("token %q: fingerprint %q, %v; want the hub CA's", tok.Token, fp, err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	req := map[string]string{"token": tok.Token, "public_key": base64.StdEncoding.EncodeToString(pub)}
	var ans httpapi.EnrollAnswer
	if st, code := hubPost(t, e, "/v1/enroll", req, &ans); st != http.StatusCreated {
		t.Fatalf("enroll: HTTP %d %s", st, code)
	}
	if ans.Store != store || ans.Terminal != "till-1" || ans.MQTTUsername != protocol.AgentUsername(store, "till-1") || ans.CAPEM != string(p.CACertPEM()) || len(ans.MemberTokenKeys) == 0 {
		t.Fatalf("enrollment answer: %+v", ans)
	}
	if st, code := hubPost(t, e, "/v1/enroll", req, nil); st != http.StatusForbidden || code != protocol.CodeEnrollmentUsed {
		t.Fatalf("the token a second time: HTTP %d %s, want 403 %s", st, code, protocol.CodeEnrollmentUsed)
	}

	dir := t.TempDir()
	enr := agent.Enrollment{Store: ans.Store, Terminal: ans.Terminal, Partner: ans.Partner, Username: ans.MQTTUsername, Password: ans.MQTTPassword}
	if err := agent.SaveEnrollment(dir, enr, priv, []byte(ans.CAPEM)); err != nil {
		t.Fatal(err)
	}
	a := startTill(t, agent.Options{DataDir: dir, Broker: e.brokerURL(), Store: store})
	member := store + "-m1"
	a.earn(t, member, 3000)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance after an enrolled till's earn: %d", got)
	}

	// Nobody else gets in: not with its password under another name, not
	// as it with a wrong password, not without credentials.
	connect := func(id, user, pass string) error {
		o := mqtt.NewClientOptions().AddBroker(e.brokerURL()).SetClientID(id).SetUsername(user).SetPassword(pass).
			SetAutoReconnect(false).SetConnectTimeout(3 * time.Second)
		tc, _ := agent.HubTLSConfig(e.brokerURL(), p.CACertPEM())
		o.SetTLSConfig(tc)
		c := mqtt.NewClient(o)
		tk := c.Connect()
		tk.WaitTimeout(5 * time.Second)
		if tk.Error() == nil {
			c.Disconnect(0)
		}
		return tk.Error()
	}
	other, own := protocol.AgentClientID(store, "till-2"), protocol.AgentClientID(store, "till-1")
	for _, c := range []struct{ name, id, user, pass string }{
		{"its password under another terminal's name", other, other, ans.MQTTPassword},
		{"its password under another terminal's username", other, protocol.AgentUsername(store, "till-2"), ans.MQTTPassword},
		{"its username under another terminal's client id", other, ans.MQTTUsername, ans.MQTTPassword},
		{"its name with a wrong password", own, ans.MQTTUsername, ans.MQTTPassword + "x"},
		{"its name without credentials", own, "", ""},
		{"no credentials at all", "someone", "", ""},
		{"a username that is not the client id", "someone", ans.MQTTUsername, ans.MQTTPassword},
	} {
		if err := connect(c.id, c.user, c.pass); err == nil {
			t.Errorf("connected with %s", c.name)
		}
	}
	if hl := a.health(t); !hl.HubConnected {
		t.Fatal("the enrolled till lost its connection to the attempts")
	}

	// Revoked: dropped at once, and refused from then on.
	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/till-1/revoke", nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", st, code)
	}
	a.waitConnected(t, false)
	a.earn(t, member, 1000)
	time.Sleep(1500 * time.Millisecond) // reconnect attempts
	if hl := a.health(t); hl.HubConnected || hl.Backlog != 1 || !strings.Contains(hl.HubError, "refused this till's credentials") {
		t.Fatalf("a revoked till: %+v; want disconnected, its earn kept, and told why", hl)
	}
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance after the revoked till's earn: %d", got)
	}
}

// TestEnrollmentNotRequired: with enrollment not required (the default
// for now), a till that has not enrolled still syncs anonymously; once it
// enrolls, its anonymous connection is dropped and its client id is
// refused without the credentials, which it then syncs with, earns made
// meanwhile included; revoked, it is dropped and gets back in neither with
// its credentials nor without. Neither the hub's nor the till's log, at
// DEBUG, ever holds the token or the password.
func TestEnrollmentNotRequired(t *testing.T) {
	var logs testkit.Buffer
	debug := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, "embedded")
	if e.external != "" {
		t.Skip("the embedded broker authenticates terminals; an external one does its own")
	}
	e.httpAddr, e.log = testkit.FreePort(t), debug.With("side", "hub")
	h := startHubOnce(t, e)
	store := e.store("enr-")
	if err := h.h.Ledger().AddTerminal(store, "till-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	member := store + "-m1"
	a := startTill(t, agent.Options{DataDir: dir, Broker: e.brokerURL(), Store: store, Logger: debug.With("side", "agent")})
	a.earn(t, member, 1000)
	a.waitDrained(t)

	var tok httpapi.EnrollmentTokenAnswer
	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/till-1/enrollment-token", nil, &tok); st != http.StatusCreated {
		t.Fatalf("enrollment token: HTTP %d %s", st, code)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	var ans httpapi.EnrollAnswer
	if st, code := hubPost(t, e, "/v1/enroll", map[string]string{"token": tok.Token, "public_key": base64.StdEncoding.EncodeToString(pub)}, &ans); st != http.StatusCreated {
		t.Fatalf("enroll: HTTP %d %s", st, code)
	}
	// The anonymous connection goes at once, and cannot come back.
	a.waitConnected(t, false)
	a.earn(t, member, 2000)
	waitRefused(t, e, 2)
	if hl := a.health(t); hl.HubConnected || hl.Backlog != 1 {
		t.Fatalf("the till without its credentials after enrolling: %+v; want refused, its earn kept", hl)
	}
	a.stop(t)
	if err := agent.SaveEnrollment(dir, agent.Enrollment{Store: ans.Store, Terminal: ans.Terminal, Partner: ans.Partner,
		Username: ans.MQTTUsername, Password: ans.MQTTPassword, MemberTokenKeys: ans.MemberTokenKeys}, priv, []byte(ans.CAPEM)); err != nil {
		t.Fatal(err)
	}
	a = a.reopen(t)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance once the enrolled till synced: %d, want 30", got)
	}

	if st, code := hubPost(t, e, "/v1/stores/"+store+"/terminals/till-1/revoke", nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", st, code)
	}
	a.waitConnected(t, false)
	anon := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Logger: debug.With("side", "impostor")})
	waitRefused(t, e, 4) // both, at least twice
	if a.health(t).HubConnected || anon.health(t).HubConnected {
		t.Fatal("the revoked terminal got back in")
	}

	_, secret, _, _ := protocol.ParseEnrollmentToken(tok.Token)
	_, apiSecret, _ := protocol.ParseAPIToken(e.hubToken(t))
	out := logs.String()
	for name, s := range map[string]string{
		"the token":                   tok.Token,
		"the token's secret":          base64.RawURLEncoding.EncodeToString(secret),
		"the MQTT password":           ans.MQTTPassword,
		"the operator API token":      e.hubToken(t),
		"the operator token's secret": base64.RawURLEncoding.EncodeToString(apiSecret),
	} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %s", name)
		}
	}
	for _, want := range []string{"terminal enrolled", "terminal revoked", "MQTT connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
}

// waitRefused waits for the hub's broker to have refused n more MQTT
// connections (health: mqtt_refused) than when it is called.
func waitRefused(t *testing.T, e *env, n int64) {
	t.Helper()
	refused := func() int64 {
		var h struct {
			MQTTRefused int64 `json:"mqtt_refused"`
		}
		hubGet(t, e, "/v1/health", &h)
		return h.MQTTRefused
	}
	from := refused()
	testkit.WaitFor(t, waitLong, fmt.Sprintf("%d more refused MQTT connections", n), func() bool { return refused() >= from+n })
}
