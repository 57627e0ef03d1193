package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// errorBody is the API's error shape: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (d *Dashboard) internal(w http.ResponseWriter, r *http.Request, err error) {
	d.log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, protocol.CodeInternal, "internal error; see the hub log")
}

// page serves the app's one page (the stores and a store's page alike),
// or sends a browser without a session to the login page.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	ss, err := d.session(r)
	if err != nil {
		d.log.Error("dashboard session", "err", err)
		http.Error(w, "The hub could not check the session; see its log.", http.StatusInternalServerError)
		return
	}
	if ss == nil {
		http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		return
	}
	body, err := assets.ReadFile("assets/app.html")
	if err != nil {
		d.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(body)
}

func sessionInfo(ss *session) SessionInfo {
	return SessionInfo{
		TokenID: ss.tok.ID, Name: ss.tok.Name, Role: ss.tok.Role, Partner: ss.partner(),
		CanVerify: ss.tok.Role == ledger.RoleOperator || ss.tok.Role == ledger.RoleReadOnly,
	}
}

// Snapshot returns what the main page shows to ss.
func (d *Dashboard) snapshotFor(ss *session) (Snapshot, error) {
	s := d.state()
	if s.err != nil {
		return Snapshot{}, s.err
	}
	stores, rejections, ov := s.scoped(ss)
	snap := Snapshot{Session: sessionInfo(ss), Overview: ov, Samples: s.samples, Stores: stores, Rejections: rejections, Alerts: d.alertsFor(ss)}
	if snap.Samples == nil {
		snap.Samples = []Sample{}
	}
	if ss.partner() == "" {
		h := d.verifier.health()
		snap.Ledger = &h
	}
	return snap, nil
}

