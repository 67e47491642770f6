package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Limits. A token or claim outside them is refused as ErrMalformed.
const (
	// MinSecretBytes is the shortest HMAC secret NewVerifier and NewIssuer
	// accept: 256 bits, the HS256 output size (RFC 7518 §3.2).
	MinSecretBytes = 32

	// MaxTokenBytes bounds the compact token Verify looks at. Tokens issued
	// by Issuer are about 200 bytes.
	MaxTokenBytes = 4096

	// MaxIDBytes bounds the sub (user) and dev (device) claims.
	MaxIDBytes = 128

	// MaxLeeway bounds VerifierConfig.Leeway.
	MaxLeeway = 5 * time.Minute
)

// Sentinel errors returned (wrapped) by Verify. Test them with errors.Is.
// The wrapped message adds a fixed reason and never contains token bytes,
// so an error is safe to log; Kind gives a short label for logs and metrics.
var (
	// ErrMalformed: not a compact JWS, bad base64url or JSON, duplicate or
	// escaped keys, a claim of the wrong type or with an invalid value,
	// a crit header, or longer than MaxTokenBytes.
	ErrMalformed = errors.New("auth: malformed token")
	// ErrSignature: the HMAC-SHA256 signature does not match.
	ErrSignature = errors.New("auth: invalid signature")
	// ErrExpired: exp (plus leeway) is not in the future, or nbf (minus
	// leeway) is in the future.
	ErrExpired = errors.New("auth: token expired or not yet valid")
	// ErrMissingClaim: sub or exp is absent, null or empty.
	ErrMissingClaim = errors.New("auth: required claim missing")
	// ErrAlgorithm: the header's alg is anything but "HS256" (none, HS512,
	// RS256, ...), or absent.
	ErrAlgorithm = errors.New("auth: algorithm not allowed")
)

// Kind returns a short, fixed label for a Verify error, for logs and metric
// labels: "malformed", "signature", "expired", "missing_claim",
// "algorithm", "" for nil and "other" for anything else.
func Kind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrSignature):
		return "signature"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrMissingClaim):
		return "missing_claim"
	case errors.Is(err, ErrAlgorithm):
		return "algorithm"
	}
	return "other"
}

// tokenError is a sentinel plus a fixed reason. All values are package
// variables, so the failure path of Verify does not allocate either.
type tokenError struct {
	kind   error
	reason string
}

func (e *tokenError) Error() string { return e.kind.Error() + ": " + e.reason }
func (e *tokenError) Unwrap() error { return e.kind }

func malformed(reason string) error { return &tokenError{ErrMalformed, reason} }

var (
	errEmpty        = malformed("empty")
	errTooLong      = malformed("longer than MaxTokenBytes")
	errSegments     = malformed("want three dot-separated segments")
	errBase64       = malformed("bad base64url segment")
	errHeaderLen    = malformed("header too long")
	errJSON         = malformed("segment is not a JSON object")
	errEscapedKey   = malformed("escaped JSON key")
	errDupKey       = malformed("duplicate header or claim")
	errCrit         = malformed("crit header not supported")
	errSigLen       = malformed("signature is not 32 bytes")
	errSubType      = malformed("sub is not a string")
	errSubValue     = malformed("sub is longer than MaxIDBytes or has invalid characters")
	errDevType      = malformed("dev is not a string")
	errDevValue     = malformed("dev is longer than MaxIDBytes or has invalid characters")
	errDateType     = malformed("exp, nbf or iat is not a number")
	errDateRange    = malformed("exp, nbf or iat is out of range")
	errAlgMissing   = &tokenError{ErrAlgorithm, "alg missing"}
	errAlgRefused   = &tokenError{ErrAlgorithm, "only HS256 is accepted"}
	errBadSignature = &tokenError{ErrSignature, "HMAC-SHA256 mismatch"}
	errExpired      = &tokenError{ErrExpired, "exp is not in the future"}
	errNotYetValid  = &tokenError{ErrExpired, "nbf is in the future"}
	errNoSub        = &tokenError{ErrMissingClaim, "sub"}
	errNoExp        = &tokenError{ErrMissingClaim, "exp"}
)

