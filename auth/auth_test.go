package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claimsJSON returns a payload with sub, exp and extra members.
func claimsJSON(sub string, extra string) string {
	q, err := json.Marshal(sub)
	if err != nil {
		panic(err)
	}
	s := fmt.Sprintf(`{"sub":%s,"exp":%d`, q, testExp)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// flipTrailingBits returns seg with the unused low bits of its last
// base64url character set: the same bytes for a lenient decoder.
func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

func TestVerifyTable(t *testing.T) {
	valid := sign(testSecret, stdHeader, claimsJSON("alice", `"dev":"phone","iat":1800000000`))
	validParts := strings.Split(valid, ".")
	otherSecret := []byte("another secret, also 32 bytes...")

	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512,
		jwt.MapClaims{"sub": "alice", "exp": testExp}).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384,
		jwt.MapClaims{"sub": "alice", "exp": testExp}).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256,
		jwt.MapClaims{"sub": "alice", "exp": testExp}).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}

	big := strings.Repeat("x", 2500) // payload decodes off the stack buffer
	huge := strings.Repeat("x", MaxTokenBytes)

	cases := []struct {
		name  string
		token string
		want  error  // nil: accepted
		user  string // when accepted
		dev   string
		// refAccepts: golang-jwt accepts a token Verify refuses, a
		// deliberate and documented extra strictness.
		refAccepts bool
	}{
		{name: "valid", token: valid, user: "alice", dev: "phone"},
		{name: "valid no dev", token: sign(testSecret, stdHeader, claimsJSON("alice", "")), user: "alice"},
		{name: "valid dev null", token: sign(testSecret, stdHeader, claimsJSON("alice", `"dev":null`)), user: "alice"},
		{name: "valid dev empty", token: sign(testSecret, stdHeader, claimsJSON("alice", `"dev":""`)), user: "alice"},
		{name: "header without typ", token: sign(testSecret, `{"alg":"HS256"}`, claimsJSON("alice", "")), user: "alice"},
		{name: "header with kid and spaces", token: sign(testSecret, ` { "kid" : "k1" , "alg" : "HS256" } `, claimsJSON("alice", "")), user: "alice"},
		{name: "escaped sub", token: sign(testSecret, stdHeader, `{"sub":"a\u0026b\u00e9","exp":`+fmt.Sprint(testExp)+`}`), user: "a&bé"},
		{name: "utf8 sub", token: sign(testSecret, stdHeader, claimsJSON("żółw🐢", "")), user: "żółw🐢"},
		{name: "sub 128 bytes", token: sign(testSecret, stdHeader, claimsJSON(strings.Repeat("u", 128), "")), user: strings.Repeat("u", 128)},
		{name: "fractional exp", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"sub":"alice","exp":%d.75}`, testExp)), user: "alice"},
		{name: "exponent exp", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":1.8000036e9}`), user: "alice"},
		{name: "nested unknown claims", token: sign(testSecret, stdHeader, claimsJSON("alice", `"x":{"y":["}",{"z":"]\""}],"w":[]},"n":-1.5e-3,"t":true,"f":null`)), user: "alice"},
		{name: "nbf past", token: sign(testSecret, stdHeader, claimsJSON("alice", `"nbf":1799999999`)), user: "alice"},
		{name: "big payload", token: sign(testSecret, stdHeader, claimsJSON("alice", `"pad":"`+big+`"`)), user: "alice"},

		{name: "empty", token: "", want: ErrMalformed},
		{name: "garbage", token: "garbage", want: ErrMalformed},
		{name: "two segments", token: "a.b", want: ErrMalformed},
		{name: "four segments", token: valid + ".x", want: ErrMalformed},
		{name: "dots", token: "..", want: ErrMalformed},
		{name: "binary", token: "\x00\xff.\x01.\x02", want: ErrMalformed},
		{name: "leading space", token: " " + valid, want: ErrMalformed},
		{name: "padded signature", token: valid + "=", want: ErrMalformed},
		{name: "short signature", token: valid[:len(valid)-1], want: ErrMalformed},
		{name: "signature bad char", token: valid[:len(valid)-1] + "*", want: ErrMalformed},
		{name: "signature trailing bits", token: validParts[0] + "." + validParts[1] + "." + flipTrailingBits(validParts[2]), want: ErrMalformed, refAccepts: true},
		{name: "too long", token: sign(testSecret, stdHeader, claimsJSON("alice", `"pad":"`+huge+`"`)), want: ErrMalformed, refAccepts: true},
		{name: "header not base64", token: "*." + validParts[1] + "." + validParts[2], want: ErrMalformed},
		{name: "header not json", token: sign(testSecret, `{"alg":"HS256"`, claimsJSON("alice", "")), want: ErrMalformed},
		{name: "header array", token: sign(testSecret, `["HS256"]`, claimsJSON("alice", "")), want: ErrMalformed},
		{name: "header too long", token: sign(testSecret, `{"alg":"HS256","x":"`+strings.Repeat("y", 200)+`"}`, claimsJSON("alice", "")), want: ErrMalformed, refAccepts: true},
		{name: "header crit", token: sign(testSecret, `{"alg":"HS256","crit":["exp"]}`, claimsJSON("alice", "")), want: ErrMalformed, refAccepts: true},
		{name: "header duplicate alg", token: sign(testSecret, `{"alg":"none","alg":"HS256"}`, claimsJSON("alice", "")), want: ErrMalformed, refAccepts: true},
		{name: "header escaped key", token: sign(testSecret, `{"\u0061lg":"HS256"}`, claimsJSON("alice", "")), want: ErrMalformed, refAccepts: true},
		{name: "payload not base64", token: signSegs(testSecret, seg(stdHeader), "***"), want: ErrMalformed},
		{name: "payload not json", token: sign(testSecret, stdHeader, `{"sub":`), want: ErrMalformed},
		{name: "payload array", token: sign(testSecret, stdHeader, `[]`), want: ErrMalformed},
		{name: "payload null", token: sign(testSecret, stdHeader, `null`), want: ErrMalformed},
		{name: "payload string", token: sign(testSecret, stdHeader, `"sub"`), want: ErrMalformed},
		{name: "payload two values", token: sign(testSecret, stdHeader, claimsJSON("alice", "")+"{}"), want: ErrMalformed},
		{name: "duplicate sub", token: sign(testSecret, stdHeader, claimsJSON("alice", `"sub":"root"`)), want: ErrMalformed, refAccepts: true},
		{name: "escaped claim key", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"\u0073ub":"alice","exp":%d}`, testExp)), want: ErrMalformed, refAccepts: true},
		{name: "sub 129 bytes", token: sign(testSecret, stdHeader, claimsJSON(strings.Repeat("u", 129), "")), want: ErrMalformed},
		{name: "sub NUL", token: sign(testSecret, stdHeader, claimsJSON("a\x00b", "")), want: ErrMalformed},
		{name: "sub newline", token: sign(testSecret, stdHeader, claimsJSON("a\nb", "")), want: ErrMalformed},
		{name: "sub DEL", token: sign(testSecret, stdHeader, claimsJSON("a\x7fb", "")), want: ErrMalformed},
		{name: "sub C1 control", token: sign(testSecret, stdHeader, claimsJSON("a\u0085b", "")), want: ErrMalformed},
		{name: "sub raw control", token: sign(testSecret, stdHeader, "{\"sub\":\"a\x01b\",\"exp\":1800003600}"), want: ErrMalformed},
		{name: "sub invalid utf8", token: sign(testSecret, stdHeader, "{\"sub\":\"a\xffb\",\"exp\":1800003600}"), want: ErrMalformed},
		{name: "sub lone surrogate", token: sign(testSecret, stdHeader, `{"sub":"a\ud800b","exp":1800003600}`), want: ErrMalformed},
		{name: "sub number", token: sign(testSecret, stdHeader, `{"sub":7,"exp":1800003600}`), want: ErrMalformed},
		{name: "dev number", token: sign(testSecret, stdHeader, claimsJSON("alice", `"dev":7`)), want: ErrMalformed},
		{name: "dev too long", token: sign(testSecret, stdHeader, claimsJSON("alice", `"dev":"`+strings.Repeat("d", 129)+`"`)), want: ErrMalformed},
		{name: "exp string", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":"1800003600"}`), want: ErrMalformed},
		{name: "exp negative", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":-1}`), want: ErrMalformed},
		{name: "exp huge", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":1e300}`), want: ErrMalformed},
		{name: "iat string", token: sign(testSecret, stdHeader, claimsJSON("alice", `"iat":"yesterday"`)), want: ErrMalformed, refAccepts: true},
		{name: "nbf string", token: sign(testSecret, stdHeader, claimsJSON("alice", `"nbf":"now"`)), want: ErrMalformed},

		{name: "bad signature", token: sign(otherSecret, stdHeader, claimsJSON("alice", "")), want: ErrSignature},
		{name: "tampered payload", token: validParts[0] + "." + seg(claimsJSON("mallory", `"dev":"phone"`)) + "." + validParts[2], want: ErrSignature},
		{name: "tampered header", token: seg(`{"alg":"HS256"}`) + "." + validParts[1] + "." + validParts[2], want: ErrSignature},
		{name: "signature of other token", token: validParts[0] + "." + validParts[1] + "." + strings.Split(sign(testSecret, stdHeader, claimsJSON("bob", "")), ".")[2], want: ErrSignature},

		{name: "expired", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"sub":"alice","exp":%d}`, testNow.Unix()-1)), want: ErrExpired},
		{name: "expires now", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"sub":"alice","exp":%d}`, testNow.Unix())), want: ErrExpired},
		{name: "exp zero", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":0}`), want: ErrExpired},
		{name: "nbf future", token: sign(testSecret, stdHeader, claimsJSON("alice", `"nbf":1800000001`)), want: ErrExpired},

		{name: "missing exp", token: sign(testSecret, stdHeader, `{"sub":"alice"}`), want: ErrMissingClaim},
		{name: "exp null", token: sign(testSecret, stdHeader, `{"sub":"alice","exp":null}`), want: ErrMissingClaim},
		{name: "missing sub", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"exp":%d}`, testExp)), want: ErrMissingClaim},
		{name: "empty sub", token: sign(testSecret, stdHeader, claimsJSON("", "")), want: ErrMissingClaim},
		{name: "null sub", token: sign(testSecret, stdHeader, fmt.Sprintf(`{"sub":null,"exp":%d}`, testExp)), want: ErrMissingClaim},
		{name: "empty object", token: sign(testSecret, stdHeader, `{}`), want: ErrMissingClaim},

		{name: "alg none", token: seg(`{"alg":"none","typ":"JWT"}`) + "." + seg(claimsJSON("alice", "")) + ".", want: ErrAlgorithm},
		{name: "alg None", token: seg(`{"alg":"None"}`) + "." + seg(claimsJSON("alice", "")) + ".", want: ErrAlgorithm},
		{name: "alg none with signature", token: sign(testSecret, `{"alg":"none"}`, claimsJSON("alice", "")), want: ErrAlgorithm},
		{name: "alg missing", token: sign(testSecret, `{"typ":"JWT"}`, claimsJSON("alice", "")), want: ErrAlgorithm},
		{name: "alg lower case", token: sign(testSecret, `{"alg":"hs256"}`, claimsJSON("alice", "")), want: ErrAlgorithm},
		{name: "alg not string", token: sign(testSecret, `{"alg":256}`, claimsJSON("alice", "")), want: ErrAlgorithm},
		{name: "alg escaped", token: sign(testSecret, `{"alg":"HS\u0032\u00356"}`, claimsJSON("alice", "")), want: ErrAlgorithm, refAccepts: true},
		{name: "alg HS512 same secret", token: hs512, want: ErrAlgorithm},
		{name: "alg HS384 same secret", token: hs384, want: ErrAlgorithm},
		{name: "alg RS256", token: rs256, want: ErrAlgorithm},
		{name: "alg RS256 header HMAC signature", token: sign(testSecret, `{"alg":"RS256","typ":"JWT"}`, claimsJSON("alice", "")), want: ErrAlgorithm},
	}

	v := newTestVerifier(t, 0)
	ref := refParser(testNow, 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify([]byte(tc.token))
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Verify: %v, want success", err)
			case tc.want == nil:
				want := Claims{User: tc.user, Device: tc.dev, Expires: time.Unix(testExp, 0)}
				if !sameClaims(got, want) {
					t.Fatalf("Verify = %+v, want %+v", got, want)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			case got != Claims{}:
				t.Fatalf("Verify returned claims %+v with error", got)
			case Kind(err) == "other":
				t.Fatalf("Kind(%v) = other", err)
			}
			if err != nil {
				for _, part := range strings.Split(tc.token, ".") {
					if len(part) > 4 && strings.Contains(err.Error(), part) {
						t.Fatalf("error %q quotes the token", err)
					}
				}
			}

			refGot, refErr := refVerify(ref, testSecret, tc.token)
			switch {
			case err == nil && refErr != nil:
				t.Fatalf("golang-jwt refuses what Verify accepts: %v", refErr)
			case err == nil && !sameClaims(got, refGot):
				t.Fatalf("golang-jwt claims %+v, Verify %+v", refGot, got)
			case err != nil && tc.refAccepts && refErr != nil:
				t.Fatalf("golang-jwt now refuses too (%v): drop refAccepts", refErr)
			case err != nil && !tc.refAccepts && refErr == nil:
				t.Fatalf("golang-jwt accepts what Verify refuses (%v)", err)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	expired := sign(testSecret, stdHeader, fmt.Sprintf(`{"sub":"alice","exp":%d}`, testNow.Unix()-2))
	early := sign(testSecret, stdHeader, claimsJSON("alice", fmt.Sprintf(`"nbf":%d`, testNow.Unix()+2)))
	for _, tc := range []struct {
		leeway           time.Duration
		okExpired, okNbf bool
	}{
		{0, false, false},
		{2 * time.Second, false, true}, // valid while now < exp+leeway and now >= nbf-leeway
		{3 * time.Second, true, true},
	} {
		v := newTestVerifier(t, tc.leeway)
		ref := refParser(testNow, tc.leeway)
		for tok, ok := range map[string]bool{expired: tc.okExpired, early: tc.okNbf} {
			_, err := v.Verify([]byte(tok))
			_, refErr := refVerify(ref, testSecret, tok)
			if (err == nil) != ok || (refErr == nil) != (err == nil) {
				t.Errorf("leeway %v: Verify err %v, golang-jwt err %v, want ok=%v", tc.leeway, err, refErr, ok)
			}
			if err != nil && !errors.Is(err, ErrExpired) {
				t.Errorf("leeway %v: %v, want ErrExpired", tc.leeway, err)
			}
		}
	}
}

func TestVerifierConfig(t *testing.T) {
	if _, err := NewVerifier(testSecret[:31]); err == nil {
		t.Error("NewVerifier accepted a 31-byte secret")
	}
	if _, err := NewVerifier(nil); err == nil {
		t.Error("NewVerifier accepted a nil secret")
	}
	for _, l := range []time.Duration{-time.Second, MaxLeeway + 1} {
		if _, err := NewVerifierConfig(testSecret, VerifierConfig{Leeway: l}); err == nil {
			t.Errorf("leeway %v accepted", l)
		}
	}
	// The verifier copies the secret.
	secret := []byte(string(testSecret))
	v, err := NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 1
	is, _ := NewIssuer(testSecret)
	tok, _ := is.Issue("alice", "", time.Hour)
	if _, err := v.Verify([]byte(tok)); err != nil {
		t.Errorf("verifier did not copy its secret: %v", err)
	}
}

func TestIssueRoundTrip(t *testing.T) {
	is, err := NewIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	is.now = func() time.Time { return testNow.Add(300 * time.Millisecond) }
	v := newTestVerifier(t, 0)
	for _, dev := range []string{"", "phone-1"} {
		tok, err := is.Issue("alice", dev, 90*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Issuer's header is the one Verify recognises without parsing.
		if !strings.HasPrefix(tok, string(hs256Header)+".") {
			t.Errorf("issued header %q is not the canonical one", strings.Split(tok, ".")[0])
		}
		got, err := v.Verify([]byte(tok))
		if err != nil {
			t.Fatalf("Verify(Issue(dev=%q)): %v", dev, err)
		}
		want := Claims{User: "alice", Device: dev, Expires: testNow.Add(90 * time.Second)}
		if !sameClaims(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if _, err := refVerify(refParser(testNow, 0), testSecret, tok); err != nil {
			t.Errorf("golang-jwt refuses an issued token: %v", err)
		}
	}

	// The token expires at its exp second.
	tok, _ := is.Issue("alice", "", time.Minute)
	late, _ := NewVerifierConfig(testSecret, VerifierConfig{Now: func() time.Time { return testNow.Add(time.Minute) }})
	if _, err := late.Verify([]byte(tok)); !errors.Is(err, ErrExpired) {
		t.Errorf("at exp: %v, want ErrExpired", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	if _, err := NewIssuer(testSecret[:16]); err == nil {
		t.Error("NewIssuer accepted a 16-byte secret")
	}
	is, err := NewIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, dev string
		ttl       time.Duration
		want      error
	}{
		{"", "", time.Hour, ErrMissingClaim},
		{"a\x00b", "", time.Hour, ErrMalformed},
		{strings.Repeat("u", 129), "", time.Hour, ErrMalformed},
		{"alice", "d\nx", time.Hour, ErrMalformed},
		{"alice", "", 999 * time.Millisecond, nil},
		{"alice", "", -time.Hour, nil},
	} {
		tok, err := is.Issue(tc.user, tc.dev, tc.ttl)
		if err == nil || tok != "" {
			t.Errorf("Issue(%q, %q, %v) = %q, %v; want error", tc.user, tc.dev, tc.ttl, tok, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Issue(%q, %q, %v): %v, want %v", tc.user, tc.dev, tc.ttl, err, tc.want)
		}
	}
}

func TestKind(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                  "",
		ErrMalformed:                         "malformed",
		errBase64:                            "malformed",
		fmt.Errorf("x: %w", errBadSignature): "signature",
		errExpired:                           "expired",
		errNoSub:                             "missing_claim",
		errAlgRefused:                        "algorithm",
		errors.New("boom"):                   "other",
	} {
		if got := Kind(err); got != want {
			t.Errorf("Kind(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"alice":                  true,
		"user-42@example.org":    true,
		"日本":                     true,
		strings.Repeat("é", 64):  true, // 128 bytes
		strings.Repeat("é", 65):  false,
		"":                       false,
		"a\tb":                   false,
		"a\u200bb":               true, // format, not control
		"\ufffd":                 false,
		"a\xc3":                  false,
		"\u009f":                 false,
		strings.Repeat("x", 128): true,
		strings.Repeat("x", 129): false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newTestVerifier(t, 0)
	good := []byte(sign(testSecret, stdHeader, claimsJSON("alice", `"dev":"d1"`)))
	bad := []byte(sign([]byte("another secret, also 32 bytes..."), stdHeader, claimsJSON("alice", "")))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if (g+i)%2 == 0 {
					if c, err := v.Verify(good); err != nil || c.User != "alice" || c.Device != "d1" {
						t.Errorf("good token: %+v, %v", c, err)
						return
					}
				} else if _, err := v.Verify(bad); !errors.Is(err, ErrSignature) {
					t.Errorf("bad token: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	v := newTestVerifier(t, 0)
	is, _ := NewIssuer(testSecret)
	is.now = func() time.Time { return testNow }
	tok, _ := is.Issue("alice", "phone", time.Hour)
	good := []byte(tok)
	bad := []byte(tok[:len(tok)-2] + "AA")
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(good) }); n > 2 {
		t.Errorf("Verify(valid) allocates %v times, want at most 2 (user, device)", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(bad) }); n > 0 {
		t.Errorf("Verify(bad signature) allocates %v times, want 0", n)
	}
}
