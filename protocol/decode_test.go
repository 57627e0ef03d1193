package protocol_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
)

// decoder is one Decode* function under a common shape.
type decoder struct {
	name   string
	decode func([]byte) (any, error)
	limit  int
	valid  func(testing.TB) []byte
}

func decoders() []decoder {
	return []decoder{
		{"DecodeBatch", func(b []byte) (any, error) { return protocol.DecodeBatch(b) }, protocol.MaxBatchBytes,
			func(t testing.TB) []byte { return encode(t, validBatch()) }},
		{"ParseBatch", func(b []byte) (any, error) { return protocol.ParseBatch(b) }, protocol.MaxBatchBytes,
			func(t testing.TB) []byte { return encode(t, validBatch()) }},
		{"DecodeAckBatch", func(b []byte) (any, error) { return protocol.DecodeAckBatch(b) }, protocol.MaxBatchBytes,
			func(t testing.TB) []byte { return encode(t, validAckBatch()) }},
		{"DecodeBalanceQuery", func(b []byte) (any, error) { return protocol.DecodeBalanceQuery(b) }, protocol.MaxSmallMessageBytes,
			func(t testing.TB) []byte { return encode(t, validQuery()) }},
		{"DecodeBalanceReply", func(b []byte) (any, error) { return protocol.DecodeBalanceReply(b) }, protocol.MaxSmallMessageBytes,
			func(t testing.TB) []byte { return encode(t, validReply()) }},
		{"DecodeConfig", func(b []byte) (any, error) { return protocol.DecodeConfig(b) }, protocol.MaxConfigBytes,
			func(t testing.TB) []byte { return encode(t, validConfig()) }},
		{"DecodeSighting", func(b []byte) (any, error) { return protocol.DecodeSighting(b) }, protocol.MaxSmallMessageBytes,
			func(t testing.TB) []byte { return encode(t, validSighting()) }},
	}
}

// Version 3 speaks to tills and hubs of versions 1 and 2: every decoder
// accepts the versions MinVersion (1) to Version (3) and nothing else.
func TestDecodeVersions(t *testing.T) {
	if protocol.MinVersion != 1 || protocol.Version != 3 || protocol.UnsealedVersion != 2 {
		t.Fatalf("MinVersion %d, Version %d, UnsealedVersion %d: update this test with the history in doc.go", protocol.MinVersion, protocol.Version, protocol.UnsealedVersion)
	}
	for _, d := range decoders() {
		t.Run(d.name, func(t *testing.T) {
			for _, v := range []int{1, 2, 3} {
				if _, err := d.decode(withField(t, json.RawMessage(d.valid(t)), json.Number(strconv.Itoa(v)), "version")); err != nil {
					t.Errorf("version %d refused: %v", v, err)
				}
			}
			for _, v := range []string{"0", "4", "-1", "1000", "2147483647"} {
				got, err := d.decode(withField(t, json.RawMessage(d.valid(t)), json.Number(v), "version"))
				if got != nil && !isNilPtr(got) {
					t.Errorf("version %s accepted", v)
				}
				checkErr(t, err, protocol.CodeUnsupported, "version")
			}
		})
	}
}

// pad appends spaces (legal JSON whitespace) to msg up to n bytes.
func pad(msg []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, msg)
	for i := len(msg); i < n; i++ {
		out[i] = ' '
	}
	return out
}

func TestDecodeSizeLimit(t *testing.T) {
	for _, d := range decoders() {
		t.Run(d.name, func(t *testing.T) {
			valid := d.valid(t)
			// At the limit a valid message, however padded, is accepted.
			if _, err := d.decode(pad(valid, d.limit)); err != nil {
				t.Fatalf("valid message padded to exactly %d bytes: %v", d.limit, err)
			}
			for name, in := range map[string][]byte{
				// Would parse fine: only the size refuses it.
				"valid message one byte over": pad(valid, d.limit+1),
				// Would be "empty message" or "invalid JSON" if parsed: the
				// size is checked first.
				"spaces":           bytes.Repeat([]byte(" "), d.limit+1),
				"garbage":          bytes.Repeat([]byte("{"), d.limit+1),
				"huge string":      []byte(`"` + strings.Repeat("a", 4*d.limit) + `"`),
				"many megabytes":   bytes.Repeat([]byte(" "), 8<<20),
				"valid then spill": append(valid, bytes.Repeat([]byte("x"), d.limit)...),
			} {
				got, err := d.decode(in)
				if got != nil && !isNilPtr(got) {
					t.Errorf("%s: returned a value", name)
				}
				checkErr(t, err, protocol.CodeTooLarge, "")
				if !strings.Contains(err.Error(), strconv.Itoa(d.limit)) {
					t.Errorf("%s: %q does not name the limit", name, err)
				}
			}
		})
	}
}

