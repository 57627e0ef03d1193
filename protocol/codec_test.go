package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the fixtures' clock. UTC, so a decoded value is deep-equal to it.
var t0 = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

func earnTx() protocol.Transaction {
	return protocol.Transaction{
		ID:        "01JD2X7Q8R9S0T1V2W3X4Y5Z6A",
		Store:     "store-042",
		Terminal:  "till.3",
		Partner:   "acme_foods",
		Member:    "M123456789",
		Kind:      protocol.KindEarn,
		Amount:    2599,
		Currency:  "EUR",
		Points:    25,
		Receipt:   "R-2026-000123",
		Seq:       41,
		CreatedAt: t0,
	}
}

func burnTx() protocol.Transaction {
	t := earnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6B"
	t.Kind = protocol.KindBurn
	t.Amount, t.Currency, t.Points = 0, "", 500
	t.Receipt = "R-2026-000124"
	t.Seq = 42
	t.CreatedAt = t0.Add(90 * time.Second)
	return t
}

func reverseTx() protocol.Transaction {
	t := earnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6C"
	t.Kind = protocol.KindReverse
	t.Amount, t.Currency, t.Points = 1000, "EUR", 10
	t.Receipt = "R-2026-000125"
	t.Original = earnTx().ID
	t.Seq = 43
	t.CreatedAt = t0.Add(5*time.Minute + 250*time.Millisecond)
	return t
}

func voidTx() protocol.Transaction {
	t := earnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6D"
	t.Kind = protocol.KindVoid
	t.Amount, t.Currency, t.Points = 0, "", 0
	t.Receipt = ""
	t.Original = burnTx().ID
	t.Seq = 44
	t.CreatedAt = t0.Add(6 * time.Minute)
	return t
}

// The Version 2 fixtures: a two-phase burn (hold, capture, void of a hold),
// an earn with line items and the rules version it was quoted with, an
// offline burn and a reverse by returned amount.

func linesEarnTx() protocol.Transaction {
	t := earnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6E"
	t.Amount, t.Points = 3497, 34 // 1 point per 1.00 EUR, rules version 1
	t.Lines = []protocol.Line{
		{SKU: "SKU-4711", Category: "dairy", Amount: 1299},
		{Category: "bakery", Amount: 899},
		{SKU: "SKU-0815", Amount: 1299},
	}
	t.RulesVersion = 1
	t.Receipt = "R-2026-000126"
	t.Seq = 45
	t.CreatedAt = t0.Add(10 * time.Minute)
	return t
}

func holdTx() protocol.Transaction {
	t := burnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6F"
	t.Kind = protocol.KindHold
	t.Points = 800
	t.Receipt = "R-2026-000127"
	t.Seq = 46
	t.CreatedAt = t0.Add(11 * time.Minute)
	return t
}

func captureTx() protocol.Transaction {
	t := holdTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6G"
	t.Kind = protocol.KindCapture
	t.Amount, t.Currency, t.Points = 750, "EUR", 750
	t.Original = holdTx().ID
	t.Seq = 47
	t.CreatedAt = t0.Add(11*time.Minute + 20*time.Second)
	return t
}

func voidHoldTx() protocol.Transaction {
	t := voidTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6H"
	t.Original = holdTx().ID
	t.Seq = 48
	t.CreatedAt = t0.Add(12 * time.Minute)
	return t
}

func offlineBurnTx() protocol.Transaction {
	t := burnTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6J"
	t.Offline = true
	t.Points = 300
	t.Receipt = "R-2026-000128"
	t.Seq = 49
	t.CreatedAt = t0.Add(13 * time.Minute)
	return t
}

func reverseByAmountTx() protocol.Transaction {
	t := reverseTx()
	t.ID = "01JD2X7Q8R9S0T1V2W3X4Y5Z6K"
	t.Amount, t.Currency, t.Points = 899, "EUR", 0
	t.Original = linesEarnTx().ID
	t.Receipt = "R-2026-000129"
	t.Seq = 50
	t.CreatedAt = t0.Add(14 * time.Minute)
	return t
}

func v2Batch() protocol.Batch {
	b := validBatch()
	b.Backlog = 0
	b.OldestUnsynced = time.Time{}
	b.SentAt = t0.Add(15 * time.Minute)
	b.Txs = []protocol.Transaction{linesEarnTx(), holdTx(), captureTx(), voidHoldTx(), offlineBurnTx(), reverseByAmountTx()}
	return b
}