func (d *Dashboard) snapshot(w http.ResponseWriter, r *http.Request, ss *session) {
	snap, err := d.snapshotFor(ss)
	if err != nil {
		d.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

// detailError is a store page refused: its status, code and message.
type detailError struct {
	status int
	code   protocol.Code
	msg    string
}

// detail returns the store page of store for ss; with recent false, its
// journal entries are left out (Recent nil).
func (d *Dashboard) detail(ss *session, store string, recent bool) (StoreDetail, *detailError, error) {
	if !protocol.ValidID(store) {
		return StoreDetail{}, &detailError{http.StatusBadRequest, protocol.CodeInvalidID, fmt.Sprintf("store: must be 1-%d characters of A-Z a-z 0-9 . _ -", protocol.MaxIDLen)}, nil
	}
	s := d.state()
	if s.err != nil {
		return StoreDetail{}, nil, s.err
	}
	var row *StoreRow
	for i := range s.stores {
		if s.stores[i].Store == store {
			row = &s.stores[i]
		}
	}
	if row == nil {
		return StoreDetail{}, &detailError{http.StatusNotFound, protocol.CodeUnknownStore, "no store " + store + " at the hub"}, nil
	}
	p := ss.partner()
	if p != "" && (!row.Registered || row.Partner != p) {
		return StoreDetail{}, &detailError{http.StatusForbidden, protocol.CodeForbidden, fmt.Sprintf("a partner token of %s may not see store %s", p, store)}, nil
	}
	det := StoreDetail{Now: s.at, Store: *row, Terminals: s.terminals[store], Rejections: []Rejection{}}
	if det.Terminals == nil {
		det.Terminals = []TerminalRow{}
	}
	_, rejections, _ := s.scoped(ss)
	for _, r := range rejections {
		if r.Store == store {
			det.Rejections = append(det.Rejections, r)
		}
	}
	if recent {
		det.Recent = []TxRow{}
		if d.o.Recent != nil {
			es, err := d.o.Recent(store, RecentLimit)
			if err != nil {
				return StoreDetail{}, nil, err
			}
			for _, e := range es {
				tx := TxRow{Seq: e.Seq, TxID: e.TxID, Kind: e.Kind, Member: e.Member, Terminal: e.Terminal,
					Points: e.Points, Original: e.Original, At: e.At, CreatedAt: e.CreatedAt,
					LagMS: float64(max(e.At.Sub(e.CreatedAt), 0)) / float64(time.Millisecond)}
				if p != "" {
					tx.Member = ""
				}
				det.Recent = append(det.Recent, tx)
			}
		}
	}
	return det, nil, nil
}

func (d *Dashboard) storeDetail(w http.ResponseWriter, r *http.Request, ss *session) {
	det, derr, err := d.detail(ss, r.PathValue("store"), true)
	switch {
	case err != nil:
		d.internal(w, r, err)
	case derr != nil:
		writeError(w, derr.status, derr.code, derr.msg)
	default:
		writeJSON(w, http.StatusOK, det)
	}
}

// verify asks for a ledger verification: operator and read-only sessions
// (the same who may GET /v1/verify), at most once per VerifyGap.
func (d *Dashboard) verify(w http.ResponseWriter, r *http.Request, ss *session) {
	if !sessionInfo(ss).CanVerify {
		writeError(w, http.StatusForbidden, protocol.CodeForbidden, "a partner token may not verify the ledger")
		return
	}
	now := d.o.Clock.Now()
	queued, retry := d.verifier.ask(now)
	if !queued {
		secs := int(retry.Sub(now).Seconds() + 0.999)
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
		writeError(w, http.StatusTooManyRequests, "too_soon", fmt.Sprintf("a verification runs or ran moments ago; ask again in %d s", max(secs, 1)))
		return
	}
	d.log.Info("ledger verification asked for on the dashboard", "token_id", ss.tok.ID, "role", ss.tok.Role)
	writeJSON(w, http.StatusAccepted, d.verifier.health())
}

// events is the live stream (server-sent events): on connecting, every
// part of the page; then, every Tick, the parts that changed. With
// ?store=ID it carries that store's page instead of the stores table.
//
// Events: session, overview, alerts (with alert rules) (every Tick: it carries the hub's time),
// samples (the new ones), stores, rejections, ledger, store, and
// signedout when the session ended (the stream then closes).
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, ss *session) {
	store := r.URL.Query().Get("store")
	if store != "" {
		if _, derr, err := d.detail(ss, store, false); err != nil {
			d.internal(w, r, err)
			return
		} else if derr != nil {
			writeError(w, derr.status, derr.code, derr.msg)
			return
		}
	}
	select {
	case d.streams <- struct{}{}:
		defer func() { <-d.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "busy", "too many live streams; try again shortly")
		return
	}
	rc := http.NewResponseController(w)
	// The server's read deadline is for reading requests; a stream only
	// writes, for as long as the page is open.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")

	last := map[string][]byte{}
	var lastSample time.Time
	var lastBatches int64 = -1
	var recent []TxRow
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if bytes.Equal(last[event], b) {
			return nil
		}
		last[event] = b
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		return err
	}
	tick := time.NewTicker(d.o.Tick)
	defer tick.Stop()
	for {
		cur, err := d.sessions.get(ss.id, d.o.Clock.Now())
		if err != nil {
			d.log.Error("dashboard session", "err", err)
		} else if cur == nil {
			fmt.Fprint(w, "event: signedout\ndata: {}\n\n")
			rc.Flush()
			return
		} else {
			ss = cur
		}
		if err := d.push(ss, store, send, &lastSample, &lastBatches, &recent); err != nil {
			d.log.Debug("dashboard stream ended", "err", err)
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// push sends one round of a stream's events.
func (d *Dashboard) push(ss *session, store string, send func(string, any) error, lastSample *time.Time, lastBatches *int64, recent *[]TxRow) error {
	s := d.state()
	if s.err != nil {
		d.log.Error("dashboard view", "err", s.err)
		return nil // try again next round
	}
	stores, rejections, ov := s.scoped(ss)
	if err := send("session", sessionInfo(ss)); err != nil {
		return err
	}
	if err := send("overview", ov); err != nil {
		return err
	}
	var fresh []Sample
	for _, x := range s.samples {
		if x.At.After(*lastSample) {
			fresh = append(fresh, x)
		}
	}
	if len(fresh) > 0 {
		*lastSample = fresh[len(fresh)-1].At
		if err := send("samples", fresh); err != nil {
			return err
		}
	}
	if ss.partner() == "" {
		if err := send("ledger", d.verifier.health()); err != nil {
			return err
		}
	}
	if store == "" {
		if d.o.Alerts != nil { // without rules the page shows no panel
			if err := send("alerts", d.alertsFor(ss)); err != nil {
				return err
			}
		}
		if err := send("stores", stores); err != nil {
			return err
		}
		return send("rejections", rejections)
	}
	// A store page: its journal entries are read again only after new
	// batches arrived.
	batches := int64(0)
	if s.counters != nil {
		batches = s.counters.Batches
	}
	fetch := batches != *lastBatches
	det, derr, err := d.detail(ss, store, fetch)
	if err != nil {
		d.log.Error("dashboard store page", "store", store, "err", err)
		return nil
	}
	if derr != nil {
		return send("store", map[string]any{"error": derr.msg})
	}
	if fetch {
		*lastBatches, *recent = batches, det.Recent
	} else {
		det.Recent = *recent
	}
	det.Now = time.Time{} // the overview carries the time; an unchanged page is not sent again
	return send("store", det)
}

// alertsFor returns the alerts panel for ss: a partner's session sees its
// own partner's stores' alerts only.
func (d *Dashboard) alertsFor(ss *session) Alerts {
	a := Alerts{Configured: d.o.Alerts != nil, Firing: []Alert{}}
	if d.o.Alerts == nil {
		return a
	}
	p := ss.partner()
	for _, x := range d.o.Alerts() {
		if p == "" || (x.Partner == p) {
			a.Firing = append(a.Firing, x)
		}
	}
	return a
}

// alertsAPI serves the alerts firing now.
func (d *Dashboard) alertsAPI(w http.ResponseWriter, r *http.Request, ss *session) {
	writeJSON(w, http.StatusOK, d.alertsFor(ss))
}
