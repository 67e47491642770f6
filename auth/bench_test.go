package auth

import (
	"testing"
	"time"
)

// Figures and the command that reproduces them are in doc.go.

func benchToken(b *testing.B) []byte {
	is, err := NewIssuer(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	is.now = func() time.Time { return testNow }
	tok, err := is.Issue("user-0123456789", "device-01", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return []byte(tok)
}

// BenchmarkVerify measures a successful check of a token as Issuer makes
// it, with this package and with golang-jwt configured as in the doc.
func BenchmarkVerify(b *testing.B) {
	tok := benchToken(b)
	b.Run("auth", func(b *testing.B) {
		v := newTestVerifier(b, 0)
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("golang-jwt", func(b *testing.B) {
		p := refParser(testNow, 0)
		s := string(tok)
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			if _, err := refVerify(p, testSecret, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("auth-parallel", func(b *testing.B) {
		v := newTestVerifier(b, 0)
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkVerifyRefuse measures the refusal paths a flood of bad
// upgrades would hit.
func BenchmarkVerifyRefuse(b *testing.B) {
	tok := benchToken(b)
	forged := append([]byte(nil), tok...)
	copy(forged[len(forged)-4:], "AAAA")
	for _, bc := range []struct {
		name string
		tok  []byte
	}{
		{"signature", forged},
		{"alg-none", []byte(seg(`{"alg":"none"}`) + "." + seg(claimsJSON("alice", "")) + ".")},
		{"garbage", []byte("not a token at all")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newTestVerifier(b, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(bc.tok); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
