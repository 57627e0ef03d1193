package scanner_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

func isTerm(c byte) bool { return c == '\r' || c == '\n' || c == '\t' }

// referenceFrames is the Framer's contract written the slow, obvious way:
// split at every terminator, drop empty pieces, drop (and count) pieces over
// MaxFrame; the piece after the last terminator is unfinished, but counts as
// oversize as soon as it is too long.
func referenceFrames(data []byte) (frames []string, oversize uint64) {
	start := 0
	for i := 0; i <= len(data); i++ {
		end := i == len(data)
		if !end && !isTerm(data[i]) {
			continue
		}
		piece := data[start:i]
		start = i + 1
		switch {
		case len(piece) > scanner.MaxFrame:
			oversize++
		case end || len(piece) == 0:
			// unfinished or empty: nothing emitted
		default:
			frames = append(frames, string(piece))
		}
	}
	return frames, oversize
}

// chunk splits data at positions drawn from seed, so the fuzzer explores
// chunkings as well as contents.
func chunk(data []byte, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out [][]byte
	for len(data) > 0 {
		n := 1 + rng.IntN(min(len(data), 1+int(seed%64)))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte("]E04006381333931\r\n"), uint64(0))
	f.Add([]byte("M-1\rM-2\nM-3\r\nM-4\t"), uint64(3))
	f.Add(bytes.Repeat([]byte("x"), scanner.MaxFrame+1), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		fuzzlimit.Check(t)
		var fr scanner.Framer
		var got []string
		for _, c := range chunk(data, seed) {
			fr.Feed(c, func(frame []byte) {
				if len(frame) == 0 {
					t.Fatal("empty frame emitted")
				}
				if len(frame) > scanner.MaxFrame {
					t.Fatalf("frame of %d bytes emitted, MaxFrame is %d", len(frame), scanner.MaxFrame)
				}
				if bytes.ContainsAny(frame, "\r\n\t") {
					t.Fatalf("frame %q contains a terminator", frame)
				}
				sym, rest := scanner.ParseAIM(frame)
				if bytes.ContainsAny(rest, "\r\n\t") {
					t.Fatalf("data %q of scan %q contains a terminator", rest, sym)
				}
				got = append(got, string(frame))
			})
		}
		if fr.Pending() > scanner.MaxFrame {
			t.Fatalf("Pending() = %d, over MaxFrame", fr.Pending())
		}
		want, over := referenceFrames(data)
		if !slices.Equal(got, want) {
			t.Fatalf("frames = %q, want %q", got, want)
		}
		if fr.Oversize() != over {
			t.Fatalf("Oversize() = %d, want %d", fr.Oversize(), over)
		}
	})
}

func FuzzParseAIM(f *testing.F) {
	for _, s := range []string{"]E0123", "]Q1https://x.example/m/42", "]d2\x1d01", "M-000123", "]", "]E", "]0E1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		fuzzlimit.Check(t)
		sym, data := scanner.ParseAIM(frame)
		switch len(sym) {
		case 0:
			if !bytes.Equal(data, frame) {
				t.Fatalf("no symbology but data %q != frame %q", data, frame)
			}
		case 2:
			if want := "]" + sym + string(data); want != string(frame) {
				t.Fatalf("]%s + %q does not rebuild frame %q", sym, data, frame)
			}
		default:
			t.Fatalf("symbology %q is neither empty nor two characters", sym)
		}
		if !bytes.ContainsAny(frame, "\r\n\t") && bytes.ContainsAny(data, "\r\n\t") {
			t.Fatalf("data %q contains a terminator the frame %q lacks", data, frame)
		}
		// A frame as the Framer delivers it never yields data with a terminator.
		var fr scanner.Framer
		fr.Feed(append(slices.Clone(frame), '\r'), func(fr []byte) {
			if _, d := scanner.ParseAIM(fr); bytes.ContainsAny(d, "\r\n\t") {
				t.Fatalf("data %q contains a terminator", d)
			}
		})
		// MemberID must never panic on whatever a scanner sends.
		_, _ = scanner.MemberID(scanner.Scan{Symbology: sym, Data: string(data)}, scanner.CheckNone)
	})
}

