package assets

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestSignedURL(t *testing.T) {
	s := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Unix(1_800_000_000, 0)
	q, err := url.ParseQuery(s.Sign("/v1/assets/ABC", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := q.Get("exp"), q.Get("sig")
	if err := s.Verify("/v1/assets/ABC", exp, sig, now); err != nil {
		t.Fatalf("a fresh URL: %v", err)
	}
	for _, c := range []struct {
		name           string
		path, exp, sig string
		now            time.Time
		want           error
	}{
		{"another asset", "/v1/assets/ABD", exp, sig, now, ErrBadSignature},
		{"the thumbnail instead", "/v1/assets/ABC/thumb", exp, sig, now, ErrBadSignature},
		{"expiry pushed back", "/v1/assets/ABC", "1800007200", sig, now, ErrBadSignature},
		{"signature flipped", "/v1/assets/ABC", exp, "A" + sig[1:], now, ErrBadSignature},
		{"not base64", "/v1/assets/ABC", exp, "%%%", now, ErrBadSignature},
		{"no expiry", "/v1/assets/ABC", "", sig, now, ErrBadSignature},
		{"expired", "/v1/assets/ABC", exp, sig, now.Add(time.Hour), ErrExpired},
	} {
		if err := s.Verify(c.path, c.exp, c.sig, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	other := NewSigner([]byte("another secret, another server.."))
	if err := other.Verify("/v1/assets/ABC", exp, sig, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another secret's signer accepted it: %v", err)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 10_000 {
		id := NewID()
		if !ValidID(id) {
			t.Fatalf("NewID() = %q, not a valid id", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "short", "0123456789ABCDEFGHJKMNPQRI", "0123456789abcdefghjkmnpqrs"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}
