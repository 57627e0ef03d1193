package outbox_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/protocol"
)

func holdOf(id, member string, points int64) *protocol.Transaction {
	return newTx(id, protocol.KindHold, member, points)
}

func captureOf(id, hold, member string, points int64) *protocol.Transaction {
	tx := newTx(id, protocol.KindCapture, member, points)
	tx.Original = hold
	return tx
}

// appendPendingHold appends a hold awaiting the hub's verdict under key.
func (b *box) appendPendingHold(hold *protocol.Transaction, key string) {
	b.t.Helper()
	if err := b.Append(hold, key, &outbox.IdemRecord{Hash: "h-" + hold.ID, TxID: hold.ID, Pending: true}, true); err != nil {
		b.t.Fatalf("Append hold %s: %v", hold.ID, err)
	}
}

func (b *box) waitingOn(tx *protocol.Transaction) string {
	b.t.Helper()
	id, err := b.WaitingOn(tx)
	if err != nil {
		b.t.Fatalf("WaitingOn %s: %v", tx.ID, err)
	}
	return id
}

// TestAckedKeepsHeld: a held ack removes nothing and records no balance;
// the transaction stays queued (across a restart) until a real answer.
func TestAckedKeepsHeld(t *testing.T) {
	b := openBox(t)
	b.mustAppend(newTx("tx-1", protocol.KindEarn, "m2", 10))
	b.mustAppend(newTx("tx-2", protocol.KindEarn, "m1", 20))
	b.mustAppend(newTx("tx-3", protocol.KindEarn, "m1", 30))
	held := protocol.Ack{ID: "tx-1", Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: "m2", Balance: 5}
	applied := protocol.Ack{ID: "tx-2", Status: protocol.StatusApplied, Member: "m1", Balance: 120}
	unknown := protocol.Ack{ID: "never-was", Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore}
	done, gotHeld, err := b.Acked([]protocol.Ack{held, applied, unknown}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, []protocol.Ack{applied}) || !slices.Equal(gotHeld, []protocol.Ack{held}) {
		t.Fatalf("Acked = done %v, held %v; want done [tx-2], held [tx-1]", done, gotHeld)
	}
	for _, when := range []string{"after the held ack", "after a restart"} {
		if got := b.queued(); !slices.Equal(got, []string{"tx-1", "tx-3"}) {
			t.Fatalf("%s: queued %v, want [tx-1 tx-3]", when, got)
		}
		if n := b.count(); n != 2 {
			t.Fatalf("%s: Stats count %d, want 2", when, n)
		}
		if _, ok, _ := b.CachedBalance("m2"); ok {
			t.Fatalf("%s: a held ack recorded a balance", when)
		}
		b.reopen()
	}
	// Held again on the re-send, then applied at last.
	if done, gotHeld, err := b.Acked([]protocol.Ack{held}, t0); err != nil || len(done) != 0 || len(gotHeld) != 1 {
		t.Fatalf("second held Acked = %v, %v, %v", done, gotHeld, err)
	}
	final := protocol.Ack{ID: "tx-1", Status: protocol.StatusApplied, Member: "m2", Balance: 10}
	if done, gotHeld, err := b.Acked([]protocol.Ack{final}, t0); err != nil || !slices.Equal(done, []protocol.Ack{final}) || len(gotHeld) != 0 {
		t.Fatalf("applied Acked = %v, %v, %v", done, gotHeld, err)
	}
	if got := b.queued(); !slices.Equal(got, []string{"tx-3"}) {
		t.Fatalf("queued %v, want [tx-3]", got)
	}
	if bal, ok, _ := b.CachedBalance("m2"); !ok || bal.Points != 10 {
		t.Fatalf("CachedBalance(m2) = %+v, %v; want 10", bal, ok)
	}
}

