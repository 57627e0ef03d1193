package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// These tests drive one real agent (bbolt outbox, uplink, POS API over HTTP)
// against a real hub (ledger, ingest) over a real MQTT broker, and check
// what the POS API answers against what the hub's ledger holds.

// TestBurnApprovedAndInsufficient: a burn the member can cover is approved
// with the hub's available balance after its hold, and completed by a
// capture, which alone moves the ledger balance; one they cannot is declined
// insufficient_points and changes nothing at the hub.
func TestBurnApprovedAndInsufficient(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("burn-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	member := store + "-m1"

	a.earn(t, member, 5000) // 50 points at the default rate
	a.waitDrained(t)

	r := a.burn(t, member, 20)
	if r.Status != "approved" || r.Code != "" || r.TxID == "" || r.Points != 20 || r.Kind != string(protocol.KindBurn) {
		t.Fatalf("burn 20 of 50: %+v, want approved", r)
	}
	if r.Balance == nil || *r.Balance != 30 {
		t.Fatalf("approved burn: balance %v, want 30 (available after the hold)", r.Balance)
	}
	// The hold took the points from what is available at once, whether or
	// not the capture has been applied yet.
	if v := h.member(t, member); v.Available != 30 {
		t.Fatalf("hub available balance after the approved burn: %+v, want 30", v)
	}
	// The ledger balance moves with the capture, which the agent queued.
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance after the approved burn's capture: %d, want 30", got)
	}
	if v := h.member(t, member); v.Held != 0 || v.Available != 30 {
		t.Errorf("hub view after the capture: %+v, want nothing held and 30 available", v)
	}
	h.checkCaptured(t, r.TxID, 20)

	before := a.queued(t)
	r = a.burn(t, member, 100)
	if r.Status != "declined" || r.Code != protocol.CodeInsufficientPoints || r.TxID == "" {
		t.Fatalf("burn 100 of 30: %+v, want declined insufficient_points", r)
	}
	if r.Balance == nil || *r.Balance != 30 {
		t.Fatalf("declined burn: balance %v, want 30", r.Balance)
	}
	a.waitDrained(t)
	if got := a.queued(t); got != before {
		t.Errorf("outbox holds %d after a burn the hub declined, want %d (no void for a hold the hub refused)", got, before)
	}
	if got, _ := h.balance(t, member); got != 30 {
		t.Errorf("hub balance after declined burn: %d, want 30", got)
	}
	if v := h.member(t, member); v.Held != 0 || v.Available != 30 {
		t.Errorf("hub view after the declined burn: %+v, want nothing held and 30 available", v)
	}
	if rec, ok := h.record(t, r.TxID); !ok || rec.Kind != protocol.KindHold || rec.Status != protocol.StatusRejected || rec.Code != protocol.CodeInsufficientPoints {
		t.Errorf("ledger record of the declined burn: %+v (found %v), want a hold rejected insufficient_points", rec, ok)
	}
	h.checkBurnUndone(t, r.TxID)

	r = a.burn(t, store+"-nobody", 1)
	if r.Status != "declined" || r.Code != protocol.CodeUnknownMember {
		t.Errorf("burn for an unknown member: %+v, want declined unknown_member", r)
	}
	h.verify(t)
}

