package e2e

import (
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestThousandTransactionsAcrossOutages is the walking skeleton's promise:
// 1,000 POS requests; the hub stopped mid-stream and restarted; the agent
// stopped and reopened from its bbolt file mid-stream. Afterwards every
// transaction the POS API accepted is in the ledger exactly once, nothing
// else is, balances equal the journal replay, and the outbox is empty.
func TestThousandTransactionsAcrossOutages(t *testing.T) {
	for _, broker := range brokers() {
		t.Run(brokerName(broker), func(t *testing.T) {
			runOutages(t, broker, 1000)
		})
	}
	// The same over TLS, as tillsync-hub serve runs: the hub's CA is
	// reloaded from its data dir at the restart.
	t.Run("embedded-tls", func(t *testing.T) { runOutages(t, "embedded-tls", 1000) })
}

func brokerName(b string) string {
	if b == "embedded" || b == "embedded-tls" {
		return b
	}
	return "external"
}

func runOutages(t *testing.T, broker string, total int) {
	e := newEnv(t, broker)
	store, terminal := e.store("e2e-"), "till-1"
	agentDir := filepath.Join(t.TempDir(), "agent")

	h := e.startHub()
	a := startAgent(t, agentDir, e.brokerURL(), store, terminal)
	testkit.WaitFor(t, 15*time.Second, "the agent to connect", func() bool { return a.health(t).HubConnected })

	m := newModel(store + "-")
	rng := mrand.New(mrand.NewPCG(1, uint64(total)))
	const workers, chunk = 4, 50
	for done := 0; done < total; done += chunk {
		switch done {
		case total * 3 / 10:
			t.Logf("after %d requests: stopping the hub", done)
			h.stop(t)
			h = nil
		case total / 2:
			t.Logf("after %d requests: restarting the hub", done)
			h = e.startHub()
		case total * 7 / 10:
			t.Logf("after %d requests: stopping the agent and reopening it from its bbolt file", done)
			a.stop(t)
			a = startAgent(t, agentDir, e.brokerURL(), store, terminal)
		}
		// Each worker gets its own generator, seeded from the main one, so a
		// run is repeatable up to the interleaving of the workers.
		var wg sync.WaitGroup
		n := min(chunk, total-done)
		for w := range workers {
			wr := mrand.New(mrand.NewPCG(rng.Uint64(), uint64(w)))
			wg.Go(func() {
				for i := w; i < n; i += workers {
					m.op(t, wr, a.pos)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}

	testkit.WaitFor(t, 60*time.Second, "the agent's outbox to drain", func() bool {
		hl := a.health(t)
		return hl.HubConnected && hl.Backlog == 0
	})
	a.stop(t)
	defer h.stop(t)
	check(t, h.h.Ledger(), m, store)
	if n, _, err := a.a.Outbox().Stats(); err == nil && n != 0 {
		t.Errorf("outbox holds %d transactions after draining", n)
	}
}

// check compares the ledger with what the POS API said. An approved burn is
// two-phase at the hub: a hold (the id the POS knows) that makes no journal
// entry, and its capture, which makes the one entry.
func check(t *testing.T, l ledger.Store, m *model, store string) {
	t.Helper()
	recs, err := l.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]ledger.TxRecord{}
	for _, r := range recs {
		if r.Store != store {
			continue // another test's traffic on a shared external broker
		}
		byID[r.ID] = r
	}

	// Every transaction the POS API accepted is applied; an approved burn's
	// hold is captured, and its capture is applied with the hold's points.
	captureOf := map[string]string{} // capture id -> the approved burn's hold id
	for id := range m.accepted {
		r, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("accepted %s %s is not in the ledger", m.kind[id], id)
		case r.Status != protocol.StatusApplied:
			t.Errorf("accepted %s %s was %s (%s) at the hub", m.kind[id], id, r.Status, r.Code)
		case m.kind[id] == protocol.KindBurn:
			if r.Kind != protocol.KindHold || r.JournalSeq != 0 || r.HoldState != ledger.HoldCaptured || r.Capture == "" || r.Points != -m.accepted[id] {
				t.Errorf("approved burn %s of %d points: %+v, want a hold with no journal entry, captured", id, -m.accepted[id], r)
				continue
			}
			c, ok := byID[r.Capture]
			if !ok || c.Status != protocol.StatusApplied || c.Kind != protocol.KindCapture || c.Original != id || c.Points != r.Points || c.JournalSeq == 0 {
				t.Errorf("capture %s of approved burn %s: %+v (found %v), want applied with a journal entry of %d points", r.Capture, id, c, ok, r.Points)
			}
			captureOf[r.Capture] = id
		case r.Kind != m.kind[id]:
			t.Errorf("accepted %s %s is a %s at the hub", m.kind[id], id, r.Kind)
		case r.JournalSeq == 0:
			t.Errorf("accepted %s %s made no journal entry", m.kind[id], id)
		}
	}
	// Nothing else has an effect: the only other records are the captures of
	// approved burns, declined burns' holds — refused, barred by their void,
	// or applied and voided, and never captured — and the voids of declined
	// holds, which give nothing back (the hold took nothing).
	for id, r := range byID {
		if _, ok := m.accepted[id]; ok {
			continue
		}
		if _, ok := captureOf[id]; ok {
			continue
		}
		switch {
		case r.Kind == protocol.KindHold && m.declined[id]:
			if r.Status == protocol.StatusApplied && (r.HoldState != ledger.HoldVoided || r.Capture != "" || r.JournalSeq != 0) {
				t.Errorf("declined burn's hold %s was applied and not voided: %+v", id, r)
			}
		case r.Kind == protocol.KindVoid && m.declined[r.Original]:
			if r.Status != protocol.StatusApplied || r.Points != 0 || r.JournalSeq != 0 {
				t.Errorf("void %s of declined hold %s: %+v, want applied with no effect", id, r.Original, r)
			}
		case r.Status != protocol.StatusApplied:
			t.Errorf("ledger %s %s %s (%s), which is no declined burn", r.Status, r.Kind, id, r.Code)
		default:
			t.Errorf("ledger applied %s %s that no till accepted", r.Kind, id)
		}
	}
	// Exactly once: each accepted earn and reverse, and each approved burn's
	// capture, has one journal entry; holds have none, and nothing else has any.
	entries := map[string]int{}
	for member := range m.balance {
		es, err := l.Statement(member, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			entries[e.TxID]++
		}
	}
	for id := range m.accepted {
		if m.kind[id] != protocol.KindBurn {
			if entries[id] != 1 {
				t.Errorf("%s %s has %d journal entries, want 1", m.kind[id], id, entries[id])
			}
			continue
		}
		if entries[id] != 0 {
			t.Errorf("approved burn's hold %s has %d journal entries, want none (its capture has the entry)", id, entries[id])
		}
		if c := byID[id].Capture; c != "" && entries[c] != 1 {
			t.Errorf("capture %s of approved burn %s has %d journal entries, want 1", c, id, entries[c])
		}
	}
	for id, n := range entries {
		if k, ok := m.kind[id]; (ok && k != protocol.KindBurn) || captureOf[id] != "" {
			continue
		}
		t.Errorf("%s has %d journal entries, but is neither an accepted earn or reverse nor an approved burn's capture", id, n)
	}
	// Balances equal what the tills were told, and the journal replay; with
	// every burn captured or voided, nothing is held.
	bals, err := l.MemberBalances()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for member, want := range m.balance {
		if got := bals[member]; got != want {
			t.Errorf("member %s: ledger balance %d, the till's answers add up to %d", member, got, want)
		}
		v, err := l.Member(member, now)
		if err != nil {
			t.Fatal(err)
		}
		if v.Held != 0 || v.Available != want || len(v.Holds) != 0 {
			t.Errorf("member %s: %d held in %d holds, %d available; want nothing held and %d available", member, v.Held, len(v.Holds), v.Available, want)
		}
	}
	rep, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("journal replay: %+v", rep)
	}
	t.Logf("%d accepted (%d burns captured), %d declined burns, %d ledger records, %d journal entries verified",
		len(m.accepted), len(captureOf), len(m.declined), len(byID), rep.Entries)
}