func FuzzParseGS1(f *testing.F) {
	for _, s := range []string{
		"0109521234543213", "\x1d0109521234543213" + "17261231" + "10AB-12", "8018123456789012345675\x1d801942",
		"10LOT\x1d\x1d21X", "3103000750", "01095212345432", "99" + strings.Repeat("A", 91), "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		fuzzlimit.Check(t)
		d, err := scanner.ParseGS1(data)
		if err != nil {
			var ge *scanner.GS1Error
			if !errors.As(err, &ge) || !errors.Is(err, scanner.ErrMalformedGS1) {
				t.Fatalf("error %v is no *GS1Error wrapping ErrMalformedGS1", err)
			}
			if ge.Offset < 0 || ge.Offset > len(data) {
				t.Fatalf("offset %d outside the data (%d bytes)", ge.Offset, len(data))
			}
			if d != nil {
				t.Fatalf("elements %v with an error", d)
			}
			return
		}
		if len(d) == 0 {
			t.Fatal("no elements and no error")
		}
		// Writing the elements out again, a GS after each, parses to the same.
		var b strings.Builder
		for _, e := range d {
			if scanner.GS1AITitle(e.AI) == "" {
				t.Fatalf("unknown AI %q accepted", e.AI)
			}
			if e.Value == "" || strings.ContainsRune(e.Value, scanner.GS) {
				t.Fatalf("AI (%s) value %q is empty or holds a GS", e.AI, e.Value)
			}
			b.WriteString(e.AI + e.Value + string(scanner.GS))
		}
		again, err := scanner.ParseGS1(b.String())
		if err != nil || !slices.Equal(again, d) {
			t.Fatalf("re-encoded %q parses to (%v, %v), want %v", b.String(), again, err, d)
		}
	})
}

func FuzzMemberID(f *testing.F) {
	for _, s := range []struct {
		sym, data string
		check     uint8
	}{
		{"", "M-000123", 0}, {"C0", "79927398713", 1}, {"E0", "123456785", 2}, {"", "4111111111111111", 1},
		{"d2", "8018123456789012345675", 0}, {"Q1", ";5555555555554444=2512?", 0}, {"", "4111 1111 1111 1111", 2},
		{"C1", "0109521234543213214111111111111111", 0}, {"", "\x1d378282246310005", 0},
	} {
		f.Add(s.sym, s.data, s.check)
	}
	schemes := []scanner.CheckDigit{scanner.CheckNone, scanner.CheckLuhn, scanner.CheckMod11}
	f.Fuzz(func(t *testing.T, sym, data string, c uint8) {
		fuzzlimit.Check(t)
		check := schemes[int(c)%len(schemes)]
		s := scanner.Scan{Symbology: sym, Data: data}
		id, err := scanner.MemberID(s, check)
		if err != nil {
			if id != "" {
				t.Fatalf("id %q with error %v", id, err)
			}
			if !errors.Is(err, scanner.ErrNotMemberID) {
				t.Fatalf("error %v does not wrap ErrNotMemberID", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if protocol.CodeOf(err) == protocol.CodePaymentCard {
				// Not the number, nor any part of it worth a masked form.
				if strings.ContainsFunc(msg, func(r rune) bool { return r >= '0' && r <= '9' }) &&
					digitRun(msg) >= 4 {
					t.Fatalf("payment card refusal %q carries digits", msg)
				}
			}
			return
		}
		if !protocol.ValidID(id) {
			t.Fatalf("id %q is not a valid protocol id", id)
		}
		if !scanner.IsGS1(s) {
			if scanner.LooksLikePaymentCard(data) {
				t.Fatalf("payment card accepted as member %q", id)
			}
			if !check.Valid(id) {
				t.Fatalf("id %q fails its %s check digit", id, check)
			}
		}
	})
}

// digitRun is the longest run of ASCII digits in s.
func digitRun(s string) int {
	best, n := 0, 0
	for i := range len(s) {
		if s[i] >= '0' && s[i] <= '9' {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}