// TestBurnOfflineWritesNothing: with no connection to the hub, a burn is
// declined "offline" at once, with no tx id, and the outbox is untouched.
func TestBurnOfflineWritesNothing(t *testing.T) {
	store := randomID("offline-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: store})
	member := store + "-m1"
	a.earn(t, member, 1000) // accepted offline: one entry queued
	if h := a.health(t); h.HubConnected {
		t.Fatal("health says connected with nothing listening at the broker address")
	}
	before := a.queued(t)
	if before != 1 {
		t.Fatalf("outbox holds %d after one offline earn", before)
	}

	for _, key := range []string{"", randomID("k-")} {
		st, r, code := post(t, a.pos+"/v1/burn", posapi.BurnRequest{Member: member, Points: 5}, key)
		if st != http.StatusOK || r.Status != "declined" || r.Code != protocol.CodeOffline {
			t.Fatalf("offline burn (key %q): HTTP %d %s %+v, want 200 declined offline", key, st, code, r)
		}
		if r.TxID != "" {
			t.Errorf("offline burn has tx id %s; nothing was recorded, so it must have none", r.TxID)
		}
		if r.Balance != nil {
			t.Errorf("offline burn reports balance %d", *r.Balance)
		}
		if pend, err := a.a.Outbox().PendingBurns(); err != nil || len(pend) != 0 {
			t.Errorf("pending burns after an offline burn: %v %v", pend, err)
		}
		if key != "" {
			if _, found, err := a.a.Outbox().Idem(key); err != nil || found {
				t.Errorf("offline burn stored its idempotency key (found %v, err %v)", found, err)
			}
		}
	}
	if got := a.queued(t); got != before {
		t.Errorf("outbox holds %d after offline burns, want %d", got, before)
	}
}

// TestBurnTimeoutIsVoided: the broker is up but no hub answers. The burn's
// hold is declined "timeout" after BurnTimeout and a void of the hold is
// queued; once a hub runs and the outbox drains, the member's balance at the
// hub is as if the burn had never been asked for, and nothing is held.
func TestBurnTimeoutIsVoided(t *testing.T) {
	bb := startBareBroker(t)
	e := bb.hubEnv(t)
	store := e.store("timeout-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: bb.url(), Store: store, BurnTimeout: 300 * time.Millisecond})
	member := store + "-m1"

	// The member has 40 points at the hub.
	h := startHubOnce(t, e)
	a.waitConnected(t, true)
	a.earn(t, member, 4000)
	a.waitDrained(t)
	h.stop(t)

	// The hub is gone, the broker is not: the agent stays connected.
	if !a.health(t).HubConnected {
		t.Fatal("agent lost the broker when only the hub stopped")
	}
	before := a.queued(t)
	r := a.burn(t, member, 25)
	if r.Status != "declined" || r.Code != protocol.CodeTimeout || r.TxID == "" {
		t.Fatalf("burn with no hub: %+v, want declined timeout with a tx id", r)
	}
	if r.Balance != nil {
		t.Errorf("timed-out burn reports balance %d", *r.Balance)
	}
	if got := a.queued(t); got != before+2 {
		t.Errorf("outbox holds %d, want %d (the hold and its void)", got, before+2)
	}
	checkQueuedHold(t, a, r.TxID, member, 25)
	voids := voidsOf(t, a, r.TxID)
	if len(voids) != 1 {
		t.Fatalf("outbox holds %d voids of hold %s, want 1", len(voids), r.TxID)
	}
	if pend, _ := a.a.Outbox().PendingBurns(); len(pend) != 0 {
		t.Errorf("burn still pending after its verdict: %v", pend)
	}
	// The declined burn cannot be reversed for points it never took.
	if st, _, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: r.TxID}, ""); st != http.StatusBadRequest || code != protocol.CodeOverReversed {
		t.Errorf("reverse of a declined burn: HTTP %d %s, want 400 over_reversed", st, code)
	}

	h = startHubOnce(t, e)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 40 {
		t.Errorf("hub balance after the voided burn: %d, want 40", got)
	}
	if v := h.member(t, member); v.Held != 0 || v.Available != 40 {
		t.Errorf("hub view after the voided burn: %+v, want nothing held and 40 available", v)
	}
	h.checkBurnUndone(t, r.TxID)
	// A void of a hold gives nothing back (the hold took nothing): applied,
	// with no journal entry.
	if rec, ok := h.record(t, voids[0].ID); !ok || rec.Status != protocol.StatusApplied || rec.Original != r.TxID || rec.Points != 0 || rec.JournalSeq != 0 {
		t.Errorf("void %s at the hub: %+v (found %v), want applied with no effect", voids[0].ID, rec, ok)
	}
	h.verify(t)
}

// checkQueuedHold fails unless the outbox holds the hold id for member's
// points: what the agent sends for a burn.
func checkQueuedHold(t *testing.T, a *till, id, member string, points int64) {
	t.Helper()
	txs, err := a.a.Outbox().Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txs {
		if tx.ID == id {
			if tx.Kind != protocol.KindHold || tx.Member != member || tx.Points != points {
				t.Errorf("queued %s: %+v, want a hold of %d points for %s", id, tx, points, member)
			}
			return
		}
	}
	t.Errorf("the outbox does not hold the burn's hold %s", id)
}

// voidsOf returns the queued voids naming burn.
func voidsOf(t *testing.T, a *till, burn string) []protocol.Transaction {
	t.Helper()
	txs, err := a.a.Outbox().Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.Transaction
	for _, tx := range txs {
		if tx.Kind == protocol.KindVoid && tx.Original == burn {
			out = append(out, tx)
		}
	}
	return out
}