// TestHoldApprovedQueuesItsCapture: an approved hold's verdict and its
// capture are one commit; the capture is linked to the hold, so a reverse
// naming the hold (the id the POS knows) waits for the capture.
func TestHoldApprovedQueuesItsCapture(t *testing.T) {
	b := openBox(t)
	b.appendPendingHold(holdOf("hold-1", "m1", 30), "key-1")
	// The hub applies the hold: its ack removes it, then the verdict is recorded.
	if done, _, err := b.Acked([]protocol.Ack{{ID: "hold-1", Status: protocol.StatusApplied, Member: "m1", Balance: 70}}, t0); err != nil || len(done) != 1 {
		t.Fatalf("Acked hold = %v, %v", done, err)
	}
	resp := []byte(`{"status":"approved"}`)
	capture := captureOf("cap-1", "hold-1", "m1", 30)
	if ok, err := b.DecideBurn("hold-1", resp, true, capture); err != nil || !ok {
		t.Fatalf("DecideBurn = %v, %v; want true, nil", ok, err)
	}
	b.reopen()
	if got := b.queued(); !slices.Equal(got, []string{"cap-1"}) {
		t.Fatalf("queued %v, want [cap-1]", got)
	}
	if got := b.pendingBurns(); len(got) != 0 {
		t.Fatalf("PendingBurns = %v after the verdict", got)
	}
	if r, ok := b.idem("key-1"); !ok || r.Pending || r.TxID != "hold-1" || !bytes.Equal(r.Response, resp) {
		t.Fatalf("Idem = %+v, %v; want the decided hold", r, ok)
	}
	if l, ok := b.local("hold-1"); !ok || l.Kind != protocol.KindHold || l.Capture != "cap-1" || l.Reversed != 0 {
		t.Fatalf("Local(hold-1) = %+v, %v; want an open hold captured by cap-1", l, ok)
	}
	if l, ok := b.local("cap-1"); !ok || l.Kind != protocol.KindCapture || l.Points != 30 {
		t.Fatalf("Local(cap-1) = %+v, %v", l, ok)
	}
	if id := b.waitingOn(capture); id != "" {
		t.Errorf("the capture waits on %q; its hold is acked", id)
	}

	// The POS reverses the burn by the hold's id: allowed up to the hold's
	// points, and it goes out only after the capture.
	rev := reverseOf("rev-1", "hold-1", "m1", 10)
	if err := b.Append(rev, "", nil, false); err != nil {
		t.Fatalf("reverse of an approved hold: %v", err)
	}
	if id := b.waitingOn(rev); id != "cap-1" {
		t.Errorf("reverse of the hold waits on %q, want cap-1", id)
	}
	if err := b.Append(reverseOf("rev-2", "hold-1", "m1", 21), "", nil, false); protocol.CodeOf(err) != protocol.CodeOverReversed {
		t.Errorf("reverse past the hold's points: %v, want %s", err, protocol.CodeOverReversed)
	}
	if err := b.Append(reverseOf("rev-3", "cap-1", "m1", 1), "", nil, false); protocol.CodeOf(err) != protocol.CodeOriginalMismatch {
		t.Errorf("reverse naming the capture: %v, want %s", err, protocol.CodeOriginalMismatch)
	}
	if _, _, err := b.Acked([]protocol.Ack{{ID: "cap-1", Status: protocol.StatusApplied}}, t0); err != nil {
		t.Fatal(err)
	}
	if id := b.waitingOn(rev); id != "" {
		t.Errorf("reverse waits on %q after the capture was acked", id)
	}
}

// TestWaitingOn: what each kind of transaction must follow to the hub.
func TestWaitingOn(t *testing.T) {
	b := openBox(t)
	b.mustAppend(newTx("earn-1", protocol.KindEarn, "m1", 10))
	b.appendPendingHold(holdOf("hold-1", "m1", 5), "")
	for _, c := range []struct {
		tx   *protocol.Transaction
		want string
	}{
		{newTx("earn-2", protocol.KindEarn, "m1", 1), ""},
		{reverseOf("rev-1", "earn-1", "m1", 1), "earn-1"},
		{reverseOf("rev-2", "elsewhere", "m1", 1), ""},
		{voidOf("void-1", "hold-1", "m1"), "hold-1"},
		{captureOf("cap-1", "hold-1", "m1", 5), "hold-1"},
	} {
		if got := b.waitingOn(c.tx); got != c.want {
			t.Errorf("WaitingOn(%s of %q) = %q, want %q", c.tx.Kind, c.tx.Original, got, c.want)
		}
	}
}

