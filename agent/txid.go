package agent

import (
	"crypto/rand"
	"sync"
	"time"
)

// idGen makes transaction ids: ULIDs (48-bit millisecond time, 80 random
// bits, Crockford base32, 26 characters). They sort by creation time, and
// within one millisecond the random part is incremented, so ids from one
// till sort in the order they were made. 80 random bits make a collision
// between tills negligible; the hub would refuse one as a duplicate anyway.
type idGen struct {
	mu     sync.Mutex
	lastMs uint64
	rnd    [10]byte
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func (g *idGen) next(t time.Time) string {
	ms := uint64(t.UnixMilli())
	g.mu.Lock()
	if ms <= g.lastMs {
		// Same millisecond (or the clock stepped back): keep order by counting up.
		ms = g.lastMs
		for i := len(g.rnd) - 1; i >= 0; i-- {
			g.rnd[i]++
			if g.rnd[i] != 0 {
				break
			}
		}
	} else {
		rand.Read(g.rnd[:])
		g.lastMs = ms
	}
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:], g.rnd[:])
	g.mu.Unlock()
	return encodeULID(b)
}

// encodeULID writes 128 bits as 26 base32 characters, most significant first
// (the first character carries the top 3 bits).
func encodeULID(b [16]byte) string {
	var out [26]byte
	// Treat b as a 130-bit number with two leading zero bits.
	var acc uint32
	bits := 2 // the two implicit leading zero bits
	o := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[o] = crockford[(acc>>uint(bits))&31]
			o++
		}
	}
	return string(out[:o])
}

// IDs makes transaction ids exactly as a till does, for a program that
// speaks for many tills (tillsync-sim bench's load generator): one IDs per
// till. The zero value is ready.
type IDs struct{ g idGen }

// Next returns the id of a transaction made at t.
func (i *IDs) Next(t time.Time) string { return i.g.next(t) }