// TestStopDuringBurnAnswersThePOS: the agent is stopped while a burn's hold
// waits for a hub that is not there. The POS still gets its answer —
// declined, timeout — before Run returns, the void of the hold is queued in
// the same commit, and once a hub runs the ledger keeps no effect of the burn.
func TestStopDuringBurnAnswersThePOS(t *testing.T) {
	bb := startBareBroker(t)
	e := bb.hubEnv(t)
	store := e.store("stop-")
	dir := t.TempDir()
	a := startTill(t, agent.Options{DataDir: dir, Broker: bb.url(), Store: store, BurnTimeout: time.Minute})
	member := store + "-m1"
	a.waitConnected(t, true)
	a.earn(t, member, 3000) // queued until a hub runs: 30 points

	key := randomID("k-")
	body := posapi.BurnRequest{Member: member, Points: 10}
	type answer struct {
		status int
		res    posapi.Result
	}
	answered := make(chan answer, 1)
	go func() {
		st, r, _ := post(t, a.pos+"/v1/burn", body, key)
		answered <- answer{st, r}
	}()
	var burnID string
	testkit.WaitFor(t, waitLong, "the burn to be pending", func() bool {
		ids, err := a.a.Outbox().PendingBurns()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 1 {
			burnID = ids[0]
		}
		return burnID != ""
	})
	// The POS retries while the first request still waits: not a second burn.
	if st, _, code := post(t, a.pos+"/v1/burn", body, key); st != http.StatusConflict || code != posapi.CodeInProgress {
		t.Errorf("same key while the burn is pending: HTTP %d %s, want 409 in_progress", st, code)
	}

	stopped := time.Now()
	a.stop(t)
	if d := time.Since(stopped); d > 3*time.Second {
		t.Errorf("stopping the agent took %s with a burn waiting", d)
	}
	select {
	case ans := <-answered:
		if ans.status != http.StatusOK || ans.res.Status != "declined" || ans.res.Code != protocol.CodeTimeout || ans.res.TxID != burnID {
			t.Fatalf("the waiting burn was answered HTTP %d %+v, want declined timeout for %s", ans.status, ans.res, burnID)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting burn got no answer when the agent stopped")
	}

	a = a.reopen(t)
	if pend, err := a.a.Outbox().PendingBurns(); err != nil || len(pend) != 0 {
		t.Fatalf("pending burns after reopen: %v %v, want none", pend, err)
	}
	checkQueuedHold(t, a, burnID, member, 10)
	if voids := voidsOf(t, a, burnID); len(voids) != 1 {
		t.Fatalf("queued voids of hold %s: %d, want 1", burnID, len(voids))
	}
	st, r, code := post(t, a.pos+"/v1/burn", body, key)
	if st != http.StatusOK || r.Status != "declined" || r.Code != protocol.CodeTimeout || r.TxID != burnID {
		t.Errorf("same key after reopen: HTTP %d %s %+v, want declined timeout for %s", st, code, r, burnID)
	}

	h := startHubOnce(t, e)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Errorf("hub balance: %d, want 30 (the earn, nothing of the burn)", got)
	}
	if v := h.member(t, member); v.Held != 0 || v.Available != 30 {
		t.Errorf("hub view: %+v, want nothing held and 30 available", v)
	}
	h.checkBurnUndone(t, burnID)
	h.verify(t)
}

// TestPendingBurnVoidedAfterCrash: a crash (kill -9, power cut) can leave a
// burn's hold — or, from an older agent, a one-step burn — committed and
// pending in the outbox file with no verdict. The reopened agent declines it
// (timeout) and queues a void, its Idempotency-Key then answers that
// verdict, and once a hub runs — even if the hold or burn itself reaches the
// hub — the ledger keeps no effect of it.
func TestPendingBurnVoidedAfterCrash(t *testing.T) {
	for _, kind := range []protocol.Kind{protocol.KindHold, protocol.KindBurn} {
		t.Run(string(kind), func(t *testing.T) { pendingBurnVoidedAfterCrash(t, kind) })
	}
}

func pendingBurnVoidedAfterCrash(t *testing.T, kind protocol.Kind) {
	bb := startBareBroker(t)
	e := bb.hubEnv(t)
	store := e.store("crash-")
	dir := t.TempDir()
	member := store + "-m1"
	key := randomID("k-")

	// The state a crash leaves: an earn, and a hold (or burn) committed as pending.
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	earn := protocol.Transaction{ID: randomID("e-"), Store: store, Terminal: "till-1", Partner: "pharmacy", Member: member,
		Kind: protocol.KindEarn, Amount: 3000, Currency: "EUR", Points: 30, CreatedAt: at}
	if err := ob.Append(&earn, "", nil, false); err != nil {
		t.Fatal(err)
	}
	burn := protocol.Transaction{ID: randomID("b-"), Store: store, Terminal: "till-1", Partner: "pharmacy", Member: member,
		Kind: kind, Points: 10, CreatedAt: at}
	if err := ob.Append(&burn, key, &outbox.IdemRecord{Hash: "h", TxID: burn.ID, Pending: true}, true); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	a := startTill(t, agent.Options{DataDir: dir, Broker: bb.url(), Store: store})
	a.waitConnected(t, true) // Run has recovered the pending burns by then
	if pend, err := a.a.Outbox().PendingBurns(); err != nil || len(pend) != 0 {
		t.Fatalf("pending burns after reopen: %v %v, want none", pend, err)
	}
	if voids := voidsOf(t, a, burn.ID); len(voids) != 1 {
		t.Fatalf("queued voids of %s %s after reopen: %d, want 1", kind, burn.ID, len(voids))
	}
	if got := a.queued(t); got != 3 {
		t.Errorf("outbox holds %d after reopen, want 3 (earn, %s, void)", got, kind)
	}
	rec, found, err := a.a.Outbox().Idem(key)
	if err != nil || !found || rec.Pending {
		t.Fatalf("idempotency record after reopen: %+v found=%v err=%v, want a final answer", rec, found, err)
	}
	var res posapi.Result
	if err := json.Unmarshal(rec.Response, &res); err != nil || res.Status != "declined" || res.Code != protocol.CodeTimeout || res.TxID != burn.ID || res.Kind != string(protocol.KindBurn) {
		t.Errorf("stored answer after reopen: %+v (%v), want a burn declined timeout for %s", res, err, burn.ID)
	}

	h := startHubOnce(t, e)
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 30 {
		t.Errorf("hub balance: %d, want 30 (the earn, nothing of the %s)", got, kind)
	}
	if v := h.member(t, member); v.Held != 0 || v.Available != 30 {
		t.Errorf("hub view: %+v, want nothing held and 30 available", v)
	}
	h.checkBurnUndone(t, burn.ID)
	h.verify(t)
}

