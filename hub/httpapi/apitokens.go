package httpapi

import (
	"net/http"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// APITokenBody is the body of POST /v1/api-tokens.
type APITokenBody struct {
	// Role is operator, partner or read-only.
	Role ledger.Role `json:"role"`
	// Partner is the partner a partner token speaks for; required for
	// that role, refused for the others.
	Partner string `json:"partner,omitempty"`
	// Name says, for people, who or what holds the token.
	Name string `json:"name,omitempty"`
}

// NewAPIToken answers POST /v1/api-tokens. Token is shown here once: the
// hub keeps only its hash.
type NewAPIToken struct {
	// Token is the bearer token, TSA1.<id>.<secret>.
	Token string `json:"token"`
	// APIToken is what the hub records of it.
	APIToken ledger.APIToken `json:"api_token"`
}

func (a *api) apiTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.o.Store.APITokens()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ts == nil {
		ts = []ledger.APIToken{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"api_tokens": ts})
}

func (a *api) createAPIToken(w http.ResponseWriter, r *http.Request) {
	var b APITokenBody
	if !decodeBody(w, r, MaxSmallBody, false, &b) {
		return
	}
	tok, secret, err := a.o.Store.CreateAPIToken(ledger.APIToken{Role: b.Role, Partner: b.Partner, Name: b.Name}, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	attrs := []any{"token_id", tok.ID, "role", tok.Role, "by", tokenOf(r).ID}
	if tok.Partner != "" {
		attrs = append(attrs, "partner", tok.Partner)
	}
	a.o.Logger.Info("api token created", attrs...)
	httpx.WriteJSON(w, http.StatusCreated, NewAPIToken{Token: protocol.FormatAPIToken(tok.ID, secret), APIToken: tok})
}

func (a *api) revokeAPIToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var b struct{}
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	tok, err := a.o.Store.RevokeAPIToken(id, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.o.Logger.Warn("api token revoked", "token_id", tok.ID, "role", tok.Role, "by", tokenOf(r).ID)
	httpx.WriteJSON(w, http.StatusOK, tok)
}