func isNilPtr(v any) bool {
	switch p := v.(type) {
	case *protocol.Batch:
		return p == nil
	case *protocol.AckBatch:
		return p == nil
	case *protocol.BalanceQuery:
		return p == nil
	case *protocol.BalanceReply:
		return p == nil
	case *protocol.Config:
		return p == nil
	case *protocol.Sighting:
		return p == nil
	}
	return false
}

// An oversize message must cost nothing: no buffering, no parsing. Decoding
// it as JSON would copy all of it into the json.Decoder's buffer.
func TestDecodeOversizeDoesNotParse(t *testing.T) {
	in := bytes.Repeat([]byte(" "), 16<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 4 {
		if _, err := protocol.DecodeBatch(in); protocol.CodeOf(err) != protocol.CodeTooLarge {
			t.Fatalf("got %v, want too_large", err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("refusing 4 × %d bytes allocated %d bytes: the input was read", len(in), n)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, d := range decoders() {
		t.Run(d.name, func(t *testing.T) {
			for _, in := range []string{
				"",
				" \n\t",
				"{",
				"}",
				`{"version":`,
				`{"version":1`,
				`{"version":1,}`,
				`{'version':1}`,
				`{version:1}`,
				"nul",
				"not json",
				"\xff\xfe{}",
				"\x00",
				`{"version":01}`,
				`{"version":1 "store":"s"}`,
			} {
				got, err := d.decode([]byte(in))
				if got != nil && !isNilPtr(got) {
					t.Errorf("%q: returned a value", in)
				}
				checkErr(t, err, protocol.CodeMalformed, "")
			}
		})
	}
}

func TestDecodeTrailingData(t *testing.T) {
	for _, d := range decoders() {
		t.Run(d.name, func(t *testing.T) {
			valid := d.valid(t)
			if _, err := d.decode(append(bytes.Clone(valid), " \n\t\r\n"...)); err != nil {
				t.Fatalf("trailing whitespace refused: %v", err)
			}
			if _, err := d.decode(append([]byte(" \n\t\r"), valid...)); err != nil {
				t.Fatalf("leading whitespace refused: %v", err)
			}
			for _, tail := range []string{"x", "{}", "}", "]", "}}", " ]", "1", `"s"`, "null", ",", "\x00", "\n" + string(valid)} {
				in := append(bytes.Clone(valid), tail...)
				got, err := d.decode(in)
				if got != nil && !isNilPtr(got) {
					t.Errorf("tail %q: accepted", tail)
					continue
				}
				checkErr(t, err, protocol.CodeMalformed, "")
			}
		})
	}
}

// goTypeName matches what Go's error text would leak: type names and
// package paths. Field paths like "txs.points" must not trip it.
var goTypeName = regexp.MustCompile(`\b(u?int(8|16|32|64)?|float(32|64)|bool|string|rune|struct|interface|Transaction|Batch|AckBatch|Ack|BalanceQuery|BalanceReply|Kind|Code|Status)\b|time\.|protocol\.|json\.|\[\]|map\[|Unmarshal|reflect|parsing time`)

func TestGoTypeNameRegexp(t *testing.T) {
	for _, s := range []string{"cannot unmarshal string into int64", "into Go value of type protocol.Batch", "[]protocol.Transaction", "Time.UnmarshalJSON", `parsing time "x"`} {
		if !goTypeName.MatchString(s) {
			t.Errorf("regexp misses %q", s)
		}
	}
	for _, s := range []string{"wrong type for txs.points", "wrong type for version", "invalid JSON at byte 12", "wrong type of message"} {
		if goTypeName.MatchString(s) {
			t.Errorf("regexp matches %q", s)
		}
	}
}

// withField returns the encoding of v with the value at path replaced.
// Path elements are object keys (string) or array indexes (int).
func withField(t *testing.T, v any, val any, path ...any) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(encode(t, v)))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	if len(path) == 0 {
		root = val
	} else {
		cur := root
		for i, p := range path {
			last := i == len(path)-1
			switch k := p.(type) {
			case string:
				m := cur.(map[string]any)
				if _, ok := m[k]; !ok {
					t.Fatalf("no field %q in %v", k, path)
				}
				if last {
					m[k] = val
				} else {
					cur = m[k]
				}
			case int:
				a := cur.([]any)
				if last {
					a[k] = val
				} else {
					cur = a[k]
				}
			}
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeWrongTypes(t *testing.T) {
	num := func(s string) json.Number { return json.Number(s) }
	batch := validBatch()
	for _, tc := range []struct {
		val  any
		path []any
	}{
		{"1", []any{"version"}},
		{num("1.5"), []any{"version"}},
		{num("1e99"), []any{"version"}},
		{true, []any{"version"}},
		{num("7"), []any{"store"}},
		{[]any{}, []any{"terminal"}},
		{"4", []any{"backlog"}},
		{num("9223372036854775808"), []any{"backlog"}},
		{num("5"), []any{"sent_at"}},
		{"yesterday", []any{"sent_at"}},
		{map[string]any{}, []any{"txs"}},
		{"all of them", []any{"txs"}},
		{"tx", []any{"txs", 0}},
		{num("3"), []any{"txs", 1}},
		{num("-1"), []any{"txs", 1, "seq"}},
		{num("18446744073709551616"), []any{"txs", 1, "seq"}},
		{"41", []any{"txs", 0, "seq"}},
		{num("25.99"), []any{"txs", 0, "amount"}},
		{num("1e3"), []any{"txs", 0, "amount"}},
		{"2599", []any{"txs", 0, "amount"}},
		{num("9223372036854775808"), []any{"txs", 0, "points"}},
		{false, []any{"txs", 0, "points"}},
		{num("1"), []any{"txs", 0, "kind"}},
		{[]any{"a"}, []any{"txs", 0, "member"}},
		{map[string]any{"id": "x"}, []any{"txs", 3, "original"}},
		{num("0"), []any{"txs", 0, "created_at"}},
		{"2026-11-23", []any{"txs", 0, "created_at"}},
		{"2026-11-23T25:00:00Z", []any{"txs", 0, "created_at"}},
		{"23/11/2026 09:30", []any{"txs", 0, "created_at"}},
		{[]any{num("1")}, nil},
		{"batch", nil},
		{num("42"), nil},
		{true, nil},
	} {
		in := withField(t, batch, tc.val, tc.path...)
		got, err := protocol.DecodeBatch(in)
		if got != nil {
			t.Errorf("%s accepted", in)
			continue
		}
		if protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("%v = %v: got %v, want malformed", tc.path, tc.val, err)
			continue
		}
		checkOneLine(t, err)
		if m := goTypeName.FindString(err.Error()); m != "" {
			t.Errorf("%v = %v: %q leaks Go detail %q", tc.path, tc.val, err, m)
		}
		t.Logf("%v = %v: %v", tc.path, tc.val, err)
	}

	// The small messages too.
	for _, in := range []string{
		`{"version":"1","request_id":"q","member":"m"}`,
		`{"version":1,"request_id":5,"member":"m"}`,
		`{"version":1,"request_id":"q","member":{"id":"m"}}`,
		`["q","m"]`,
	} {
		_, err := protocol.DecodeBalanceQuery([]byte(in))
		if protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("query %s: got %v, want malformed", in, err)
		} else if m := goTypeName.FindString(err.Error()); m != "" {
			t.Errorf("query %s: %q leaks Go detail %q", in, err, m)
		}
	}
	for _, in := range []string{
		`{"version":1,"acks":{}}`,
		`{"version":1,"acks":[{"id":"a","status":"applied","balance":"5"}]}`,
		`{"version":1,"acks":[{"id":"a","status":7}]}`,
	} {
		_, err := protocol.DecodeAckBatch([]byte(in))
		if protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("acks %s: got %v, want malformed", in, err)
		} else if m := goTypeName.FindString(err.Error()); m != "" {
			t.Errorf("acks %s: %q leaks Go detail %q", in, err, m)
		}
	}
	for _, in := range []string{
		`{"version":1,"request_id":"q","member":"m","known":"yes","balance":0,"as_of":"2026-11-23T09:30:00Z"}`,
		`{"version":1,"request_id":"q","member":"m","known":true,"balance":0,"as_of":"noon"}`,
	} {
		_, err := protocol.DecodeBalanceReply([]byte(in))
		if protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("reply %s: got %v, want malformed", in, err)
		} else if m := goTypeName.FindString(err.Error()); m != "" {
			t.Errorf("reply %s: %q leaks Go detail %q", in, err, m)
		}
	}
}
