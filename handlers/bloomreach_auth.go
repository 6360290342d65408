package handlers

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// WebhookAuth is a webhook's authentication: every configured scheme must
// pass. Secrets are compared in constant time.
type WebhookAuth struct {
	Basic        *[2]string        // user, password
	Headers      map[string]string // header name to exact value
	OAuth2       bool
	TokenIn      string // header | body | query
	TokenField   string
	Scopes       []string // the token must carry all of them
	MTLS         bool
	MTLSSubjects []string
}

// handleAuthTest answers Bloomreach's "Test settings": 200 when the
// credentials pass, 401 when not, whatever the method.
func (h *Bloomreach) handleAuthTest(c echo.Context) error {
	name := c.Param("name")
	rec := startRecord(c, hooks.SenderBloomreach, name+"/auth-test", h.now(), h.secrets...)
	wh, ok := h.Webhooks[name]
	if !ok {
		return hooks.Errorf(hooks.ENOTFOUND, "no Bloomreach webhook named %q", name)
	}
	if err := h.authenticate(c, wh, nil); err != nil {
		return err
	}
	rec.Status, rec.Response = http.StatusOK, []byte(`{"success":true,"result":{"status":"credentials accepted"}}`)
	if err := h.Guard.Record(c.Request().Context(), rec); err != nil {
		return err
	}
	return c.JSONBlob(rec.Status, rec.Response)
}

// authenticate checks every configured scheme; a failure sets the
// WWW-Authenticate challenge of the scheme that failed.
func (h *Bloomreach) authenticate(c echo.Context, wh *BloomreachWebhook, body []byte) error {
	r := c.Request()
	a := wh.Auth
	fail := func(challenge, format string, args ...any) error {
		if challenge != "" {
			c.Response().Header().Set("WWW-Authenticate", challenge)
		}
		return hooks.Errorf(hooks.EUNAUTHORIZED, format, args...)
	}
	if a.MTLS {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return fail("", "a client certificate that chains to the configured CA is required")
		}
		if len(a.MTLSSubjects) > 0 {
			leaf := r.TLS.VerifiedChains[0][0]
			names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
			if !slices.ContainsFunc(names, func(n string) bool { return slices.Contains(a.MTLSSubjects, n) }) {
				return fail("", "client certificate subject %q is not allowed", leaf.Subject.CommonName)
			}
		}
	}
	if a.Basic != nil {
		user, pass, ok := r.BasicAuth()
		userOK, passOK := hooks.SecretEqual(user, a.Basic[0]), hooks.SecretEqual(pass, a.Basic[1])
		if !ok || !(userOK && passOK) {
			return fail(`Basic realm="hookbay", charset="UTF-8"`, "Basic credentials are missing or wrong")
		}
	}
	for name, want := range a.Headers {
		if !hooks.SecretEqual(r.Header.Get(name), want) {
			return fail("", "header %s is missing or wrong", name)
		}
	}
	if a.OAuth2 {
		token := bearerOrField(r, a.TokenIn, a.TokenField, body)
		if token == "" {
			return fail(`Bearer realm="hookbay"`, "an OAuth 2.0 access token is required (%s)", a.TokenIn)
		}
		sum := sha256.Sum256([]byte(token))
		client, scopes, err := h.Tokens.TokenClient(r.Context(), sum[:], h.now())
		if err != nil {
			return err
		}
		if client == "" {
			return fail(`Bearer realm="hookbay", error="invalid_token"`, "the access token is unknown or expired")
		}
		for _, want := range a.Scopes {
			if !slices.Contains(scopes, want) {
				return fail(`Bearer realm="hookbay", error="insufficient_scope", scope="`+strings.Join(a.Scopes, " ")+`"`,
					"the access token lacks scope %s", want)
			}
		}
	}
	return nil
}

// bearerOrField finds the access token where the webhook says Bloomreach
// puts it.
func bearerOrField(r *http.Request, in, field string, body []byte) string {
	switch in {
	case "query":
		return r.URL.Query().Get(field)
	case "body":
		if raw, ok := hooks.RawPointer(body, "/"+field); ok {
			s, _ := hooks.ScalarString(raw)
			return s
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// The body was read already: parse the bytes, not r.Body.
			if form, err := url.ParseQuery(string(body)); err == nil {
				return form.Get(field)
			}
		}
		return ""
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