func v2AckBatch() protocol.AckBatch {
	return protocol.AckBatch{
		Version: protocol.UnsealedVersion,
		Acks: []protocol.Ack{
			{ID: linesEarnTx().ID, Status: protocol.StatusApplied, Member: "M123456789", Balance: 1049, Points: 34},
			{ID: holdTx().ID, Status: protocol.StatusApplied, Member: "M123456789", Balance: 249},
			{ID: captureTx().ID, Status: protocol.StatusApplied, Member: "M123456789", Balance: 299, Points: 750},
			{ID: offlineBurnTx().ID, Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore, Member: "M123456789", Balance: 299},
			{ID: reverseByAmountTx().ID, Status: protocol.StatusApplied, Member: "M123456789", Balance: 291, Points: 8},
		},
	}
}

func validConfig() protocol.Config {
	return protocol.Config{
		Version:    protocol.UnsealedVersion,
		Store:      "store-042",
		Partner:    "acme_foods",
		Currency:   "EUR",
		PointValue: "0.01",
		Rules: []protocol.RuleSet{
			{
				Partner:       "acme_foods",
				Version:       1,
				EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				Currency:      "EUR",
				Points:        1,
				Per:           100,
			},
			{
				Partner:       "acme_foods",
				Version:       2,
				EffectiveFrom: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
				Currency:      "EUR",
				Points:        1,
				Per:           100,
				Rounding:      protocol.RoundNearest,
				Categories:    map[string]protocol.Multiplier{"dairy": "2", "tobacco": "0"},
				SKUs:          map[string]protocol.Multiplier{"SKU-4711": "1.5"},
				Campaigns: []protocol.Campaign{{
					ID:         "xmas-2026",
					Name:       "Double points before Christmas",
					From:       time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
					To:         time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC),
					Multiplier: "2",
					Bonus:      50,
					MinAmount:  2000,
				}},
				NewPartnerBonus: 100,
			},
		},
		PublishedAt: t0.Add(20 * time.Minute),
	}
}

func validBatch() protocol.Batch {
	return protocol.Batch{
		Version:        protocol.UnsealedVersion,
		Store:          "store-042",
		Terminal:       "till.3",
		Backlog:        4,
		OldestUnsynced: t0,
		SentAt:         t0.Add(7 * time.Minute),
		Txs:            []protocol.Transaction{earnTx(), burnTx(), reverseTx(), voidTx()},
	}
}

func validAckBatch() protocol.AckBatch {
	return protocol.AckBatch{
		Version: protocol.UnsealedVersion,
		Acks: []protocol.Ack{
			{ID: earnTx().ID, Status: protocol.StatusApplied, Member: "M123456789", Balance: 1025},
			{ID: burnTx().ID, Status: protocol.StatusRejected, Code: protocol.CodeInsufficientPoints, Member: "M123456789", Balance: 320},
			{ID: reverseTx().ID, Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusApplied, Member: "M123456789", Balance: 1015},
		},
	}
}

func validQuery() protocol.BalanceQuery {
	return protocol.BalanceQuery{Version: protocol.UnsealedVersion, RequestID: "q-000017", Member: "M123456789"}
}

func validReply() protocol.BalanceReply {
	return protocol.BalanceReply{
		Version:   protocol.UnsealedVersion,
		RequestID: "q-000017",
		Member:    "M123456789",
		Known:     true,
		Balance:   1015,
		AsOf:      t0.Add(8*time.Minute + 123456789*time.Nanosecond),
	}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := protocol.Encode(v)
	if err != nil {
		t.Fatalf("Encode(%T): %v", v, err)
	}
	return b
}

// checkErr fails unless err is a *protocol.Error with the code (and, when
// field is not empty, the field), whose text is one non-empty line.
func checkErr(t *testing.T, err error, code protocol.Code, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := protocol.CodeOf(err); got != code {
		t.Fatalf("code %q, want %q (err: %v)", got, code, err)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%v is a %T, not a *protocol.Error", err, err)
	}
	if field != "" && pe.Field != field {
		t.Errorf("field %q, want %q (err: %v)", pe.Field, field, err)
	}
	if pe.Msg == "" {
		t.Errorf("empty message (err: %v)", err)
	}
	checkOneLine(t, err)
}

func checkOneLine(t testing.TB, err error) {
	t.Helper()
	msg := err.Error()
	if strings.TrimSpace(msg) == "" || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error text %q is not one non-empty line", msg)
	}
}