// TestDecideBurnFollowUpMustMatch: a verdict with the wrong follow-up is
// refused whole: the hold stays pending and nothing is appended.
func TestDecideBurnFollowUpMustMatch(t *testing.T) {
	for _, c := range []struct {
		name     string
		approved bool
		next     *protocol.Transaction
	}{
		{"approved with a void", true, voidOf("void-1", "hold-1", "m1")},
		{"declined with a capture", false, captureOf("cap-1", "hold-1", "m1", 5)},
		{"a capture of another hold", true, captureOf("cap-1", "hold-9", "m1", 5)},
		{"a void of another hold", false, voidOf("void-1", "hold-9", "m1")},
		{"an invalid capture", true, captureOf("cap-1", "hold-1", "", 5)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := openBox(t)
			b.appendPendingHold(holdOf("hold-1", "m1", 5), "key")
			if ok, err := b.DecideBurn("hold-1", []byte(`{}`), c.approved, c.next); err == nil || ok {
				t.Fatalf("DecideBurn = %v, %v; want false and an error", ok, err)
			}
			b.reopen()
			if got := b.pendingBurns(); !slices.Equal(got, []string{"hold-1"}) {
				t.Errorf("PendingBurns = %v; a refused verdict must leave the hold pending", got)
			}
			if r, _ := b.idem("key"); !r.Pending {
				t.Errorf("Idem = %+v; want still pending", r)
			}
			if got := b.queued(); !slices.Equal(got, []string{"hold-1"}) {
				t.Errorf("queued %v, want [hold-1]", got)
			}
			if l, _ := b.local("hold-1"); l.Reversed != 0 || l.Capture != "" {
				t.Errorf("Local(hold-1) = %+v; want untouched", l)
			}
		})
	}
}

// TestPendingPointsCountsEachRedemptionOnce: a two-phase burn counts once
// whatever of it is still queued; a voided one counts nothing.
func TestPendingPointsCountsEachRedemptionOnce(t *testing.T) {
	b := openBox(t)
	for _, tx := range []*protocol.Transaction{
		newTx("earn-1", protocol.KindEarn, "m1", 10),
		holdOf("hold-1", "m1", 30),                  // awaiting its verdict: 30
		holdOf("hold-2", "m1", 20),                  // approved, hold and capture both queued: 20
		captureOf("cap-2", "hold-2", "m1", 20),      //
		captureOf("cap-3", "hold-3", "m1", 15),      // hold-3 acked already: 0, the hub's available balance holds it
		holdOf("hold-4", "m1", 25),                  // declined: 0
		voidOf("void-4", "hold-4", "m1"),            //
		voidOf("void-5", "hold-5", "m1"),            // declined, hold-5 acked already: 0
		newTx("burn-6", protocol.KindBurn, "m1", 7), // a one-step burn: 7
		holdOf("hold-7", "m10", 1000),               // another member
	} {
		b.mustAppend(tx)
	}
	earned, burned, err := b.PendingPoints("m1", math.MaxInt)
	if err != nil || earned != 10 || burned != 30+20+7 {
		t.Fatalf("PendingPoints(m1) = %d, %d, %v; want 10, %d", earned, burned, err, 30+20+7)
	}
	if _, burned, _ := b.PendingPoints("m10", math.MaxInt); burned != 1000 {
		t.Fatalf("PendingPoints(m10) burned %d, want 1000", burned)
	}
}

// killHelperEnv names the outbox file TestKillHelper works on; the helper
// only runs when it is set.
const killHelperEnv = "TILLSYNC_OUTBOX_KILL_HELPER"

// TestKillHelper is the process TestDecideBurnSurvivesKill kills: it
// appends pending holds and decides them, approved with a capture or
// declined with a void, printing each step once it returned.
func TestKillHelper(t *testing.T) {
	path := os.Getenv(killHelperEnv)
	if path == "" {
		t.Skip("run by TestDecideBurnSurvivesKill")
	}
	o, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		hold := holdOf(fmt.Sprintf("hold-%05d", i), "m1", 10)
		key := "key-" + hold.ID
		if err := o.Append(hold, key, &outbox.IdemRecord{Hash: "h", TxID: hold.ID, Pending: true}, true); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("appended %d\n", i)
		approved := i%3 != 0
		next := voidOf(fmt.Sprintf("void-%05d", i), hold.ID, "m1")
		resp := `{"status":"declined"}`
		if approved {
			next, resp = captureOf(fmt.Sprintf("cap-%05d", i), hold.ID, "m1", 10), `{"status":"approved"}`
		}
		if ok, err := o.DecideBurn(hold.ID, []byte(resp), approved, next); err != nil || !ok {
			t.Fatalf("DecideBurn: %v, %v", ok, err)
		}
		fmt.Printf("decided %d\n", i)
	}
}

