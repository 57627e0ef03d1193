package protocol_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// badIDs break the id rules; each must be refused with invalid_id.
var badIDs = []struct{ name, v string }{
	{"plus", "a+b"},
	{"hash", "a#b"},
	{"slash", "a/b"},
	{"space", "a b"},
	{"nul", "a\x00b"},
	{"newline", "a\nb"},
	{"tab", "\tab"},
	{"del", "ab\x7f"},
	{"65 chars", strings.Repeat("x", protocol.MaxIDLen+1)},
	{"dot", "."},
	{"dotdot", ".."},
	{"non-ascii", "café"},
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"Z", true},
		{"0", true},
		{"store-042", true},
		{"till.3", true},
		{"acme_foods", true},
		{"01JD2X7Q8R9S0T1V2W3X4Y5Z6A", true},
		{"...", true},
		{".hidden", true},
		{"a..b", true},
		{"-", true},
		{"_", true},
		{strings.Repeat("x", 64), true},

		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", 65), false},
		{strings.Repeat("x", 1000), false},
		{"a+b", false},
		{"+", false},
		{"#", false},
		{"a/b", false},
		{"/", false},
		{"a b", false},
		{" a", false},
		{"a\x00", false},
		{"a\r", false},
		{"a\n", false},
		{"\x1b[31m", false},
		{"a\x7f", false},
		{"café", false},                  // é is two bytes, both >= 0x80
		{"ｓｔｏｒｅ", false},                 // full-width letters
		{"a\u200bb", false},              // zero-width space
		{"\xff\xfe", false},              // not UTF-8 at all
		{"a:b", false},                   // used by other brokers' topic schemes
		{"a*b", false},                   // wildcard elsewhere
		{"a$b", false},                   // $SYS-like
		{"a,b", false},                   // list separators
		{"a\\b", false},                  // Windows path separator
		{"a%2Fb", false},                 // escaped slash: % is not allowed
		{"a\"b", false},                  // quotes
		{"a'b", false},                   // quotes
		{"a\u0130", false},               // İ, whose lower case changes length
		{"\u212a", false},                // Kelvin sign, folds to K
		{strings.Repeat("é", 32), false}, // 64 bytes, not 64 ASCII
	} {
		if got := protocol.ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

type txCase struct {
	name  string
	base  func() protocol.Transaction
	mut   func(*protocol.Transaction)
	code  protocol.Code
	field string
}

func invalidTxCases() []txCase {
	var cases []txCase
	idFields := []struct {
		name string
		set  func(*protocol.Transaction, string)
	}{
		{"id", func(t *protocol.Transaction, v string) { t.ID = v }},
		{"store", func(t *protocol.Transaction, v string) { t.Store = v }},
		{"terminal", func(t *protocol.Transaction, v string) { t.Terminal = v }},
		{"partner", func(t *protocol.Transaction, v string) { t.Partner = v }},
		{"member", func(t *protocol.Transaction, v string) { t.Member = v }},
	}
	for _, f := range idFields {
		cases = append(cases, txCase{f.name + " empty", earnTx,
			func(t *protocol.Transaction) { f.set(t, "") }, protocol.CodeMissingField, f.name})
		for _, bad := range badIDs {
			cases = append(cases, txCase{f.name + " " + bad.name, earnTx,
				func(t *protocol.Transaction) { f.set(t, bad.v) }, protocol.CodeInvalidID, f.name})
		}
	}
	// Receipt is optional, but when present it obeys the id rules.
	for _, bad := range badIDs {
		cases = append(cases, txCase{"receipt " + bad.name, earnTx,
			func(t *protocol.Transaction) { t.Receipt = bad.v }, protocol.CodeInvalidID, "receipt"})
	}
	// Original, where required, obeys the id rules too.
	for _, base := range []func() protocol.Transaction{reverseTx, voidTx, captureTx} {
		kind := string(base().Kind)
		for _, bad := range badIDs {
			cases = append(cases, txCase{kind + " original " + bad.name, base,
				func(t *protocol.Transaction) { t.Original = bad.v }, protocol.CodeInvalidID, "original"})
		}
	}

	cases = append(cases, []txCase{
		{"kind empty", earnTx, func(t *protocol.Transaction) { t.Kind = "" }, protocol.CodeMissingField, "kind"},
		{"kind unknown", earnTx, func(t *protocol.Transaction) { t.Kind = "refund" }, protocol.CodeInvalidKind, "kind"},
		{"kind upper case", earnTx, func(t *protocol.Transaction) { t.Kind = "EARN" }, protocol.CodeInvalidKind, "kind"},
		{"kind padded", earnTx, func(t *protocol.Transaction) { t.Kind = " earn" }, protocol.CodeInvalidKind, "kind"},

		{"amount negative", earnTx, func(t *protocol.Transaction) { t.Amount = -1 }, protocol.CodeInvalidAmount, "amount"},
		{"amount min int64", earnTx, func(t *protocol.Transaction) { t.Amount = -1 << 63 }, protocol.CodeInvalidAmount, "amount"},
		{"amount over max", earnTx, func(t *protocol.Transaction) { t.Amount = protocol.MaxAmount + 1 }, protocol.CodeInvalidAmount, "amount"},
		{"amount max int64", earnTx, func(t *protocol.Transaction) { t.Amount = 1<<63 - 1 }, protocol.CodeInvalidAmount, "amount"},
		{"amount zero on earn", earnTx, func(t *protocol.Transaction) { t.Amount, t.Currency = 0, "" }, protocol.CodeInvalidAmount, "amount"},
		{"amount zero on earn with currency", earnTx, func(t *protocol.Transaction) { t.Amount = 0 }, protocol.CodeInvalidAmount, "amount"},
		{"amount negative on burn", burnTx, func(t *protocol.Transaction) { t.Amount, t.Currency = -5, "EUR" }, protocol.CodeInvalidAmount, "amount"},

		{"points negative", earnTx, func(t *protocol.Transaction) { t.Points = -1 }, protocol.CodeInvalidPoints, "points"},
		{"points negative on burn", burnTx, func(t *protocol.Transaction) { t.Points = -500 }, protocol.CodeInvalidPoints, "points"},
		{"points over max", earnTx, func(t *protocol.Transaction) { t.Points = protocol.MaxPoints + 1 }, protocol.CodeInvalidPoints, "points"},
		{"points over max on burn", burnTx, func(t *protocol.Transaction) { t.Points = 1<<63 - 1 }, protocol.CodeInvalidPoints, "points"},
		{"points zero on burn", burnTx, func(t *protocol.Transaction) { t.Points = 0 }, protocol.CodeInvalidPoints, "points"},
		// Since Version 2 a reverse may name only the returned amount; with
		// neither amount nor points there is nothing to give back.
		{"points and amount zero on reverse", reverseTx, func(t *protocol.Transaction) { t.Points, t.Amount, t.Currency = 0, 0, "" }, protocol.CodeInvalidPoints, "points"},
		{"points and amount zero on reverse with currency", reverseTx, func(t *protocol.Transaction) { t.Points, t.Amount = 0, 0 }, protocol.CodeInvalidPoints, "points"},
		{"points on void", voidTx, func(t *protocol.Transaction) { t.Points = 1 }, protocol.CodeInvalidPoints, "points"},
		{"amount on void", voidTx, func(t *protocol.Transaction) { t.Amount, t.Currency = 100, "EUR" }, protocol.CodeInvalidPoints, "points"},

		{"currency lower case", earnTx, func(t *protocol.Transaction) { t.Currency = "eur" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency mixed case", earnTx, func(t *protocol.Transaction) { t.Currency = "Eur" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency two letters", earnTx, func(t *protocol.Transaction) { t.Currency = "EU" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency four letters", earnTx, func(t *protocol.Transaction) { t.Currency = "EURO" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency digit", earnTx, func(t *protocol.Transaction) { t.Currency = "978" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency padded", earnTx, func(t *protocol.Transaction) { t.Currency = " EU" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency missing with amount", earnTx, func(t *protocol.Transaction) { t.Currency = "" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency missing with amount on reverse", reverseTx, func(t *protocol.Transaction) { t.Currency = "" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency bad without amount", burnTx, func(t *protocol.Transaction) { t.Currency = "eu" }, protocol.CodeInvalidCurrency, "currency"},

		{"seq zero", earnTx, func(t *protocol.Transaction) { t.Seq = 0 }, protocol.CodeInvalidSeq, "seq"},

		{"created_at zero", earnTx, func(t *protocol.Transaction) { t.CreatedAt = time.Time{} }, protocol.CodeMissingField, "created_at"},
		{"created_at 1970", earnTx, func(t *protocol.Transaction) { t.CreatedAt = time.Unix(0, 0).UTC() }, protocol.CodeInvalidTime, "created_at"},
		{"created_at just before 2000", earnTx, func(t *protocol.Transaction) {
			t.CreatedAt = time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		}, protocol.CodeInvalidTime, "created_at"},
		{"created_at 2100", earnTx, func(t *protocol.Transaction) {
			t.CreatedAt = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		}, protocol.CodeInvalidTime, "created_at"},
		{"created_at 2100 by offset", earnTx, func(t *protocol.Transaction) {
			t.CreatedAt = time.Date(2099, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))
		}, protocol.CodeInvalidTime, "created_at"},
		{"created_at 2200", earnTx, func(t *protocol.Transaction) {
			t.CreatedAt = time.Date(2200, 6, 1, 12, 0, 0, 0, time.UTC)
		}, protocol.CodeInvalidTime, "created_at"},

		{"original missing on reverse", reverseTx, func(t *protocol.Transaction) { t.Original = "" }, protocol.CodeMissingField, "original"},
		{"original missing on void", voidTx, func(t *protocol.Transaction) { t.Original = "" }, protocol.CodeMissingField, "original"},
		{"original on earn", earnTx, func(t *protocol.Transaction) { t.Original = burnTx().ID }, protocol.CodeInvalidID, "original"},
		{"original on burn", burnTx, func(t *protocol.Transaction) { t.Original = earnTx().ID }, protocol.CodeInvalidID, "original"},
		{"original is itself on reverse", reverseTx, func(t *protocol.Transaction) { t.Original = t.ID }, protocol.CodeInvalidID, "original"},
		{"original is itself on void", voidTx, func(t *protocol.Transaction) { t.Original = t.ID }, protocol.CodeInvalidID, "original"},
	}...)
	return append(cases, v2TxCases()...)
}

// v2TxCases are the refusals Version 2 added: holds and captures, offline
// burns, line items and the rules version.
func v2TxCases() []txCase {
	cases := []txCase{
		{"hold points zero", holdTx, func(t *protocol.Transaction) { t.Points = 0 }, protocol.CodeInvalidPoints, "points"},
		{"hold points negative", holdTx, func(t *protocol.Transaction) { t.Points = -1 }, protocol.CodeInvalidPoints, "points"},
		{"hold points over max", holdTx, func(t *protocol.Transaction) { t.Points = protocol.MaxPoints + 1 }, protocol.CodeInvalidPoints, "points"},
		{"hold with original", holdTx, func(t *protocol.Transaction) { t.Original = burnTx().ID }, protocol.CodeInvalidID, "original"},
		{"capture points zero", captureTx, func(t *protocol.Transaction) { t.Points = 0 }, protocol.CodeInvalidPoints, "points"},
		{"capture points negative", captureTx, func(t *protocol.Transaction) { t.Points = -750 }, protocol.CodeInvalidPoints, "points"},
		{"capture original missing", captureTx, func(t *protocol.Transaction) { t.Original = "" }, protocol.CodeMissingField, "original"},
		{"capture original is itself", captureTx, func(t *protocol.Transaction) { t.Original = t.ID }, protocol.CodeInvalidID, "original"},
		{"capture amount without currency", captureTx, func(t *protocol.Transaction) { t.Currency = "" }, protocol.CodeInvalidCurrency, "currency"},
		{"kind hold upper case", holdTx, func(t *protocol.Transaction) { t.Kind = "HOLD" }, protocol.CodeInvalidKind, "kind"},
		{"kind two-phase burn", holdTx, func(t *protocol.Transaction) { t.Kind = "authorize" }, protocol.CodeInvalidKind, "kind"},

		{"rules_version negative", linesEarnTx, func(t *protocol.Transaction) { t.RulesVersion = -1 }, protocol.CodeInvalidRules, "rules_version"},

		{"lines sum below amount", linesEarnTx, func(t *protocol.Transaction) { t.Amount++ }, protocol.CodeInvalidLines, "lines"},
		{"lines sum above amount", linesEarnTx, func(t *protocol.Transaction) { t.Lines[1].Amount++ }, protocol.CodeInvalidLines, "lines"},
		{"lines all zero", linesEarnTx, func(t *protocol.Transaction) {
			for i := range t.Lines {
				t.Lines[i].Amount = 0
			}
		}, protocol.CodeInvalidLines, "lines"},
		{"lines over max", linesEarnTx, func(t *protocol.Transaction) {
			t.Lines = make([]protocol.Line, protocol.MaxLines+1)
			for i := range t.Lines {
				t.Lines[i] = protocol.Line{Category: "c", Amount: 1}
			}
			t.Amount = protocol.MaxLines + 1
		}, protocol.CodeInvalidLines, "lines"},
		{"line amount negative", linesEarnTx, func(t *protocol.Transaction) {
			// The sum still matches: only the sign refuses it.
			t.Lines[2].Amount, t.Lines[1].Amount = -1, t.Lines[1].Amount+t.Lines[2].Amount+1
		}, protocol.CodeInvalidLines, "lines[2].amount"},
		{"line amount over max", linesEarnTx, func(t *protocol.Transaction) {
			t.Lines = []protocol.Line{{Category: "c", Amount: protocol.MaxAmount + 1}, {Category: "c", Amount: -1}}
			t.Amount = protocol.MaxAmount
		}, protocol.CodeInvalidLines, "lines[0].amount"},
		{"line amount min int64", linesEarnTx, func(t *protocol.Transaction) { t.Lines[0].Amount = -1 << 63 }, protocol.CodeInvalidLines, "lines[0].amount"},
		{"line index past 9", linesEarnTx, func(t *protocol.Transaction) {
			t.Lines = make([]protocol.Line, 12)
			for i := range t.Lines {
				t.Lines[i] = protocol.Line{SKU: "s", Amount: 1}
			}
			t.Lines[11].SKU = "a+b"
			t.Amount = 12
		}, protocol.CodeInvalidLines, "lines[11].sku"},
	}
	for _, bad := range badIDs {
		cases = append(cases,
			txCase{"line sku " + bad.name, linesEarnTx, func(t *protocol.Transaction) { t.Lines[1].SKU = bad.v }, protocol.CodeInvalidLines, "lines[1].sku"},
			txCase{"line category " + bad.name, linesEarnTx, func(t *protocol.Transaction) { t.Lines[0].Category = bad.v }, protocol.CodeInvalidLines, "lines[0].category"},
		)
	}
	// Only an earn carries lines, only a burn is approved offline.
	oneLine := []protocol.Line{{Category: "c", Amount: 100}}
	for _, base := range []func() protocol.Transaction{burnTx, holdTx, captureTx, reverseTx, voidTx, offlineBurnTx} {
		kind := string(base().Kind)
		if base().Offline {
			kind = "offline " + kind
		}
		cases = append(cases, txCase{"lines on " + kind, base, func(t *protocol.Transaction) {
			t.Lines = oneLine
			if t.Kind != protocol.KindVoid {
				t.Amount, t.Currency = 100, "EUR"
			}
		}, protocol.CodeInvalidLines, "lines"})
	}
	for _, base := range []func() protocol.Transaction{earnTx, linesEarnTx, holdTx, captureTx, reverseTx, voidTx} {
		name := string(base().Kind)
		if len(base().Lines) > 0 {
			name += " with lines"
		}
		cases = append(cases, txCase{"offline on " + name, base,
			func(t *protocol.Transaction) { t.Offline = true }, protocol.CodeInvalidKind, "offline"})
	}
	return cases
}

func TestTransactionValidateRefuses(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range invalidTxCases() {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.base()
			if err := tx.Validate(); err != nil {
				t.Fatalf("base fixture invalid: %v", err)
			}
			tc.mut(&tx)
			checkErr(t, tx.Validate(), tc.code, tc.field)
		})
	}
}

// The same refusals surface through DecodeBatch, with the field prefixed by
// the transaction's index.
func TestDecodeBatchRefusesInvalidTx(t *testing.T) {
	for _, tc := range invalidTxCases() {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.base()
			tc.mut(&tx)
			b := validBatch()
			// Keep the batch consistent with the tx's sender, so the store
			// check is not what refuses it.
			if protocol.ValidID(tx.Store) {
				b.Store = tx.Store
			}
			if protocol.ValidID(tx.Terminal) {
				b.Terminal = tx.Terminal
			}
			for i := range b.Txs {
				b.Txs[i].Store, b.Txs[i].Terminal = b.Store, b.Terminal
			}
			b.Txs = append(b.Txs[:2], tx)
			_, err := protocol.DecodeBatch(encode(t, b))
			checkErr(t, err, tc.code, "txs[2]."+tc.field)
		})
	}
}

