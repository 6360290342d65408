package hooks_test

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hookbay/hookbay/hooks"
)

// authNow is the clock of every auth test: a whole second, because JWT
// times are whole seconds.
var authNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// Test credentials. They are long and distinctive so that a leak into an
// error message cannot match by accident.
const testAuthValue = "Bearer fixed-Value-s3cret-7f1c2a"

var testJWTSecret = []byte("jwt-shared-s3cret-0123456789abcdef")

// fixedClock returns a clock that always reads t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// signJWT signs claims with method and key.
func signJWT(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// validClaims are claims valid at now: issued now, expiring in five minutes.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": "bubblehouse", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// assertUnauthorized checks that err refuses the credentials with
// EUNAUTHORIZED and that no part of the error repeats a secret.
func assertUnauthorized(tb testing.TB, err error, secrets ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got nil error, want %s", hooks.EUNAUTHORIZED)
	}
	if got, want := hooks.ErrorCode(err), hooks.EUNAUTHORIZED; got != want {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, want)
	}
	assertNoLeak(tb, err, secrets...)
}

// assertNoLeak checks that no text err carries contains one of secrets.
// Secrets shorter than 12 bytes are skipped: they would match the fixed
// wording of the messages ("Bearer <JWT>").
func assertNoLeak(tb testing.TB, err error, secrets ...string) {
	tb.Helper()
	texts := []string{err.Error(), hooks.ErrorMessage(err), hooks.ErrorHint(err)}
	for _, s := range secrets {
		if len(s) < 12 {
			continue
		}
		for _, text := range texts {
			if strings.Contains(text, s) {
				tb.Fatalf("error %q contains the secret %q", text, s)
			}
		}
	}
}

