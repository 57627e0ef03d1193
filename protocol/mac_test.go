package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// macKey is the fixtures' MAC key: the bytes 0 to 31.
func macKey() []byte {
	k := make([]byte, protocol.MACKeyLen)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func mustTopic(t testing.TB, ch protocol.Channel) string {
	t.Helper()
	s, err := protocol.TerminalTopic("store-042", "till.3", ch)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seal(t testing.TB, topic string, body []byte) []byte {
	t.Helper()
	p, err := protocol.Seal(macKey(), topic, body)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return p
}

// sealedCases are the messages that carry a MAC, each with the channel it
// travels on, a way to set its MAC, and its decoder.
func sealedCases() []struct {
	name   string
	ch     protocol.Channel
	v      any
	setMAC func(any, string)
	decode func([]byte) (any, string, error)
} {
	type c = struct {
		name   string
		ch     protocol.Channel
		v      any
		setMAC func(any, string)
		decode func([]byte) (any, string, error)
	}
	return []c{
		{"batch", protocol.ChannelTx, ptr(validBatch()), func(v any, m string) { v.(*protocol.Batch).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeBatch(b); return v, mac(v), err }},
		{"ack batch", protocol.ChannelAck, ptr(validAckBatch()), func(v any, m string) { v.(*protocol.AckBatch).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeAckBatch(b); return v, mac(v), err }},
		{"balance query", protocol.ChannelQuery, ptr(validQuery()), func(v any, m string) { v.(*protocol.BalanceQuery).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeBalanceQuery(b); return v, mac(v), err }},
		{"balance reply", protocol.ChannelReply, ptr(validReply()), func(v any, m string) { v.(*protocol.BalanceReply).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeBalanceReply(b); return v, mac(v), err }},
		{"sighting", protocol.ChannelScan, ptr(validSighting()), func(v any, m string) { v.(*protocol.Sighting).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeSighting(b); return v, mac(v), err }},
		{"terminal status", protocol.ChannelStatus, ptr(validStatus()), func(v any, m string) { v.(*protocol.TerminalStatus).MAC = m },
			func(b []byte) (any, string, error) { v, err := protocol.DecodeTerminalStatus(b); return v, mac(v), err }},
	}
}

// mac returns the MAC field of a decoded message ("" for a nil one).
func mac(v any) string {
	switch m := v.(type) {
	case *protocol.Batch:
		if m != nil {
			return m.MAC
		}
	case *protocol.AckBatch:
		if m != nil {
			return m.MAC
		}
	case *protocol.BalanceQuery:
		if m != nil {
			return m.MAC
		}
	case *protocol.BalanceReply:
		if m != nil {
			return m.MAC
		}
	case *protocol.Sighting:
		if m != nil {
			return m.MAC
		}
	case *protocol.TerminalStatus:
		if m != nil {
			return m.MAC
		}
	}
	return ""
}

// TestSealVerify: every sealed message decodes with its own decoder to what
// was sealed plus the MAC, and verifies under its key and topic only.
func TestSealVerify(t *testing.T) {
	for _, c := range sealedCases() {
		t.Run(c.name, func(t *testing.T) {
			topic := mustTopic(t, c.ch)
			body := encode(t, c.v)
			p := seal(t, topic, body)
			if !bytes.HasPrefix(p, body[:len(body)-1]) || len(p) != len(body)+len(`,"mac":""`)+43 {
				t.Fatalf("sealed %s\nfrom %s", p, body)
			}
			got, m, err := c.decode(p)
			if err != nil {
				t.Fatalf("decode the sealed message: %v", err)
			}
			if err := protocol.VerifyMAC(macKey(), topic, p, m); err != nil {
				t.Fatalf("VerifyMAC: %v", err)
			}
			c.setMAC(c.v, m)
			if !reflect.DeepEqual(got, c.v) {
				t.Fatalf("decoded\n %+v\nwant %+v", got, c.v)
			}
			c.setMAC(c.v, "")
			other := macKey()
			other[0] ^= 1
			for name, err := range map[string]error{
				"another key":      protocol.VerifyMAC(other, topic, p, m),
				"another topic":    protocol.VerifyMAC(macKey(), mustTopic(t, protocol.ChannelQuery)+"x", p, m),
				"another terminal": protocol.VerifyMAC(macKey(), strings.Replace(topic, "till.3", "till.4", 1), p, m),
			} {
				if !errors.Is(err, protocol.ErrMACInvalid) {
					t.Errorf("%s: %v, want ErrMACInvalid", name, err)
				}
			}
		})
	}
}

// TestVerifyMACRefuses: anything but the exact sealed bytes is refused —
// every single byte changed, the MAC moved or repeated, whitespace added,
// the MAC of another message — and a missing MAC or key is told apart.
func TestVerifyMACRefuses(t *testing.T) {
	topic := mustTopic(t, protocol.ChannelQuery)
	q := validQuery()
	p := seal(t, topic, encode(t, &q))
	got, err := protocol.DecodeBalanceQuery(p)
	if err != nil {
		t.Fatal(err)
	}
	m := got.MAC
	if err := protocol.VerifyMAC(macKey(), topic, p, m); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		for _, d := range []byte{1, 0x20, 0x80} {
			b := bytes.Clone(p)
			b[i] ^= d
			// The decoder's view of the MAC, when the change leaves one.
			dm := m
			if q, err := protocol.DecodeBalanceQuery(b); err == nil {
				dm = q.MAC
			}
			if protocol.VerifyMAC(macKey(), topic, b, dm) == nil {
				t.Fatalf("byte %d ^ %#x accepted: %s", i, d, b)
			}
		}
	}
	q2 := q
	q2.Member = "M987654321"
	p2 := seal(t, topic, encode(t, &q2))
	_, mac2, _ := strings.Cut(string(p2), `"mac":"`)
	mac2 = strings.TrimSuffix(mac2, `"}`)
	body := encode(t, &q)
	for name, c := range map[string]struct {
		payload []byte
		mac     string
		want    error
	}{
		"no MAC":                  {body, "", protocol.ErrMACMissing},
		"a MAC the payload lacks": {body, m, protocol.ErrMACInvalid},
		"trailing whitespace":     {append(bytes.Clone(p), ' '), m, protocol.ErrMACInvalid},
		"the MAC first": {[]byte(`{"mac":"` + m + `",` + string(body[1:])), m,
			protocol.ErrMACInvalid},
		"another message's MAC":  {[]byte(string(body[:len(body)-1]) + `,"mac":"` + mac2 + `"}`), mac2, protocol.ErrMACInvalid},
		"a MAC too short":        {[]byte(string(body[:len(body)-1]) + `,"mac":"` + m[1:] + `"}`), m[1:], protocol.ErrMACInvalid},
		"padding added":          {[]byte(string(body[:len(body)-1]) + `,"mac":"` + m + `="}`), m + "=", protocol.ErrMACInvalid},
		"a MAC inside an object": {[]byte(`{"x":{"mac":"` + m + `"}}`), m, protocol.ErrMACInvalid},
		"only the MAC":           {[]byte(`{"mac":"` + m + `"}`), m, protocol.ErrMACInvalid},
	} {
		if err := protocol.VerifyMAC(macKey(), topic, c.payload, c.mac); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if err := protocol.VerifyMAC(nil, topic, p, m); !errors.Is(err, protocol.ErrNoMACKey) {
		t.Errorf("no key: %v, want ErrNoMACKey", err)
	}
	// A repeated member is covered like any other: the decoder takes the
	// last, which is the MAC, and the MAC covers the first.
	dup := seal(t, topic, []byte(string(body[:len(body)-1])+`,"member":"M0"}`))
	if d, err := protocol.DecodeBalanceQuery(dup); err != nil || d.Member != "M0" || protocol.VerifyMAC(macKey(), topic, dup, d.MAC) != nil {
		t.Errorf("a sealed message with a repeated member: %+v, %v", d, err)
	}
}

func TestSealRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		key  []byte
		body string
	}{
		"a short key":  {macKey()[:16], `{"a":1}`},
		"no key":       {nil, `{"a":1}`},
		"not JSON":     {macKey(), `[1]`},
		"empty object": {macKey(), `{}`},
		"empty":        {macKey(), ``},
	} {
		if _, err := protocol.Seal(c.key, "t", []byte(c.body)); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
}

// TestSealedGolden pins the MAC: testdata/batch_sealed.json holds the exact
// bytes (not indented: the MAC covers every byte) of the golden batch as
// version 3, sealed with the key 00 01 … 1f on its tx topic, so that
// another implementation can check its MAC against ours.
func TestSealedGolden(t *testing.T) {
	b := validBatch()
	b.Version = protocol.Version
	topic := mustTopic(t, protocol.ChannelTx)
	p := seal(t, topic, encode(t, &b))
	path := filepath.Join("testdata", "batch_sealed.json")
	if *update {
		if err := os.WriteFile(path, p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol -update to create it)", err)
	}
	if !bytes.Equal(p, golden) {
		t.Fatalf("Seal differs from %s (run go test ./protocol -update if the change is deliberate)\n got %s\nwant %s", path, p, golden)
	}
	d, err := protocol.DecodeBatch(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.VerifyMAC(macKey(), topic, golden, d.MAC); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerifyMAC: whatever the payload, a MAC that verifies means the
// payload is exactly Seal of the payload without it — nothing else about
// the bytes can vary.
func FuzzVerifyMAC(f *testing.F) {
	topic := mustTopic(f, protocol.ChannelTx)
	q := validQuery()
	f.Add(seal(f, topic, encode(f, &q)))
	b := validBatch()
	f.Add(seal(f, topic, encode(f, &b)))
	f.Add([]byte(`{"mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		fuzzlimit.Check(t)
		var m struct {
			MAC string `json:"mac"`
		}
		if json.Unmarshal(payload, &m) != nil {
			m.MAC = ""
		}
		if err := protocol.VerifyMAC(macKey(), topic, payload, m.MAC); err != nil {
			if !errors.Is(err, protocol.ErrMACInvalid) && !errors.Is(err, protocol.ErrMACMissing) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		n := len(payload) - len(`,"mac":""}`) - 43
		back, err := protocol.Seal(macKey(), topic, append(bytes.Clone(payload[:n]), '}'))
		if err != nil || !bytes.Equal(back, payload) {
			t.Fatalf("accepted %q, which is not a sealed message (%q, %v)", payload, back, err)
		}
	})
}

func TestAgentUsername(t *testing.T) {
	u := protocol.AgentUsername("store-042", "till.3")
	if u != "tillsync-agent@store-042@till.3" || strings.Contains(u, ":") {
		t.Fatalf("AgentUsername = %q", u)
	}
	if s, term, ok := protocol.ParseAgentUsername(u); !ok || s != "store-042" || term != "till.3" {
		t.Fatalf("ParseAgentUsername(%q) = %q, %q, %v", u, s, term, ok)
	}
	id := protocol.AgentClientID("store-042", "till.3")
	for _, name := range []string{u, id} {
		if s, term, ok := protocol.ParseTerminalUsername(name); !ok || s != "store-042" || term != "till.3" {
			t.Errorf("ParseTerminalUsername(%q) = %q, %q, %v", name, s, term, ok)
		}
	}
	for _, bad := range []string{"", "tillsync-agent@", "tillsync-agent@s", "tillsync-agent@s@", "tillsync-agent@@t",
		"tillsync-agent@s@t@u", "tillsync-agent@s/x@t", "tillsync-agent@s@+", "x@s@t", "tillsync-agent:s@t", "tillsync-hub"} {
		if _, _, ok := protocol.ParseAgentUsername(bad); ok {
			t.Errorf("ParseAgentUsername(%q) accepted", bad)
		}
	}
}

// BenchmarkMAC: what a MAC costs a message, checking (the hub, on every
// batch) and sealing (the hub, on every ack batch), for a batch of one
// transaction and a full one of MaxBatchTxs.
func BenchmarkMAC(b *testing.B) {
	topic := mustTopic(b, protocol.ChannelTx)
	for _, n := range []int{1, protocol.MaxBatchTxs} {
		batch := validBatch()
		batch.Txs = nil
		for i := range n {
			tx := earnTx()
			tx.Seq = uint64(i + 1)
			batch.Txs = append(batch.Txs, tx)
		}
		body := encode(b, &batch)
		p := seal(b, topic, body)
		d, err := protocol.DecodeBatch(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("verify/txs="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := protocol.VerifyMAC(macKey(), topic, p, d.MAC); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("seal/txs="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.Seal(macKey(), topic, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode/txs="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.ParseBatch(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