// TestIdempotencyKey: a repeated key with the same body answers the first
// answer and adds nothing; with another body it is refused 409; the answer
// survives a restart of the agent.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("idem-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	member := store + "-m1"

	earnKey, burnKey := randomID("earn-"), randomID("burn-")
	earn := posapi.EarnRequest{Member: member, Amount: 2500, Currency: "EUR", Receipt: "R-1"}
	burn := posapi.BurnRequest{Member: member, Points: 5}

	st, first, code := post(t, a.pos+"/v1/earn", earn, earnKey)
	if st != http.StatusOK || first.Status != "accepted" {
		t.Fatalf("earn: HTTP %d %s %+v", st, code, first)
	}
	a.waitDrained(t)
	st, firstBurn, code := post(t, a.pos+"/v1/burn", burn, burnKey)
	if st != http.StatusOK || firstBurn.Status != "approved" {
		t.Fatalf("burn: HTTP %d %s %+v", st, code, firstBurn)
	}
	a.waitDrained(t)
	queued := a.queued(t)

	same := func(a *till, when string) {
		t.Helper()
		for range 2 {
			st, r, code := post(t, a.pos+"/v1/earn", earn, earnKey)
			if st != http.StatusOK || !sameResult(r, first) {
				t.Errorf("%s: earn with the same key: HTTP %d %s %+v, want the first answer %+v", when, st, code, r, first)
			}
			st, r, code = post(t, a.pos+"/v1/burn", burn, burnKey)
			if st != http.StatusOK || !sameResult(r, firstBurn) {
				t.Errorf("%s: burn with the same key: HTTP %d %s %+v, want the first answer %+v", when, st, code, r, firstBurn)
			}
		}
	}
	same(a, "before restart")

	conflicts := []struct {
		name, path string
		body       any
		key        string
	}{
		{"earn key, other amount", "/v1/earn", posapi.EarnRequest{Member: member, Amount: 2600, Currency: "EUR", Receipt: "R-1"}, earnKey},
		{"earn key, other member", "/v1/earn", posapi.EarnRequest{Member: member + "x", Amount: 2500, Currency: "EUR", Receipt: "R-1"}, earnKey},
		{"earn key on a burn", "/v1/burn", burn, earnKey},
		{"burn key, other points", "/v1/burn", posapi.BurnRequest{Member: member, Points: 6}, burnKey},
		{"burn key on a reverse", "/v1/reverse", posapi.ReverseRequest{Original: first.TxID}, burnKey},
	}
	for _, c := range conflicts {
		st, r, code := post(t, a.pos+c.path, c.body, c.key)
		if st != http.StatusConflict || code != posapi.CodeIdempotencyConflict {
			t.Errorf("%s: HTTP %d %s %+v, want 409 idempotency_conflict", c.name, st, code, r)
		}
	}
	if got := a.queued(t); got != queued {
		t.Errorf("outbox holds %d after repeats and conflicts, want %d", got, queued)
	}

	a = a.reopen(t)
	same(a, "after restart")
	a.waitDrained(t)

	// One earn, and the one burn as its hold and the hold's capture.
	recs := h.records(t, store)
	kinds := map[protocol.Kind]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	if len(recs) != 3 || kinds[protocol.KindEarn] != 1 || kinds[protocol.KindHold] != 1 || kinds[protocol.KindCapture] != 1 {
		t.Errorf("ledger holds %d transactions of this till (%v), want 3 (one earn; one burn: its hold and capture): %+v", len(recs), kinds, recs)
	}
	h.checkCaptured(t, firstBurn.TxID, 5)
	if got, _ := h.balance(t, member); got != 20 {
		t.Errorf("hub balance: %d, want 25-5 = 20", got)
	}
	if _, known := h.balance(t, member+"x"); known {
		t.Error("the conflicting earn for another member reached the hub")
	}
	h.verify(t)
}