func TestTransactionValidateAccepts(t *testing.T) {
	at := func(tx protocol.Transaction, f func(*protocol.Transaction)) protocol.Transaction {
		f(&tx)
		return tx
	}
	long := strings.Repeat("x", protocol.MaxIDLen)
	for name, tx := range map[string]protocol.Transaction{
		"earn":    earnTx(),
		"burn":    burnTx(),
		"reverse": reverseTx(),
		"void":    voidTx(),

		"earn without receipt":   at(earnTx(), func(t *protocol.Transaction) { t.Receipt = "" }),
		"earn of zero points":    at(earnTx(), func(t *protocol.Transaction) { t.Points = 0 }),
		"earn at the limits":     at(earnTx(), func(t *protocol.Transaction) { t.Amount, t.Points = protocol.MaxAmount, protocol.MaxPoints }),
		"earn of one minor unit": at(earnTx(), func(t *protocol.Transaction) { t.Amount = 1 }),
		"burn with an amount":    at(burnTx(), func(t *protocol.Transaction) { t.Amount, t.Currency = 1500, "GBP" }),
		"burn of one point":      at(burnTx(), func(t *protocol.Transaction) { t.Points = 1 }),
		"burn of max points":     at(burnTx(), func(t *protocol.Transaction) { t.Points = protocol.MaxPoints }),
		"reverse without amount": at(reverseTx(), func(t *protocol.Transaction) { t.Amount, t.Currency = 0, "" }),
		"reverse of a burn":      at(reverseTx(), func(t *protocol.Transaction) { t.Original, t.Amount, t.Currency = burnTx().ID, 0, "" }),
		"void with receipt":      at(voidTx(), func(t *protocol.Transaction) { t.Receipt = "R-1" }),
		"ids at max length": at(reverseTx(), func(t *protocol.Transaction) {
			t.ID, t.Store, t.Terminal, t.Partner, t.Member, t.Receipt = long, long, long, long, long, long
		}),
		"ids of one char": at(earnTx(), func(t *protocol.Transaction) {
			t.ID, t.Store, t.Terminal, t.Partner, t.Member, t.Receipt = "i", "s", "t", "p", "m", "r"
		}),
		"seq max":                   at(earnTx(), func(t *protocol.Transaction) { t.Seq = ^uint64(0) }),
		"created_at 2000":           at(earnTx(), func(t *protocol.Transaction) { t.CreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"created_at last of 2099":   at(earnTx(), func(t *protocol.Transaction) { t.CreatedAt = time.Date(2099, 12, 31, 23, 59, 59, 999999999, time.UTC) }),
		"created_at with an offset": at(earnTx(), func(t *protocol.Transaction) { t.CreatedAt = t0.In(time.FixedZone("CET", 3600)) }),

		"earn with lines":           linesEarnTx(),
		"hold":                      holdTx(),
		"capture":                   captureTx(),
		"void of a hold":            voidHoldTx(),
		"offline burn":              offlineBurnTx(),
		"reverse by amount":         reverseByAmountTx(),
		"reverse by one minor unit": at(reverseTx(), func(t *protocol.Transaction) { t.Amount, t.Points = 1, 0 }),
		"reverse by points only":    at(reverseTx(), func(t *protocol.Transaction) { t.Amount, t.Currency, t.Points = 0, "", 1 }),
		"hold of one point":         at(holdTx(), func(t *protocol.Transaction) { t.Points = 1 }),
		"hold of max points":        at(holdTx(), func(t *protocol.Transaction) { t.Points = protocol.MaxPoints }),
		"hold with an amount":       at(holdTx(), func(t *protocol.Transaction) { t.Amount, t.Currency = 999, "EUR" }),
		"capture without amount":    at(captureTx(), func(t *protocol.Transaction) { t.Amount, t.Currency = 0, "" }),
		"capture of one point":      at(captureTx(), func(t *protocol.Transaction) { t.Points = 1 }),
		"offline burn with amount":  at(offlineBurnTx(), func(t *protocol.Transaction) { t.Amount, t.Currency = 300, "EUR" }),
		"earn with rules_version":   at(earnTx(), func(t *protocol.Transaction) { t.RulesVersion = 1<<63 - 1 }),
		"earn with empty lines":     at(earnTx(), func(t *protocol.Transaction) { t.Lines = []protocol.Line{} }),
		"earn with one line":        at(earnTx(), func(t *protocol.Transaction) { t.Lines = []protocol.Line{{Amount: t.Amount}} }),
		"earn with a zero line":     at(linesEarnTx(), func(t *protocol.Transaction) { t.Lines = append(t.Lines, protocol.Line{SKU: "free-bag"}) }),
		"earn with max lines":       at(earnTx(), func(t *protocol.Transaction) { t.Lines, t.Amount = maxLines(), protocol.MaxLines }),
		"earn with a max-size line": at(earnTx(), func(t *protocol.Transaction) {
			t.Lines, t.Amount = []protocol.Line{{SKU: long, Category: long, Amount: protocol.MaxAmount}}, protocol.MaxAmount
		}),
		"earn with lines at the max": at(earnTx(), func(t *protocol.Transaction) {
			t.Lines, t.Amount = []protocol.Line{{Amount: protocol.MaxAmount - 1}, {Amount: 1}}, protocol.MaxAmount
		}),
	} {
		if err := tx.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBatchValidate(t *testing.T) {
	b := validBatch()
	if err := b.Validate(); err != nil {
		t.Fatalf("valid batch: %v", err)
	}

	full := validBatch()
	full.Txs = nil
	for i := range protocol.MaxBatchTxs {
		tx := earnTx()
		tx.ID = "tx-" + padInt(i, 6)
		tx.Seq = uint64(i + 1)
		full.Txs = append(full.Txs, tx)
	}
	if _, err := protocol.DecodeBatch(encode(t, full)); err != nil {
		t.Fatalf("batch of MaxBatchTxs: %v", err)
	}
	over := full
	over.Txs = append(full.Txs[:protocol.MaxBatchTxs:protocol.MaxBatchTxs], earnTx())

	for _, tc := range []struct {
		name  string
		mut   func(*protocol.Batch)
		code  protocol.Code
		field string
	}{
		{"version 0", func(b *protocol.Batch) { b.Version = 0 }, protocol.CodeUnsupported, "version"},
		{"version next", func(b *protocol.Batch) { b.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"version negative", func(b *protocol.Batch) { b.Version = -1 }, protocol.CodeUnsupported, "version"},
		{"store empty", func(b *protocol.Batch) { b.Store = "" }, protocol.CodeMissingField, "store"},
		{"store wildcard", func(b *protocol.Batch) { b.Store = "+" }, protocol.CodeInvalidID, "store"},
		{"terminal empty", func(b *protocol.Batch) { b.Terminal = "" }, protocol.CodeMissingField, "terminal"},
		{"terminal with slash", func(b *protocol.Batch) { b.Terminal = "t/1" }, protocol.CodeInvalidID, "terminal"},
		{"txs nil", func(b *protocol.Batch) { b.Txs = nil }, protocol.CodeMissingField, "txs"},
		{"txs empty", func(b *protocol.Batch) { b.Txs = []protocol.Transaction{} }, protocol.CodeMissingField, "txs"},
		{"too many txs", func(b *protocol.Batch) { *b = over }, protocol.CodeTooMany, "txs"},
		{"backlog negative", func(b *protocol.Batch) { b.Backlog = -1 }, protocol.CodeInvalidAmount, "backlog"},
		{"tx of another store", func(b *protocol.Batch) { b.Txs[1].Store = "store-999" }, protocol.CodeStoreMismatch, "txs[1].store"},
		{"tx of another terminal", func(b *protocol.Batch) { b.Txs[3].Terminal = "till.4" }, protocol.CodeStoreMismatch, "txs[3].store"},
		{"tx invalid at index 0", func(b *protocol.Batch) { b.Txs[0].Member = "" }, protocol.CodeMissingField, "txs[0].member"},
		{"first problem wins", func(b *protocol.Batch) { b.Txs[1].Seq = 0; b.Txs[2].Store = "x" }, protocol.CodeInvalidSeq, "txs[1].seq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := validBatch()
			tc.mut(&b)
			checkErr(t, b.Validate(), tc.code, tc.field)
			// The decoder refuses it the same way.
			enc := encode(t, b)
			got, err := protocol.DecodeBatch(enc)
			if got != nil {
				t.Errorf("DecodeBatch returned a batch with error %v", err)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}

	// Indexes past 9 are spelled in full.
	big := full
	big.Txs = append([]protocol.Transaction(nil), full.Txs...)
	big.Txs[123].Store = "elsewhere"
	checkErr(t, big.Validate(), protocol.CodeStoreMismatch, "txs[123].store")
}

// maxLines is MaxLines lines of one minor unit each.
func maxLines() []protocol.Line {
	lines := make([]protocol.Line, protocol.MaxLines)
	for i := range lines {
		lines[i] = protocol.Line{SKU: "sku-" + padInt(i, 3), Category: "c", Amount: 1}
	}
	return lines
}

func TestAckBatchValidate(t *testing.T) {
	a := validAckBatch()
	if err := a.Validate(); err != nil {
		t.Fatalf("valid ack batch: %v", err)
	}
	for name, a := range map[string]protocol.AckBatch{
		"version 2 acks":    v2AckBatch(),
		"held":              {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore}}},
		"held in version 1": {Version: 1, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore}}},
		"held without code": {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusHeld}}},
		"points booked":     {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusApplied, Points: protocol.MaxPoints}}},
		"a window granted":  {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, Window: protocol.MaxWindow},
		// Out of range, the grant is the reader's to ignore; the acks stand.
		"a window above the most": {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, Window: protocol.MaxWindow + 1},
		"a negative window":       {Version: protocol.Version, Acks: []protocol.Ack{{ID: "a", Status: protocol.StatusApplied}}, Window: -1},
	} {
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		got, err := protocol.DecodeAckBatch(encode(t, a))
		if err != nil {
			t.Errorf("%s: DecodeAckBatch: %v", name, err)
		} else if got.Acks[0] != a.Acks[0] || got.Window != a.Window {
			t.Errorf("%s: decoded %+v, want %+v", name, got, a)
		}
	}
	many := protocol.AckBatch{Version: protocol.Version}
	for i := range protocol.MaxBatchTxs + 1 {
		many.Acks = append(many.Acks, protocol.Ack{ID: "tx-" + padInt(i, 6), Status: protocol.StatusApplied})
	}
	for _, tc := range []struct {
		name  string
		mut   func(*protocol.AckBatch)
		code  protocol.Code
		field string
	}{
		{"version 0", func(a *protocol.AckBatch) { a.Version = 0 }, protocol.CodeUnsupported, "version"},
		{"version next", func(a *protocol.AckBatch) { a.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"too many", func(a *protocol.AckBatch) { *a = many }, protocol.CodeTooMany, "acks"},
		{"id empty", func(a *protocol.AckBatch) { a.Acks[1].ID = "" }, protocol.CodeInvalidID, "acks[1].id"},
		{"id wildcard", func(a *protocol.AckBatch) { a.Acks[2].ID = "#" }, protocol.CodeInvalidID, "acks[2].id"},
		{"status empty", func(a *protocol.AckBatch) { a.Acks[0].Status = "" }, protocol.CodeMalformed, "acks[0].status"},
		{"status unknown", func(a *protocol.AckBatch) { a.Acks[0].Status = "ok" }, protocol.CodeMalformed, "acks[0].status"},
		{"duplicate without original status", func(a *protocol.AckBatch) { a.Acks[2].OriginalStatus = "" }, protocol.CodeMalformed, "acks[2].original_status"},
		{"duplicate of a duplicate", func(a *protocol.AckBatch) { a.Acks[2].OriginalStatus = protocol.StatusDuplicate }, protocol.CodeMalformed, "acks[2].original_status"},
		// Held is not an answer, so a duplicate never repeats it.
		{"duplicate of a held", func(a *protocol.AckBatch) { a.Acks[2].OriginalStatus = protocol.StatusHeld }, protocol.CodeMalformed, "acks[2].original_status"},
		{"status held upper case", func(a *protocol.AckBatch) { a.Acks[1].Status = "HELD" }, protocol.CodeMalformed, "acks[1].status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := validAckBatch()
			tc.mut(&a)
			checkErr(t, a.Validate(), tc.code, tc.field)
			got, err := protocol.DecodeAckBatch(encode(t, a))
			if got != nil {
				t.Errorf("DecodeAckBatch returned a batch with error %v", err)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}
}

func TestBalanceQueryValidate(t *testing.T) {
	q := validQuery()
	if err := q.Validate(); err != nil {
		t.Fatalf("valid query: %v", err)
	}
	for _, tc := range []struct {
		name  string
		mut   func(*protocol.BalanceQuery)
		code  protocol.Code
		field string
	}{
		{"version 0", func(q *protocol.BalanceQuery) { q.Version = 0 }, protocol.CodeUnsupported, "version"},
		{"request_id empty", func(q *protocol.BalanceQuery) { q.RequestID = "" }, protocol.CodeMissingField, "request_id"},
		{"request_id plus", func(q *protocol.BalanceQuery) { q.RequestID = "q+1" }, protocol.CodeInvalidID, "request_id"},
		{"member empty", func(q *protocol.BalanceQuery) { q.Member = "" }, protocol.CodeMissingField, "member"},
		{"member 65 chars", func(q *protocol.BalanceQuery) { q.Member = strings.Repeat("m", 65) }, protocol.CodeInvalidID, "member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := validQuery()
			tc.mut(&q)
			checkErr(t, q.Validate(), tc.code, tc.field)
			_, err := protocol.DecodeBalanceQuery(encode(t, q))
			checkErr(t, err, tc.code, tc.field)
		})
	}
}

func TestDecodeBalanceReplyRefuses(t *testing.T) {
	for _, v := range []int{protocol.MinVersion - 1, protocol.Version + 1, -1} {
		r := validReply()
		r.Version = v
		got, err := protocol.DecodeBalanceReply(encode(t, r))
		if got != nil {
			t.Errorf("version %d: returned a reply with error %v", v, err)
		}
		checkErr(t, err, protocol.CodeUnsupported, "version")
	}

	r := validReply()
	r.RequestID = "q/1"
	_, err := protocol.DecodeBalanceReply(encode(t, r))
	checkErr(t, err, protocol.CodeInvalidID, "request_id")
}
