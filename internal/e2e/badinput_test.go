//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// The bad-input tour (TestBadInputTour) walks every input surface of a
// running system — the POS API of an enrolled till, the hub's HTTP API,
// both commands, and a terminal's MQTT channel — with input that is
// malformed, oversized, of the wrong type or out of range. Every answer
// must be a clear refusal with a stable code, and nothing may change: the
// till's outbox and idempotency records, the hub's ledger, registry and
// tokens, the files on disk. The answers make the table in
// docs/reliability.md, which the test keeps true: it fails when the table
// there differs from the answers, and rewrites it with -update-docs (or
// TILLSYNC_UPDATE_DOCS=1).
//
// Unix only: the commands' messages about files and ports are worded by
// the OS, and the table is one.

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated tables in docs/ (the bad-input tour's in docs/reliability.md) from what the tests saw")

// docsUpdate reports whether the tests should rewrite the docs' generated
// tables rather than compare them.
func docsUpdate() bool { return *updateDocs || os.Getenv("TILLSYNC_UPDATE_DOCS") != "" }

const (
	reliabilityDoc = "../../docs/reliability.md"
	tourBegin      = "<!-- bad-input-tour:begin -->"
	tourEnd        = "<!-- bad-input-tour:end -->"
)

// The tour's fixed world: a coalition in EUR, two partners, one store of
// the first with an enrolled till running (till-1) and an enrolled
// terminal the test speaks MQTT for (till-2), and one member with points.
const (
	tourStore    = "tour-store"
	tourTill     = "till-1"
	tourMQTTTill = "till-2"
	tourOther    = "cafe" // a second partner, for partner tokens reaching across
	tourMember   = "M1001"
	tourSecret   = "tour-pos-shared-secret-0123456789"
	tourEarnKey  = "tour-earn-1" // the Idempotency-Key of the setup's earn
)

// tourRow is one line of the table: what was tried and what came back.
type tourRow struct {
	Surface string // POS API, hub API, tillsync-agent, tillsync-hub, MQTT
	Input   string // what was tried, for people
	Answer  string // HTTP status, exit status, or what the hub did
	Code    string // the stable code
	Message string // the message as the product gave it, normalized
}

// tour is the world the bad inputs are thrown at, with what it answered.
type tour struct {
	t    *testing.T
	e    *env
	h    *hubRun
	till *till
	// hubLog is the hub's log (JSON), for the reasons of refused MQTT messages.
	hubLog *testkit.Buffer
	// earnTx is the setup earn's transaction id (the original of the reverses).
	earnTx string
	// unknownEnroll is an enrollment token of the right form that the hub
	// never issued.
	unknownEnroll string
	// tokens are API tokens by role: operator, read-only, partner (of
	// pharmacy), revoked (a read-only token revoked).
	tokens   map[string]string
	tokenIDs map[string]string
	// root holds every file the command rows use; it must not change.
	root string
	// tillDir is the enrolled till's data dir.
	tillDir string
	// replace normalizes what varies from run to run (ports, paths, ids)
	// in the table.
	replace []string
	rows    []tourRow
}

// norm takes out of s what differs between runs.
func (tr *tour) norm(s string) string {
	return strings.NewReplacer(tr.replace...).Replace(s)
}

// tourAbbrev shortens the command lines in the table: the flags every row
// of a kind repeats (docs/reliability.md says what each stands for).
var tourAbbrev = strings.NewReplacer(
	"--data-dir $TMP/agent-data --hub tcp://127.0.0.1:1 --store s1 --terminal t1 --partner p1", "<run flags>",
	"--data-dir $TMP/hub-data --mqtt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0", "<serve flags>",
	"--hub http://127.0.0.1:PORT --token <operator token>", "<as operator>",
	"--hub http://127.0.0.1:PORT --token <read-only token>", "<as read-only>",
	"--hub http://127.0.0.1:PORT --token <partner token>", "<as partner>",
	"--hub http://127.0.0.1:PORT --token <revoked token>", "<as revoked>",
)

// record adds a row to the table.
func (tr *tour) record(r tourRow) {
	r.Input, r.Message = tourAbbrev.Replace(tr.norm(r.Input)), tr.norm(r.Message)
	tr.rows = append(tr.rows, r)
}

// TestBadInputTour: see the comment at the top of this file.
func TestBadInputTour(t *testing.T) {
	tr := startTour(t)
	tr.posAPI()
	tr.hubAPI()
	tr.agentCLI()
	tr.hubCLI()
	tr.mqtt()

	// Through all of it the system stayed sound, and still works.
	tr.h.verify(t)
	st, r, code := postWithSecret(t, tr.till.pos+"/v1/earn", `{"member":"`+tourMember+`","amount":1000,"currency":"EUR"}`)
	if st != http.StatusOK || r.Status != "accepted" {
		t.Fatalf("an earn after the tour: HTTP %d %s %+v", st, code, r)
	}
	tr.waitDrained()
	if got, _ := tr.h.balance(t, tourMember); got != 60 {
		t.Errorf("the member's balance after the tour's one earn: %d, want 60", got)
	}

	tr.checkDoc()
}

// startTour starts the hub and the enrolled till, and sets the world up.
func startTour(t *testing.T) *tour {
	tr := &tour{t: t, hubLog: new(testkit.Buffer), tokens: map[string]string{}, tokenIDs: map[string]string{}}
	e := newEnv(t, "embedded")
	e.httpAddr = testkit.FreePort(t)
	e.requireEnrollment = true
	e.log = jsonLogger(tr.hubLog)
	e.stores = []string{tourStore}
	tr.e = e
	tr.h = startHubOnce(t, e)
	st := tr.h.h.Ledger()
	if err := st.PutPartner(ledger.Partner{ID: tourOther, Name: "Cafe"}, time.Now()); err != nil {
		t.Fatal(err)
	}

	dir, _ := enrollTerminal(t, e, st, tourStore, tourTill)
	tr.tillDir = dir
	tr.till = startTill(t, agent.Options{DataDir: dir, Broker: e.brokerURL(), Store: tourStore, Terminal: tourTill, POSSecret: tourSecret})
	testkit.WaitFor(t, waitLong, "the till connected, with the hub's earn rules", func() bool {
		h := tr.till.a.Health(context.Background())
		return h.HubConnected && h.RulesVersion != 0
	})
	// The member has 50 points, from an earn the reverses can name.
	req, _ := json.Marshal(map[string]any{"member": tourMember, "amount": 5000, "currency": "EUR"})
	st2, res, code := postWithSecretKey(t, tr.till.pos+"/v1/earn", string(req), tourEarnKey)
	if st2 != http.StatusOK || res.Status != "accepted" || res.Points != 50 {
		t.Fatalf("the setup's earn: HTTP %d %s %+v", st2, code, res)
	}
	tr.earnTx = res.TxID
	tr.waitDrained()

	// API tokens of every role, and a revoked one.
	tr.tokens["operator"] = e.hubToken(t)
	id, _, _ := protocol.ParseAPIToken(tr.tokens["operator"])
	tr.tokenIDs["operator"] = id
	for _, c := range []struct{ name, role, partner string }{
		{"read-only", "read-only", ""}, {"partner", "partner", e2ePartner}, {"revoked", "read-only", ""},
	} {
		var nt httpapi.NewAPIToken
		if st, code := hubPost(t, e, "/v1/api-tokens", httpapi.APITokenBody{Role: ledger.Role(c.role), Partner: c.partner, Name: "tour " + c.name}, &nt); st != http.StatusCreated {
			t.Fatalf("api token %s: HTTP %d %s", c.name, st, code)
		}
		tr.tokens[c.name], tr.tokenIDs[c.name] = nt.Token, nt.APIToken.ID
	}
	if st, code := hubPost(t, e, "/v1/api-tokens/"+tr.tokenIDs["revoked"]+"/revoke", nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", st, code)
	}

	// The revoked token's time of revocation, as its refusal says it.
	toks, err := st.APITokens()
	if err != nil {
		t.Fatal(err)
	}
	var revokedAt string
	for _, tok := range toks {
		if tok.ID == tr.tokenIDs["revoked"] {
			revokedAt = tok.RevokedAt.UTC().Format(time.RFC3339)
		}
	}

	tr.root = t.TempDir()
	for _, d := range []string{"cwd", "home"} {
		if err := os.MkdirAll(filepath.Join(tr.root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tr.unknownEnroll = protocol.FormatEnrollmentToken("0123456789abcdef", make([]byte, 32), "")
	tr.replace = []string{
		tr.unknownEnroll, "<unknown enrollment token>",
		tr.root, "$TMP",
		tr.tillDir, "$TILL",
		tr.earnTx, "<earn tx_id>",
		revokedAt, "<time of revocation>",
	}
	// The addresses on free ports; the others in the table are fixed.
	for _, addr := range []string{e.httpAddr, e.mqttAddr, strings.TrimPrefix(tr.till.pos, "http://")} {
		host, _, _ := strings.Cut(addr, ":")
		tr.replace = append(tr.replace, addr, host+":PORT")
	}
	for _, name := range []string{"operator", "read-only", "partner", "revoked"} {
		tr.replace = append(tr.replace, tr.tokens[name], "<"+name+" token>", tr.tokenIDs[name], "<"+name+" token id>")
	}
	return tr
}

func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitDrained waits until the till is connected with an empty outbox.
func (tr *tour) waitDrained() {
	tr.t.Helper()
	testkit.WaitFor(tr.t, waitLong, "the till's outbox to drain", func() bool {
		h := tr.till.a.Health(context.Background())
		return h.HubConnected && h.Backlog == 0
	})
}

// postWithSecret posts body to the POS API with the tour's shared secret.
func postWithSecret(t *testing.T, url, body string) (int, posapiResult, string) {
	return postWithSecretKey(t, url, body, "")
}

type posapiResult struct {
	Status string `json:"status"`
	TxID   string `json:"tx_id"`
	Points int64  `json:"points"`
}

func postWithSecretKey(t *testing.T, url, body, key string) (int, posapiResult, string) {
	t.Helper()
	h := [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer " + tourSecret}}
	if key != "" {
		h = append(h, [2]string{"Idempotency-Key", key})
	}
	r := send(t, "POST", url, body, h)
	var res posapiResult
	if r.status == http.StatusOK {
		if err := json.Unmarshal([]byte(r.body), &res); err != nil {
			t.Fatalf("POST %s: %s: %v", url, r.body, err)
		}
		return r.status, res, ""
	}
	code, _ := errorOf(r.body)
	return r.status, res, code
}

// errorOf decodes an error body strictly: {"error":{"code","message"}} and
// nothing else.
func errorOf(body string) (code, message string) {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&eb) != nil {
		return "", ""
	}
	return eb.Error.Code, eb.Error.Message
}

// checkHTTPError checks an error answer: the status, a JSON error body
// with the code and a one-line message. It returns the message.
func checkHTTPError(t *testing.T, what string, r rawResponse, status int, code protocol.Code) string {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: HTTP %d, want %d: %s", what, r.status, status, r.body)
	}
	if !strings.HasPrefix(r.contentType, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, r.contentType)
	}
	got, msg := errorOf(r.body)
	if got == "" {
		t.Errorf("%s: the answer is not an error body: %q", what, r.body)
		return ""
	}
	if got != string(code) {
		t.Errorf("%s: code %q, want %q (message %q)", what, got, code, msg)
	}
	if err := oneLine(msg); err != nil {
		t.Errorf("%s: message %q: %v", what, msg, err)
	}
	if m := httpInternals.FindString(msg); m != "" {
		t.Errorf("%s: message %q shows Go's %q", what, msg, m)
	}
	return msg
}

// httpInternals matches what an API's message must never show: Go's type
// names, parser errors and time layouts.
var httpInternals = regexp.MustCompile(`strconv\.|reflect\.|parsing time|2006-01-02T15|Z07:00|\bu?int(8|16|32|64)?\b|\bfloat(32|64)\b|\bprotocol\.|\bledger\.|\[\]`)

// tourState is a snapshot of what a bad input must not change, as JSON: equal
// snapshots are equal states.
type tourState map[string]string

// diff describes what changed from s to o.
func (s tourState) diff(o tourState) string {
	keys := slices.Sorted(maps.Keys(s))
	for k := range o {
		if _, ok := s[k]; !ok {
			keys = append(keys, k)
		}
	}
	var out []string
	for _, k := range keys {
		if s[k] != o[k] {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, s[k], o[k]))
		}
	}
	return strings.Join(out, "; ")
}