// TestDecideBurnSurvivesKill kills a process deciding holds at random
// moments and checks, on reopening its outbox, that every verdict and its
// follow-up (capture or void) are both on disk or neither is, and that
// nothing a returned call committed is lost.
func TestDecideBurnSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	for round := range 4 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Let it decide a few, then kill it wherever it is.
			target := 5 + rand.IntN(20)
			appended, decided := -1, -1
			sc := bufio.NewScanner(out)
			for decided < target && sc.Scan() {
				what, n, _ := strings.Cut(sc.Text(), " ")
				i, err := strconv.Atoi(n)
				if err != nil {
					continue
				}
				switch what {
				case "appended":
					appended = i
				case "decided":
					decided = i
				}
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			cmd.Process.Kill()
			cmd.Wait()
			if decided < target {
				t.Fatalf("the helper stopped after deciding %d holds, before it was killed", decided+1)
			}

			o, err := outbox.Open(path, outbox.Options{})
			if err != nil {
				t.Fatalf("reopen after kill: %v", err)
			}
			defer o.Close()
			checkHoldsAfterKill(t, o, appended, decided)
		})
	}
}

func checkHoldsAfterKill(t *testing.T, o *outbox.Outbox, appended, decided int) {
	t.Helper()
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	txs, err := o.Pending(0, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := o.PendingBurns()
	if err != nil {
		t.Fatal(err)
	}
	holds := map[string]bool{}             // hold id -> present
	followUp := map[string]protocol.Kind{} // hold id -> kind of its capture or void
	for _, tx := range txs {
		switch tx.Kind {
		case protocol.KindHold:
			holds[tx.ID] = true
		case protocol.KindCapture, protocol.KindVoid:
			if _, dup := followUp[tx.Original]; dup {
				t.Errorf("%s has two follow-ups", tx.Original)
			}
			followUp[tx.Original] = tx.Kind
		}
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("hold-%05d", i)
		if !holds[id] {
			if i <= appended {
				t.Errorf("%s was appended (Append returned) but is gone", id)
			}
			if k, ok := followUp[id]; ok {
				t.Errorf("a %s of %s that is not there", k, id)
			}
			if i < appended {
				continue
			}
			break
		}
		rec, found, err := o.Idem("key-" + id)
		if err != nil || !found {
			t.Fatalf("Idem of %s: %v, %v", id, found, err)
		}
		isPending := slices.Contains(pending, id)
		kind, hasFollowUp := followUp[id]
		var resp struct{ Status string }
		if !isPending {
			if err := json.Unmarshal(rec.Response, &resp); err != nil {
				t.Fatalf("%s: stored response %q: %v", id, rec.Response, err)
			}
		}
		l, _, _ := o.Local(id)
		switch {
		case isPending && (hasFollowUp || !rec.Pending):
			t.Errorf("%s is pending but has a follow-up (%v) or a decided answer (%+v)", id, hasFollowUp, rec)
		case isPending && i <= decided:
			t.Errorf("%s was decided (DecideBurn returned) but is pending again", id)
		case !isPending && rec.Pending:
			t.Errorf("%s is decided but its answer is still pending", id)
		case !isPending && resp.Status == "approved" && (kind != protocol.KindCapture || l.Capture != fmt.Sprintf("cap-%05d", i)):
			t.Errorf("%s approved: follow-up %q, linked capture %q; want its capture", id, kind, l.Capture)
		case !isPending && resp.Status == "declined" && (kind != protocol.KindVoid || l.Reversed != l.Points):
			t.Errorf("%s declined: follow-up %q, local %+v; want its void and nothing left to reverse", id, kind, l)
		}
	}
	t.Logf("killed after %d appended, %d decided: %d queued, %d pending", appended+1, decided+1, len(txs), len(pending))
}