// Claims are the verified contents of a token.
type Claims struct {
	User    string    // sub: never empty
	Device  string    // dev: may be empty
	Expires time.Time // exp, whole seconds
}

// VerifierConfig tunes a Verifier. The zero value is the default.
type VerifierConfig struct {
	// Leeway tolerates clock skew between the issuer and this node: a
	// token is accepted until exp+Leeway, and from nbf-Leeway.
	// Default 0: no tolerance. At most MaxLeeway.
	Leeway time.Duration

	// Now returns the current time. Default time.Now. For tests.
	Now func() time.Time
}

// Validate reports whether c is usable.
func (c VerifierConfig) Validate() error {
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return fmt.Errorf("auth: leeway %v outside [0, %v]", c.Leeway, MaxLeeway)
	}
	return nil
}

// Verifier checks HS256 tokens against one secret. It is safe for
// concurrent use by any number of goroutines.
type Verifier struct {
	leeway time.Duration
	now    func() time.Time
	macs   sync.Pool // of *macState, keyed with the secret
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewVerifier returns a Verifier with the default VerifierConfig. It
// copies secret, which must be at least MinSecretBytes long.
func NewVerifier(secret []byte) (*Verifier, error) {
	return NewVerifierConfig(secret, VerifierConfig{})
}

// NewVerifierConfig is NewVerifier with a config.
func NewVerifierConfig(secret []byte, cfg VerifierConfig) (*Verifier, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key := bytes.Clone(secret)
	v := &Verifier{leeway: cfg.Leeway, now: cfg.Now}
	v.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return v, nil
}

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("auth: secret is %d bytes, want at least %d", len(secret), MinSecretBytes)
	}
	return nil
}

var (
	b64 = base64.RawURLEncoding.Strict()

	// hs256Header is the header segment Issuer (golang-jwt) writes,
	// base64url({"alg":"HS256","typ":"JWT"}). Verify skips parsing it.
	hs256Header = []byte("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9")
)

const (
	sigSegmentLen = 43  // base64url(32 bytes), unpadded
	maxHeaderLen  = 256 // encoded; decodes to at most 192 bytes
	payloadStack  = 384 // payloads up to this many bytes decode on the stack

	// maxNumericDate is 9999-12-31T23:59:59Z, the last second Go's
	// time formatting handles; later dates are refused as malformed.
	// 12 decimal digits, so smallUint covers every in-range integer.
	maxNumericDate = 253402300799
)

// Verify checks token and returns its claims. token is the compact form
// header.payload.signature; Verify does not retain it. The error, if any,
// wraps exactly one of ErrMalformed, ErrSignature, ErrExpired,
// ErrMissingClaim or ErrAlgorithm. Safe for concurrent use.
//
// Order of checks: size and shape; the header (alg must be "HS256"); the
// signature; only then is the payload decoded: sub and exp required,
// exp and nbf against the clock, iat type-checked only.
func (v *Verifier) Verify(token []byte) (Claims, error) {
	switch {
	case len(token) == 0:
		return Claims{}, errEmpty
	case len(token) > MaxTokenBytes:
		return Claims{}, errTooLong
	}
	d1 := bytes.IndexByte(token, '.')
	if d1 < 0 {
		return Claims{}, errSegments
	}
	d2 := bytes.IndexByte(token[d1+1:], '.')
	if d2 < 0 {
		return Claims{}, errSegments
	}
	d2 += d1 + 1
	if bytes.IndexByte(token[d2+1:], '.') >= 0 {
		return Claims{}, errSegments
	}
	header, payload, sig := token[:d1], token[d1+1:d2], token[d2+1:]

	if !bytes.Equal(header, hs256Header) {
		if err := checkHeader(header); err != nil {
			return Claims{}, err
		}
	}

	if len(sig) != sigSegmentLen {
		return Claims{}, errSigLen
	}
	var want [sha256.Size]byte
	if n, err := b64.Decode(want[:], sig); err != nil || n != len(want) {
		return Claims{}, errBase64
	}
	m := v.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(token[:d2])
	ok := hmac.Equal(m.h.Sum(m.sum[:0]), want[:])
	v.macs.Put(m)
	if !ok {
		return Claims{}, errBadSignature
	}

	var stack [payloadStack]byte
	buf := stack[:]
	if n := b64.DecodedLen(len(payload)); n > len(buf) {
		buf = make([]byte, n)
	}
	n, err := b64.Decode(buf, payload)
	if err != nil {
		return Claims{}, errBase64
	}
	return v.claims(buf[:n])
}