// TestReverse: the till's rules for returns, and their effect at the hub.
func TestReverse(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("rev-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	m1, m2 := store+"-m1", store+"-m2"

	earn := a.earn(t, m1, 5000) // 50 points
	a.waitDrained(t)
	queued := a.queued(t)

	refused := []struct {
		name   string
		req    posapi.ReverseRequest
		status int
		code   protocol.Code
	}{
		{"more than the earn", posapi.ReverseRequest{Original: earn.TxID, Points: 51}, http.StatusBadRequest, protocol.CodeOverReversed},
		{"unknown original, no member or points", posapi.ReverseRequest{Original: "no-such-tx"}, http.StatusNotFound, protocol.CodeUnknownOriginal},
		{"unknown original, member only", posapi.ReverseRequest{Original: "no-such-tx", Member: m1}, http.StatusNotFound, protocol.CodeUnknownOriginal},
		{"unknown original, points only", posapi.ReverseRequest{Original: "no-such-tx", Points: 3}, http.StatusNotFound, protocol.CodeUnknownOriginal},
		{"another member's earn", posapi.ReverseRequest{Original: earn.TxID, Member: m2, Points: 1}, http.StatusBadRequest, protocol.CodeOriginalMismatch},
		{"negative points", posapi.ReverseRequest{Original: earn.TxID, Points: -1}, http.StatusBadRequest, protocol.CodeInvalidPoints},
		{"original not an id", posapi.ReverseRequest{Original: "a/b"}, http.StatusBadRequest, protocol.CodeInvalidID},
		{"no original", posapi.ReverseRequest{Points: 1, Member: m1}, http.StatusBadRequest, protocol.CodeInvalidID},
	}
	for _, c := range refused {
		st, r, code := post(t, a.pos+"/v1/reverse", c.req, "")
		if st != c.status || code != c.code {
			t.Errorf("reverse, %s: HTTP %d %s %+v, want %d %s", c.name, st, code, r, c.status, c.code)
		}
	}
	if got := a.queued(t); got != queued {
		t.Errorf("outbox holds %d after refused reverses, want %d", got, queued)
	}

	// Part of the earn, then the rest by default, then nothing is left.
	st, part, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: earn.TxID, Points: 15}, "")
	if st != http.StatusOK || part.Status != "accepted" || part.Points != 15 || part.Member != m1 || part.Kind != string(protocol.KindReverse) {
		t.Fatalf("partial reverse: HTTP %d %s %+v", st, code, part)
	}
	if st, _, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: earn.TxID, Points: 36}, ""); st != http.StatusBadRequest || code != protocol.CodeOverReversed {
		t.Errorf("reverse 36 of the 35 left: HTTP %d %s, want 400 over_reversed", st, code)
	}
	st, rest, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: earn.TxID}, "")
	if st != http.StatusOK || rest.Status != "accepted" || rest.Points != 35 || rest.Member != m1 {
		t.Fatalf("reverse of the rest: HTTP %d %s %+v, want 35 points", st, code, rest)
	}
	if st, _, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: earn.TxID}, ""); st != http.StatusBadRequest || code != protocol.CodeOverReversed {
		t.Errorf("reverse of a fully reversed earn: HTTP %d %s, want 400 over_reversed", st, code)
	}
	a.waitDrained(t)
	if got, _ := h.balance(t, m1); got != 0 {
		t.Errorf("hub balance after the earn was reversed whole: %d, want 0", got)
	}
	if rec, _ := h.record(t, earn.TxID); rec.Reversed != 50 {
		t.Errorf("earn record at the hub: reversed %d, want 50", rec.Reversed)
	}

	// A burn, approved, then reversed: the points come back at the hub.
	a.earn(t, m2, 8000) // 80 points
	a.waitDrained(t)
	b := a.burn(t, m2, 30)
	if b.Status != "approved" {
		t.Fatalf("burn: %+v", b)
	}
	if v := h.member(t, m2); v.Available != 50 {
		t.Fatalf("hub available balance after the burn: %+v, want 50", v)
	}
	a.waitDrained(t) // the capture
	if got, _ := h.balance(t, m2); got != 50 {
		t.Fatalf("hub balance after the burn's capture: %d, want 50", got)
	}
	capture := h.checkCaptured(t, b.TxID, 30)
	// The POS names the burn by its hold's id; the hub resolves it to the capture.
	st, rb, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: b.TxID}, "")
	if st != http.StatusOK || rb.Status != "accepted" || rb.Points != 30 || rb.Member != m2 {
		t.Fatalf("reverse of the burn: HTTP %d %s %+v", st, code, rb)
	}
	a.waitDrained(t)
	if got, _ := h.balance(t, m2); got != 80 {
		t.Errorf("hub balance after the burn was reversed: %d, want 80", got)
	}
	if v := h.member(t, m2); v.Held != 0 || v.Available != 80 {
		t.Errorf("hub view after the burn was reversed: %+v, want nothing held and 80 available", v)
	}
	if rec, ok := h.record(t, capture.ID); !ok || rec.Reversed != 30 {
		t.Errorf("capture %s at the hub after the reverse: %+v (found %v), want 30 reversed", capture.ID, rec, ok)
	}
	for _, id := range []string{part.TxID, rest.TxID, rb.TxID} {
		if rec, ok := h.record(t, id); !ok || rec.Status != protocol.StatusApplied {
			t.Errorf("reverse %s at the hub: %+v (found %v), want applied", id, rec, ok)
		}
	}
	h.verify(t)
}

