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
}

func brokerName(b string) string {
	if b == "embedded" {
		return b
	}
	return "external"
}

func runOutages(t *testing.T, broker string, total int) {
	e := newEnv(t, broker)
	store, terminal := randomID("e2e-"), "till-1"
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

// check compares the ledger with what the POS API said.
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

	// Every transaction the POS API accepted is applied.
	for id := range m.accepted {
		r, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("accepted %s %s is not in the ledger", m.kind[id], id)
		case r.Status != protocol.StatusApplied:
			t.Errorf("accepted %s %s was %s (%s) at the hub", m.kind[id], id, r.Status, r.Code)
		case r.JournalSeq == 0:
			t.Errorf("accepted %s %s made no journal entry", m.kind[id], id)
		}
	}
	// Nothing else has an effect: the only other applied records are voids
	// of declined burns, and declined burns that those voids undid whole.
	for id, r := range byID {
		if _, ok := m.accepted[id]; ok || r.Status != protocol.StatusApplied {
			continue
		}
		switch {
		case r.Kind == protocol.KindVoid && m.declined[r.Original]:
		case r.Kind == protocol.KindBurn && m.declined[id]:
			if r.Reversed != r.Points {
				t.Errorf("declined burn %s kept %d of its %d points", id, r.Points-r.Reversed, r.Points)
			}
		default:
			t.Errorf("ledger applied %s %s that no till accepted", r.Kind, id)
		}
	}
	// Exactly once: each accepted transaction has one journal entry.
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
		if entries[id] != 1 {
			t.Errorf("%s %s has %d journal entries, want 1", m.kind[id], id, entries[id])
		}
	}
	// Balances equal what the tills were told, and the journal replay.
	bals, err := l.MemberBalances()
	if err != nil {
		t.Fatal(err)
	}
	for member, want := range m.balance {
		if got := bals[member]; got != want {
			t.Errorf("member %s: ledger balance %d, the till's answers add up to %d", member, got, want)
		}
	}
	rep, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("journal replay: %+v", rep)
	}
	t.Logf("%d accepted, %d declined burns, %d ledger records, %d journal entries verified", len(m.accepted), len(m.declined), len(byID), rep.Entries)
}