func TestRoundTripTransaction(t *testing.T) {
	for name, tx := range map[string]protocol.Transaction{
		"earn": earnTx(), "burn": burnTx(), "reverse": reverseTx(), "void": voidTx(),
		"earn with lines": linesEarnTx(), "hold": holdTx(), "capture": captureTx(),
		"void of a hold": voidHoldTx(), "offline burn": offlineBurnTx(), "reverse by amount": reverseByAmountTx(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := tx.Validate(); err != nil {
				t.Fatalf("fixture invalid: %v", err)
			}
			var got protocol.Transaction
			if err := json.Unmarshal(encode(t, tx), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tx) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tx)
			}
			// And through the decoder the hub uses, as a batch of one.
			b := validBatch()
			b.Txs = []protocol.Transaction{tx}
			dec, err := protocol.DecodeBatch(encode(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dec.Txs[0], tx) {
				t.Fatalf("batch of one:\n got %+v\nwant %+v", dec.Txs[0], tx)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	decodeBatch := func(b []byte) (any, error) { return protocol.DecodeBatch(b) }
	decodeAcks := func(b []byte) (any, error) { return protocol.DecodeAckBatch(b) }
	decodeQuery := func(b []byte) (any, error) { return protocol.DecodeBalanceQuery(b) }
	decodeReply := func(b []byte) (any, error) { return protocol.DecodeBalanceReply(b) }
	decodeConfig := func(b []byte) (any, error) { return protocol.DecodeConfig(b) }

	emptyAcks := protocol.AckBatch{Version: protocol.Version, Acks: []protocol.Ack{}}
	noOldest := validBatch()
	noOldest.OldestUnsynced = time.Time{}
	unknown := validReply()
	unknown.Known, unknown.Balance = false, 0
	refused := validReply()
	refused.Code = protocol.CodeUnknownMember
	noRules := validConfig()
	noRules.Rules = []protocol.RuleSet{}

	for _, tc := range []struct {
		name   string
		v      any
		decode func([]byte) (any, error)
	}{
		{"batch", ptr(validBatch()), decodeBatch},
		{"batch without oldest_unsynced", &noOldest, decodeBatch},
		{"ack batch", ptr(validAckBatch()), decodeAcks},
		{"empty ack batch", &emptyAcks, decodeAcks},
		{"balance query", ptr(validQuery()), decodeQuery},
		{"balance reply", ptr(validReply()), decodeReply},
		{"balance reply unknown member", &unknown, decodeReply},
		{"balance reply refused", &refused, decodeReply},
		{"version 2 batch", ptr(v2Batch()), decodeBatch},
		{"version 2 ack batch", ptr(v2AckBatch()), decodeAcks},
		{"config", ptr(validConfig()), decodeConfig},
		{"config without rules", &noRules, decodeConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.decode(encode(t, tc.v))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.v)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestGolden pins the wire format. The files are stored indented for reading
// and compared compacted. Run `go test ./protocol -update` to rewrite them
// after a deliberate change (and bump Version if a meaning changed).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file   string
		v      any
		decode func([]byte) (any, error)
	}{
		{"batch.json", ptr(validBatch()), func(b []byte) (any, error) { return protocol.DecodeBatch(b) }},
		{"ack_batch.json", ptr(validAckBatch()), func(b []byte) (any, error) { return protocol.DecodeAckBatch(b) }},
		{"balance_query.json", ptr(validQuery()), func(b []byte) (any, error) { return protocol.DecodeBalanceQuery(b) }},
		{"balance_reply.json", ptr(validReply()), func(b []byte) (any, error) { return protocol.DecodeBalanceReply(b) }},
		{"batch_v2.json", ptr(v2Batch()), func(b []byte) (any, error) { return protocol.DecodeBatch(b) }},
		{"ack_batch_v2.json", ptr(v2AckBatch()), func(b []byte) (any, error) { return protocol.DecodeAckBatch(b) }},
		{"config.json", ptr(validConfig()), func(b []byte) (any, error) { return protocol.DecodeConfig(b) }},
		{"config_token_keys.json", ptr(tokenKeysConfig()), func(b []byte) (any, error) { return protocol.DecodeConfig(b) }},
		{"sighting.json", ptr(validSighting()), func(b []byte) (any, error) { return protocol.DecodeSighting(b) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			enc := encode(t, tc.v)
			if *update {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, enc, "", "\t"); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol -update to create it)", err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, golden); err != nil {
				t.Fatalf("%s is not valid JSON: %v", path, err)
			}
			if !bytes.Equal(enc, compact.Bytes()) {
				t.Errorf("Encode differs from %s (run go test ./protocol -update if the change is deliberate)\n got %s\nwant %s", path, enc, compact.Bytes())
			}
			// The stored, indented form is what other implementations will
			// copy: it must decode as it stands.
			got, err := tc.decode(golden)
			if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Errorf("decode %s:\n got %+v\nwant %+v", path, got, tc.v)
			}
		})
	}
}

