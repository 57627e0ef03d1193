package scanner

import "bytes"

// MaxFrame is the longest frame, in bytes and without its terminator, that a
// Framer passes on. Member cards and loyalty QR codes are far shorter; a
// longer frame means line noise, a wrong baud rate or a scanner without a
// suffix configured, and is discarded rather than buffered without bound.
const MaxFrame = 512

// terminators are the bytes that end a frame: scanners are sold with CR, LF,
// CRLF or TAB as their suffix, and installers rarely change it.
const terminators = "\r\n\t"

// Framer splits a byte stream into frames. A frame ends at CR, LF, CRLF or
// TAB; empty frames are skipped, so CRLF never yields an empty frame. A frame
// longer than MaxFrame is discarded up to its next terminator and counted
// (see Oversize).
//
// Feed may be called with any chunking: a frame split over several calls is
// reassembled. The zero value is ready to use. A Framer is not safe for
// concurrent use; one reader owns it.
type Framer struct {
	buf      []byte // the frame so far
	skipping bool   // the current frame went over MaxFrame: drop bytes until a terminator
	oversize uint64
}

// Feed adds p to the stream and calls emit once for each frame completed by
// it, in order. frame excludes the terminator and is never empty; it aliases
// the Framer's buffer and is valid only until emit returns, so copy what you
// keep.
func (f *Framer) Feed(p []byte, emit func(frame []byte)) {
	for len(p) > 0 {
		i := bytes.IndexAny(p, terminators)
		if i < 0 {
			f.add(p)
			return
		}
		f.add(p[:i])
		if !f.skipping && len(f.buf) > 0 {
			emit(f.buf)
		}
		f.buf = f.buf[:0]
		f.skipping = false
		p = p[i+1:]
	}
}

func (f *Framer) add(b []byte) {
	if f.skipping || len(b) == 0 {
		return
	}
	if len(f.buf)+len(b) > MaxFrame {
		// Count at the moment we know, not at the terminator: a stream that
		// never sends one is exactly the misconfiguration worth reporting.
		f.skipping = true
		f.oversize++
		f.buf = f.buf[:0]
		return
	}
	f.buf = append(f.buf, b...)
}

// Oversize returns how many frames have been discarded for being longer than
// MaxFrame. A frame is counted as soon as it goes over the limit, before its
// terminator arrives.
func (f *Framer) Oversize() uint64 { return f.oversize }

// Pending returns how many bytes of an unfinished frame are buffered.
func (f *Framer) Pending() int { return len(f.buf) }

// Reset drops any unfinished frame. Run calls it when a port is (re)opened,
// so the tail of a read cut short by an unplug is not glued to the next scan.
// The Oversize count is kept.
func (f *Framer) Reset() {
	f.buf = f.buf[:0]
	f.skipping = false
}