// TestBalance: online the hub answers; offline the agent answers from the
// balance the last ack reported, plus what its outbox still holds.
func TestBalance(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("bal-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	member, stranger := store+"-m1", store+"-nobody"
	balance := func(m string) posapi.Balance {
		var b posapi.Balance
		getJSON(t, a.pos+"/v1/members/"+m+"/balance", &b)
		return b
	}

	a.earn(t, member, 4200) // 42 points
	a.waitDrained(t)
	b := balance(member)
	if b.Source != "hub" || !b.Known || b.Points != 42 || b.Member != member || b.UnsyncedEarned != 0 || b.UnsyncedBurned != 0 {
		t.Errorf("online balance: %+v, want 42 from the hub", b)
	}
	if b := balance(stranger); b.Source != "hub" || b.Known || b.Points != 0 {
		t.Errorf("online balance of an unknown member: %+v", b)
	}
	// The hub's answer is live: a change there shows without an ack here.
	// It is what the member has available, so the burn's hold counts at
	// once, captured or not.
	if r := a.burn(t, member, 2); r.Status != "approved" {
		t.Fatalf("burn 2 of 42: %+v", r)
	}
	if b := balance(member); b.Source != "hub" || b.Points != 40 {
		t.Errorf("online balance after a burn: %+v, want 40 from the hub", b)
	}
	a.waitDrained(t)
	if got, _ := h.balance(t, member); got != 40 {
		t.Errorf("hub ledger balance after the burn's capture: %d, want 40", got)
	}

	h.stop(t)
	a.waitConnected(t, false)
	a.earn(t, member, 1000) // 10 points, offline
	a.earn(t, member, 550)  // 5 points, offline
	b = balance(member)
	if b.Source != "cache" || !b.Known || b.Points != 40 || b.UnsyncedEarned != 15 || b.UnsyncedBurned != 0 {
		t.Errorf("offline balance: %+v, want 40 from the cache with 15 unsynced earned", b)
	}
	if b.AsOf.IsZero() {
		t.Error("offline balance has no as_of")
	}
	if b := balance(stranger); b.Source != "cache" || b.Known || b.Points != 0 || b.UnsyncedEarned != 0 {
		t.Errorf("offline balance of an unknown member: %+v", b)
	}

	h = startHubOnce(t, e)
	a.waitDrained(t)
	if b := balance(member); b.Source != "hub" || b.Points != 55 || b.UnsyncedEarned != 0 {
		t.Errorf("balance after the hub returned: %+v, want 55 from the hub", b)
	}
	h.verify(t)
}

// TestHealth: hub_connected follows the hub, and the backlog and its age
// follow the outbox.
func TestHealth(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("health-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Version: "v-test"})
	a.waitConnected(t, true)
	hl := a.health(t)
	if hl.Store != store || hl.Terminal != "till-1" || hl.Version != "v-test" || hl.Backlog != 0 || hl.OldestUnsyncedSeconds != 0 || !hl.OldestUnsynced.IsZero() {
		t.Errorf("health, connected and idle: %+v", hl)
	}
	if hl.Scanner.Port != "" || hl.Scanner.Connected {
		t.Errorf("health without a scanner: %+v", hl.Scanner)
	}

	h.stop(t)
	a.waitConnected(t, false)
	member := store + "-m1"
	first := a.earn(t, member, 1000)
	a.earn(t, member, 2000)
	testkit.WaitFor(t, waitLong, "the backlog to age", func() bool { return a.health(t).OldestUnsyncedSeconds > 0 })
	hl = a.health(t)
	if hl.HubConnected || hl.Backlog != 2 || hl.OldestUnsyncedSeconds <= 0 || !hl.OldestUnsynced.Equal(first.CreatedAt) {
		t.Errorf("health, offline with two earns: %+v, want backlog 2 dated %s", hl, first.CreatedAt)
	}

	h = startHubOnce(t, e)
	a.waitDrained(t)
	hl = a.health(t)
	if !hl.HubConnected || hl.Backlog != 0 || hl.OldestUnsyncedSeconds != 0 || !hl.OldestUnsynced.IsZero() {
		t.Errorf("health after draining: %+v", hl)
	}
	if got, _ := h.balance(t, member); got != 30 {
		t.Errorf("hub balance: %d, want 30", got)
	}
}

// sameResult reports whether two POS answers are the same answer.
func sameResult(a, b posapi.Result) bool {
	if (a.Balance == nil) != (b.Balance == nil) || (a.Balance != nil && *a.Balance != *b.Balance) {
		return false
	}
	return a.Status == b.Status && a.Code == b.Code && a.TxID == b.TxID && a.Kind == b.Kind &&
		a.Member == b.Member && a.Points == b.Points && a.CreatedAt.Equal(b.CreatedAt)
}

// TestReturnOfAnotherTillsSale: a return at one till of a sale made at
// another that has not synced yet is held by the hub, not refused — the
// till shows it in health and keeps sending it — and is applied once the
// sale arrives. A return the hub refuses (more than the sale earned) is
// shown as a rejection.
func TestReturnOfAnotherTillsSale(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("ret-")
	member := store + "-m1"
	// Till 1 sells while it cannot reach the broker.
	seller := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: store, Terminal: "till-1"})
	sale := seller.earn(t, member, 4000) // 40 points
	returns := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Terminal: "till-2"})
	returns.waitConnected(t, true)
	st, r, code := post(t, returns.pos+"/v1/reverse", posapi.ReverseRequest{Original: sale.TxID, Member: member, Points: 10}, "")
	if st != http.StatusOK || r.Status != "accepted" {
		t.Fatalf("return of another till's sale: HTTP %d %s %+v", st, code, r)
	}
	testkit.WaitFor(t, waitLong, "the hub to hold the return", func() bool {
		h := returns.health(t)
		return h.LastHubHeld != nil && h.LastHubHeld.TxID == r.TxID
	})
	hl := returns.health(t)
	if hl.LastHubHeld.Code != protocol.CodeUnknownOriginal || hl.Backlog != 1 || hl.HubRejections != 0 {
		t.Fatalf("health while the return waits for its sale: %+v (last held %+v), want unknown_original, backlog 1, no rejections", hl, hl.LastHubHeld)
	}
	if _, ok := h.record(t, r.TxID); ok {
		t.Fatal("the hub recorded a held return")
	}

	// The seller comes online: the sale is applied, then the return.
	seller.stop(t)
	o := seller.opts
	o.POSListener, o.Broker = nil, e.brokerURL()
	seller = startTill(t, o)
	seller.waitDrained(t)
	returns.waitDrained(t)
	if rec, ok := h.record(t, r.TxID); !ok || rec.Status != protocol.StatusApplied || rec.Points != 10 {
		t.Fatalf("ledger record of the return after its sale arrived: %+v (found %v), want applied, 10 points", rec, ok)
	}
	if got, _ := h.balance(t, member); got != 30 {
		t.Fatalf("hub balance: %d, want 40 earned − 10 returned", got)
	}

	// A return by amount alone: the till cannot price it (it does not know
	// the sale), the hub books its share.
	st, r, code = post(t, returns.pos+"/v1/reverse", posapi.ReverseRequest{Original: sale.TxID, Member: member, Amount: 2000, Currency: "EUR"}, "")
	if st != http.StatusOK || r.Status != "accepted" || r.Points != 0 {
		t.Fatalf("return by amount of another till's sale: HTTP %d %s %+v, want accepted, points left to the hub", st, code, r)
	}
	returns.waitDrained(t)
	if rec, ok := h.record(t, r.TxID); !ok || rec.Status != protocol.StatusApplied || rec.Points != 10 {
		t.Fatalf("ledger record of the return by amount: %+v (found %v), want 10 points (half of 40, less the 10 returned by points)", rec, ok)
	}
	if got, _ := h.balance(t, member); got != 20 {
		t.Fatalf("hub balance: %d, want 30 − 10", got)
	}

	// More than is left of the sale: the hub refuses, and the till shows it.
	st, r, code = post(t, returns.pos+"/v1/reverse", posapi.ReverseRequest{Original: sale.TxID, Member: member, Points: 21}, "")
	if st != http.StatusOK || r.Status != "accepted" {
		t.Fatalf("over-return: HTTP %d %s %+v", st, code, r)
	}
	returns.waitDrained(t)
	hl = returns.health(t)
	if hl.HubRejections != 1 || hl.LastHubRejection == nil || hl.LastHubRejection.TxID != r.TxID || hl.LastHubRejection.Code != protocol.CodeOverReversed {
		t.Fatalf("health after the hub refused %s: %d rejections, last %+v; want 1, over_reversed", r.TxID, hl.HubRejections, hl.LastHubRejection)
	}
	if got, _ := h.balance(t, member); got != 20 {
		t.Fatalf("hub balance after a refused return: %d, want 20", got)
	}
	h.verify(t)
}