// maxTx is the largest valid transaction: every id at MaxIDLen, every number
// at its limit.
func maxTx(store, terminal string, i int) protocol.Transaction {
	id := func(prefix string) string {
		s := prefix + strings.Repeat("9", protocol.MaxIDLen)
		return s[:protocol.MaxIDLen-6] + padInt(i, 6)
	}
	return protocol.Transaction{
		ID: id("I"), Store: store, Terminal: terminal, Partner: id("P"), Member: id("M"),
		Kind: protocol.KindReverse, Amount: protocol.MaxAmount, Currency: "EUR", Points: protocol.MaxPoints,
		Receipt: id("R"), Original: id("O"), Seq: ^uint64(0),
		CreatedAt: time.Date(2099, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(23*3600+59*60))).Add(-48 * time.Hour),
	}
}

func padInt(i, width int) string {
	s := []byte(strings.Repeat("0", width))
	for p := width - 1; p >= 0 && i > 0; p-- {
		s[p] = byte('0' + i%10)
		i /= 10
	}
	return string(s)
}

// A sender must be able to send any batch that validates: the fullest valid
// batch has to fit MaxBatchBytes, or an agent could build one the hub refuses
// for ever.
func TestFullestBatchFitsLimit(t *testing.T) {
	store, terminal := strings.Repeat("s", protocol.MaxIDLen), strings.Repeat("t", protocol.MaxIDLen)
	b := protocol.Batch{
		Version: protocol.Version, Store: store, Terminal: terminal,
		Backlog: 1<<63 - 1, OldestUnsynced: t0, SentAt: t0,
	}
	for i := range protocol.MaxBatchTxs {
		b.Txs = append(b.Txs, maxTx(store, terminal, i))
	}
	// Sealed, as an enrolled till sends it: the MAC is part of the message.
	topic, err := protocol.TerminalTopic(store, terminal, protocol.ChannelTx)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := protocol.Seal(bytes.Repeat([]byte{7}, protocol.MACKeyLen), topic, encode(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > protocol.MaxBatchBytes {
		t.Fatalf("fullest valid batch is %d bytes, MaxBatchBytes is %d", len(enc), protocol.MaxBatchBytes)
	}
	got, err := protocol.DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Txs) != protocol.MaxBatchTxs {
		t.Fatalf("decoded %d txs", len(got.Txs))
	}
	t.Logf("fullest valid batch: %d of %d bytes", len(enc), protocol.MaxBatchBytes)

	q := protocol.BalanceQuery{Version: protocol.Version, RequestID: strings.Repeat("r", protocol.MaxIDLen), Member: strings.Repeat("m", protocol.MaxIDLen)}
	if n := len(encode(t, q)); n > protocol.MaxSmallMessageBytes {
		t.Fatalf("fullest query is %d bytes, MaxSmallMessageBytes is %d", n, protocol.MaxSmallMessageBytes)
	}
}

func TestAckFinal(t *testing.T) {
	for _, tc := range []struct {
		ack  protocol.Ack
		want protocol.Status
	}{
		{protocol.Ack{Status: protocol.StatusApplied}, protocol.StatusApplied},
		{protocol.Ack{Status: protocol.StatusRejected, Code: protocol.CodeUnknownMember}, protocol.StatusRejected},
		{protocol.Ack{Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusApplied}, protocol.StatusApplied},
		{protocol.Ack{Status: protocol.StatusDuplicate, OriginalStatus: protocol.StatusRejected}, protocol.StatusRejected},
		{protocol.Ack{Status: protocol.StatusHeld, Code: protocol.CodeUnknownStore}, protocol.StatusHeld},
	} {
		if got := tc.ack.Final(); got != tc.want {
			t.Errorf("%+v.Final() = %q, want %q", tc.ack, got, tc.want)
		}
	}
}

func TestCodeOfAndErrorText(t *testing.T) {
	pe := protocol.Errorf(protocol.CodeInvalidID, "member", "must be %s", "short")
	if got := protocol.CodeOf(nil); got != "" {
		t.Errorf("CodeOf(nil) = %q", got)
	}
	if got := protocol.CodeOf(pe); got != protocol.CodeInvalidID {
		t.Errorf("CodeOf(*Error) = %q", got)
	}
	wrapped := errors.Join(errors.New("ingest"), pe)
	if got := protocol.CodeOf(wrapped); got != protocol.CodeInvalidID {
		t.Errorf("CodeOf(wrapped) = %q", got)
	}
	if got := protocol.CodeOf(errors.New("disk on fire")); got != protocol.CodeInternal {
		t.Errorf("CodeOf(plain) = %q, want internal", got)
	}
	for _, tc := range []struct {
		err  *protocol.Error
		want string
	}{
		{pe, "invalid_id: member: must be short"},
		{&protocol.Error{Code: protocol.CodeTooLarge, Msg: "9 bytes"}, "too_large: 9 bytes"},
		{&protocol.Error{Code: protocol.CodeDuplicate}, "duplicate"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
