package protocol_test

import (
	"bytes"
	"crypto/ed25519"
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
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
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
		// "lines":[] decodes to an empty slice and encodes as no lines
		// (omitempty), which decode to nil: the same purchase.
		if len(c.Txs[i].Lines) == 0 {
			c.Txs[i].Lines = nil
		}
	}
	return &c
}

func FuzzDecodeBatch(f *testing.F) {
	addGolden(f, "batch.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzlimit.Check(t)
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
		fuzzlimit.Check(t)
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
		fuzzlimit.Check(t)
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
		fuzzlimit.Check(t)
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
		fuzzlimit.Check(t)
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

// normConfig is c with its times in UTC and empty tables as nil: "{}" and
// "[]" decode to empty values that encode as nothing (omitempty), which
// decode to nil — the same rules.
func normConfig(c *protocol.Config) *protocol.Config {
	n := *c
	n.PublishedAt = utc(n.PublishedAt)
	if len(n.MemberTokenKeys) == 0 {
		n.MemberTokenKeys = nil // "member_token_keys":[] and none are the same config
	}
	if c.Rules != nil {
		n.Rules = make([]protocol.RuleSet, len(c.Rules))
	}
	for i, r := range c.Rules {
		r.EffectiveFrom = utc(r.EffectiveFrom)
		if len(r.Categories) == 0 {
			r.Categories = nil
		}
		if len(r.SKUs) == 0 {
			r.SKUs = nil
		}
		if len(r.Campaigns) == 0 {
			r.Campaigns = nil
		} else {
			r.Campaigns = append([]protocol.Campaign(nil), r.Campaigns...)
			for j := range r.Campaigns {
				r.Campaigns[j].From, r.Campaigns[j].To = utc(r.Campaigns[j].From), utc(r.Campaigns[j].To)
			}
		}
		n.Rules[i] = r
	}
	return &n
}

func FuzzDecodeConfig(f *testing.F) {
	addGolden(f, "config.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzlimit.Check(t)
		c, err := protocol.DecodeConfig(data)
		if err != nil {
			if c != nil {
				t.Fatalf("returned a config with error %v", err)
			}
			checkRefusal(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded config does not validate: %v", err)
		}
		enc, err := protocol.Encode(c)
		if err != nil {
			t.Fatalf("decoded config does not encode: %v", err)
		}
		c2, err := protocol.DecodeConfig(enc)
		if err != nil {
			t.Fatalf("re-encoded config refused: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(normConfig(c), normConfig(c2)) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", c2, c)
		}
		enc2, err := protocol.Encode(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
		// Whatever a till accepts, it can price with: any version, any earn.
		if (protocol.SelectRules(c.Rules, t0) == nil) != (len(c.Rules) == 0) {
			t.Fatalf("SelectRules of %d versions: %v", len(c.Rules), protocol.SelectRules(c.Rules, t0))
		}
		for i := range c.Rules {
			r := &c.Rules[i]
			tx := earnOf(1999, protocol.Line{Category: "dairy", Amount: 999}, protocol.Line{SKU: "SKU-4711", Amount: 1000})
			tx.Currency = r.Currency
			q, err := r.Price(&tx, true)
			checkQuote(t, r, q, err, true)
		}
	})
}

// checkQuote checks what every Price result owes: a refusal is
// invalid_points (the currency always matches here), and a quote is Base
// plus Bonus, within range, from r.
func checkQuote(t *testing.T, r *protocol.RuleSet, q protocol.Quote, err error, newToPartner bool) {
	t.Helper()
	if err != nil {
		if c := protocol.CodeOf(err); c != protocol.CodeInvalidPoints {
			t.Fatalf("Price refused with %q: %v", c, err)
		}
		checkOneLine(t, err)
		return
	}
	if q.Points != q.Base+q.Bonus {
		t.Fatalf("Points %d != Base %d + Bonus %d", q.Points, q.Base, q.Bonus)
	}
	if q.Base < 0 || q.Bonus < 0 || q.Points < 0 || q.Points > protocol.MaxPoints {
		t.Fatalf("quote out of range: %+v", q)
	}
	if q.RulesVersion != r.Version {
		t.Fatalf("quote of version %d by version %d", q.RulesVersion, r.Version)
	}
	if want := newToPartner && r.NewPartnerBonus > 0; q.NewPartnerBonus != want {
		t.Fatalf("NewPartnerBonus %v, want %v", q.NewPartnerBonus, want)
	}
}

// bound returns v when it lies in [lo, hi], else maps it there, so that
// seeds stay readable and every fuzzed value is usable.
func bound(v, lo, hi int64) int64 {
	if v >= lo && v <= hi {
		return v
	}
	return lo + int64(uint64(v)%uint64(hi-lo+1))
}

// fuzzMultiplier returns s when it is a valid multiplier, else "1".
// Either way it checks Scaled's contract on s.
func fuzzMultiplier(t *testing.T, s string) protocol.Multiplier {
	t.Helper()
	m := protocol.Multiplier(s)
	v, err := m.Scaled()
	if err != nil {
		if v != 0 || protocol.CodeOf(err) != protocol.CodeInvalidRules {
			t.Fatalf("%q.Scaled() = %d, %v", s, v, err)
		}
		return "1"
	}
	if v < 0 || v > protocol.MaxMultiplier*10_000 {
		t.Fatalf("%q.Scaled() = %d: out of range", s, v)
	}
	return m
}

// FuzzPrice prices random earns under random (valid) rules. Lines are made
// from split: each pair of bytes is a line's share of the amount and its
// SKU and category, drawn from the rule set's tables and beyond them.
func FuzzPrice(f *testing.F) {
	f.Add(int64(1999), int64(1), []byte(nil), int64(1), int64(100), int64(2), "1", "1", "", int64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, amount, more int64, split []byte, points, per, rounding int64,
		skuMult, catMult, campMult string, bonus, minAmount int64, newToPartner bool) {
		fuzzlimit.Check(t)
		r := protocol.RuleSet{
			Partner: "acme_foods", Version: 4, EffectiveFrom: t0.Add(-time.Hour), Currency: "EUR",
			Points:          bound(points, 0, protocol.MaxRatePoints),
			Per:             bound(per, 1, 1_000_000),
			Rounding:        []protocol.Rounding{"", protocol.RoundDown, protocol.RoundNearest, protocol.RoundUp}[bound(rounding, 0, 3)],
			SKUs:            map[string]protocol.Multiplier{"s0": fuzzMultiplier(t, skuMult), "s1": "0", "s2": "1.5"},
			Categories:      map[string]protocol.Multiplier{"c0": fuzzMultiplier(t, catMult), "c1": "0.25", "c2": "100"},
			NewPartnerBonus: bound(bonus, 0, 1000),
			Campaigns: []protocol.Campaign{
				{ID: "d", From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Multiplier: "1.25", Bonus: 3, MinAmount: 10_000},
			},
		}
		if c := (protocol.Campaign{
			ID: "c", From: t0, To: t0.Add(time.Minute),
			Bonus: bound(bonus, 0, protocol.MaxPoints), MinAmount: bound(minAmount, 0, protocol.MaxAmount),
		}); campMult != "" || c.Bonus != 0 {
			if campMult != "" {
				c.Multiplier = fuzzMultiplier(t, campMult)
				// A campaign's multiplier is 1 or more ("0" and "0.5" are
				// table multipliers only): below 1 it would never apply.
				if v, _ := c.Multiplier.Scaled(); v < 10_000 {
					c.Multiplier = "1"
				}
			}
			r.Campaigns = append(r.Campaigns, c)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("fuzzed rules invalid: %v", err)
		}

		a := bound(amount, 1, protocol.MaxAmount)
		var lines, neutral []protocol.Line
		if n := min(len(split)/2, protocol.MaxLines); n > 0 {
			var total int64
			for i := range n {
				total += int64(split[2*i]) + 1
			}
			skus := []string{"", "s0", "s1", "s2", "sx"}
			cats := []string{"", "c0", "c1", "c2", "cx"}
			left := a
			for i := range n {
				share := a * (int64(split[2*i]) + 1) / total
				if i == n-1 {
					share = left
				}
				left -= share
				class := int(split[2*i+1])
				lines = append(lines, protocol.Line{SKU: skus[class%5], Category: cats[class/5%5], Amount: share})
				neutral = append(neutral, protocol.Line{SKU: "sx", Category: "cx", Amount: share})
			}
		}
		tx := earnOf(a, lines...)
		if err := tx.Validate(); err != nil {
			t.Fatalf("fuzzed earn invalid: %v", err)
		}
		q, err := r.Price(&tx, newToPartner)
		checkQuote(t, &r, q, err, newToPartner)

		// Without lines, or with lines no table names, an earn is priced on
		// its amount alone: rounding happens once, not per line.
		plain := earnOf(a)
		qPlain, errPlain := r.Price(&plain, newToPartner)
		checkQuote(t, &r, qPlain, errPlain, newToPartner)
		if neutral != nil {
			lined := earnOf(a, neutral...)
			qLined, errLined := r.Price(&lined, newToPartner)
			if !reflect.DeepEqual(qLined, qPlain) || (errLined == nil) != (errPlain == nil) {
				t.Fatalf("neutral lines priced %+v (%v), the amount alone %+v (%v)", qLined, errLined, qPlain, errPlain)
			}
		}

		// More money never earns less.
		bigger := earnOf(a + bound(more, 0, protocol.MaxAmount-a))
		qBig, errBig := r.Price(&bigger, newToPartner)
		checkQuote(t, &r, qBig, errBig, newToPartner)
		switch {
		case errPlain != nil && errBig == nil:
			t.Fatalf("%d refused (%v), %d priced %+v", plain.Amount, errPlain, bigger.Amount, qBig)
		case errPlain == nil && errBig == nil && (qBig.Base < qPlain.Base || qBig.Bonus < qPlain.Bonus):
			t.Fatalf("%d earns %+v, %d earns %+v", plain.Amount, qPlain, bigger.Amount, qBig)
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
		fuzzlimit.Check(t)
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
		"FuzzDecodeConfig":       func(s string) error { _, err := protocol.DecodeConfig([]byte(s)); return err },
		"FuzzVerifyConfig": func(s string) error {
			c, err := protocol.DecodeConfig([]byte(s))
			if err != nil {
				return err
			}
			topic, _ := protocol.ConfigTopic(c.Store)
			return protocol.VerifyConfig([]ed25519.PublicKey{tokenPubB, tokenPubA}, topic, []byte(s), c.Sig)
		},
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