// checkHeader parses a JOSE header that is not the canonical one.
// It runs before the signature check, on bytes a peer chose.
func checkHeader(seg []byte) error {
	if len(seg) > maxHeaderLen {
		return errHeaderLen
	}
	var buf [maxHeaderLen * 3 / 4]byte
	n, err := b64.Decode(buf[:], seg)
	if err != nil {
		return errBase64
	}
	m, err := newMembers(buf[:n])
	if err != nil {
		return err
	}
	alg := 0 // 0 absent, 1 HS256, 2 other
	for {
		key, val, ok, err := m.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "alg":
			if alg != 0 {
				return errDupKey
			}
			alg = 2
			if string(val) == `"HS256"` {
				alg = 1
			}
		case "crit":
			// RFC 7515 §4.1.11: extensions we do not understand.
			return errCrit
		}
	}
	switch {
	case alg == 0:
		return errAlgMissing
	case alg != 1:
		return errAlgRefused
	}
	return nil
}

// claims decodes an authenticated payload.
func (v *Verifier) claims(payload []byte) (Claims, error) {
	// Raw values of the registered claims we read, nil when absent.
	const (
		sub = iota
		dev
		exp
		nbf
		iat
		nClaims
	)
	var raw [nClaims][]byte
	m, err := newMembers(payload)
	if err != nil {
		return Claims{}, err
	}
	for {
		key, val, ok, err := m.next()
		if err != nil {
			return Claims{}, err
		}
		if !ok {
			break
		}
		var k int
		switch string(key) {
		case "sub":
			k = sub
		case "dev":
			k = dev
		case "exp":
			k = exp
		case "nbf":
			k = nbf
		case "iat":
			k = iat
		default:
			continue // unregistered claims are ignored
		}
		if raw[k] != nil {
			return Claims{}, errDupKey
		}
		raw[k] = val
	}

	var c Claims
	if c.User, err = idClaim(raw[sub], errSubType, errSubValue); err != nil {
		return Claims{}, err
	}
	if c.User == "" {
		return Claims{}, errNoSub
	}
	if c.Device, err = idClaim(raw[dev], errDevType, errDevValue); err != nil {
		return Claims{}, err
	}
	expSec, hasExp, err := numericDate(raw[exp])
	if err != nil {
		return Claims{}, err
	}
	if !hasExp {
		return Claims{}, errNoExp
	}
	nbfSec, hasNbf, err := numericDate(raw[nbf])
	if err != nil {
		return Claims{}, err
	}
	if _, _, err := numericDate(raw[iat]); err != nil {
		return Claims{}, err
	}

	now := v.now()
	c.Expires = time.Unix(expSec, 0)
	if !now.Before(c.Expires.Add(v.leeway)) {
		return Claims{}, errExpired
	}
	if hasNbf && now.Before(time.Unix(nbfSec, 0).Add(-v.leeway)) {
		return Claims{}, errNotYetValid
	}
	return c, nil
}

// idClaim decodes the JSON string val (nil or null: "") and checks it
// with ValidID.
func idClaim(val []byte, errType, errValue error) (string, error) {
	if val == nil || string(val) == "null" {
		return "", nil
	}
	if len(val) < 2 || val[0] != '"' {
		return "", errType
	}
	var s string
	if bytes.IndexByte(val, '\\') < 0 {
		raw := val[1 : len(val)-1]
		if len(raw) > MaxIDBytes {
			return "", errValue
		}
		s = string(raw)
	} else {
		u, ok := unquote(val)
		if !ok {
			return "", errType
		}
		s = u
	}
	if s != "" && !ValidID(s) {
		return "", errValue
	}
	return s, nil
}

// unquote decodes a JSON string with escapes. Kept apart from idClaim,
// which would otherwise heap-allocate its result on every call.
func unquote(val []byte) (string, bool) {
	var s string
	err := json.Unmarshal(bytes.Clone(val), &s)
	return s, err == nil
}

