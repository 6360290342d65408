package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// TokenStore checks OAuth 2.0 access tokens that hookbay issued.
type TokenStore interface {
	SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error
	TokenClient(ctx context.Context, hash []byte, now time.Time) (string, []string, error)
}

// OAuthClient may obtain tokens with the client-credentials grant.
type OAuthClient struct {
	Secret string
	Scopes []string
}

// handleToken is the client-credentials token endpoint (RFC 6749 §4.4).
func (h *Bloomreach) handleToken(c echo.Context) error {
	r := c.Request()
	body, err := readBody(c, tokenBodyLimit)
	if err != nil {
		// OAuth clients read every error in RFC 6749's format; the status
		// is the one Bloomreach reads on its webhook routes (503, which it
		// retries, for a body that did not arrive in full).
		return tokenError(c, statusFor(hooks.SenderBloomreach, hooks.ErrorCode(err)), "invalid_request", hooks.ErrorMessage(err))
	}
	// RFC 6749 section 4.4.2: the parameters come as a form. Any other
	// body (JSON, say) would be read as no grant_type at all, and answered
	// unsupported_grant_type, when the problem is its format.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != formType {
		got := "no Content-Type"
		if ct := r.Header.Get("Content-Type"); ct != "" {
			got = strconv.Quote(ct)
		}
		return tokenError(c, http.StatusBadRequest, "invalid_request",
			"the body must be application/x-www-form-urlencoded (RFC 6749 section 4.4.2), not "+got)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		return tokenError(c, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if u, err := url.QueryUnescape(secret); err == nil {
			secret = u
		}
	} else {
		// Credentials only from the body: never from the URL, which ends up
		// in access logs (RFC 6749 section 2.3.1).
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	client, known := h.Clients[id]
	if id == "" || !known || !hooks.SecretEqual(secret, client.Secret) {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="hookbay"`)
		return tokenError(c, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		return tokenError(c, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
	}
	scopes := client.Scopes
	if s := r.Form.Get("scope"); s != "" {
		scopes = strings.Fields(s)
		for _, sc := range scopes {
			if !slices.Contains(client.Scopes, sc) {
				return tokenError(c, http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not granted to this client")
			}
		}
	}
	raw := make([]byte, 32)
	if _, err := randRead(raw); err != nil {
		return fmt.Errorf("generate access token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	now := h.now()
	if err := h.Tokens.SaveToken(r.Context(), sum[:], id, scopes, now.Add(h.TokenTTL), now); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(http.StatusOK, map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": int(h.TokenTTL.Seconds()), "scope": strings.Join(scopes, " "),
	})
}

// formType is the only body a token request may have.
const formType = "application/x-www-form-urlencoded"

// tokenBodyLimit bounds a token request: a few form fields.
const tokenBodyLimit = 64 << 10

// tokenError answers in the token endpoint's own format (RFC 6749 §5.2),
// which OAuth 2.0 clients parse, rather than hookbay's error body.
func tokenError(c echo.Context, status int, code, desc string) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, map[string]string{"error": code, "error_description": desc})
}

// randRead fills b from crypto/rand.
var randRead = rand.Read
