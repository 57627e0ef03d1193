package protocol_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
)

// ParseBatch lets one bad transaction through the header check so the hub
// can reject it alone; ValidateTx then names it by index.
func TestParseBatch(t *testing.T) {
	b := validBatch()
	got, err := protocol.ParseBatch(encode(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &b) {
		t.Fatalf("ParseBatch:\n got %+v\nwant %+v", got, &b)
	}
	for i := range got.Txs {
		if err := got.ValidateTx(i); err != nil {
			t.Errorf("ValidateTx(%d): %v", i, err)
		}
	}

	bad := validBatch()
	bad.Txs[1].Points = -1
	bad.Txs[2].Terminal = "till.9"
	got, err = protocol.ParseBatch(encode(t, bad))
	if err != nil {
		t.Fatalf("a bad transaction must not fail the header: %v", err)
	}
	if err := got.ValidateTx(0); err != nil {
		t.Errorf("ValidateTx(0): %v", err)
	}
	checkErr(t, got.ValidateTx(1), protocol.CodeInvalidPoints, "txs[1].points")
	checkErr(t, got.ValidateTx(2), protocol.CodeStoreMismatch, "txs[2].store")
	if err := got.ValidateTx(3); err != nil {
		t.Errorf("ValidateTx(3): %v", err)
	}
	// Validate, by contrast, refuses the batch at its first bad transaction.
	checkErr(t, got.Validate(), protocol.CodeInvalidPoints, "txs[1].points")
}

func TestParseBatchRefusesHeader(t *testing.T) {
	over := validBatch()
	for len(over.Txs) <= protocol.MaxBatchTxs {
		over.Txs = append(over.Txs, earnTx())
	}
	for _, tc := range []struct {
		name  string
		mut   func(*protocol.Batch)
		code  protocol.Code
		field string
	}{
		{"version", func(b *protocol.Batch) { b.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"store empty", func(b *protocol.Batch) { b.Store = "" }, protocol.CodeMissingField, "store"},
		{"store wildcard", func(b *protocol.Batch) { b.Store = "#" }, protocol.CodeInvalidID, "store"},
		{"terminal slash", func(b *protocol.Batch) { b.Terminal = strings.Repeat("/", 3) }, protocol.CodeInvalidID, "terminal"},
		{"no txs", func(b *protocol.Batch) { b.Txs = nil }, protocol.CodeMissingField, "txs"},
		{"too many txs", func(b *protocol.Batch) { *b = over }, protocol.CodeTooMany, "txs"},
		{"backlog negative", func(b *protocol.Batch) { b.Backlog = -3 }, protocol.CodeInvalidAmount, "backlog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := validBatch()
			tc.mut(&b)
			checkErr(t, b.ValidateHeader(), tc.code, tc.field)
			got, err := protocol.ParseBatch(encode(t, b))
			if got != nil {
				t.Errorf("ParseBatch returned a batch with error %v", err)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}
}
