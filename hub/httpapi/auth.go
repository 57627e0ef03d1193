package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// access says who may call a route.
type access uint8

const (
	// operatorOnly: operator tokens.
	operatorOnly access = iota
	// readers: operator and read-only tokens.
	readers
	// everyone: partner tokens too, which the handler shows only their
	// own partner's part (or refuses another partner's).
	everyone
	// open: no token at all (enrollment, which its own one-time token
	// authenticates, and the liveness check).
	open
)

// allows reports whether a token with role may call a route with access c.
func (c access) allows(role ledger.Role) bool {
	switch role {
	case ledger.RoleOperator:
		return true
	case ledger.RoleReadOnly:
		return c != operatorOnly
	case ledger.RolePartner:
		return c == everyone || c == open
	}
	return false
}

// route is one endpoint: its pattern, who may call it, its handler.
type route struct {
	pattern string
	access  access
	h       http.HandlerFunc
}

type tokenKey struct{}

// tokenOf returns the token that authenticated r (zero on an open route).
func tokenOf(r *http.Request) ledger.APIToken {
	t, _ := r.Context().Value(tokenKey{}).(ledger.APIToken)
	return t
}

// partnerOf returns the partner r's token is bound to: "" for every role
// but partner, whose answers are not narrowed.
func partnerOf(r *http.Request) string {
	if t := tokenOf(r); t.Role == ledger.RolePartner {
		return t.Partner
	}
	return ""
}

// guard authenticates every request but those of open routes and checks
// that the token's role may call the route, before mux sees the request.
// Unknown paths and methods need a token too: an anonymous caller learns
// nothing about the API but that it wants one.
func (a *api) guard(mux *http.ServeMux) http.Handler {
	serve := httpx.Canonical(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		// A path that is not canonical is no route's, whatever the mux
		// would redirect it to.
		c, known := a.access[pattern]
		known = known && httpx.IsCanonical(r)
		if known && c == open {
			serve.ServeHTTP(w, r)
			return
		}
		route := pattern
		if !known {
			route = r.Method + " (no route)"
		}
		tok, ok := a.authenticate(w, r, route)
		if !ok {
			return
		}
		if known && !c.allows(tok.Role) {
			a.refuse(w, r, http.StatusForbidden, protocol.CodeForbidden, tok, route,
				fmt.Sprintf("a %s token may not use %s", tok.Role, pattern))
			return
		}
		a.o.Logger.Debug("hub api request", "token_id", tok.ID, "role", tok.Role, "route", route)
		serve.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// authenticate reads the bearer token and checks it against the ledger,
// answering 401 unauthorized (or 500 when the ledger fails) when it does
// not pass. The token is never logged; its id is.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request, route string) (ledger.APIToken, bool) {
	var none ledger.APIToken
	hdr := r.Header.Values("Authorization")
	if len(hdr) == 0 {
		a.refuse(w, r, http.StatusUnauthorized, protocol.CodeUnauthorized, none, route, "this request needs an API token: send it as Authorization: Bearer TSA1.…")
		return none, false
	}
	scheme, cred, _ := strings.Cut(hdr[0], " ")
	if len(hdr) > 1 || !strings.EqualFold(scheme, "Bearer") {
		a.refuse(w, r, http.StatusUnauthorized, protocol.CodeUnauthorized, none, route, "send one API token as Authorization: Bearer TSA1.…")
		return none, false
	}
	id, secret, err := protocol.ParseAPIToken(cred)
	if err != nil {
		a.refuse(w, r, http.StatusUnauthorized, protocol.CodeUnauthorized, none, route, "not an API token (TSA1.<id>.<secret>)")
		return none, false
	}
	tok, err := a.o.Store.AuthenticateAPIToken(id, secret, a.o.Clock.Now())
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
			a.internal(w, r, err)
			return none, false
		}
		a.refuse(w, r, http.StatusUnauthorized, protocol.CodeUnauthorized, ledger.APIToken{ID: id}, route, pe.Msg)
		return none, false
	}
	return tok, true
}

// refuse answers a request the API will not serve, counts it (health:
// api_refused) and logs it: the token's id, never the token.
func (a *api) refuse(w http.ResponseWriter, r *http.Request, status int, code protocol.Code, tok ledger.APIToken, route, msg string) {
	n := a.apiRefused.Add(1)
	who := tok.ID
	if who == "" {
		who = "remote " + remoteHost(r)
	}
	if quiet, ok := a.refusals.Allow(who+" "+string(code)+" "+route, a.o.Clock.Now()); ok {
		attrs := []any{"code", code, "token_id", dash(tok.ID), "route", route, "remote", r.RemoteAddr, "refused", n}
		if tok.Role != "" {
			attrs = append(attrs, "role", tok.Role)
		}
		if tok.Partner != "" {
			attrs = append(attrs, "partner", tok.Partner)
		}
		if quiet > 0 {
			attrs = append(attrs, "unlogged", quiet)
		}
		a.o.Logger.Warn("hub api request refused", attrs...)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tillsync-hub"`)
	}
	httpx.WriteError(w, status, code, msg)
}

// forbidden refuses a partner's token that reached another partner's data.
func (a *api) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	a.refuse(w, r, http.StatusForbidden, protocol.CodeForbidden, tokenOf(r), r.Pattern, msg)
}

// ownPartner reports whether r may see partner id's data; a partner token
// of another partner is refused 403 forbidden.
func (a *api) ownPartner(w http.ResponseWriter, r *http.Request, id string) bool {
	if p := partnerOf(r); p != "" && p != id {
		a.forbidden(w, r, fmt.Sprintf("a partner token of %s may not see partner %s", p, id))
		return false
	}
	return true
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