func TestBubblehouseAuth_Check(t *testing.T) {
	// The secrets no error may repeat, whatever the header.
	secrets := []string{testAuthValue, strings.TrimPrefix(testAuthValue, "Bearer "), string(testJWTSecret)}

	t.Run("FixedValue", func(t *testing.T) {
		// Bubblehouse "Hooks API" "Authentication": the integrator
		// configures the Authorization value Bubblehouse sends.
		a := &hooks.BubblehouseAuth{Authorization: testAuthValue, Now: fixedClock(authNow)}
		if err := a.Check(testAuthValue); err != nil {
			t.Fatalf("configured value: got %v, want nil", err)
		}
	})

	t.Run("FixedValueVariants", func(t *testing.T) {
		// Bubblehouse "Hooks API" reference "Authentication": the fixed value is
		// compared exactly (in constant time); near misses are refused.
		a := &hooks.BubblehouseAuth{Authorization: testAuthValue, Now: fixedClock(authNow)}
		variants := map[string]string{
			"Empty":         "",
			"Prefix":        testAuthValue[:len(testAuthValue)-1],
			"PrefixHalf":    testAuthValue[:len(testAuthValue)/2],
			"Suffix":        testAuthValue + "x",
			"SuffixSpace":   testAuthValue + " ",
			"LeadingSpace":  " " + testAuthValue,
			"Upper":         strings.ToUpper(testAuthValue),
			"Lower":         strings.ToLower(testAuthValue),
			"SchemeOnly":    "Bearer",
			"TokenOnly":     strings.TrimPrefix(testAuthValue, "Bearer "),
			"OtherScheme":   "Basic " + strings.TrimPrefix(testAuthValue, "Bearer "),
			"TrailingNUL":   testAuthValue + "\x00",
			"LastByteFlip":  testAuthValue[:len(testAuthValue)-1] + "b",
			"FirstByteFlip": "b" + testAuthValue[1:],
		}
		for name, header := range variants {
			t.Run(name, func(t *testing.T) {
				assertUnauthorized(t, a.Check(header), append(secrets, header)...)
			})
		}
	})

	t.Run("JWT", func(t *testing.T) {
		// Bubblehouse "Hooks API" reference "Authentication": JWT HS256 Bearer
		// token, with a small clock-skew allowance on exp, nbf and iat.
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
			c := validClaims(authNow)
			if mod != nil {
				mod(c)
			}
			return c
		}
		tests := []struct {
			name   string
			claims jwt.MapClaims
			ok     bool
		}{
			{"OK", claims(nil), true},
			{"ExpiredWithinLeeway", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(-time.Hour).Unix()
				c["exp"] = authNow.Add(-hooks.JWTLeeway + time.Second).Unix()
			}), true},
			{"ExpiredBeyondLeeway", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(-time.Hour).Unix()
				c["exp"] = authNow.Add(-hooks.JWTLeeway - time.Second).Unix()
			}), false},
			{"ExpiredLongAgo", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(-48 * time.Hour).Unix()
				c["exp"] = authNow.Add(-24 * time.Hour).Unix()
			}), false},
			{"NotBeforeWithinLeeway", claims(func(c jwt.MapClaims) {
				c["nbf"] = authNow.Add(hooks.JWTLeeway - time.Second).Unix()
			}), true},
			{"NotBeforeInFuture", claims(func(c jwt.MapClaims) {
				c["nbf"] = authNow.Add(hooks.JWTLeeway + time.Second).Unix()
			}), false},
			{"IssuedWithinLeeway", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(hooks.JWTLeeway - time.Second).Unix()
			}), true},
			{"IssuedInFuture", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(hooks.JWTLeeway + time.Second).Unix()
			}), false},
			{"IssuedFarInFuture", claims(func(c jwt.MapClaims) {
				c["iat"] = authNow.Add(time.Hour).Unix()
				c["exp"] = authNow.Add(2 * time.Hour).Unix()
			}), false},
			{"ExpNotANumber", claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				token := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, tt.claims)
				err := a.Check("Bearer " + token)
				if tt.ok {
					if err != nil {
						t.Fatalf("got %v, want nil", err)
					}
					return
				}
				assertUnauthorized(t, err, append(secrets, token)...)
			})
		}
	})

	t.Run("JWTWrongAlgorithm", func(t *testing.T) {
		// Bubblehouse "Hooks API" reference "Authentication": reject alg none
		// and any algorithm other than HS256.
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tokens := map[string]string{
			"None":  signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(authNow)),
			"HS384": signJWT(t, jwt.SigningMethodHS384, testJWTSecret, validClaims(authNow)),
			"HS512": signJWT(t, jwt.SigningMethodHS512, testJWTSecret, validClaims(authNow)),
			"RS256": signJWT(t, jwt.SigningMethodRS256, rsaKey, validClaims(authNow)),
		}
		for name, token := range tokens {
			t.Run(name, func(t *testing.T) {
				assertUnauthorized(t, a.Check("Bearer "+token), append(secrets, token)...)
			})
		}
	})

	t.Run("JWTWrongSecret", func(t *testing.T) {
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		for name, secret := range map[string][]byte{
			"Other":  []byte("another-s3cret-0123456789abcdef00"),
			"Prefix": testJWTSecret[:len(testJWTSecret)-1],
			"Empty":  {},
		} {
			t.Run(name, func(t *testing.T) {
				token := signJWT(t, jwt.SigningMethodHS256, secret, validClaims(authNow))
				assertUnauthorized(t, a.Check("Bearer "+token), append(secrets, token)...)
			})
		}
	})

	t.Run("JWTTampered", func(t *testing.T) {
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		token := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, validClaims(authNow))
		other := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{"sub": "someone-else", "exp": authNow.Add(time.Hour).Unix()})
		parts, otherParts := strings.Split(token, "."), strings.Split(other, ".")
		tampered := map[string]string{
			"SwappedPayload":   parts[0] + "." + otherParts[1] + "." + parts[2],
			"NoSignature":      parts[0] + "." + parts[1] + ".",
			"TruncatedSig":     token[:len(token)-4],
			"SignatureFlipped": parts[0] + "." + parts[1] + "." + flipFirst(parts[2]),
		}
		for name, tok := range tampered {
			t.Run(name, func(t *testing.T) {
				assertUnauthorized(t, a.Check("Bearer "+tok), append(secrets, tok, token)...)
			})
		}
	})

	t.Run("Garbage", func(t *testing.T) {
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		for _, header := range []string{
			"",
			"Bearer",
			"Bearer ",
			"Bearer ..",
			"Bearer a.b.c",
			"Bearer a.b.c.d",
			"Bearer !!!.@@@.###",
			"Bearer eyJhbGciOiJIUzI1NiJ9.e30",
			"Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
			"Bearer \x00\xff\xfe.\x01.\x02",
			"Basic dXNlcjpwYXNzd29yZA==",
			strings.Repeat("A", 10000),
			"Bearer " + strings.Repeat("a.", 2) + strings.Repeat("b", 10000),
		} {
			assertUnauthorized(t, a.Check(header), secrets...)
		}
	})

	t.Run("JWTOnlyNotBearer", func(t *testing.T) {
		// With only a JWT secret configured, anything but "Bearer <JWT>"
		// is refused, including a valid token without its scheme.
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		token := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, validClaims(authNow))
		for name, header := range map[string]string{
			"BareToken":    token,
			"Basic":        "Basic " + token,
			"Token":        "Token " + token,
			"NoSpace":      "Bearer" + token,
			"SecretItself": string(testJWTSecret),
			"FixedValue":   testAuthValue,
		} {
			t.Run(name, func(t *testing.T) {
				assertUnauthorized(t, a.Check(header), append(secrets, token)...)
			})
		}
	})

	t.Run("Both", func(t *testing.T) {
		// Bubblehouse "Hooks API" reference "Authentication": a receiver should
		// support both the fixed value and the JWT; either is enough.
		a := &hooks.BubblehouseAuth{Authorization: testAuthValue, JWTSecret: testJWTSecret, Now: fixedClock(authNow)}
		token := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, validClaims(authNow))
		if err := a.Check(testAuthValue); err != nil {
			t.Errorf("fixed value: got %v, want nil", err)
		}
		if err := a.Check("Bearer " + token); err != nil {
			t.Errorf("JWT: got %v, want nil", err)
		}
		// The auth scheme is case-insensitive (RFC 9110, section 11.1).
		if err := a.Check("bearer " + token); err != nil {
			t.Errorf("JWT with lower-case scheme: got %v, want nil", err)
		}
		expired := signJWT(t, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{"exp": authNow.Add(-time.Hour).Unix()})
		wrong := signJWT(t, jwt.SigningMethodHS256, []byte("another-s3cret-0123456789abcdef00"), validClaims(authNow))
		for name, header := range map[string]string{
			"Empty":       "",
			"Suffix":      testAuthValue + "x",
			"Lower":       strings.ToLower(testAuthValue),
			"Expired":     "Bearer " + expired,
			"WrongSecret": "Bearer " + wrong,
			"BareToken":   token,
			"Garbage":     "Bearer a.b.c",
		} {
			t.Run(name, func(t *testing.T) {
				assertUnauthorized(t, a.Check(header), append(secrets, token, expired, wrong, header)...)
			})
		}
	})

	t.Run("NothingConfigured", func(t *testing.T) {
		// An empty configuration must not let anything through.
		a := &hooks.BubblehouseAuth{Now: fixedClock(authNow)}
		token := signJWT(t, jwt.SigningMethodHS256, []byte{}, validClaims(authNow))
		for _, header := range []string{"", "Bearer ", "Bearer " + token, testAuthValue} {
			assertUnauthorized(t, a.Check(header), secrets...)
		}
	})

	t.Run("DefaultClock", func(t *testing.T) {
		// Without Now, the real clock is used.
		a := &hooks.BubblehouseAuth{JWTSecret: testJWTSecret}
		now := time.Now()
		if err := a.Check("Bearer " + signJWT(t, jwt.SigningMethodHS256, testJWTSecret, validClaims(now))); err != nil {
			t.Errorf("token valid now: got %v, want nil", err)
		}
		expired := jwt.MapClaims{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}
		assertUnauthorized(t, a.Check("Bearer "+signJWT(t, jwt.SigningMethodHS256, testJWTSecret, expired)), secrets...)
	})
}

// flipFirst changes the first character of a base64url segment.
func flipFirst(s string) string {
	if s == "" {
		return "A"
	}
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	return string(c) + s[1:]
}
