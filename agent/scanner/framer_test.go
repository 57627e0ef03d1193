package scanner_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

// feedAll feeds chunks to a fresh Framer and returns the frames (copied) and
// the oversize count.
func feedAll(chunks ...[]byte) ([]string, uint64) {
	var f scanner.Framer
	var got []string
	for _, c := range chunks {
		f.Feed(c, func(frame []byte) { got = append(got, string(frame)) })
	}
	return got, f.Oversize()
}

func bytewise(s string) [][]byte {
	var out [][]byte
	for i := range len(s) {
		out = append(out, []byte{s[i]})
	}
	return out
}

func TestFramer(t *testing.T) {
	long := strings.Repeat("x", scanner.MaxFrame+1)
	exact := strings.Repeat("y", scanner.MaxFrame)
	tests := []struct {
		name     string
		chunks   []string
		want     []string
		oversize uint64
	}{
		{"empty input", nil, nil, 0},
		{"CR", []string{"123\r"}, []string{"123"}, 0},
		{"LF", []string{"123\n"}, []string{"123"}, 0},
		{"CRLF gives one frame", []string{"123\r\n"}, []string{"123"}, 0},
		{"TAB", []string{"123\t"}, []string{"123"}, 0},
		{"LFCR gives one frame", []string{"123\n\r"}, []string{"123"}, 0},
		{"no terminator yet", []string{"123"}, nil, 0},
		{"terminators only", []string{"\r\n\t\r\n\n\r"}, nil, 0},
		{"several in one chunk", []string{"a\rb\nc\r\nd\t"}, []string{"a", "b", "c", "d"}, 0},
		{"split frame", []string{"12", "3", "4\r"}, []string{"1234"}, 0},
		{"CRLF split across chunks", []string{"1\r", "\n2\r", "\n"}, []string{"1", "2"}, 0},
		{"spaces kept", []string{" a b \r"}, []string{" a b "}, 0},
		{"other control bytes kept", []string{"a\x1db\x00\r"}, []string{"a\x1db\x00"}, 0},
		{"exactly MaxFrame passes", []string{exact + "\r"}, []string{exact}, 0},
		{"MaxFrame+1 dropped", []string{long + "\rok\r"}, []string{"ok"}, 1},
		{"oversize across chunks", []string{long[:300], long[300:], "tail\r", "ok\n"}, []string{"ok"}, 1},
		{"oversize counted before terminator", []string{long + long}, nil, 1},
		{"two oversize frames", []string{long + "\t" + long + "\nok\r"}, []string{"ok"}, 2},
		{"oversize then CRLF", []string{long + "\r\nok\r\n"}, []string{"ok"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			joined := strings.Join(tt.chunks, "")
			var chunks [][]byte
			for _, c := range tt.chunks {
				chunks = append(chunks, []byte(c))
			}
			// The same stream must frame the same however it is chunked.
			for how, cs := range map[string][][]byte{
				"as given":     chunks,
				"one chunk":    {[]byte(joined)},
				"byte by byte": bytewise(joined),
			} {
				got, over := feedAll(cs...)
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s: frames = %q, want %q", how, got, tt.want)
				}
				if over != tt.oversize {
					t.Errorf("%s: Oversize() = %d, want %d", how, over, tt.oversize)
				}
			}
		})
	}
}

func TestFramerReset(t *testing.T) {
	var f scanner.Framer
	var got []string
	emit := func(frame []byte) { got = append(got, string(frame)) }
	f.Feed([]byte("half-a-sc"), emit)
	if f.Pending() != 9 {
		t.Fatalf("Pending() = %d, want 9", f.Pending())
	}
	f.Reset()
	f.Feed([]byte("M1\r"), emit)
	// Reset also ends a discard: the next frame is read in full.
	f.Feed([]byte(strings.Repeat("z", scanner.MaxFrame+5)), emit)
	f.Reset()
	f.Feed([]byte("M2\r"), emit)
	if want := []string{"M1", "M2"}; !slices.Equal(got, want) {
		t.Errorf("frames = %q, want %q", got, want)
	}
	if f.Oversize() != 1 {
		t.Errorf("Oversize() = %d, want 1 (Reset keeps the count)", f.Oversize())
	}
}

func TestFramerZeroAlloc(t *testing.T) {
	var f scanner.Framer
	in := []byte("]E04006381333931\r\n")
	f.Feed(in, func([]byte) {}) // grow the buffer once
	allocs := testing.AllocsPerRun(100, func() { f.Feed(in, func([]byte) {}) })
	if allocs != 0 {
		t.Errorf("Feed allocates %.0f times per scan, want 0", allocs)
	}
}
