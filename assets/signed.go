package assets

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"time"
)

// Errors of signed URLs. A server answers both the same way (404), like a
// missing asset, so that a probe learns nothing.
var (
	// ErrBadSignature: the signature does not match the path and expiry.
	ErrBadSignature = errors.New("assets: bad signature")
	// ErrExpired: the signed URL's expiry has passed.
	ErrExpired = errors.New("assets: signed URL expired")
)

// Signer makes and checks download URLs that a CDN (or a browser without
// the user's token) can use: each names one path (an asset, or its
// thumbnail), carries its expiry, and is signed with HMAC-SHA256 under a
// key derived from the server's secret, so it cannot be widened to another
// asset or extended in time. Safe for concurrent use.
type Signer struct{ key []byte }

// NewSigner derives the signing key from secret (the server's token
// secret: one secret to keep, separate keys for separate uses).
func NewSigner(secret []byte) *Signer {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("switchboard assets signed URLs v1"))
	return &Signer{key: m.Sum(nil)}
}

// Sign returns the query string ("exp=…&sig=…") that makes path
// fetchable until exp.
func (s *Signer) Sign(path string, exp time.Time) string {
	e := exp.Unix()
	return "exp=" + strconv.FormatInt(e, 10) + "&sig=" + base64.RawURLEncoding.EncodeToString(s.mac(path, e))
}

// Verify checks the exp and sig parameters of a request for path at time
// now.
func (s *Signer) Verify(path, exp, sig string, now time.Time) error {
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(path, e)) {
		return ErrBadSignature
	}
	if now.Unix() >= e {
		return ErrExpired
	}
	return nil
}

func (s *Signer) mac(path string, exp int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(path))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, exp, 10))
	return m.Sum(nil)
}

// crockford is Crockford's base32 alphabet, as in message ids.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of an asset id.
const IDLen = 26

// NewID returns a new asset id: 26 characters of Crockford base32 holding
// 128 random bits (130 bits of room, the top two zero). Unlike message
// ids it carries no time and no order: asset ids must not be guessable.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	var out [IDLen]byte
	// 128 bits, 5 at a time from the most significant end.
	var acc uint64
	bits := 2 // pad to 130 bits: the first digit holds the top 3 bits
	i := 0
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[i] = crockford[(acc>>bits)&31]
			i++
		}
	}
	return string(out[:i])
}

// ValidID reports whether s has the shape of an asset id.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}
