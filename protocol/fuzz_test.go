package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// addGolden seeds f with a golden file, so every fuzz target starts from a
// real message as well as from its corpus in testdata/fuzz.
func addGolden(f *testing.F, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

// checkRefusal is what every decoder owes a bad input: a protocol error with
// a real code (never internal) and one line of text.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	switch c := protocol.CodeOf(err); c {
	case "", protocol.CodeInternal:
		t.Fatalf("refusal without a protocol code: %v", err)
	}
	checkOneLine(t, err)
}

// utc returns t in UTC. Time zones do not survive JSON exactly: "+00:00"
// decodes to a zero-offset zone (or Local) but encodes back as "Z", which
// decodes to UTC — the same instant in a different *Location. Comparing in
// UTC asks what matters: the same instants.
func utc(t time.Time) time.Time { return t.UTC() }

func normBatch(b *protocol.Batch) *protocol.Batch {
	c := *b
	c.OldestUnsynced, c.SentAt = utc(c.OldestUnsynced), utc(c.SentAt)
	c.Txs = append([]protocol.Transaction(nil), b.Txs...)
	for i := range c.Txs {
		c.Txs[i].CreatedAt = utc(c.Txs[i].CreatedAt)
	}
	return &c
}

func FuzzDecodeBatch(f *testing.F) {
	addGolden(f, "batch.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := protocol.DecodeBatch(data)
		if err != nil {
			if b != nil {
				t.Fatalf("returned a batch with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("decoded batch does not validate: %v", err)
		}
		enc, err := protocol.Encode(b)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		b2, err := protocol.DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded batch refused: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(normBatch(b), normBatch(b2)) {
			t.Fatalf("round trip changed the batch:\n got %+v\nwant %+v", b2, b)
		}
		// The encoding is a fixed point from the first re-encoding on.
		enc2, err := protocol.Encode(b2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseBatch checks the hub's lenient path agrees with the strict one:
// whatever DecodeBatch accepts ParseBatch accepts unchanged, and a parsed
// batch whose every transaction passes ValidateTx is one DecodeBatch accepts.
// It shares FuzzDecodeBatch's seeds (plus its own corpus, if any).
func FuzzParseBatch(f *testing.F) {
	addGolden(f, "batch.json")
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeBatch", "*"))
	for _, p := range seeds {
		if v, err := readSeed(p); err == nil {
			f.Add([]byte(v))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		strict, strictErr := protocol.DecodeBatch(data)
		b, err := protocol.ParseBatch(data)
		if err != nil {
			if b != nil {
				t.Fatalf("returned a batch with error %v", err)
			}
			checkRefusal(t, err)
			if strictErr == nil {
				t.Fatalf("DecodeBatch accepts what ParseBatch refuses: %v", err)
			}
			return
		}
		allValid := true
		for i := range b.Txs {
			err := b.ValidateTx(i)
			if err == nil {
				continue
			}
			allValid = false
			checkRefusal(t, err)
			var pe *protocol.Error
			if !errors.As(err, &pe) || !strings.HasPrefix(pe.Field, "txs["+strconv.Itoa(i)+"].") {
				t.Fatalf("ValidateTx(%d) = %v: field does not name the transaction", i, err)
			}
		}
		if allValid != (strictErr == nil) {
			t.Fatalf("every ValidateTx passes: %v, but DecodeBatch says %v", allValid, strictErr)
		}
		if strictErr == nil && !reflect.DeepEqual(strict, b) {
			t.Fatalf("ParseBatch and DecodeBatch disagree:\n%+v\n%+v", b, strict)
		}
	})
}

func FuzzDecodeAckBatch(f *testing.F) {
	addGolden(f, "ack_batch.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := protocol.DecodeAckBatch(data)
		if err != nil {
			if a != nil {
				t.Fatalf("returned acks with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		enc, err := protocol.Encode(a)
		if err != nil {
			t.Fatalf("decoded acks do not encode: %v", err)
		}
		a2, err := protocol.DecodeAckBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded acks refused: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip changed the acks:\n got %+v\nwant %+v", a2, a)
		}
	})
}

func FuzzDecodeBalanceQuery(f *testing.F) {
	addGolden(f, "balance_query.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := protocol.DecodeBalanceQuery(data)
		if err != nil {
			if q != nil {
				t.Fatalf("returned a query with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		enc, err := protocol.Encode(q)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := protocol.DecodeBalanceQuery(enc)
		if err != nil {
			t.Fatalf("re-encoded query refused: %v\n%s", err, enc)
		}
		if *q != *q2 {
			t.Fatalf("round trip changed the query: %+v -> %+v", q, q2)
		}
	})
}

func FuzzDecodeBalanceReply(f *testing.F) {
	addGolden(f, "balance_reply.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := protocol.DecodeBalanceReply(data)
		if err != nil {
			if r != nil {
				t.Fatalf("returned a reply with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		enc, err := protocol.Encode(r)
		if err != nil {
			t.Fatalf("decoded reply does not encode: %v", err)
		}
		r2, err := protocol.DecodeBalanceReply(enc)
		if err != nil {
			t.Fatalf("re-encoded reply refused: %v\n%s", err, enc)
		}
		a, b := *r, *r2
		a.AsOf, b.AsOf = utc(a.AsOf), utc(b.AsOf)
		if a != b {
			t.Fatalf("round trip changed the reply: %+v -> %+v", r, r2)
		}
	})
}

func FuzzParseTerminalTopic(f *testing.F) {
	for _, ch := range channels {
		topic, err := protocol.TerminalTopic("store-042", "till.3", ch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(topic)
		f.Add(protocol.AllTerminals(ch))
	}
	f.Fuzz(func(t *testing.T, topic string) {
		store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
		if err != nil {
			if store != "" || terminal != "" || ch != "" {
				t.Fatalf("returned %q, %q, %q with error %v", store, terminal, ch, err)
			}
			switch c := protocol.CodeOf(err); c {
			case protocol.CodeMalformed, protocol.CodeInvalidID:
			default:
				t.Fatalf("code %q: %v", c, err)
			}
			checkOneLine(t, err)
			return
		}
		if !protocol.ValidID(store) || !protocol.ValidID(terminal) {
			t.Fatalf("accepted invalid ids %q, %q", store, terminal)
		}
		// Whatever parses is exactly what the builder makes of its parts.
		back, err := protocol.TerminalTopic(store, terminal, ch)
		if err != nil {
			t.Fatalf("TerminalTopic(%q, %q, %q): %v", store, terminal, ch, err)
		}
		if back != topic {
			t.Fatalf("parsed %q into %q, %q, %q, which builds %q", topic, store, terminal, ch, back)
		}
	})
}

// The seeds named valid_* must stay valid as the protocol evolves, or the
// fuzzers lose their best starting points without anyone noticing.
func TestFuzzSeedsValid(t *testing.T) {
	decode := map[string]func(string) error{
		"FuzzDecodeBatch":        func(s string) error { _, err := protocol.DecodeBatch([]byte(s)); return err },
		"FuzzDecodeAckBatch":     func(s string) error { _, err := protocol.DecodeAckBatch([]byte(s)); return err },
		"FuzzDecodeBalanceQuery": func(s string) error { _, err := protocol.DecodeBalanceQuery([]byte(s)); return err },
		"FuzzDecodeBalanceReply": func(s string) error { _, err := protocol.DecodeBalanceReply([]byte(s)); return err },
		"FuzzParseTerminalTopic": func(s string) error { _, _, _, err := protocol.ParseTerminalTopic(s); return err },
	}
	n := 0
	for target, dec := range decode {
		paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "valid_*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			s, err := readSeed(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			if err := dec(s); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no valid_* seeds found")
	}
}

// readSeed reads the single value of a one-argument seed file in the
// "go test fuzz v1" format.
func readSeed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	header, value, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if header != "go test fuzz v1" {
		return "", fmt.Errorf("header %q, want go test fuzz v1", header)
	}
	_, lit, ok := strings.Cut(value, "(")
	if !ok || !strings.HasSuffix(lit, ")") {
		return "", fmt.Errorf("not a one-value seed: %q", value)
	}
	return strconv.Unquote(strings.TrimSuffix(lit, ")"))
}
