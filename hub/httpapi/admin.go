package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// Body limits. A rule set at its limits (protocol.MaxRuleEntries categories
// and SKUs, protocol.MaxCampaigns campaigns) fits in MaxRulesBody.
const (
	// MaxSmallBody bounds the bodies of the small requests (coalition,
	// partner, store, campaign, period, expiry).
	MaxSmallBody = 64 << 10
	// MaxRulesBody bounds a rule set.
	MaxRulesBody = 512 << 10
	// MaxSeedBody bounds a seed: seedfile.MaxBytes.
	MaxSeedBody = seedfile.MaxBytes
)

// PartnerBody is the body of PUT /v1/partners/{partner}.
type PartnerBody struct {
	// Name is for people.
	Name string `json:"name"`
}

// StoreBody is the body of PUT /v1/stores/{store}.
type StoreBody struct {
	// Partner is the brand the store trades as; required.
	Partner string `json:"partner"`
	// Name is for people.
	Name string `json:"name"`
}

// TerminalAnswer answers PUT /v1/stores/{store}/terminals/{terminal}.
type TerminalAnswer struct {
	Store      string `json:"store"`
	Terminal   string `json:"terminal"`
	Registered bool   `json:"registered"`
}

// Rules answers GET /v1/partners/{partner}/rules.
type Rules struct {
	Partner string `json:"partner"`
	// InForce is the version in force now; 0 when the partner has no rules.
	InForce int64 `json:"in_force"`
	// Versions are every version, oldest first.
	Versions []protocol.RuleSet `json:"versions"`
}

func (a *api) coalition(w http.ResponseWriter, r *http.Request) {
	c, err := a.o.Store.Coalition()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, c)
}

func (a *api) setCoalition(w http.ResponseWriter, r *http.Request) {
	var c ledger.Coalition
	if !decodeBody(w, r, MaxSmallBody, false, &c) {
		return
	}
	if err := a.o.Store.SetCoalition(c); err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "coalition")
	a.coalition(w, r)
}

// partners lists the partners; a partner's token sees only its own.
func (a *api) partners(w http.ResponseWriter, r *http.Request) {
	ps, err := a.o.Store.Partners()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if p := partnerOf(r); p != "" {
		// Not in place: a store may share the slice with what it keeps.
		ps = slices.DeleteFunc(slices.Clone(ps), func(x ledger.Partner) bool { return x.ID != p })
	}
	if ps == nil {
		ps = []ledger.Partner{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"partners": ps})
}

func (a *api) putPartner(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "partner")
	if !ok {
		return
	}
	var b PartnerBody
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	if err := a.o.Store.PutPartner(ledger.Partner{ID: id, Name: b.Name}, a.o.Clock.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "partner "+id)
	ps, err := a.o.Store.Partners()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, p := range ps {
		if p.ID == id {
			httpx.WriteJSON(w, http.StatusOK, p)
			return
		}
	}
	a.internal(w, r, fmt.Errorf("partner %s missing after it was recorded", id))
}

func (a *api) putStore(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "store")
	if !ok {
		return
	}
	var b StoreBody
	if !decodeBody(w, r, MaxSmallBody, false, &b) {
		return
	}
	if b.Partner == "" {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMissingField, "partner: is required: the brand the store trades as")
		return
	}
	if err := a.o.Store.PutStore(ledger.StoreInfo{ID: id, Partner: b.Partner, Name: b.Name}, a.o.Clock.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "store "+id)
	ss, err := a.o.Store.Stores()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, s := range ss {
		if s.ID == id {
			httpx.WriteJSON(w, http.StatusOK, s)
			return
		}
	}
	a.internal(w, r, fmt.Errorf("store %s missing after it was registered", id))
}

func (a *api) addTerminal(w http.ResponseWriter, r *http.Request) {
	store, terminal, ok := terminalPath(w, r)
	if !ok {
		return
	}
	var b struct{}
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	if err := a.o.Store.AddTerminal(store, terminal, a.o.Clock.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "terminal "+store+"/"+terminal)
	httpx.WriteJSON(w, http.StatusOK, TerminalAnswer{Store: store, Terminal: terminal, Registered: true})
}

func (a *api) rules(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "partner")
	if !ok || !a.ownPartner(w, r, id) {
		return
	}
	rs, err := a.o.Store.Rules(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := Rules{Partner: id, Versions: rs}
	if out.Versions == nil {
		out.Versions = []protocol.RuleSet{}
	}
	if cur := protocol.SelectRules(rs, a.o.Clock.Now()); cur != nil {
		out.InForce = cur.Version
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// addRules records a new version of a partner's rules. The partner is the
// path's; a body naming another is refused. The version is the hub's to
// assign, so one in the body (a version read back and edited) is ignored.
func (a *api) addRules(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "partner")
	if !ok {
		return
	}
	var rs protocol.RuleSet
	if !decodeBody(w, r, MaxRulesBody, false, &rs) {
		return
	}
	if rs.Partner != "" && rs.Partner != id {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, fmt.Sprintf("partner: the body names %q, the path %q", rs.Partner, id))
		return
	}
	rs.Partner, rs.Version = id, 0
	a.rulesMu.Lock()
	out, err := a.o.Store.AddRules(rs, a.o.Clock.Now())
	a.rulesMu.Unlock()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "rules of "+id)
	httpx.WriteJSON(w, http.StatusCreated, out)
}

