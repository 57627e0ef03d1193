package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// Helpers for the agent-behaviour tests (agent_test.go, posapi_test.go,
// scans_unix_test.go). They add to e2e_test.go's helpers without changing
// them: tills with chosen options, always stopped by the end of the test, and a bare broker with no hub behind it.

const waitLong = 10 * time.Second // generous: the package runs under -race

// till is an agent run by a test, with its data dir, so it can be stopped
// and reopened from its bbolt file.
type till struct {
	*agentProc
	opts agent.Options
}

// startTill runs an agent with o (DataDir, Broker and Store required) and
// test-friendly defaults: terminal till-1, partner pharmacy, short ack
// timeout and backoff. It is stopped when the test ends if still running.
func startTill(t *testing.T, o agent.Options) *till {
	t.Helper()
	if o.Terminal == "" {
		o.Terminal = "till-1"
	}
	if o.Partner == "" {
		o.Partner = "pharmacy"
	}
	if o.BurnTimeout == 0 {
		o.BurnTimeout = 3 * time.Second
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 500 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = logger(t).With("side", "agent")
	}
	if o.HubCA == nil {
		o.HubCA = hubCA(o.Broker)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.POSListener = l
	a, err := agent.New(o)
	if err != nil {
		l.Close()
		t.Fatalf("agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &till{agentProc: &agentProc{a: a, pos: "http://" + l.Addr().String(), cancel: cancel, done: make(chan error, 1)}, opts: o}
	go func() { p.done <- a.Run(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// reopen stops the agent and runs a new one on the same data dir and options.
func (p *till) reopen(t *testing.T) *till {
	t.Helper()
	p.stop(t)
	o := p.opts
	o.POSListener = nil
	return startTill(t, o)
}

// queued is the outbox's entry count.
func (p *till) queued(t *testing.T) int64 {
	t.Helper()
	n, _, err := p.a.Outbox().Stats()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitConnected waits for health to say hub_connected == want.
func (p *till) waitConnected(t *testing.T, want bool) {
	t.Helper()
	testkit.WaitFor(t, waitLong, fmt.Sprintf("hub_connected to be %v", want), func() bool { return p.health(t).HubConnected == want })
}

// waitDrained waits until the agent is connected and its outbox is empty:
// the hub has acked everything.
func (p *till) waitDrained(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, waitLong, "the outbox to drain", func() bool {
		h := p.health(t)
		return h.HubConnected && h.Backlog == 0
	})
}

// earn posts an earn that must be accepted.
func (p *till) earn(t *testing.T, member string, amount int64) posapi.Result {
	t.Helper()
	st, r, code := post(t, p.pos+"/v1/earn", posapi.EarnRequest{Member: member, Amount: amount, Currency: "EUR"}, "")
	if st != http.StatusOK || r.Status != "accepted" {
		t.Fatalf("earn %d for %s: HTTP %d %s %+v", amount, member, st, code, r)
	}
	return r
}

// burn posts a burn and returns the answer, which must be a 200.
func (p *till) burn(t *testing.T, member string, points int64) posapi.Result {
	t.Helper()
	st, r, code := post(t, p.pos+"/v1/burn", posapi.BurnRequest{Member: member, Points: points}, "")
	if st != http.StatusOK {
		t.Fatalf("burn %d for %s: HTTP %d %s", points, member, st, code)
	}
	return r
}

// hubRun is a hub that is stopped at most once, and at the end of the test.
type hubRun struct {
	*hubProc
	once sync.Once
}

func startHubOnce(t *testing.T, e *env) *hubRun {
	t.Helper()
	h := &hubRun{hubProc: e.startHub()}
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *hubRun) stop(t *testing.T) {
	t.Helper()
	h.once.Do(func() { h.hubProc.stop(t) })
}

func (h *hubRun) balance(t *testing.T, member string) (int64, bool) {
	t.Helper()
	p, known, err := h.h.Ledger().Balance(member)
	if err != nil {
		t.Fatal(err)
	}
	return p, known
}

// record returns the ledger's record of transaction id.
func (h *hubRun) record(t *testing.T, id string) (ledger.TxRecord, bool) {
	t.Helper()
	recs, err := h.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return ledger.TxRecord{}, false
}

// records returns the ledger's records of the given store.
func (h *hubRun) records(t *testing.T, store string) []ledger.TxRecord {
	t.Helper()
	recs, err := h.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.TxRecord
	for _, r := range recs {
		if r.Store == store {
			out = append(out, r)
		}
	}
	return out
}

func (h *hubRun) verify(t *testing.T) {
	t.Helper()
	rep, err := h.h.Ledger().Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("ledger verify: %+v", rep)
	}
}

// member returns the ledger's view of a member now: balance, held, available.
func (h *hubRun) member(t *testing.T, member string) ledger.MemberView {
	t.Helper()
	v, err := h.h.Ledger().Member(member, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkCaptured fails unless the approved burn the POS knows as hold is, at
// the hub, a hold applied with no journal entry and captured, and its
// capture (TxRecord.Capture) is applied with one journal entry of the
// hold's points. It returns the capture's record.
func (h *hubRun) checkCaptured(t *testing.T, hold string, points int64) ledger.TxRecord {
	t.Helper()
	r, ok := h.record(t, hold)
	if !ok || r.Status != protocol.StatusApplied || r.Kind != protocol.KindHold || r.Points != points ||
		r.JournalSeq != 0 || r.HoldState != ledger.HoldCaptured || r.Capture == "" {
		t.Errorf("approved burn %s at the hub: %+v (found %v), want a hold of %d points, applied with no journal entry and captured", hold, r, ok, points)
		return ledger.TxRecord{}
	}
	c, ok := h.record(t, r.Capture)
	if !ok || c.Status != protocol.StatusApplied || c.Kind != protocol.KindCapture || c.Original != hold || c.Points != points || c.JournalSeq == 0 {
		t.Errorf("capture %s of hold %s at the hub: %+v (found %v), want applied with a journal entry of %d points", r.Capture, hold, c, ok, points)
		return c
	}
	n := 0
	es, err := h.h.Ledger().Statement(r.Member, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		switch e.TxID {
		case hold:
			t.Errorf("hold %s made journal entry %d; only its capture may", hold, e.Seq)
		case c.ID:
			n++
			if e.Points != -points {
				t.Errorf("capture %s journalled %d points, want %d", c.ID, e.Points, -points)
			}
		}
	}
	if n != 1 {
		t.Errorf("capture %s has %d journal entries, want 1", c.ID, n)
	}
	return c
}

// checkBurnUndone fails unless the ledger keeps no effect of the declined
// burn id — a hold, or a one-step burn queued by an older agent: no record;
// rejected (refused, or barred by a void that arrived first); a hold applied
// and then voided, with no journal entry; or a one-step burn applied and
// given back whole by its void. In no case is it captured.
func (h *hubRun) checkBurnUndone(t *testing.T, id string) {
	t.Helper()
	r, ok := h.record(t, id)
	switch {
	case !ok:
		t.Logf("declined burn %s never reached the ledger", id)
	case r.Status == protocol.StatusRejected:
		t.Logf("declined %s %s was rejected %s at the hub", r.Kind, id, r.Code)
	case r.Status == protocol.StatusApplied && r.Kind == protocol.KindHold &&
		r.HoldState == ledger.HoldVoided && r.Capture == "" && r.JournalSeq == 0:
		t.Logf("declined hold %s was applied and voided", id)
	case r.Status == protocol.StatusApplied && r.Kind == protocol.KindBurn && r.Reversed == r.Points:
		t.Logf("declined burn %s was applied and voided whole", id)
	default:
		t.Errorf("declined burn %s left an effect at the hub: %+v", id, r)
	}
	all, err := h.h.Ledger().Transactions()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.Kind == protocol.KindCapture && c.Original == id {
			t.Errorf("declined burn %s has a capture at the hub: %+v", id, c)
		}
	}
}

// bareBroker is a plain MQTT broker with no hub behind it (as an external
// Mosquitto would be): the agent connects and publishes, nobody answers. A
// hub started later with env{external: "tcp://"+addr} uses it.
type bareBroker struct {
	addr string
	b    *testkit.Broker
}

func startBareBroker(t *testing.T) *bareBroker {
	t.Helper()
	b := testkit.StartBroker(t)
	return &bareBroker{addr: b.Addr, b: b}
}

func (b *bareBroker) url() string { return "tcp://" + b.addr }

// hubEnv is an env whose hub uses b as an external broker, so the hub can
// stop and start while the agent stays connected to the broker.
func (b *bareBroker) hubEnv(t *testing.T) *env {
	return &env{t: t, external: b.url(), hubDir: filepath.Join(t.TempDir(), "hub"), clientID: randomID("tillsync-hub-e2e-")}
}

// rawResponse is a POS API answer as the wire carried it.
type rawResponse struct {
	status      int
	contentType string
	body        string
}

// send makes an HTTP request with a raw body and headers (a header may
// repeat) and returns the answer.
func send(t *testing.T, method, url, body string, header [][2]string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for _, kv := range header {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return rawResponse{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

// rawRequest sends a request with a raw body and headers and returns the answer.
func rawRequest(t *testing.T, method, url, body string, header map[string]string) rawResponse {
	t.Helper()
	pairs := make([][2]string, 0, len(header))
	for k, v := range header {
		pairs = append(pairs, [2]string{k, v})
	}
	return send(t, method, url, body, pairs)
}

// decodeJSON decodes an answer's body; unlike getJSON it may run off the
// test's goroutine.
func decodeJSON(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func seqStr(n uint64) string { return strconv.FormatUint(n, 10) }
