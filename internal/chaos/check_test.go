package chaos

import (
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// history is a small run that kept the promise: what the POS was told,
// and the ledger that goes with it.
func history() ([]Op, LedgerView) {
	ops := []Op{
		{Till: 0, Key: "k1", Kind: OpEarn, Member: "M1", Amount: 2500, Answered: true, HTTP: 200, Status: "accepted", TxID: "E1", Got: 25},
		{Till: 0, Key: "k2", Kind: OpBurn, Member: "M1", Points: 10, Answered: true, HTTP: 200, Status: "approved", TxID: "H1"},
		{Till: 0, Key: "k3", Kind: OpBurn, Member: "M1", Points: 5, Answered: true, HTTP: 200, Status: "declined", Code: "timeout", TxID: "H2"},
		{Till: 0, Key: "k4", Kind: OpReverse, Member: "M1", Original: "E1", Answered: true, HTTP: 200, Status: "accepted", TxID: "R1", Got: 5},
		{Till: 1, Key: "k5", Kind: OpBurn, Member: "M1", Points: 3, Answered: true, HTTP: 200, Status: "approved", Offline: true, TxID: "B1"},
		{Till: 1, Key: "k6", Kind: OpBurn, Member: "M2", Points: 3, Answered: true, HTTP: 200, Status: "declined", Code: "offline_member_limit"},
		{Till: 1, Key: "k7", Kind: OpEarn, Member: "M2", Amount: -1, Answered: true, HTTP: 400, Code: "invalid_amount"},
	}
	applied := protocol.StatusApplied
	v := LedgerView{
		Txs: []ledger.TxRecord{
			{ID: "B1", Status: applied, Kind: protocol.KindBurn, Member: "M1", Points: 3, Offline: true, JournalSeq: 4},
			{ID: "C1", Status: applied, Kind: protocol.KindCapture, Member: "M1", Points: 10, Original: "H1", JournalSeq: 2},
			{ID: "E1", Status: applied, Kind: protocol.KindEarn, Member: "M1", Points: 25, JournalSeq: 1},
			{ID: "H1", Status: applied, Kind: protocol.KindHold, Member: "M1", Points: 10, HoldState: ledger.HoldCaptured, Capture: "C1"},
			{ID: "H2", Status: applied, Kind: protocol.KindHold, Member: "M1", Points: 5, HoldState: ledger.HoldVoided},
			{ID: "R1", Status: applied, Kind: protocol.KindReverse, Member: "M1", Points: 5, Original: "E1", JournalSeq: 3},
			{ID: "V2", Status: applied, Kind: protocol.KindVoid, Member: "M1", Original: "H2"},
		},
		Entries: []ledger.Entry{
			{Seq: 1, TxID: "E1", Kind: "earn", Member: "M1", Points: 25},
			{Seq: 2, TxID: "C1", Kind: "capture", Member: "M1", Points: -10},
			{Seq: 3, TxID: "R1", Kind: "reverse", Member: "M1", Original: "E1", Points: -5},
			{Seq: 4, TxID: "B1", Kind: "burn", Member: "M1", Points: -3},
		},
		Balances: map[string]int64{"M1": 7},
		Verify:   ledger.VerifyReport{ChainHead: "abc", Entries: 4},
	}
	return ops, v
}

func tx(v *LedgerView, id string) *ledger.TxRecord {
	for i := range v.Txs {
		if v.Txs[i].ID == id {
			return &v.Txs[i]
		}
	}
	panic("no tx " + id)
}

func TestCheckKeptPromise(t *testing.T) {
	ops, v := history()
	r := Check(ops, v)
	if len(r.Violations) > 0 {
		t.Fatalf("violations in a history that kept the promise:\n%s", strings.Join(r.Violations, "\n"))
	}
	want := Report{Ops: 7, Accepted: 2, Approved: 2, Offline: 1, Declined: 2, Refused: 1, LedgerTxs: 7, Entries: 4, Members: 2,
		Codes: map[string]int{"timeout": 1, "offline_member_limit": 1, "invalid_amount": 1}}
	if r.Ops != want.Ops || r.Accepted != want.Accepted || r.Approved != want.Approved || r.Offline != want.Offline ||
		r.Declined != want.Declined || r.Refused != want.Refused || r.LedgerTxs != want.LedgerTxs || r.Entries != want.Entries || r.Members != want.Members {
		t.Errorf("report %+v, want %+v", r, want)
	}
}

// Each way of breaking the promise is found and named.
func TestCheckFindsViolations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(ops []Op, v *LedgerView) ([]Op, *LedgerView)
		want    []string
	}{
		{"accepted earn lost", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = slices.DeleteFunc(v.Txs, func(t ledger.TxRecord) bool { return t.ID == "E1" })
			v.Entries = v.Entries[1:]
			v.Balances["M1"] -= 25
			v.Verify.Entries--
			return ops, v
		}, []string{"tx E1): accepted at the till, not in the ledger", "member M1: the ledger says -18 points, the tills' answers add up to 7"}},
		{"accepted earn rejected by the hub", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			tx(v, "E1").Status, tx(v, "E1").Code = protocol.StatusRejected, protocol.CodeInvalidAmount
			return ops, v
		}, []string{"accepted at the till, rejected invalid_amount by the hub", "journal entry 1 names tx E1, which the ledger does not hold as applied"}},
		{"earn applied twice", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Entries = append(v.Entries, ledger.Entry{Seq: 5, TxID: "E1", Kind: "earn", Member: "M1", Points: 25})
			v.Balances["M1"] += 25
			v.Verify.Entries++
			return ops, v
		}, []string{"accepted for 25 points; the journal has 2 entries for it, 50 points", "tx E1 has 2 journal entries (seqs 1 and 5): applied twice"}},
		{"earn booked for other points than the POS was told", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Entries[0].Points = 24
			v.Balances["M1"]--
			return ops, v
		}, []string{"accepted for 25 points; the journal has 1 entries for it, 24 points", "the ledger says 6 points"}},
		{"a transaction no till accepted", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = append(v.Txs, ledger.TxRecord{ID: "X1", Status: protocol.StatusApplied, Kind: protocol.KindEarn, Member: "M3", Points: 9, JournalSeq: 5})
			v.Entries = append(v.Entries, ledger.Entry{Seq: 5, TxID: "X1", Kind: "earn", Member: "M3", Points: 9})
			v.Balances["M3"] = 9
			v.Verify.Entries++
			return ops, v
		}, []string{"the ledger holds earn X1 (applied, member M3, 9 points) that no till's answer accounts for", "member M3: 9 points in the ledger, and no till ever served them"}},
		{"declined burn captured", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = append(v.Txs, ledger.TxRecord{ID: "C2", Status: protocol.StatusApplied, Kind: protocol.KindCapture, Member: "M1", Points: 5, Original: "H2", JournalSeq: 5})
			v.Entries = append(v.Entries, ledger.Entry{Seq: 5, TxID: "C2", Kind: "capture", Member: "M1", Points: -5})
			v.Balances["M1"] -= 5
			v.Verify.Entries++
			return ops, v
		}, []string{"declined at the till, captured in the ledger (C2)", "declined at the till, yet it moved -5 points in the ledger"}},
		{"approved burn never captured", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = slices.DeleteFunc(v.Txs, func(t ledger.TxRecord) bool { return t.ID == "C1" })
			v.Entries = slices.DeleteFunc(v.Entries, func(e ledger.Entry) bool { return e.TxID == "C1" })
			v.Balances["M1"] += 10
			v.Verify.Entries--
			return ops, v
		}, []string{"approved at the till; the ledger has 0 applied captures of it"}},
		{"approved burn voided", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = append(v.Txs, ledger.TxRecord{ID: "V1", Status: protocol.StatusApplied, Kind: protocol.KindVoid, Member: "M1", Original: "H1"})
			return ops, v
		}, []string{"approved, yet the ledger has a void of it (V1)"}},
		{"offline burn lost", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Txs = slices.DeleteFunc(v.Txs, func(t ledger.TxRecord) bool { return t.ID == "B1" })
			v.Entries = v.Entries[:3]
			v.Balances["M1"] += 3
			v.Verify.Entries--
			return ops, v
		}, []string{"approved offline, not in the ledger"}},
		{"a request never answered", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			ops = append(ops, Op{Till: 2, Key: "k8", Kind: OpEarn, Member: "M2", Amount: 100, Attempts: 40, LastErr: "connection refused"})
			return ops, v
		}, []string{"till 2 earn M2 (key k8, tx ): the POS never got an answer (40 attempts; last: connection refused)"}},
		{"one tx answered to two requests", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			ops[3].TxID = "E1"
			return ops, v
		}, []string{"tx E1 was answered to two POS requests: k1 and k4"}},
		{"the ledger does not verify", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Verify.ChainBreak = "entry 3: hash differs"
			return ops, v
		}, []string{`the ledger does not verify: chain "entry 3: hash differs"`}},
		{"the statements miss journal entries", func(ops []Op, v *LedgerView) ([]Op, *LedgerView) {
			v.Verify.Entries = 5
			return ops, v
		}, []string{"the ledger replayed 5 journal entries; the members' statements hold 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, v := history()
			ops, vp := tc.corrupt(ops, &v)
			r := Check(ops, *vp)
			got := strings.Join(r.Violations, "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("violations do not say %q:\n%s", w, got)
				}
			}
		})
	}
}