// addCampaign records a new rules version: the one in force now plus the
// campaign, in force from now.
func (a *api) addCampaign(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "partner")
	if !ok {
		return
	}
	var c protocol.Campaign
	if !decodeBody(w, r, MaxSmallBody, false, &c) {
		return
	}
	a.rulesMu.Lock()
	defer a.rulesMu.Unlock()
	now := a.o.Clock.Now()
	versions, err := a.o.Store.Rules(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cur := protocol.SelectRules(versions, now)
	if cur == nil {
		a.fail(w, r, protocol.Errorf(protocol.CodeConflict, "partner", "%s has no earn rules yet; a campaign is added to the rules in force, so set them first", id))
		return
	}
	if last := versions[len(versions)-1]; last.EffectiveFrom.After(now) {
		a.fail(w, r, protocol.Errorf(protocol.CodeConflict, "partner", "%s has version %d scheduled for %s; add the campaign to that version's rules instead", id, last.Version, last.EffectiveFrom.UTC().Format("2006-01-02T15:04:05Z07:00")))
		return
	}
	for _, old := range cur.Campaigns {
		if old.ID == c.ID {
			a.fail(w, r, protocol.Errorf(protocol.CodeConflict, "id", "version %d of %s's rules already has a campaign %q", cur.Version, id, c.ID))
			return
		}
	}
	next := *cur
	next.Version, next.EffectiveFrom = 0, now
	next.Categories = maps.Clone(cur.Categories)
	next.SKUs = maps.Clone(cur.SKUs)
	next.Campaigns = append(slices.Clone(cur.Campaigns), c)
	out, err := a.o.Store.AddRules(next, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.changed(r, "campaign "+c.ID+" of "+id)
	httpx.WriteJSON(w, http.StatusCreated, out)
}

// seed loads a seed file, YAML or JSON (hub/seedfile).
func (a *api) seed(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r, MaxSeedBody)
	if !ok {
		return
	}
	s, err := seedfile.Parse(data)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rep, err := a.o.Store.LoadSeed(s, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.o.Logger.Info("seed loaded", "partners", rep.Partners, "stores", rep.Stores, "terminals", rep.Terminals, "rules", rep.Rules)
	a.o.OnChange()
	httpx.WriteJSON(w, http.StatusOK, rep)
}

// changed logs an administrative change and tells the hub.
func (a *api) changed(r *http.Request, what string) {
	a.o.Logger.Info("coalition changed", "what", what, "method", r.Method, "path", r.URL.Path)
	a.o.OnChange()
}

// readBody reads at most limit bytes of body, answering 413 too_large
// beyond that.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit))
		return nil, false
	case err != nil:
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, "reading the body: "+err.Error())
		return nil, false
	}
	return data, true
}

// decodeBody decodes a JSON body strictly into v: at most limit bytes, one
// value, no unknown fields. An empty body is {} when optional, else
// refused.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, optional bool, v any) bool {
	data, ok := readBody(w, r, limit)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return true
		}
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, "the body is empty; send a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("more than one JSON value in the body")
		}
	}
	if err != nil {
		code := protocol.CodeMalformed
		var pe *protocol.Error
		if errors.As(err, &pe) {
			code = pe.Code
		}
		httpx.WriteError(w, http.StatusBadRequest, code, bodyError(err))
		return false
	}
	return true
}

// timeExample is how the API writes a time, for the messages about one.
const timeExample = "RFC 3339, e.g. 2026-12-01T09:00:00Z"

// bodyError says in one line what is wrong with a JSON body, in the JSON
// API's terms: never Go's type names or time layouts.
func bodyError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		value := strings.Replace(te.Value, "bool", "boolean", 1)
		if te.Field != "" {
			return fmt.Sprintf("%s: a JSON %s where %s is wanted", te.Field, value, wanted(te.Type))
		}
		return fmt.Sprintf("a JSON %s where an object is wanted", value)
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON body ends too early"
	case errors.As(err, &pe):
		// time.Time decodes itself and says neither the field nor the
		// format in words; the value names the field well enough.
		why := ""
		if pe.Message != "" {
			why = " (" + strings.TrimPrefix(pe.Message, ": ") + ")"
		}
		return fmt.Sprintf("%q is not a time%s; write times in %s", pe.Value, why, timeExample)
	case strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		return "a time is a JSON string in " + timeExample
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return "unknown field " + f + "; see the API documentation for the fields allowed"
	}
	return strings.Join(strings.Fields(msg), " ")
}

// wanted says what a JSON value of type t is, for people.
func wanted(t reflect.Type) string {
	if t == reflect.TypeFor[time.Time]() {
		return "a time (" + timeExample + ")"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return wanted(t.Elem())
	}
	return "another kind of value"
}

// statusOf maps a protocol code to an HTTP status.
func statusOf(code protocol.Code) int {
	switch code {
	case protocol.CodeUnknownPartner, protocol.CodeUnknownStore, protocol.CodeUnknownMember, protocol.CodeNotFound:
		return http.StatusNotFound
	case protocol.CodeConflict, protocol.CodePeriodClosed:
		return http.StatusConflict
	case protocol.CodeEnrollmentUnknown, protocol.CodeEnrollmentUsed, protocol.CodeEnrollmentExpired, protocol.CodeForbidden:
		return http.StatusForbidden
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized
	case protocol.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// fail answers err: a protocol error with its code and status, anything
// else as 500 internal (the text goes to the log, not the client).
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code == protocol.CodeInternal {
		a.internal(w, r, err)
		return
	}
	msg := pe.Msg
	if pe.Field != "" {
		msg = pe.Field + ": " + msg
	}
	if msg == "" {
		msg = string(pe.Code)
	}
	httpx.WriteError(w, statusOf(pe.Code), pe.Code, msg)
}
