package ledger_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

// testdata/schema2 holds a ledger written by the schema-2 code (its
// gen_test.go says how) and what that code answered about it.

// schema2Expect is testdata/schema2/expect.json.
type schema2Expect struct {
	Schema         string              `json:"schema"`
	AsOf           time.Time           `json:"as_of"`
	Members        []schema2Member     `json:"members"`
	MemberBalances map[string]int64    `json:"member_balances"`
	Transactions   []ledger.TxRecord   `json:"transactions"`
	Flags          []ledger.Flag       `json:"flags"`
	Terminals      []ledger.Terminal   `json:"terminals"`
	Periods        []ledger.Period     `json:"periods"`
	Coalition      ledger.Coalition    `json:"coalition"`
	Verify         ledger.VerifyReport `json:"verify"`
	SettleFrom     ledger.Day          `json:"settle_from"`
	SettleTo       ledger.Day          `json:"settle_to"`
	Settlement     ledger.Settlement   `json:"settlement"`
}

type schema2Member struct {
	ID        string            `json:"id"`
	Points    int64             `json:"points"`
	Known     bool              `json:"known"`
	Statement []ledger.Entry    `json:"statement"`
	View      ledger.MemberView `json:"view"`
}

func readSchema2Expect(t *testing.T) schema2Expect {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema2", "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp schema2Expect
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	if exp.Schema != "2" || len(exp.Members) == 0 || !exp.Verify.OK() {
		t.Fatalf("expect.json: schema %q, %d members, verify ok %v", exp.Schema, len(exp.Members), exp.Verify.OK())
	}
	return exp
}

// copySchema2 copies the schema-2 ledger into a temp dir and returns its path.
func copySchema2(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema2", "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkAnswers asks s everything expect.json recorded and wants the same,
// section by section, as JSON.
func checkAnswers(t *testing.T, s *ledger.BoltStore, exp schema2Expect) {
	t.Helper()
	same := func(what string, want, got any) {
		t.Helper()
		w, err1 := json.Marshal(want)
		g, err2 := json.Marshal(got)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", what, err1, err2)
		}
		if !bytes.Equal(w, g) {
			t.Errorf("%s after the upgrade:\n got %s\nwant %s", what, g, w)
		}
	}
	for _, m := range exp.Members {
		var got schema2Member
		var err error
		got.ID = m.ID
		if got.Points, got.Known, err = s.Balance(m.ID); err != nil {
			t.Fatal(err)
		}
		if got.Statement, err = s.Statement(m.ID, 1000); err != nil {
			t.Fatal(err)
		}
		if got.View, err = s.Member(m.ID, exp.AsOf); err != nil {
			t.Fatal(err)
		}
		same("member "+m.ID, m, got)
	}
	bals, err := s.MemberBalances()
	if err != nil {
		t.Fatal(err)
	}
	same("MemberBalances", exp.MemberBalances, bals)
	txs, err := s.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	same("Transactions", exp.Transactions, txs)
	flags, err := s.Flags()
	if err != nil {
		t.Fatal(err)
	}
	same("Flags", exp.Flags, flags)
	terms, err := s.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	same("Terminals", exp.Terminals, terms)
	pers, err := s.Periods()
	if err != nil {
		t.Fatal(err)
	}
	same("Periods", exp.Periods, pers)
	co, err := s.Coalition()
	if err != nil {
		t.Fatal(err)
	}
	same("Coalition", exp.Coalition, co)
	st, err := s.Settlement(exp.SettleFrom, exp.SettleTo)
	if err != nil {
		t.Fatal(err)
	}
	same("Settlement", exp.Settlement, st)
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	same("Verify", exp.Verify, rep)
}