func (s tourState) put(t *testing.T, k string, v any, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("snapshot %s: %v", k, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("snapshot %s: %v", k, err)
	}
	s[k] = string(b)
}

// snapshot is the state of the till, the hub and the files the command
// rows use.
func (tr *tour) snapshot() tourState {
	t := tr.t
	t.Helper()
	s := tourState{}

	// The till: its outbox, idempotency records and health.
	ob := tr.till.a.Outbox()
	n, _, err := ob.Stats()
	s.put(t, "outbox.count", n, err)
	pend, err := ob.Pending(0, 1000)
	s.put(t, "outbox.pending", pend, err)
	burns, err := ob.PendingBurns()
	s.put(t, "outbox.pending_burns", burns, err)
	rec, found, err := ob.Idem(tourEarnKey)
	s.put(t, "outbox.idem["+tourEarnKey+"]", fmt.Sprint(found, rec.TxID, rec.Hash), err)
	h := tr.till.a.Health(context.Background())
	for _, f := range []string{agent.EnrollmentFile, agent.TerminalKeyFile, agent.HubCAFile} {
		b, err := os.ReadFile(filepath.Join(tr.tillDir, f))
		if errors.Is(err, fs.ErrNotExist) {
			b, err = []byte("(none)"), nil // no CA over plain MQTT
		}
		s.put(t, "till."+f, string(b), err)
	}
	s.put(t, "till.health", map[string]any{
		"connected": h.HubConnected, "backlog": h.Backlog, "rejections": h.HubRejections, "held": h.HubHeld,
		"mac_refused": h.MACRefused, "config_refused": h.ConfigRefused, "rules_version": h.RulesVersion,
		"offline": h.Offline.Points, "scans": h.Scanner.Scans,
	}, nil)

	// The hub: the ledger and everything registered in it.
	st := tr.h.h.Ledger()
	txs, err := st.Transactions()
	s.put(t, "ledger.transactions", txs, err)
	bal, err := st.MemberBalances()
	s.put(t, "ledger.balances", bal, err)
	rep, err := st.Verify()
	s.put(t, "ledger.verify", rep, err)
	if !rep.OK() {
		t.Fatalf("the ledger does not verify: %+v", rep)
	}
	c, err := st.Coalition()
	s.put(t, "coalition", c, err)
	ps, err := st.Partners()
	s.put(t, "partners", ps, err)
	for _, p := range ps {
		rs, err := st.Rules(p.ID)
		s.put(t, "rules["+p.ID+"]", rs, err)
	}
	ss, err := st.Stores()
	s.put(t, "stores", ss, err)
	ts, err := st.Terminals()
	s.put(t, "terminals", ts, err)
	es, err := st.Enrollments()
	s.put(t, "enrollments", es, err)
	toks, err := st.APITokens()
	for i := range toks {
		toks[i].LastUsed = time.Time{} // a token's use is recorded by design
	}
	s.put(t, "api_tokens", toks, err)
	pers, err := st.Periods()
	s.put(t, "periods", pers, err)
	fl, err := st.Flags()
	s.put(t, "flags", fl, err)
	tf, err := st.TokenFlags()
	s.put(t, "token_flags", tf, err)
	in := tr.h.h.Stats()
	s.put(t, "ingest", map[string]int64{"applied": in.Applied, "duplicates": in.Duplicates,
		"rejected": in.Rejected, "held": in.Held, "replays": in.Replays, "sightings": in.Sightings}, nil)

	// The files the command rows use, one entry each.
	for _, f := range tr.files() {
		name, rest, _ := strings.Cut(f, " ")
		s["file "+name] = rest
	}
	return s
}