// TestOfflineBurnsBookedAsOverdraft: two tills of a store, both cut off
// from the hub, each approve an offline burn within their own view of the
// member's balance; together the burns exceed it. When the tills sync the
// hub books both — the till handed over the goods — and flags the member's
// negative balance as an overdraft for an operator.
func TestOfflineBurnsBookedAsOverdraft(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("offb-")
	member := store + "-m1"
	policy := agent.OfflinePolicy{MemberAllowance: 100, StoreCap: 200, StoreTills: 2}
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Terminal: "till-1", Offline: policy})
	b := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Terminal: "till-2", Offline: policy})
	a.earn(t, member, 10000) // 100 points
	a.waitDrained(t)
	b.waitConnected(t, true)
	var bal posapi.Balance
	getJSON(t, b.pos+"/v1/members/"+member+"/balance", &bal) // till 2 learns the balance
	if bal.Points != 100 || bal.Source != "hub" {
		t.Fatalf("till 2's balance query: %+v", bal)
	}

	h.stop(t)
	a.waitConnected(t, false)
	b.waitConnected(t, false)
	burns := map[string]string{}
	for _, p := range []*till{a, b} {
		r := p.burn(t, member, 80)
		if r.Status != "approved" || !r.Offline || r.Balance == nil || *r.Balance != 20 {
			t.Fatalf("offline burn of 80 of 100: %+v, want approved offline, 20 left", r)
		}
		burns[r.TxID] = p.opts.Terminal
		if r := p.burn(t, member, 30); r.Status != "declined" || r.Code != protocol.CodeOfflineBalance {
			t.Fatalf("a second offline burn at the same till: %+v, want declined offline_balance", r)
		}
	}

	h = startHubOnce(t, e)
	a.waitDrained(t)
	b.waitDrained(t)
	v := h.member(t, member)
	if v.Balance != -60 || v.Flag == nil || v.Flag.Reason != ledger.FlagOverdraft {
		t.Fatalf("hub view after both offline burns: %+v (flag %+v), want -60 flagged overdraft", v, v.Flag)
	}
	for id := range burns {
		if rec, ok := h.record(t, id); !ok || rec.Status != protocol.StatusApplied || rec.Kind != protocol.KindBurn || !rec.Offline || rec.Points != 80 {
			t.Errorf("ledger record of offline burn %s: %+v (found %v)", id, rec, ok)
		}
	}
	h.verify(t)
}

