package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// CookieName is the session cookie's name.
const CookieName = "tillsync_dashboard"

// maxLoginBody bounds a sign-in form: a token is about 60 characters.
const maxLoginBody = 4 << 10

// session is one signed-in browser. The token's secret is not kept: the
// session id stands in for it until the session ends. id and tok never
// change once made (requests read them without the lock); the times are
// sessions.mu's.
type session struct {
	id  string
	tok ledger.APIToken
	// created is the sign-in, used the last request, checked the last
	// look-up of the token in the ledger.
	created, used, checked time.Time
}

// partner is the partner the session's answers are narrowed to: "" for
// every role but partner.
func (s *session) partner() string {
	if s.tok.Role == ledger.RolePartner {
		return s.tok.Partner
	}
	return ""
}

// sessions are the signed-in browsers, in memory: a hub restart signs
// everybody out.
type sessions struct {
	o  Options
	mu sync.Mutex
	m  map[string]*session
}

func newSessions(o Options) *sessions {
	return &sessions{o: o, m: make(map[string]*session)}
}

// create starts a session for tok, ending the least recently used one
// when MaxSessions are open.
func (s *sessions) create(tok ledger.APIToken, now time.Time) *session {
	var b [32]byte
	rand.Read(b[:])
	ss := &session{id: base64.RawURLEncoding.EncodeToString(b[:]), tok: tok, created: now, used: now, checked: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.o.MaxSessions {
		s.sweepLocked(now)
	}
	for len(s.m) >= s.o.MaxSessions {
		var oldest *session
		for _, x := range s.m {
			if oldest == nil || x.used.Before(oldest.used) {
				oldest = x
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[ss.id] = ss
	return ss
}

// get returns the live session id names, marking it used, or nil. Every
// SessionRecheck it looks the token up again, and ends the session when
// the token was revoked.
func (s *sessions) get(id string, now time.Time) (*session, error) {
	s.mu.Lock()
	ss := s.m[id]
	if ss != nil && s.expired(ss, now) {
		delete(s.m, id)
		ss = nil
	}
	if ss == nil {
		s.mu.Unlock()
		return nil, nil
	}
	ss.used = now
	recheck := now.Sub(ss.checked) >= s.o.SessionRecheck || now.Before(ss.checked)
	tok := ss.tok
	s.mu.Unlock()
	if !recheck {
		return ss, nil
	}
	toks, err := s.o.Store.APITokens()
	if err != nil {
		return nil, err
	}
	var cur *ledger.APIToken
	for i := range toks {
		if toks[i].ID == tok.ID {
			cur = &toks[i]
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur == nil || !cur.RevokedAt.IsZero() {
		delete(s.m, id)
		return nil, nil
	}
	ss.checked = now
	return ss, nil
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.used) >= s.o.SessionIdle || now.Sub(ss.created) >= s.o.SessionMax
}

// end ends the session id names, if any.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// sweep forgets the expired sessions.
func (s *sessions) sweep(now time.Time) {
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
}

func (s *sessions) sweepLocked(now time.Time) {
	for id, ss := range s.m {
		if s.expired(ss, now) {
			delete(s.m, id)
		}
	}
}

// count is the number of sessions kept.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// session returns r's live session, or nil.
func (d *Dashboard) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	return d.sessions.get(c.Value, d.o.Clock.Now())
}

// cookie is the session cookie: HttpOnly so that no script reads it,
// SameSite=Strict so that no other site's page sends it, Secure when the
// browser came over https, and no expiry (the session ends on the hub).
func cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// api wraps a data endpoint: it needs a session (401 unauthorized without
// one), and a change (POST) must come from the dashboard's own pages.
func (d *Dashboard) api(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, err := d.session(r)
		if err != nil {
			d.internal(w, r, err)
			return
		}
		if ss == nil {
			d.refused(r, "", "no session")
			writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "sign in at "+Prefix+"login")
			return
		}
		if r.Method != http.MethodGet && !sameOrigin(r) {
			writeError(w, http.StatusForbidden, protocol.CodeForbidden, "a change must come from the dashboard's own pages")
			return
		}
		h(w, r, ss)
	}
}

// sameOrigin reports whether a browser's request came from a page of this
// host: the Origin header, when sent, must name it. SameSite=Strict keeps
// the cookie off other sites' requests already; this refuses them even
// before a session is looked at (a sign-in).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

var loginTmpl = template.Must(template.ParseFS(assets, "assets/login.html"))

type loginData struct {
	Error string
	Next  string
}

// loginPage shows the sign-in form, or sends a signed-in browser on.
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if ss, _ := d.session(r); ss != nil {
		http.Redirect(w, r, nextPage(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.renderLogin(w, http.StatusOK, loginData{Next: nextPage(r.URL.Query().Get("next"))})
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, status int, data loginData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTmpl.Execute(w, data); err != nil {
		d.log.Debug("dashboard login page", "err", err)
	}
}

// login checks the pasted API token as the API would and starts a session.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "Sign in from the dashboard's own login page.", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, http.StatusBadRequest, loginData{Error: "The form could not be read."})
		return
	}
	next := nextPage(r.PostFormValue("next"))
	fail := func(status int, msg, tokenID, why string) {
		d.refused(r, tokenID, why)
		d.renderLogin(w, status, loginData{Error: msg, Next: next})
	}
	id, secret, err := protocol.ParseAPIToken(strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		fail(http.StatusUnauthorized, "That is not an API token: paste the whole TSA1.… line.", "", "not an API token")
		return
	}
	now := d.o.Clock.Now()
	tok, err := d.o.Store.AuthenticateAPIToken(id, secret, now)
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe) && pe.Code == protocol.CodeUnauthorized:
		fail(http.StatusUnauthorized, "The hub did not accept that token: "+pe.Msg+".", id, pe.Msg)
		return
	case err != nil:
		d.log.Error("dashboard sign-in: checking the token failed", "token_id", id, "err", err)
		d.renderLogin(w, http.StatusInternalServerError, loginData{Error: "The hub could not check the token; see its log.", Next: next})
		return
	}
	ss := d.sessions.create(tok, now)
	d.log.Info("dashboard sign-in", "token_id", tok.ID, "role", tok.Role, "partner", dash(tok.Partner), "remote", r.RemoteAddr)
	http.SetCookie(w, cookie(r, ss.id, 0))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and clears the cookie.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "Sign out from the dashboard's own pages.", http.StatusForbidden)
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		d.sessions.end(c.Value)
	}
	http.SetCookie(w, cookie(r, "", -1))
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// nextPage is where to go after signing in: a dashboard page, never
// another site.
func nextPage(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, Prefix) || strings.Contains(next, `\`) || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(u.Path, Prefix+"api/") || u.Path == Prefix+"login" {
		return Prefix
	}
	return u.Path
}

// refused logs a refused sign-in or request without a session at WARN,
// at most once a minute per address and reason: a script or someone
// guessing must not flood the log. The token is never logged; its id is.
func (d *Dashboard) refused(r *http.Request, tokenID, why string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	quiet, ok := d.refusals.Allow(host+" "+why, d.o.Clock.Now())
	if !ok {
		return
	}
	attrs := []any{"path", r.URL.Path, "reason", why, "token_id", dash(tokenID), "remote", r.RemoteAddr}
	if quiet > 0 {
		attrs = append(attrs, "unlogged", quiet)
	}
	d.log.Warn("dashboard request refused", attrs...)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
