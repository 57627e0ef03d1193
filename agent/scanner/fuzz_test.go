package scanner_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
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
		_, _ = scanner.MemberID(scanner.Scan{Symbology: sym, Data: string(data)})
	})
}
