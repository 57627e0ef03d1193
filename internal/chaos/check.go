package chaos

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// LedgerView is what the checker reads of the hub's ledger once the run
// is over: every transaction record, the whole journal, the stored
// balances, and the ledger's own verification (hash chain, postings,
// balances against the journal's replay).
type LedgerView struct {
	Txs      []ledger.TxRecord
	Entries  []ledger.Entry
	Balances map[string]int64
	Verify   ledger.VerifyReport
}

// ReadLedger opens the ledger file at path read-only (no hub may hold it)
// and reads it whole for Check.
func ReadLedger(path string) (LedgerView, error) {
	var v LedgerView
	st, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return v, fmt.Errorf("chaos: open the ledger: %w", err)
	}
	defer st.Close()
	if v.Txs, err = st.Transactions(); err != nil {
		return v, fmt.Errorf("chaos: read the ledger's transactions: %w", err)
	}
	if v.Balances, err = st.MemberBalances(); err != nil {
		return v, fmt.Errorf("chaos: read the ledger's balances: %w", err)
	}
	for m := range v.Balances {
		es, err := st.Statement(m, math.MaxInt32)
		if err != nil {
			return v, fmt.Errorf("chaos: read %s's statement: %w", m, err)
		}
		v.Entries = append(v.Entries, es...)
	}
	slices.SortFunc(v.Entries, func(a, b ledger.Entry) int { return int(a.Seq) - int(b.Seq) })
	if v.Verify, err = st.Verify(); err != nil {
		return v, fmt.Errorf("chaos: verify the ledger: %w", err)
	}
	return v, nil
}

// Report is the checker's finding on one run.
type Report struct {
	Ops       int `json:"ops"`        // POS requests sent
	Accepted  int `json:"accepted"`   // earns and returns accepted
	Approved  int `json:"approved"`   // burns approved (online and offline)
	Offline   int `json:"offline"`    // of those, approved offline
	Declined  int `json:"declined"`   // burns declined
	Refused   int `json:"refused"`    // requests answered with an error code
	LedgerTxs int `json:"ledger_txs"` // transaction records in the ledger, each accounted for
	Entries   int `json:"entries"`    // journal entries, each accounted for
	Members   int `json:"members"`    // balances compared with the tills' answers
	// Codes counts the declines and error answers by code.
	Codes      map[string]int `json:"codes,omitempty"`
	Violations []string       `json:"violations,omitempty"`
}

// maxViolations bounds the lines a report keeps; the count says the rest.
const maxViolations = 50