// files lists every file under root with its mode and content.
func (tr *tour) files() []string {
	var out []string
	err := filepath.WalkDir(tr.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := strings.TrimPrefix(p, tr.root) + " " + info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %x", len(b), b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		tr.t.Fatalf("listing %s: %v", tr.root, err)
	}
	return out
}

// unchanged runs one bad input and fails the row if anything changed.
func (tr *tour) unchanged(what string, f func()) {
	tr.t.Helper()
	before := tr.snapshot()
	f()
	if d := before.diff(tr.snapshot()); d != "" {
		tr.t.Errorf("%s changed something: %s", what, d)
	}
}

// table renders the rows as the markdown table the docs keep.
func (tr *tour) table() string {
	var b strings.Builder
	b.WriteString("| surface | input | answer | code | message |\n|---|---|---|---|---|\n")
	cell := func(s string) string {
		if s == "" {
			return "—"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	for _, r := range tr.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.Surface), cell(r.Input), cell(r.Answer), codeCell(r.Code), cell(r.Message))
	}
	return b.String()
}

func codeCell(c string) string {
	if c == "" {
		return "—"
	}
	return "`" + c + "`"
}

// checkDoc compares the table with docs/reliability.md's, or rewrites it.
func (tr *tour) checkDoc() {
	t := tr.t
	t.Helper()
	if t.Failed() {
		t.Log("the table in docs/reliability.md is neither checked nor rewritten: the tour failed")
		return
	}
	data, err := os.ReadFile(reliabilityDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, tourBegin), strings.Index(doc, tourEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %s … %s region", reliabilityDoc, tourBegin, tourEnd)
	}
	have := doc[i+len(tourBegin) : j]
	want := "\n" + tr.table()
	if have == want {
		return
	}
	if docsUpdate() {
		doc = doc[:i+len(tourBegin)] + want + doc[j:]
		if err := os.WriteFile(reliabilityDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the bad-input tour's table in %s (%d rows)", reliabilityDoc, len(tr.rows))
		return
	}
	t.Errorf("the bad-input tour's table in docs/reliability.md is not what the tour saw; run go test ./internal/e2e -run TestBadInputTour -update-docs (or TILLSYNC_UPDATE_DOCS=1) to rewrite it, and review the change:\n%s",
		lineDiff(have, want))
}

// lineDiff shows the lines of a that b lacks (-) and those b adds (+).
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// The longest common subsequence of lines; tables are a few hundred lines.
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out bytes.Buffer
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+ %s\n", y[j])
			j++
		default:
			fmt.Fprintf(&out, "- %s\n", x[i])
			i++
		}
	}
	return out.String()
}