// ValidID reports whether s is acceptable as a user or device id in a
// token: 1 to MaxIDBytes bytes of valid UTF-8 without control characters
// (C0, DEL, C1; so no NUL) and without U+FFFD, which is what a lossy
// decoding leaves behind.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || (r >= 0x80 && r <= 0x9f) {
			return false
		}
		i += size
	}
	return true
}

// numericDate decodes a JWT NumericDate (RFC 7519 §2): a JSON number of
// seconds, fractions truncated, within [0, maxNumericDate]. nil or null
// means absent.
func numericDate(val []byte) (sec int64, ok bool, err error) {
	if val == nil || string(val) == "null" {
		return 0, false, nil
	}
	if c := val[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false, errDateType
	}
	if n, ok := smallUint(val); ok {
		if n > maxNumericDate {
			return 0, false, errDateRange
		}
		return n, true, nil
	}
	f, perr := strconv.ParseFloat(string(val), 64)
	if perr != nil || math.IsNaN(f) || f < 0 || f >= maxNumericDate+1 {
		return 0, false, errDateRange
	}
	return int64(f), true, nil
}

// smallUint parses val if it is a plain integer of at most 12 digits,
// which cannot overflow.
func smallUint(val []byte) (int64, bool) {
	if len(val) > 12 {
		return 0, false
	}
	var n int64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// members iterates over the members of a JSON object. Keys containing
// escapes are refused so that no two spellings name the same claim.
// (Written as an iterator rather than with a callback so that the
// decoding buffers stay on the stack.)
type members struct {
	data []byte
	i    int
}

// newMembers checks that data is one valid JSON object and returns an
// iterator positioned on its first member.
func newMembers(data []byte) (members, error) {
	if !json.Valid(data) {
		return members{}, errJSON
	}
	// data is valid JSON from here on, which keeps the scanner simple.
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return members{}, errJSON
	}
	return members{data: data, i: skipSpace(data, i+1)}, nil
}

// next returns the raw key (quotes removed) and raw value of the next
// member, or ok false after the last one.
func (m *members) next() (key, val []byte, ok bool, err error) {
	data, i := m.data, m.i
	if data[i] == '}' {
		return nil, nil, false, nil
	}
	end := stringEnd(data, i)
	key = data[i+1 : end-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		return nil, nil, false, errEscapedKey
	}
	i = skipSpace(data, end)
	i = skipSpace(data, i+1) // past ':'
	start := i
	i = valueEnd(data, i)
	val = data[start:i]
	i = skipSpace(data, i)
	if data[i] == ',' {
		i = skipSpace(data, i+1)
	}
	m.i = i
	return key, val, true, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at i.
func stringEnd(data []byte, i int) int {
	for i++; ; i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just past the JSON value starting at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i = stringEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// Issuer mints HS256 tokens that Verifier accepts. It is safe for
// concurrent use.
type Issuer struct {
	secret []byte
	now    func() time.Time
}

// NewIssuer returns an Issuer. It copies secret, which must be at least
// MinSecretBytes long.
func NewIssuer(secret []byte) (*Issuer, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	return &Issuer{secret: bytes.Clone(secret), now: time.Now}, nil
}

// Issue returns a compact token for user (sub) and device (dev, omitted
// when empty) with iat now and exp now+ttl rounded down to the second.
// user must satisfy ValidID, device too unless empty, and ttl must be at
// least a second; otherwise the error wraps the sentinel Verify would
// have returned for such a token. Safe for concurrent use.
func (is *Issuer) Issue(user, device string, ttl time.Duration) (string, error) {
	switch {
	case user == "":
		return "", fmt.Errorf("auth: issue: %w", errNoSub)
	case !ValidID(user):
		return "", fmt.Errorf("auth: issue: %w", errSubValue)
	case device != "" && !ValidID(device):
		return "", fmt.Errorf("auth: issue: %w", errDevValue)
	case ttl < time.Second:
		return "", fmt.Errorf("auth: issue: ttl %v is under a second", ttl)
	}
	now := is.now()
	claims := jwt.MapClaims{
		"sub": user,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if device != "" {
		claims["dev"] = device
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.secret)
	if err != nil {
		return "", fmt.Errorf("auth: issue: %w", err)
	}
	return s, nil
}
