package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	testNow    = time.Unix(1_800_000_000, 0)
	testExp    = testNow.Add(time.Hour).Unix()
)

const stdHeader = `{"alg":"HS256","typ":"JWT"}`

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signSegs signs already-encoded segments with HMAC-SHA256.
func signSegs(secret []byte, hseg, pseg string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(hseg + "." + pseg))
	return hseg + "." + pseg + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sign builds a token from JSON header and payload text, signed with secret
// under HS256 whatever the header says.
func sign(secret []byte, header, payload string) string {
	return signSegs(secret, seg(header), seg(payload))
}

func newTestVerifier(t testing.TB, leeway time.Duration) *Verifier {
	t.Helper()
	v, err := NewVerifierConfig(testSecret, VerifierConfig{
		Leeway: leeway,
		Now:    func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// refParser is golang-jwt configured as the package doc describes.
func refParser(now time.Time, leeway time.Duration) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
}

var errRefClaim = errors.New("ref: invalid sub or dev")

// refVerify is the reference verifier: golang-jwt plus the sub and dev
// rules that golang-jwt does not know.
func refVerify(p *jwt.Parser, secret []byte, token string) (Claims, error) {
	mc := jwt.MapClaims{}
	_, err := p.ParseWithClaims(token, mc, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		return Claims{}, err
	}
	sub, err := mc.GetSubject()
	if err != nil || !ValidID(sub) {
		return Claims{}, errRefClaim
	}
	var dev string
	if d, ok := mc["dev"]; ok && d != nil {
		s, ok := d.(string)
		if !ok || (s != "" && !ValidID(s)) {
			return Claims{}, errRefClaim
		}
		dev = s
	}
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil {
		return Claims{}, errors.New("ref: exp")
	}
	return Claims{User: sub, Device: dev, Expires: exp.Time}, nil
}

func sameClaims(a, b Claims) bool {
	return a.User == b.User && a.Device == b.Device && a.Expires.Equal(b.Expires)
}
