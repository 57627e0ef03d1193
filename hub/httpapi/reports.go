package httpapi

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// PeriodBody is the body of POST /v1/periods: close [From, To).
type PeriodBody struct {
	// From is the period's first day, YYYY-MM-DD.
	From string `json:"from"`
	// To is the day after its last, YYYY-MM-DD.
	To string `json:"to"`
}

// ExpiryBody is the body of POST /v1/expiry (optional).
type ExpiryBody struct {
	// AsOf expires the points that expired by then; default now. A time
	// after now is refused: points are never expired ahead of their time.
	AsOf time.Time `json:"as_of,omitzero"`
}

// Verify answers GET /v1/verify: the ledger's replay and whether it is OK.
type Verify struct {
	ledger.VerifyReport
	// OK is VerifyReport.OK(): the journal is balanced, its chain holds and
	// every stored figure agrees with it.
	OK bool `json:"ok"`
}

// SettlementCSVHeader is the header row of GET /v1/settlement?format=csv.
var SettlementCSVHeader = []string{"partner", "restates", "issued", "redeemed", "expired", "issued_value", "redeemed_value", "net"}

func (a *api) memberView(w http.ResponseWriter, r *http.Request) {
	m, ok := a.member(w, r)
	if !ok {
		return
	}
	v, err := a.o.Store.Member(m, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if v.Lots == nil {
		v.Lots = []ledger.Lot{}
	}
	if v.Holds == nil {
		v.Holds = []ledger.Hold{}
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

func (a *api) flags(w http.ResponseWriter, r *http.Request) {
	fs, err := a.o.Store.Flags()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if fs == nil {
		fs = []ledger.Flag{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"flags": fs})
}

// day parses a YYYY-MM-DD query parameter or body field.
func day(field, s string) (ledger.Day, error) {
	if s == "" {
		return 0, protocol.Errorf(protocol.CodeMissingField, field, "is required (YYYY-MM-DD)")
	}
	d, err := ledger.ParseDay(s)
	if err != nil {
		return 0, protocol.Errorf(protocol.CodeInvalidTime, field, "%q is not a day (YYYY-MM-DD) between 2000 and 2099", s)
	}
	return d, nil
}

// span parses from and to, and checks from is before to.
func span(from, to string) (ledger.Day, ledger.Day, error) {
	f, err := day("from", from)
	if err != nil {
		return 0, 0, err
	}
	t, err := day("to", to)
	if err != nil {
		return 0, 0, err
	}
	if t <= f {
		return 0, 0, protocol.Errorf(protocol.CodeInvalidTime, "to", "%s is not after from (%s); to is the day after the period's last", to, from)
	}
	return f, t, nil
}

// settlement reports on a period; a partner's token sees its own lines
// only, and a total of them.
func (a *api) settlement(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeMalformed, "format: want json or csv")
		return
	}
	from, to, err := span(q.Get("from"), q.Get("to"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.o.Store.Settlement(from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if p := partnerOf(r); p != "" {
		s.Lines = ownLines(s.Lines, p)
		s.Total = ledger.SettlementLine{Partner: "TOTAL"}
		for _, l := range s.Lines {
			s.Total.Add(l)
		}
	}
	if s.Lines == nil {
		s.Lines = []ledger.SettlementLine{}
	}
	if s.Total.Partner == "" {
		s.Total.Partner = "TOTAL"
	}
	if format != "csv" {
		httpx.WriteJSON(w, http.StatusOK, s)
		return
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write(SettlementCSVHeader)
	for _, l := range append(s.Lines, s.Total) {
		cw.Write(settlementRow(l, s.Currency))
	}
	cw.Flush()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="settlement-`+s.From.String()+`-`+s.To.String()+`.csv"`)
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// settlementRow is one CSV row: points as integers, values as decimals in
// major units of the currency.
func settlementRow(l ledger.SettlementLine, currency string) []string {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	m := func(v int64) string { return protocol.FormatMinor(v, currency) }
	return []string{l.Partner, l.Restates, i(l.Issued), i(l.Redeemed), i(l.Expired), m(l.IssuedValue), m(l.RedeemedValue), m(l.Net)}
}

// ownLines returns partner's settlement lines, in a new slice: the store
// may share ls with what it keeps.
func ownLines(ls []ledger.SettlementLine, partner string) []ledger.SettlementLine {
	out := []ledger.SettlementLine{}
	for _, l := range ls {
		if l.Partner == partner {
			out = append(out, l)
		}
	}
	return out
}

// periods lists the closed periods; a partner's token sees its own lines
// of each.
func (a *api) periods(w http.ResponseWriter, r *http.Request) {
	ps, err := a.o.Store.Periods()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if p := partnerOf(r); p != "" {
		for i := range ps {
			ps[i].Lines = ownLines(ps[i].Lines, p)
		}
	}
	if ps == nil {
		ps = []ledger.Period{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"periods": ps})
}

func (a *api) closePeriod(w http.ResponseWriter, r *http.Request) {
	var b PeriodBody
	if !decodeBody(w, r, MaxSmallBody, false, &b) {
		return
	}
	from, to, err := span(b.From, b.To)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.o.Store.ClosePeriod(from, to, a.o.Clock.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.o.Logger.Info("settlement period closed", "period", ledger.PeriodID(p.From, p.To), "journal_seq", p.JournalSeq)
	httpx.WriteJSON(w, http.StatusCreated, p)
}

func (a *api) expire(w http.ResponseWriter, r *http.Request) {
	var b ExpiryBody
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	now := a.o.Clock.Now()
	asOf := b.AsOf
	if asOf.IsZero() {
		asOf = now
	}
	if asOf.After(now) {
		httpx.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidTime, "as_of: "+asOf.UTC().Format(time.RFC3339)+" is in the future; points expire when their time comes, not before")
		return
	}
	rep, err := a.o.Store.Expire(asOf)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rep.Points != 0 {
		a.o.Logger.Info("points expired", "as_of", rep.AsOf, "lots", rep.Lots, "members", rep.Members, "points", rep.Points)
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
}

func (a *api) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := a.o.Store.VerifyContext(r.Context())
	if err != nil && r.Context().Err() != nil {
		// The client hung up (or the server is stopping): nobody reads an
		// answer, and the walk of the ledger stopped with it.
		a.o.Logger.Info("ledger verification given up: the request ended", "err", r.Context().Err())
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, Verify{VerifyReport: rep, OK: rep.OK()})
}
