package httpapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// MaxEnrollBody bounds POST /v1/enroll, the one request that changes
// something without an API token: a token and a public key take a few
// hundred bytes.
const MaxEnrollBody = 4 << 10

// EnrollmentTokenAnswer answers POST /v1/stores/{s}/terminals/{t}/enrollment-token.
type EnrollmentTokenAnswer struct {
	Store     string    `json:"store"`
	Terminal  string    `json:"terminal"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollRequest is POST /v1/enroll.
type EnrollRequest struct {
	Token string `json:"token"`
	// PublicKey is the terminal's Ed25519 public key, base64 (std or url).
	PublicKey string `json:"public_key"`
}

// EnrollAnswer answers POST /v1/enroll: what the till needs to connect.
type EnrollAnswer struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	Partner  string `json:"partner"`
	// MQTTUsername is the terminal's broker account (protocol.AgentUsername);
	// it connects as client id protocol.AgentClientID.
	MQTTUsername string `json:"mqtt_username"`
	MQTTPassword string `json:"mqtt_password"`
	// CAPEM is the hub's CA certificate, when the hub has one (MQTT over TLS).
	CAPEM string `json:"ca_pem,omitempty"`
	// MemberTokenKeys are the coalition's member token public keys.
	MemberTokenKeys []string `json:"member_token_keys,omitempty"`
	// MACKey is the terminal's MAC key (protocol.Seal), base64url without
	// padding: the till seals what it sends with it and accepts only acks
	// and replies sealed with it. Given out once, like the password.
	MACKey string `json:"mac_key"`
	// MQTTURL is where the till should reach the hub's broker
	// (tls://HOST:PORT); empty when the hub cannot tell.
	MQTTURL string `json:"mqtt_url,omitempty"`
}

// mqttURL is the broker address to give a till enrolling through r.
func (a *api) mqttURL(r *http.Request) string {
	if a.o.MQTTAdvertise != "" {
		return a.o.MQTTAdvertise
	}
	if a.o.MQTTPort == "" {
		return ""
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return ""
	}
	scheme := a.o.MQTTScheme
	if scheme == "" {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(host, a.o.MQTTPort)
}

func (a *api) enrollmentToken(w http.ResponseWriter, r *http.Request) {
	store, terminal, ok := terminalPath(w, r)
	if !ok {
		return
	}
	var b struct {
		ExpiresIn string `json:"expires_in"`
	}
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	var ttl time.Duration
	if b.ExpiresIn != "" {
		d, err := time.ParseDuration(b.ExpiresIn)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, "expires_in: a duration such as 24h")
			return
		}
		ttl = d
	}
	tok, err := a.o.Store.IssueEnrollmentToken(store, terminal, ttl, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.o.Logger.Info("enrollment token issued", "store", store, "terminal", terminal, "expires", tok.ExpiresAt)
	httpx.WriteJSON(w, http.StatusCreated, EnrollmentTokenAnswer{Store: store, Terminal: terminal,
		Token: protocol.FormatEnrollmentToken(tok.ID, tok.Secret, a.o.CAFingerprint), ExpiresAt: tok.ExpiresAt})
}

// enroll redeems an enrollment token. It is authenticated by the token
// alone: the body is size-limited before it is read, the secret is compared
// in constant time (by the ledger, against its hash), and every refusal is
// counted (health: enrollments_refused) and logged with its code, never
// with the token.
func (a *api) enroll(w http.ResponseWriter, r *http.Request) {
	done := false
	defer func() {
		if !done {
			n := a.enrollRefused.Add(1)
			a.o.Logger.Warn("enrollment refused", "remote", r.RemoteAddr, "refused", n)
		}
	}()
	var b EnrollRequest
	if !decodeBody(w, r, MaxEnrollBody, false, &b) {
		return
	}
	id, secret, _, err := protocol.ParseEnrollmentToken(b.Token)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pub, err := base64.StdEncoding.DecodeString(b.PublicKey)
	if err != nil {
		pub, err = base64.RawURLEncoding.DecodeString(b.PublicKey)
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, "public_key: the terminal's Ed25519 public key, base64")
		return
	}
	creds, err := a.o.Store.Enroll(id, secret, pub, a.o.Clock.Now())
	if err != nil {
		// Never the token itself: it may be a real one, mistyped.
		a.o.Logger.Info("enrollment token refused", "code", protocol.CodeOf(err), "token_id", id)
		a.fail(w, r, err)
		return
	}
	done = true
	a.o.Logger.Info("terminal enrolled", "store", creds.Store, "terminal", creds.Terminal)
	// A client still connected as this terminal (without credentials, or
	// with those of an earlier enrollment) goes; the till reconnects with
	// the new ones.
	if a.o.OnCredentials != nil {
		a.o.OnCredentials(creds.Store, creds.Terminal)
	}
	ans := EnrollAnswer{Store: creds.Store, Terminal: creds.Terminal, Partner: creds.Partner,
		MQTTUsername: creds.Username, MQTTPassword: creds.Password, CAPEM: string(a.o.CAPEM),
		MQTTURL: a.mqttURL(r), MACKey: base64.RawURLEncoding.EncodeToString(creds.MACKey)}
	if a.o.MemberTokenKey != nil {
		ans.MemberTokenKeys = []string{protocol.EncodeTokenKey(a.o.MemberTokenKey.Public().(ed25519.PublicKey))}
	}
	a.changed(r, "enrollment "+creds.Store+"/"+creds.Terminal)
	httpx.WriteJSON(w, http.StatusCreated, ans)
}

func (a *api) revokeTerminal(w http.ResponseWriter, r *http.Request) {
	store, terminal, ok := terminalPath(w, r)
	if !ok {
		return
	}
	var b struct{}
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	if err := a.o.Store.RevokeTerminal(store, terminal, a.o.Clock.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.o.Logger.Warn("terminal revoked", "store", store, "terminal", terminal)
	if a.o.OnCredentials != nil {
		a.o.OnCredentials(store, terminal)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"store": store, "terminal": terminal, "revoked": true})
}

// enrollments lists the terminals' enrollment states; a partner's token
// sees its own stores' only.
func (a *api) enrollments(w http.ResponseWriter, r *http.Request) {
	es, err := a.o.Store.Enrollments()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if p := partnerOf(r); p != "" {
		own, err := a.partnerStores(p)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		es = slices.DeleteFunc(slices.Clone(es), func(e ledger.Enrollment) bool { return !own[e.Store] })
	}
	if es == nil {
		es = []ledger.Enrollment{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"enrollments": es})
}

// partnerStores is the set of stores registered with partner.
func (a *api) partnerStores(partner string) (map[string]bool, error) {
	ss, err := a.o.Store.Stores()
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	for _, s := range ss {
		if s.Partner == partner {
			own[s.ID] = true
		}
	}
	return own, nil
}

// brokerUsers lists the accounts an external broker must have: every
// enrolled, unrevoked terminal's username and password hash, for
// tillsync-hub broker-config. The hashes are of 32 random bytes, salted:
// they do not give the passwords away.
func (a *api) brokerUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.o.Store.BrokerUsers()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if users == nil {
		users = []ledger.BrokerUser{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": users})
}

// terminalPath reads {store} and {terminal} from the path, answering 400
// when either is not an id.
func terminalPath(w http.ResponseWriter, r *http.Request) (store, terminal string, ok bool) {
	if store, ok = pathID(w, r, "store"); !ok {
		return "", "", false
	}
	terminal, ok = pathID(w, r, "terminal")
	return store, terminal, ok
}