// TestReturnsByAmount: returns by amount at the till that made the sale
// take back the share of its points the hub books, on the running total —
// the till's answer and the ledger agree on every one — and the till
// refuses what the hub would: more than is left, or points that are not the
// share.
func TestReturnsByAmount(t *testing.T) {
	e := newEnv(t, "embedded")
	h := startHubOnce(t, e)
	store := e.store("rba-")
	member := store + "-m1"
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	sale := a.earn(t, member, 5001) // 50 points
	for i, c := range []struct{ amount, points int64 }{
		{1234, 12}, // ⌊50×1234/5001⌋ = 12
		{2000, 20}, // ⌊50×3234/5001⌋ = 32: 20 more
		{1767, 18}, // all 5001: 50, 18 more
	} {
		st, r, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: sale.TxID, Amount: c.amount, Currency: "EUR"}, "")
		if st != http.StatusOK || r.Status != "accepted" || r.Points != c.points {
			t.Fatalf("return %d of %d: HTTP %d %s %+v, want accepted, %d points", i, c.amount, st, code, r, c.points)
		}
		a.waitDrained(t)
		if rec, ok := h.record(t, r.TxID); !ok || rec.Status != protocol.StatusApplied || rec.Points != c.points {
			t.Fatalf("return %d: the ledger booked %+v (found %v); the till said %d points", i, rec, ok, c.points)
		}
	}
	if got, _ := h.balance(t, member); got != 0 {
		t.Fatalf("hub balance after returning everything: %d", got)
	}
	for _, c := range []struct {
		req  posapi.ReverseRequest
		code protocol.Code
	}{
		{posapi.ReverseRequest{Original: sale.TxID, Amount: 1, Currency: "EUR"}, protocol.CodeOverReversed},
		{posapi.ReverseRequest{Original: sale.TxID, Points: 1}, protocol.CodeOverReversed},
	} {
		if st, r, code := post(t, a.pos+"/v1/reverse", c.req, ""); st != http.StatusBadRequest || code != c.code {
			t.Errorf("reverse %+v after the whole sale came back: HTTP %d %s %+v, want 400 %s", c.req, st, code, r, c.code)
		}
	}
	other := a.earn(t, member, 1000) // 10 points
	if st, r, code := post(t, a.pos+"/v1/reverse", posapi.ReverseRequest{Original: other.TxID, Amount: 500, Currency: "EUR", Points: 4}, ""); st != http.StatusBadRequest || code != protocol.CodeInvalidPoints {
		t.Errorf("a return by amount with points that are not its share: HTTP %d %s %+v, want 400 invalid_points", st, code, r)
	}
	h.verify(t)
}