func (r *Report) violate(format string, args ...any) {
	if len(r.Violations) == maxViolations {
		r.Violations = append(r.Violations, "… (more violations left out)")
	}
	if len(r.Violations) > maxViolations {
		return
	}
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Check holds the ledger against everything the tills told their POS:
//
//   - every POS request got an answer;
//   - every earn and return a till accepted, and every burn it approved,
//     is in the ledger applied, with exactly one journal entry of the
//     points the POS was told (an online burn: its hold, and exactly one
//     capture of it);
//   - every burn the POS was told was declined has no effect: no capture,
//     and its entries (a hold, a void) add up to nothing;
//   - nothing is in the ledger that no till accepted: every transaction
//     record is a POS answer's, or the capture or void of one of its burns,
//     and every journal entry is an applied transaction's, once;
//   - every member's balance is what the tills' answers add up to;
//   - the ledger verifies: hash chain, balanced postings, stored balances
//     equal to the journal's replay — and the journal read is all of it.
func Check(ops []Op, v LedgerView) Report {
	r := Report{Codes: map[string]int{}}
	r.Ops, r.LedgerTxs, r.Entries = len(ops), len(v.Txs), len(v.Entries)
	txs := make(map[string]*ledger.TxRecord, len(v.Txs))
	derived := map[string][]*ledger.TxRecord{} // original -> its captures and voids
	for i := range v.Txs {
		t := &v.Txs[i]
		txs[t.ID] = t
		if t.Original != "" && (t.Kind == protocol.KindCapture || t.Kind == protocol.KindVoid) {
			derived[t.Original] = append(derived[t.Original], t)
		}
	}
	entries := map[string][]ledger.Entry{} // by tx id
	for _, e := range v.Entries {
		entries[e.TxID] = append(entries[e.TxID], e)
	}
	posted := func(id string) (n int, points int64) {
		for _, e := range entries[id] {
			n++
			points += e.Points
		}
		return n, points
	}
	answered := map[string]*Op{} // by tx id
	model := map[string]int64{}
	for i := range ops {
		op := &ops[i]
		if op.TxID != "" {
			if prev, dup := answered[op.TxID]; dup {
				r.violate("tx %s was answered to two POS requests: %s and %s", op.TxID, prev.Key, op.Key)
			}
			answered[op.TxID] = op
		}
		model[op.Member] += op.Effect()
		what := fmt.Sprintf("till %d %s %s (key %s, tx %s)", op.Till, op.Kind, op.Member, op.Key, op.TxID)
		if !op.Answered {
			r.violate("%s: the POS never got an answer (%d attempts; last: %s)", what, op.Attempts, op.LastErr)
			continue
		}
		if op.Code != "" {
			r.Codes[op.Code]++
		}
		if op.Status == "" {
			r.Refused++
			continue
		}
		t := txs[op.TxID]
		applied := t != nil && t.Status == protocol.StatusApplied
		switch {
		case op.Kind == OpEarn || op.Kind == OpReverse:
			if op.Status != "accepted" {
				r.violate("%s: answered %q, want accepted or an error", what, op.Status)
				continue
			}
			r.Accepted++
			want := op.Got
			if op.Kind == OpReverse {
				want = -op.Got
			}
			switch n, pts := posted(op.TxID); {
			case t == nil:
				r.violate("%s: accepted at the till, not in the ledger", what)
			case !applied:
				r.violate("%s: accepted at the till, %s %s by the hub", what, t.Status, t.Code)
			case want != 0 && (n != 1 || pts != want):
				r.violate("%s: accepted for %d points; the journal has %d entries for it, %d points", what, want, n, pts)
			case want == 0 && n != 0:
				r.violate("%s: accepted for 0 points; the journal has %d entries for it", what, n)
			}
		case op.Status == "approved" && op.Offline:
			r.Approved++
			r.Offline++
			switch n, pts := posted(op.TxID); {
			case t == nil:
				r.violate("%s: approved offline, not in the ledger", what)
			case !applied || t.Kind != protocol.KindBurn:
				r.violate("%s: approved offline; the ledger has it as a %s %s %s", what, t.Kind, t.Status, t.Code)
			case n != 1 || pts != -op.Points:
				r.violate("%s: approved offline for %d points; the journal has %d entries for it, %d points", what, op.Points, n, pts)
			}
		case op.Status == "approved":
			r.Approved++
			var captures []*ledger.TxRecord
			for _, d := range derived[op.TxID] {
				if d.Kind == protocol.KindCapture && d.Status == protocol.StatusApplied {
					captures = append(captures, d)
				}
				if d.Kind == protocol.KindVoid && d.Status == protocol.StatusApplied {
					r.violate("%s: approved, yet the ledger has a void of it (%s)", what, d.ID)
				}
			}
			switch {
			case t == nil || !applied:
				r.violate("%s: approved at the till; its hold is not applied in the ledger", what)
			case len(captures) != 1:
				r.violate("%s: approved at the till; the ledger has %d applied captures of it", what, len(captures))
			default:
				n, pts := posted(captures[0].ID)
				if hn, _ := posted(op.TxID); hn != 0 || n != 1 || pts != -op.Points {
					r.violate("%s: approved for %d points; the journal has %d entries for its hold and %d for its capture, %d points", what, op.Points, hn, n, pts)
				}
			}
		case op.Status == "declined":
			r.Declined++
			if op.TxID == "" {
				continue // declined before anything was written (offline)
			}
			_, net := posted(op.TxID)
			for _, d := range derived[op.TxID] {
				if d.Kind == protocol.KindCapture && d.Status == protocol.StatusApplied {
					r.violate("%s: declined at the till, captured in the ledger (%s)", what, d.ID)
				}
				_, p := posted(d.ID)
				net += p
			}
			if net != 0 {
				r.violate("%s: declined at the till, yet it moved %d points in the ledger", what, net)
			}
		default:
			r.violate("%s: answered %q", what, op.Status)
		}
	}
	// Nothing in the ledger that no till accepted.
	for _, t := range v.Txs {
		if _, ok := answered[t.ID]; ok {
			continue
		}
		if (t.Kind == protocol.KindCapture || t.Kind == protocol.KindVoid) && answered[t.Original] != nil && answered[t.Original].Kind == OpBurn {
			continue
		}
		r.violate("the ledger holds %s %s (%s, member %s, %d points) that no till's answer accounts for", t.Kind, t.ID, t.Status, t.Member, t.Points)
	}
	for id, es := range entries {
		t := txs[id]
		switch {
		case len(es) > 1:
			r.violate("tx %s has %d journal entries (seqs %d and %d): applied twice", id, len(es), es[0].Seq, es[1].Seq)
		case es[0].Kind == "expire":
		case t == nil || t.Status != protocol.StatusApplied:
			r.violate("journal entry %d names tx %s, which the ledger does not hold as applied", es[0].Seq, id)
		case t.JournalSeq != es[0].Seq:
			r.violate("tx %s names journal entry %d; the journal has it at %d", id, t.JournalSeq, es[0].Seq)
		}
	}
	// Balances: as the tills' answers add up, and as the ledger replays.
	for m, want := range model {
		r.Members++
		if got := v.Balances[m]; got != want {
			r.violate("member %s: the ledger says %d points, the tills' answers add up to %d", m, got, want)
		}
	}
	for m, got := range v.Balances {
		if _, ok := model[m]; !ok && got != 0 {
			r.violate("member %s: %d points in the ledger, and no till ever served them", m, got)
		}
	}
	if !v.Verify.OK() {
		r.violate("the ledger does not verify: chain %q, %d unbalanced, mismatches %v, problems %v", v.Verify.ChainBreak, len(v.Verify.Unbalanced), v.Verify.Mismatches, v.Verify.Problems)
	}
	if v.Verify.Entries != len(v.Entries) {
		r.violate("the ledger replayed %d journal entries; the members' statements hold %d", v.Verify.Entries, len(v.Entries))
	}
	return r
}
