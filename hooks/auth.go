package hooks

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTLeeway is the clock skew allowed on exp, nbf and iat.
const JWTLeeway = 30 * time.Second

// SecretEqual compares a presented secret with the configured one in
// constant time, lengths included: both are hashed first, so that timing
// reveals neither the secret nor its length.
func SecretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// BubblehouseAuth checks the Authorization header Bubblehouse sends: the
// fixed value configured on its API settings page, or an HS256 JWT signed
// with a shared secret (Bubblehouse "Hooks API" reference, "Authentication").
// Either or both may be set.
type BubblehouseAuth struct {
	Authorization string
	JWTSecret     []byte
	Now           func() time.Time
}

// Check returns nil when header carries valid credentials and an
// EUNAUTHORIZED error otherwise. The error never repeats the header.
func (a *BubblehouseAuth) Check(header string) error {
	if header == "" {
		return Errorf(EUNAUTHORIZED, "Authorization header is missing")
	}
	if a.Authorization != "" && SecretEqual(header, a.Authorization) {
		return nil
	}
	if len(a.JWTSecret) == 0 {
		return Errorf(EUNAUTHORIZED, "Authorization header does not match the configured value")
	}
	// The scheme name is case-insensitive (RFC 9110, section 11.1).
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.Count(token, ".") != 2 {
		if a.Authorization != "" {
			return Errorf(EUNAUTHORIZED, "Authorization header does not match the configured value")
		}
		return Errorf(EUNAUTHORIZED, "Authorization header must be Bearer <JWT>")
	}
	return a.checkJWT(strings.TrimSpace(token))
}

func (a *BubblehouseAuth) checkJWT(token string) error {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return a.JWTSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithLeeway(JWTLeeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(), // a token without exp would be valid forever
		jwt.WithTimeFunc(now),
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return Errorf(EUNAUTHORIZED, "JWT has expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Errorf(EUNAUTHORIZED, "JWT must carry an exp claim")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return Errorf(EUNAUTHORIZED, "JWT is not valid yet")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Errorf(EUNAUTHORIZED, "JWT signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return Errorf(EUNAUTHORIZED, "JWT must be signed with HS256")
	}
	return Errorf(EUNAUTHORIZED, "JWT is malformed")
}
