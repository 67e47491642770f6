package chat

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is Crockford's base32 alphabet, as used by ULID: sortable as
// text in the same order as the numbers it encodes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of a message id.
const IDLen = 26

// IDGen makes message ids: 26 characters of Crockford base32 encoding a
// 48-bit unix-millisecond time and an 80-bit value that starts random each
// millisecond and increments within it (ULID with monotonic entropy). Ids
// are unique and sort in the order they were made, even within one
// millisecond. An IDGen is not safe for concurrent use: the Service keeps one
// in its committer goroutine.
type IDGen struct {
	ms     uint64
	hi     uint16 // the top 16 of the 80 bits
	lo     uint64 // the low 64 bits
	buf    [IDLen]byte
	random [10]byte
}

// Next returns a new id for time now.
func (g *IDGen) Next(now time.Time) string {
	ms := uint64(now.UnixMilli())
	if ms <= g.ms {
		// Same millisecond, or the clock went back: stay monotonic.
		g.lo++
		if g.lo == 0 {
			g.hi++
		}
	} else {
		g.ms = ms
		_, _ = rand.Read(g.random[:])
		g.hi = binary.BigEndian.Uint16(g.random[:2]) >> 1 // leave room to increment
		g.lo = binary.BigEndian.Uint64(g.random[2:])
	}
	return g.encode()
}

func (g *IDGen) encode() string {
	b := &g.buf
	// 48 bits of time: 10 characters (the first carries 3 bits).
	t := g.ms
	for i := 9; i >= 0; i-- {
		b[i] = crockford[t&31]
		t >>= 5
	}
	// 80 bits of entropy: 16 characters of 5 bits.
	lo, hi := g.lo, uint64(g.hi)
	for i := 25; i >= 10; i-- {
		b[i] = crockford[lo&31]
		lo = lo>>5 | (hi&31)<<59
		hi >>= 5
	}
	return string(b[:])
}

// IDTime returns the time encoded in a message id, or false if id is not one.
func IDTime(id string) (time.Time, bool) {
	if len(id) != IDLen {
		return time.Time{}, false
	}
	var ms uint64
	for i := 0; i < 10; i++ {
		v := decodeCrockford(id[i])
		if v < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(v)
	}
	return time.UnixMilli(int64(ms)), true
}

func decodeCrockford(c byte) int {
	for i := 0; i < len(crockford); i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}