// fileLayout reads the schema, the upgrade marker and which of the old
// buckets are left, from a closed ledger file.
func fileLayout(t *testing.T, path string) (schema string, upgrading bool, old []string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		schema = string(meta.Get([]byte("schema")))
		upgrading = meta.Get([]byte("upgrading_from")) != nil
		for _, name := range []string{"lots", "member_journal"} {
			if tx.Bucket([]byte(name)) != nil {
				old = append(old, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return schema, upgrading, old
}

// A ledger written by the schema-2 code is upgraded by the first writable
// open and then answers exactly what the old code answered; until then a
// read-only open refuses it and leaves it as it was.
func TestUpgradeSchema2(t *testing.T) {
	exp := readSchema2Expect(t)
	path := copySchema2(t)
	before, _ := os.ReadFile(path)

	_, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if !errors.Is(err, ledger.ErrOldSchema) || !strings.Contains(err.Error(), "tillsync-hub serve") {
		t.Fatalf("read-only open of a schema-2 file: %v, want ErrOldSchema saying how to upgrade", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a read-only open changed the schema-2 file")
	}
	if _, err := ledger.Compact(path, ledger.CompactOptions{}); !errors.Is(err, ledger.ErrOldSchema) {
		t.Fatalf("Compact of a schema-2 file: %v, want ErrOldSchema", err)
	}

	var logs bytes.Buffer
	s, err := ledger.OpenBolt(path, ledger.BoltOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"upgrading the ledger file to schema 3", "ledger file upgraded to schema 3"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the upgrade's log lacks %q:\n%s", want, logs.String())
		}
	}
	checkAnswers(t, s, exp)

	// The upgraded ledger takes new transactions: m07's earn is the newest
	// line of its statement and a lot after its others.
	tl := ledgertest.NewTill("s1", "t1", "p1")
	tl.Seq = 1000
	earn := tl.Earn("after-upgrade-1", "m07", 15)
	earn.CreatedAt = exp.AsOf
	earn.Amount = 1500
	acks, err := s.Apply([]*protocol.Batch{{Version: protocol.Version, Store: "s1", Terminal: "t1", SentAt: exp.AsOf, Txs: []protocol.Transaction{earn}}}, exp.AsOf.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a := acks[0][0]; a.Status != protocol.StatusApplied {
		t.Fatalf("earn after the upgrade: %+v", a)
	}
	old := exp.Members[6]
	if old.ID != "m07" {
		t.Fatalf("expect.json's seventh member is %s", old.ID)
	}
	bal, _, err := s.Balance("m07")
	if err != nil || bal != old.Points+acks[0][0].Points {
		t.Errorf("m07's balance after an earn of %d: %d (%v), was %d", acks[0][0].Points, bal, err, old.Points)
	}
	st, err := s.Statement("m07", 2)
	if err != nil || len(st) != 2 || st[0].TxID != "after-upgrade-1" || st[1].Seq != old.Statement[0].Seq {
		t.Errorf("m07's statement after an earn: %+v (%v); want the earn, then entry %d", st, err, old.Statement[0].Seq)
	}
	v, err := s.Member("m07", exp.AsOf.Add(time.Minute))
	if err != nil || len(v.Lots) == 0 || v.Lots[len(v.Lots)-1].ID != "after-upgrade-1" {
		t.Errorf("m07's lots after an earn: %+v (%v); want the new lot last", v.Lots, err)
	}
	if rep, err := s.Verify(); err != nil || !rep.OK() {
		t.Errorf("Verify after an earn: %+v, %v", rep, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if schema, upgrading, old := fileLayout(t, path); schema != "3" || upgrading || len(old) != 0 {
		t.Errorf("the upgraded file: schema %q, marker %v, old buckets %v; want 3, none, none", schema, upgrading, old)
	}
	ro, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after the upgrade: %v", err)
	}
	ro.Close()
}

// An upgrade stopped part way — as by a crash between two of its commits —
// leaves a file that a read-only open and an older build both refuse, and
// that the next writable open finishes; however often it is stopped, the
// result answers what the old code answered.
func TestUpgradeResumes(t *testing.T) {
	exp := readSchema2Expect(t)
	defer ledger.SetUpgradeChunk(7)()
	for _, stop := range []int{1, 3, 17} {
		t.Run(fmt.Sprintf("stopped every %d commits", stop), func(t *testing.T) {
			path := copySchema2(t)
			restore := ledger.SetUpgradeStop(stop)
			opens := 0
			for {
				opens++
				if opens > 500 {
					t.Fatal("the upgrade never finished")
				}
				s, err := ledger.OpenBolt(path, ledger.BoltOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err == nil {
					s.Close()
					break
				}
				if !strings.Contains(err.Error(), "stopped after") {
					t.Fatalf("open %d: %v", opens, err)
				}
				schema, upgrading, _ := fileLayout(t, path)
				if schema != "3" || !upgrading {
					t.Fatalf("after a stopped upgrade: schema %q, marker %v; want 3 (so older builds refuse it) and the marker", schema, upgrading)
				}
				if _, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true}); !errors.Is(err, ledger.ErrOldSchema) {
					t.Fatalf("read-only open of a half-upgraded file: %v, want ErrOldSchema", err)
				}
			}
			restore()
			if opens < 3 {
				t.Fatalf("the upgrade finished after %d opens; the test wants it stopped several times", opens)
			}
			t.Logf("finished on open %d", opens)
			s, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkAnswers(t, s, exp)
		})
	}
}

// A schema-2 file holding a key the upgrade cannot place is refused before
// the upgrade's first commit, naming the key, and left byte for byte as it
// was: still schema 2, which the previous version can open and verify.
func TestUpgradeRefusesDamagedFile(t *testing.T) {
	path := copySchema2(t)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("lots")).Put([]byte("m01-no-separator"), make([]byte, 16))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ledger.OpenBolt(path, ledger.BoltOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "cannot be upgraded") || !strings.Contains(err.Error(), hex.EncodeToString([]byte("m01-no-separator"))) {
		t.Fatalf("open of a damaged schema-2 file: %v; want a refusal naming the key", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a refused upgrade changed the file")
	}
	if schema, upgrading, old := fileLayout(t, path); schema != "2" || upgrading || len(old) != 2 {
		t.Errorf("after a refused upgrade: schema %q, marker %v, old buckets %v; want 2, none, both", schema, upgrading, old)
	}
}
