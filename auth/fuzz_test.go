package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to Verify: it must not panic, every
// error must be one of the five kinds, and an accepted token must carry a
// signature that an independent HMAC computation confirms.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(sign(testSecret, stdHeader, claimsJSON("alice", `"dev":"phone","iat":1800000000`))))
	f.Add([]byte(sign(testSecret, `{"alg":"HS256"}`, claimsJSON("bob", ""))))
	f.Add([]byte(seg(`{"alg":"none","typ":"JWT"}`) + "." + seg(claimsJSON("alice", "")) + "."))
	f.Add([]byte(sign(testSecret, `{"alg":"HS512"}`, claimsJSON("alice", ""))))
	f.Add([]byte(sign(testSecret, stdHeader, `{"sub":"alice"}`)))
	f.Add([]byte("garbage"))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Add([]byte{})

	v := newTestVerifier(f, time.Minute)
	f.Fuzz(func(t *testing.T, token []byte) {
		c, err := v.Verify(token)
		if err != nil {
			if Kind(err) == "other" {
				t.Fatalf("error of no known kind: %v", err)
			}
			if c != (Claims{}) {
				t.Fatalf("claims %+v returned with error %v", c, err)
			}
			return
		}
		if !signatureVerifies(testSecret, token) {
			t.Fatalf("accepted a token whose signature does not verify: %q", token)
		}
		if !ValidID(c.User) || (c.Device != "" && !ValidID(c.Device)) {
			t.Fatalf("accepted invalid ids: %+v", c)
		}
		if !testNow.Before(c.Expires.Add(time.Minute)) {
			t.Fatalf("accepted an expired token: %+v", c)
		}
	})
}

// signatureVerifies is an independent check of an HS256 compact token.
func signatureVerifies(secret, token []byte) bool {
	parts := bytes.Split(token, []byte("."))
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(string(parts[2]))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(token[:len(parts[0])+1+len(parts[1])])
	return hmac.Equal(mac.Sum(nil), sig)
}

// FuzzVerifySigned signs arbitrary header and payload bytes with the
// right secret, which lets the fuzzer reach the claims parser, and
// checks Verify against golang-jwt: whatever Verify accepts, golang-jwt
// must accept with the same claims.
func FuzzVerifySigned(f *testing.F) {
	f.Add([]byte(stdHeader), []byte(claimsJSON("alice", `"dev":"phone","iat":1800000000`)))
	f.Add([]byte(`{"alg":"HS256"}`), []byte(`{"sub":"a\u0026b","exp":1.8000036e9,"x":{"y":["}"]}}`))
	f.Add([]byte(`{"alg":"none"}`), []byte(claimsJSON("alice", "")))
	f.Add([]byte(stdHeader), []byte(`{"sub":"alice","exp":1800003600,"nbf":1800000000}`))
	f.Add([]byte(stdHeader), []byte(`{"sub":"alice","sub":"bob","exp":1800003600}`))
	f.Add([]byte(stdHeader), []byte(`{"sub":"","exp":null}`))
	f.Add([]byte(stdHeader), []byte("garbage"))

	v := newTestVerifier(f, time.Minute)
	ref := refParser(testNow, time.Minute)
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		token := sign(testSecret, string(header), string(payload))
		c, err := v.Verify([]byte(token))
		if err != nil {
			if Kind(err) == "other" {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		rc, rerr := refVerify(ref, testSecret, token)
		if rerr != nil {
			t.Fatalf("Verify accepts %q.%q, golang-jwt refuses: %v", header, payload, rerr)
		}
		if !sameClaims(c, rc) {
			t.Fatalf("claims differ for %q: Verify %+v, golang-jwt %+v", payload, c, rc)
		}
	})
}
